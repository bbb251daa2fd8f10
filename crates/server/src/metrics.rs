//! Prometheus metrics from `prometheus-client`, rendered in the format the
//! scraper asks for: OpenMetrics 1.0 for a client that accepts
//! `application/openmetrics-text` (Prometheus does), the Prometheus text
//! format 0.0.4 for every other one (curl, agents that read only 0.0.4).
//!
//! Counters and the latency histogram are updated as requests are answered;
//! the gauges that describe shared state (pool use, outbox backlog) are read
//! at scrape time, so they cost nothing between scrapes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `payhook_webhooks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// The gateway's name (`stripe`, `paypal`, `generic`).
    pub gateway: &'static str,
    /// What came of the call (`confirmed`, `duplicate`, `bad_signature`, ...).
    pub outcome: &'static str,
}

/// A gateway label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabel {
    /// The gateway's name.
    pub gateway: &'static str,
}

/// Labels of the pool gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// `idle` or `in_use`.
    pub state: &'static str,
}

/// Labels of `payhook_rate_limited_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// `failed_verification`, `failed_authentication`, `in_flight` or
    /// `receiving_bytes`.
    pub reason: &'static str,
}

/// Labels of `payhook_notifications_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabel {
    /// `delivered`, `retried` or `dead`.
    pub outcome: &'static str,
}

/// The notification counter, shared with the outbox dispatcher.
#[derive(Clone, Debug, Default)]
pub struct NotificationCounter(Family<NotificationLabel, Counter>);

impl NotificationCounter {
    /// Counts one delivery attempt's result: `delivered`, `retried` or `dead`.
    pub fn count(&self, outcome: &'static str) {
        self.0.get_or_create(&NotificationLabel { outcome }).inc();
    }
}

/// Labels of `payhook_reconcile_checks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileCheckLabels {
    /// The payment's gateway.
    pub gateway: String,
    /// What came of the check ([`payhook_domain::CheckResult::as_str`]).
    pub result: &'static str,
}

/// Labels of `payhook_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileErrorLabels {
    /// The payment's gateway.
    pub gateway: String,
    /// Why the API gave no usable answer
    /// ([`payhook_domain::GatewayApiError::as_str`]).
    pub error: &'static str,
}

/// A gateway label owned, for gateways named at run time.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayName {
    /// The gateway's name.
    pub gateway: String,
}

/// The reconciliation counters, shared by the background reconciler and
/// the reconcile route.
#[derive(Clone, Debug, Default)]
pub struct ReconcileMetrics {
    checks: Family<ReconcileCheckLabels, Counter>,
    changes: Family<GatewayName, Counter>,
    errors: Family<ReconcileErrorLabels, Counter>,
    last_pass: Gauge,
}

impl ReconcileMetrics {
    /// Counts one check: its result, a change of the payment's status, and
    /// the API's error.
    pub fn check(&self, report: &payhook_domain::CheckReport) {
        self.checks
            .get_or_create(&ReconcileCheckLabels {
                gateway: report.gateway.clone(),
                result: report.result.as_str(),
            })
            .inc();
        if report.changed() && matches!(report.result, payhook_domain::CheckResult::Applied(_)) {
            self.changes
                .get_or_create(&GatewayName {
                    gateway: report.gateway.clone(),
                })
                .inc();
        }
        if let payhook_domain::CheckResult::Error(error) = &report.result {
            self.errors
                .get_or_create(&ReconcileErrorLabels {
                    gateway: report.gateway.clone(),
                    error: error.as_str(),
                })
                .inc();
        }
    }

    /// Records the end of a pass at `at`.
    pub fn pass_finished(&self, at: chrono::DateTime<chrono::Utc>) {
        self.last_pass.set(at.timestamp());
    }
}

/// Requests the HTTP layer refused as malformed before they reached the
/// application (it answers them a bare 400 or 431 and closes). actix-http
/// has no hook for them but its log line, so the log layer of
/// [`crate::telemetry`] counts them here.
#[derive(Clone, Debug, Default)]
pub struct ParseErrorCounter(Counter);

impl ParseErrorCounter {
    /// Counts one malformed request.
    pub fn count(&self) {
        self.0.inc();
    }
}

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    latency: Family<GatewayLabel, Histogram>,
    amount_mismatches: Family<GatewayLabel, Counter>,
    rate_limited: Family<LimitLabel, Counter>,
    pool: Family<PoolLabel, Gauge>,
    pool_size: Gauge,
    outbox_backlog: Gauge,
    notifications: NotificationCounter,
    pruned: crate::pruner::PrunedCounter,
    reconcile: ReconcileMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `payhook_` prefix, with a parse
    /// error counter nothing increments.
    pub fn new() -> Self {
        Self::with_parse_errors(ParseErrorCounter::default())
    }

    /// As [`Metrics::new`], showing `parse_errors` (the counter the
    /// installed log layer increments) as `payhook_http_parse_errors_total`.
    pub fn with_parse_errors(parse_errors: ParseErrorCounter) -> Self {
        let mut registry = Registry::with_prefix("payhook");
        registry.register(
            "http_parse_errors",
            "Requests the HTTP layer refused as malformed before routing (400 or 431, connection closed)",
            parse_errors.0,
        );
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhooks",
            "Webhook calls by gateway and outcome",
            webhooks.clone(),
        );
        // 0.5 ms to about 4 s.
        let latency = Family::<GatewayLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        registry.register(
            "webhook_duration_seconds",
            "Time from receiving a webhook to answering it",
            latency.clone(),
        );
        let amount_mismatches = Family::<GatewayLabel, Counter>::default();
        registry.register(
            "amount_mismatches",
            "Confirmations whose amount differed from the payment's (recorded or refused)",
            amount_mismatches.clone(),
        );
        let rate_limited = Family::<LimitLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests answered 429 or 503 by the abuse protection",
            rate_limited.clone(),
        );
        let pool = Family::<PoolLabel, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections open, by state",
            pool.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Configured size of the database pool",
            pool_size.clone(),
        );
        let outbox_backlog = Gauge::default();
        registry.register(
            "outbox_backlog",
            "Outbox rows not yet delivered to the shop",
            outbox_backlog.clone(),
        );
        let notifications = NotificationCounter::default();
        registry.register(
            "notifications",
            "Outbox delivery attempts to the shop by outcome (delivered, retried, dead)",
            notifications.0.clone(),
        );
        let pruned = crate::pruner::PrunedCounter::default();
        registry.register(
            "pruned",
            "Rows removed by the retention pruner: event bodies removed, delivered outbox rows deleted",
            pruned.0.clone(),
        );
        let reconcile = ReconcileMetrics::default();
        registry.register(
            "reconcile_checks",
            "Payments checked against their gateway's API, by gateway and result",
            reconcile.checks.clone(),
        );
        registry.register(
            "reconcile_changes",
            "Payments whose status reconciliation changed, by gateway",
            reconcile.changes.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Checks the gateway's API gave no usable answer to, by gateway and error",
            reconcile.errors.clone(),
        );
        registry.register(
            "reconcile_last_pass_timestamp_seconds",
            "Unix time at which the last background reconciliation pass finished (0: none yet)",
            reconcile.last_pass.clone(),
        );
        Self {
            notifications,
            reconcile,
            registry,
            webhooks,
            latency,
            amount_mismatches,
            rate_limited,
            pool,
            pool_size,
            outbox_backlog,
            pruned,
        }
    }

    /// Counts one webhook call and its latency.
    pub fn webhook(&self, gateway: &'static str, outcome: &'static str, seconds: f64) {
        self.webhooks
            .get_or_create(&WebhookLabels { gateway, outcome })
            .inc();
        self.latency
            .get_or_create(&GatewayLabel { gateway })
            .observe(seconds);
    }

    /// Counts a confirmation with another amount than expected.
    pub fn amount_mismatch(&self, gateway: &'static str) {
        self.amount_mismatches
            .get_or_create(&GatewayLabel { gateway })
            .inc();
    }

    /// Counts a request refused by the abuse protection.
    pub fn rate_limited(&self, reason: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabel { reason })
            .inc();
    }

    /// The notification counter, for the dispatcher.
    pub fn notification_counter(&self) -> NotificationCounter {
        self.notifications.clone()
    }

    /// The retention pruner's counter, for the background pruner.
    pub fn pruned_counter(&self) -> crate::pruner::PrunedCounter {
        self.pruned.clone()
    }

    /// The reconciliation counters, for the reconciler and the route.
    pub fn reconcile(&self) -> ReconcileMetrics {
        self.reconcile.clone()
    }

    /// Renders the registry in `format` after setting the scrape-time gauges.
    pub fn render(
        &self,
        pool: (u32, u32, u32),
        outbox_backlog: Option<i64>,
        format: Format,
    ) -> String {
        let (open, idle, max) = pool;
        self.pool
            .get_or_create(&PoolLabel { state: "idle" })
            .set(i64::from(idle));
        self.pool
            .get_or_create(&PoolLabel { state: "in_use" })
            .set(i64::from(open.saturating_sub(idle)));
        self.pool_size.set(i64::from(max));
        if let Some(backlog) = outbox_backlog {
            self.outbox_backlog.set(backlog);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        match format {
            Format::OpenMetrics => text,
            Format::Prometheus => openmetrics_to_prometheus(&text),
        }
    }
}

/// A text format of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// OpenMetrics when the `Accept` header accepts
    /// `application/openmetrics-text` (with a non-zero `q`), else 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let accepts_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let essence = parts.next().unwrap_or_default();
                let refused = parts.any(|parameter| {
                    parameter
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                essence.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if accepts_openmetrics {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Rewrites `prometheus-client`'s OpenMetrics text as the 0.0.4 format. The
/// samples are the same lines in both; the differences are in the metadata:
/// a counter's `# HELP`/`# TYPE` name the family (`payhook_webhooks`) in
/// OpenMetrics but the sample (`payhook_webhooks_total`) in 0.0.4, `unknown`
/// is `untyped`, and 0.0.4 has neither `# UNIT` lines nor `# EOF`.
fn openmetrics_to_prometheus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // A family's HELP comes before its TYPE, which decides its name.
    let mut help: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(format: Format) -> String {
        let metrics = Metrics::new();
        metrics.webhook("stripe", "confirmed", 0.01);
        metrics.rate_limited("in_flight");
        metrics.render((2, 1, 8), Some(3), format)
    }

    #[test]
    fn openmetrics_names_counter_families_and_ends_with_eof() {
        let text = rendered(Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE payhook_webhooks counter\n"), "{text}");
        assert!(
            text.contains("payhook_webhooks_total{gateway=\"stripe\",outcome=\"confirmed\"} 1\n")
        );
    }

    #[test]
    fn prometheus_text_names_counters_by_their_sample_and_has_no_eof() {
        let text = rendered(Format::Prometheus);
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# UNIT"), "{text}");
        assert!(
            text.contains(
                "# HELP payhook_webhooks_total Webhook calls by gateway and outcome.\n\
                 # TYPE payhook_webhooks_total counter\n\
                 payhook_webhooks_total{gateway=\"stripe\",outcome=\"confirmed\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE payhook_rate_limited_total counter\n"),
            "{text}"
        );
        // Histograms and gauges keep their names.
        assert!(
            text.contains("# TYPE payhook_webhook_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(text.contains("payhook_webhook_duration_seconds_count{gateway=\"stripe\"} 1\n"));
        assert!(text.contains("# TYPE payhook_outbox_backlog gauge\npayhook_outbox_backlog 3\n"));
        // Every sample line of one format is in the other.
        let openmetrics = rendered(Format::OpenMetrics);
        let samples = |text: &str| -> Vec<String> {
            // A family's series come in hash order: compare them sorted.
            let mut lines: Vec<String> = text
                .lines()
                .filter(|line| !line.starts_with('#'))
                .map(str::to_owned)
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(samples(&text), samples(&openmetrics));
    }

    #[test]
    fn openmetrics_only_when_the_client_accepts_it() {
        let prometheus = "application/openmetrics-text;version=1.0.0,\
                          application/openmetrics-text;version=0.0.1;q=0.75,\
                          text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
        for other in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("application/openmetrics-text;q=0, text/plain"),
        ] {
            assert_eq!(Format::negotiate(other), Format::Prometheus, "{other:?}");
        }
    }
}
