//! Latency percentiles and answer counts. No clock here: callers hand in
//! measured durations.

use std::collections::BTreeMap;
use std::time::Duration;

/// Nearest-rank percentile of an ascending slice, in per mille
/// (`500` is p50, `990` p99, `1000` the maximum); `None` when empty.
///
/// Nearest rank means the smallest value such that at least `per_mille`/1000
/// of the samples are less or equal: never an interpolation between two
/// samples, so every reported figure was actually observed.
pub fn percentile(sorted: &[Duration], per_mille: u32) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let per_mille = per_mille.min(1000) as usize;
    // ceil(per_mille * n / 1000), at least 1, as a 1-based rank.
    let rank = (per_mille * sorted.len()).div_ceil(1000).max(1);
    sorted.get(rank - 1).copied()
}

/// The latency figures a run reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest answer.
    pub max: Duration,
}

impl LatencySummary {
    /// Sorts `samples` and summarises them; `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            p50: percentile(samples, 500)?,
            p90: percentile(samples, 900)?,
            p99: percentile(samples, 990)?,
            max: percentile(samples, 1000)?,
        })
    }
}

/// Milliseconds with three decimals, for reports.
pub fn millis(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}

/// How many answers had each HTTP status (0 for no answer at all) and
/// each `message` text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Answers by HTTP status; 0 counts transport errors.
    pub statuses: BTreeMap<u16, usize>,
    /// Answers by the `message` field of their JSON body.
    pub messages: BTreeMap<String, usize>,
}

impl Tally {
    /// Counts one answer.
    pub fn add(&mut self, status: u16, message: Option<&str>) {
        *self.statuses.entry(status).or_default() += 1;
        if let Some(message) = message {
            *self.messages.entry(message.to_owned()).or_default() += 1;
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Tally) {
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        for (message, count) in &other.messages {
            *self.messages.entry(message.clone()).or_default() += count;
        }
    }

    /// Answers with a status outside 200..=299 (transport errors included).
    pub fn failures(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(_, count)| count)
            .sum()
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(status, _)| (500..600).contains(*status))
            .map(|(_, count)| count)
            .sum()
    }

    /// Answers whose message was exactly `message`.
    pub fn message_count(&self, message: &str) -> usize {
        self.messages.get(message).copied().unwrap_or(0)
    }

    /// `200=123 404=1`, for the report.
    pub fn statuses_line(&self) -> String {
        self.statuses
            .iter()
            .map(|(status, count)| format!("{status}={count}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&samples, 500), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 900), Some(Duration::from_millis(90)));
        assert_eq!(percentile(&samples, 990), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&samples, 1000), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&samples, 0), Some(Duration::from_millis(1)));
        // Ten samples: p99 is the 10th (the maximum), p50 the 5th.
        let ten = ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(percentile(&ten, 990), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&ten, 500), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&ten, 510), Some(Duration::from_millis(6)));
        assert_eq!(percentile(&[], 500), None);
        assert_eq!(percentile(&ms(&[7]), 990), Some(Duration::from_millis(7)));
    }

    #[test]
    fn summary_sorts_its_input() {
        let mut samples = ms(&[9, 1, 5, 3, 7]);
        let summary = LatencySummary::of(&mut samples).unwrap();
        assert_eq!(summary.p50, Duration::from_millis(5));
        assert_eq!(summary.max, Duration::from_millis(9));
        assert!(LatencySummary::of(&mut []).is_none());
    }

    #[test]
    fn tally_counts_failures_and_server_errors() {
        let mut tally = Tally::default();
        tally.add(200, Some("Payment confirmed"));
        tally.add(200, Some("Webhook already processed"));
        tally.add(404, Some("Payment not found"));
        tally.add(503, None);
        tally.add(0, None);
        assert_eq!(tally.failures(), 3);
        assert_eq!(tally.server_errors(), 1);
        assert_eq!(tally.message_count("Payment confirmed"), 1);
        assert_eq!(tally.statuses_line(), "0=1 200=2 404=1 503=1");
        let mut both = tally.clone();
        both.merge(&tally);
        assert_eq!(both.statuses_line(), "0=2 200=4 404=2 503=2");
        assert_eq!(both.message_count("Payment confirmed"), 2);
    }
}
