//! A horizontal bar chart drawn as inline SVG on the server: no script, no
//! image request, nothing the Content-Security-Policy has to allow.
//!
//! Every bar has its label and its count written beside it as text, so the
//! chart reads without colour (and a screen reader gets the same from the
//! table the overview prints under it). Colours come from the stylesheet
//! through classes: the policy forbids inline `style` attributes.

use maud::{html, Markup};

/// Width of the label column, in SVG units.
const LABEL_WIDTH: u64 = 240;
/// Width of the longest bar.
const BAR_WIDTH: u64 = 360;
/// Room for the count after a bar.
const COUNT_WIDTH: u64 = 80;
/// Height of one row.
const ROW: u64 = 28;
/// Height of one bar, inside its row.
const BAR: u64 = 18;

/// One bar: its label and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// What the bar counts, written left of it.
    pub label: String,
    /// Its length, relative to the longest.
    pub value: u64,
}

/// The length of a bar of `value` when the longest is `max`: at least one
/// unit for any non-zero value, so that a count of 1 among thousands still
/// shows.
fn length(value: u64, max: u64) -> u64 {
    if value == 0 || max == 0 {
        return 0;
    }
    let scaled = u128::from(value) * u128::from(BAR_WIDTH) / u128::from(max);
    u64::try_from(scaled).unwrap_or(BAR_WIDTH).max(1)
}

/// The chart of `bars`, titled `title` (its accessible name).
pub fn bar_chart(id: &str, title: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|bar| bar.value).max().unwrap_or(0);
    let rows = u64::try_from(bars.len()).unwrap_or(u64::MAX);
    let width = LABEL_WIDTH + BAR_WIDTH + COUNT_WIDTH;
    let height = rows.saturating_mul(ROW).max(ROW);
    let title_id = format!("{id}-title");
    html! {
        svg id=(id) class="chart" role="img" aria-labelledby=(title_id)
            xmlns="http://www.w3.org/2000/svg"
            width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } {
            title id=(title_id) { (title) }
            @for (index, bar) in bars.iter().enumerate() {
                @let top = u64::try_from(index).unwrap_or(u64::MAX).saturating_mul(ROW);
                @let bar_length = length(bar.value, max);
                g class="chart-row" {
                    text class="chart-label" x=(LABEL_WIDTH - 8) y=(top + ROW / 2 + 5)
                        text-anchor="end" { (bar.label) }
                    rect class="chart-bar" x=(LABEL_WIDTH) y=(top + (ROW - BAR) / 2)
                        width=(bar_length) height=(BAR) {}
                    text class="chart-count" x=(LABEL_WIDTH + bar_length + 6)
                        y=(top + ROW / 2 + 5) { (bar.value) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars() -> Vec<Bar> {
        vec![
            Bar {
                label: "stripe: confirmed".into(),
                value: 40,
            },
            Bar {
                label: "stripe: unmatched".into(),
                value: 1,
            },
            Bar {
                label: "<paypal> & co".into(),
                value: 20,
            },
        ]
    }

    #[test]
    fn bars_are_scaled_to_the_longest_and_never_vanish() {
        assert_eq!(length(40, 40), BAR_WIDTH);
        assert_eq!(length(20, 40), BAR_WIDTH / 2);
        assert_eq!(length(1, 100_000), 1);
        assert_eq!(length(0, 40), 0);
        assert_eq!(length(u64::MAX, u64::MAX), BAR_WIDTH);
    }

    #[test]
    fn every_bar_has_its_label_and_count_as_text() {
        let svg = bar_chart("webhooks", "Webhooks by gateway", &bars()).into_string();
        assert!(svg.starts_with("<svg id=\"webhooks\""), "{svg}");
        assert!(svg.contains("role=\"img\""), "{svg}");
        assert!(
            svg.contains("<title id=\"webhooks-title\">Webhooks by gateway</title>"),
            "{svg}"
        );
        assert_eq!(svg.matches("<rect ").count(), 3, "{svg}");
        assert!(svg.contains(">stripe: confirmed</text>"), "{svg}");
        assert!(
            svg.contains(">40</text>") && svg.contains(">1</text>"),
            "{svg}"
        );
        assert!(svg.contains(&format!("width=\"{BAR_WIDTH}\"")), "{svg}");
        assert!(
            svg.contains(&format!("width=\"{}\"", BAR_WIDTH / 2)),
            "{svg}"
        );
        // Labels are text, escaped like any other.
        assert!(svg.contains("&lt;paypal&gt; &amp; co"), "{svg}");
        assert!(!svg.contains("<paypal>"), "{svg}");
        // No inline style: the policy would refuse it.
        assert!(!svg.contains("style="), "{svg}");
    }
}
