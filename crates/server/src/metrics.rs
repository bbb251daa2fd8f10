//! Prometheus metrics, in the OpenMetrics text format that Prometheus
//! scrapes, from `prometheus-client`.
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
    /// `failed_verification`, `failed_authentication` or `in_flight`.
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

    /// The count of `outcome` so far.
    pub fn get(&self, outcome: &'static str) -> u64 {
        self.0.get_or_create(&NotificationLabel { outcome }).get()
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `payhook_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("payhook");
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
        Self {
            notifications,
            registry,
            webhooks,
            latency,
            amount_mismatches,
            rate_limited,
            pool,
            pool_size,
            outbox_backlog,
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

    /// Renders the registry after setting the scrape-time gauges.
    pub fn render(&self, pool: (u32, u32, u32), outbox_backlog: Option<i64>) -> String {
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
        text
    }
}
