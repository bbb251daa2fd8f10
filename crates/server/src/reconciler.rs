//! Reconciliation in the server: the gateways' API clients built from the
//! configuration, the background reconciler that runs a pass every
//! interval, and what `payhook reconcile` prints.
//!
//! The decisions (which payments are due, what the gateway's state means,
//! backoff, claims) are the domain's [`Reconciler`]; this module only runs
//! it, logs and counts what it reports. It does not apply anything itself.
//!
//! awc's client is bound to the thread that made it, so the API clients
//! are built per thread from [`GatewayApis`], which is `Send + Sync` and
//! holds only the configuration (and, for PayPal, the OAuth token cache
//! that every thread shares).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use payhook_domain::ports::{Clock, Store};
use payhook_domain::reconcile::Mode;
use payhook_domain::{
    AmountPolicy, CheckReport, CheckResult, GatewayApi, GatewayApiError, ReconcileSettings,
    ReconcileStore, Reconciler,
};
use tokio::sync::watch;

use payhook_paypal_api::{PayPalApi, PayPalApiConfig};
use payhook_stripe_api::{StripeApi, StripeApiConfig};

use crate::config::ReconcileConfig;
use crate::metrics::ReconcileMetrics;

/// How long one call to a gateway's API may take.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes the API client of one gateway on the calling thread.
///
/// `Send + Sync`: made once at start-up and shared by every thread; what it
/// builds may be bound to its thread (awc).
pub trait ApiFactory: Send + Sync {
    /// The gateway's name, the `payment_method` of its payments.
    fn gateway(&self) -> &'static str;

    /// A client for the calling thread.
    fn build(&self) -> Rc<dyn GatewayApi>;
}

impl ApiFactory for StripeApiConfig {
    fn gateway(&self) -> &'static str {
        "stripe"
    }

    fn build(&self) -> Rc<dyn GatewayApi> {
        match StripeApi::new(self.clone()) {
            Ok(api) => Rc::new(api),
            // The configuration was validated when it was read; should a
            // client still be refused, its payments are reported, not
            // panicked over.
            Err(error) => Rc::new(Unusable {
                gateway: "stripe",
                reason: error.to_string(),
            }),
        }
    }
}

impl ApiFactory for PayPalApiConfig {
    fn gateway(&self) -> &'static str {
        "paypal"
    }

    fn build(&self) -> Rc<dyn GatewayApi> {
        Rc::new(PayPalApi::new(self.clone()))
    }
}

/// A gateway whose client could not be built: every check is an error
/// naming why.
struct Unusable {
    gateway: &'static str,
    reason: String,
}

#[async_trait::async_trait(?Send)]
impl GatewayApi for Unusable {
    fn gateway(&self) -> &str {
        self.gateway
    }

    async fn state(
        &self,
        _payment: &payhook_domain::Payment,
    ) -> Result<payhook_domain::GatewayState, GatewayApiError> {
        Err(GatewayApiError::Malformed(format!(
            "the API client is unusable: {}",
            self.reason
        )))
    }
}

/// The gateways whose API credentials are configured.
#[derive(Clone, Default)]
pub struct GatewayApis {
    factories: Vec<Arc<dyn ApiFactory>>,
}

impl std::fmt::Debug for GatewayApis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.gateways()).finish()
    }
}

impl GatewayApis {
    /// The API of each gateway whose credentials `config` holds. The
    /// PayPal configuration is cloned, so every thread shares its token.
    pub fn from_config(config: &ReconcileConfig) -> Self {
        let mut apis = Self::default();
        if let Some(stripe) = &config.stripe {
            apis = apis.with(Arc::new(stripe.clone().with_timeout(API_TIMEOUT)));
        }
        if let Some(paypal) = &config.paypal {
            apis = apis.with(Arc::new(paypal.api.clone().with_timeout(API_TIMEOUT)));
        }
        apis
    }

    /// The same set, also with `factory`'s gateway.
    #[must_use]
    pub fn with(mut self, factory: Arc<dyn ApiFactory>) -> Self {
        self.factories.push(factory);
        self
    }

    /// The gateways reconciled, in the order configured.
    pub fn gateways(&self) -> Vec<&'static str> {
        self.factories.iter().map(|f| f.gateway()).collect()
    }

    /// True when no gateway has API credentials: reconciliation is off.
    pub fn is_empty(&self) -> bool {
        self.factories.is_empty()
    }

    /// A reconciler for the calling thread, with a client for each gateway.
    pub fn reconciler(
        &self,
        store: Arc<dyn Store>,
        checks: Arc<dyn ReconcileStore>,
        clock: Arc<dyn Clock>,
        policy: AmountPolicy,
        settings: ReconcileSettings,
    ) -> Reconciler {
        self.factories.iter().fold(
            Reconciler::new(store, checks, clock, policy, settings),
            |reconciler, factory| reconciler.with_api(factory.build()),
        )
    }
}

/// The domain's settings from the configuration.
pub fn settings(config: &ReconcileConfig) -> ReconcileSettings {
    ReconcileSettings {
        after: config.after,
        interval: config.interval,
        batch: config.batch,
        ..ReconcileSettings::default()
    }
}

/// What to say when a payment's gateway has no API configured.
pub fn not_configured(gateway: &str) -> String {
    let hint = match gateway {
        "stripe" => "set STRIPE_API_KEY",
        "paypal" => "set PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET",
        _ => "payhook has no API client for this gateway",
    };
    format!("reconciliation is not configured for gateway {gateway} ({hint})")
}

/// Logs one check's report and counts it. Failures that pause a gateway
/// for the rest of the pass are logged once per gateway in `warned`.
fn report(report: &CheckReport, metrics: &ReconcileMetrics, warned: &mut HashSet<String>) {
    metrics.check(report);
    let gateway_state = report.gateway_state.as_deref().unwrap_or("-");
    match &report.result {
        CheckResult::Applied(outcome) => tracing::info!(
            payment_id = report.payment_id.0,
            transaction_id = %report.transaction_id,
            gateway = %report.gateway,
            status_before = report.status_before.as_str(),
            status = report.status_after.as_str(),
            gateway_state,
            outcome = outcome.as_str(),
            "reconciliation applied the gateway's state"
        ),
        CheckResult::Error(error) if error.pauses_gateway() => {
            if warned.insert(report.gateway.clone()) {
                let message = match error {
                    GatewayApiError::Unauthorized { .. } => {
                        "the gateway refused the API credentials: its payments are not \
                         reconciled until they are fixed"
                    }
                    _ => {
                        "the gateway's API is unavailable or rate limiting: its payments \
                          are checked again later"
                    }
                };
                tracing::warn!(
                    gateway = %report.gateway,
                    payment_id = report.payment_id.0,
                    error = error.as_str(),
                    detail = %error,
                    "{message}"
                );
            }
        }
        CheckResult::Error(error) => tracing::warn!(
            payment_id = report.payment_id.0,
            transaction_id = %report.transaction_id,
            gateway = %report.gateway,
            error = error.as_str(),
            detail = %error,
            "reconciliation could not check the payment"
        ),
        other => tracing::debug!(
            payment_id = report.payment_id.0,
            gateway = %report.gateway,
            gateway_state,
            result = other.as_str(),
            "reconciliation checked the payment"
        ),
    }
}

/// Counts and logs one manual check (the API route), as a pass would.
pub fn record_manual(check: &CheckReport, metrics: &ReconcileMetrics) {
    report(check, metrics, &mut HashSet::new());
}

/// The reconciler of one worker thread, for the reconcile route: built in
/// the app factory, so each worker asks the gateways with its own clients.
pub struct RouteReconciler {
    reconciler: Reconciler,
}

impl RouteReconciler {
    /// Wraps the worker's `reconciler`.
    pub fn new(reconciler: Reconciler) -> Self {
        Self { reconciler }
    }

    /// The worker's reconciler.
    pub fn reconciler(&self) -> &Reconciler {
        &self.reconciler
    }
}

/// Runs a reconciliation pass every interval until told to stop.
pub struct BackgroundReconciler {
    reconciler: Reconciler,
    metrics: ReconcileMetrics,
}

impl BackgroundReconciler {
    /// A background task over `reconciler`, counting in `metrics`.
    pub fn new(reconciler: Reconciler, metrics: ReconcileMetrics) -> Self {
        Self {
            reconciler,
            metrics,
        }
    }

    /// Runs a pass now and then every interval, until `stop` turns true (or
    /// its sender is dropped). A pass in flight when told to stop is
    /// abandoned: what was applied is committed, and the payments it had
    /// claimed are due again once their claim runs out.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let interval = self.reconciler.settings().interval;
        tracing::info!(
            gateways = %self.reconciler.gateways().join(", "),
            interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            "reconciler started"
        );
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = self.run_once() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::info!("reconciler stopped");
    }

    /// One pass: checks the payments due, logs and counts each. Returns
    /// the reports; a store failure is logged and returns none.
    pub async fn run_once(&self) -> Vec<CheckReport> {
        let reports = match self.reconciler.pass(None, Mode::Apply).await {
            Ok(reports) => reports,
            Err(error) => {
                tracing::warn!(%error, "reconciliation pass failed; retrying at the next interval");
                return Vec::new();
            }
        };
        let mut warned = HashSet::new();
        for check in &reports {
            report(check, &self.metrics, &mut warned);
        }
        self.metrics.pass_finished(Utc::now());
        if !reports.is_empty() {
            let summary = Summary::of(&reports);
            tracing::info!(
                checked = reports.len(),
                changed = summary.changed,
                failed = summary.failed,
                skipped = summary.skipped,
                "reconciliation pass finished"
            );
        }
        reports
    }
}

/// What `payhook reconcile` was asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandOptions {
    /// Check payments pending at least this long instead of
    /// `PAYHOOK_RECONCILE_AFTER`.
    pub older_than: Option<Duration>,
    /// Check this payment alone, whatever its status and whether or not it
    /// is due.
    pub payment: Option<i64>,
    /// Ask the gateways and say what would change; write nothing (the
    /// database is not migrated either).
    pub dry_run: bool,
}

/// `payhook reconcile`: one pass (or one payment) with the configured
/// gateways' APIs. Returns the table to print and its counts; an error when
/// the store fails, no gateway has API credentials, or the payment's
/// gateway has none.
pub async fn run_command(
    config: &crate::Config,
    options: CommandOptions,
) -> anyhow::Result<(String, Summary)> {
    use anyhow::Context as _;
    let apis = GatewayApis::from_config(&config.reconcile);
    if apis.is_empty() {
        anyhow::bail!(
            "reconciliation is not configured: set STRIPE_API_KEY, or PAYPAL_CLIENT_ID and \
             PAYPAL_CLIENT_SECRET"
        );
    }
    let mode = if options.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    // A dry run writes nothing, not even the migrations.
    let store = match mode {
        Mode::DryRun => payhook_store_diesel::DieselStore::open(
            config.database_url.expose(),
            &crate::startup::store_options(config),
        )
        .context("cannot open the database named by DATABASE_URL")?,
        Mode::Apply => crate::startup::open_store(config)?,
    };
    let store = Arc::new(store);
    let reconciler = apis.reconciler(
        store.clone(),
        store,
        Arc::new(crate::runtime::SystemClock),
        config.amount_policy,
        settings(&config.reconcile),
    );
    let reports = match options.payment {
        Some(id) => vec![reconciler
            .check(payhook_domain::PaymentId(id), mode)
            .await
            .map_err(|error| match error {
                payhook_domain::ReconcileError::NotConfigured(gateway) => {
                    anyhow::anyhow!(not_configured(&gateway))
                }
                other => anyhow::Error::new(other).context("cannot check the payment"),
            })?],
        None => reconciler
            .pass(options.older_than, mode)
            .await
            .context("the reconciliation pass failed")?,
    };
    Ok((render(&reports, mode), Summary::of(&reports)))
}

/// Counts of a list of reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Payments whose status changed (or would).
    pub changed: usize,
    /// Payments the gateway answered about without a change.
    pub unchanged: usize,
    /// Checks the gateway's API gave no usable answer to.
    pub failed: usize,
    /// Payments not asked about (their gateway was paused in the pass).
    pub skipped: usize,
}

impl Summary {
    /// Counts `reports`.
    pub fn of(reports: &[CheckReport]) -> Self {
        let mut summary = Self::default();
        for report in reports {
            match &report.result {
                CheckResult::Error(_) => summary.failed += 1,
                CheckResult::Skipped => summary.skipped += 1,
                _ if report.changed() => summary.changed += 1,
                _ => summary.unchanged += 1,
            }
        }
        summary
    }

    /// True when there was something to check and no check got an answer:
    /// `payhook reconcile` then exits non-zero.
    pub fn all_failed(&self) -> bool {
        self.failed > 0 && self.changed == 0 && self.unchanged == 0
    }
}

/// The table `payhook reconcile` prints: one row per payment checked, then
/// a line of counts.
pub fn render(reports: &[CheckReport], mode: Mode) -> String {
    let header = [
        "PAYMENT",
        "TRANSACTION",
        "GATEWAY",
        "STATUS",
        "GATEWAY STATE",
        "RESULT",
    ];
    let rows: Vec<[String; 6]> = reports
        .iter()
        .map(|report| {
            [
                report.payment_id.0.to_string(),
                report.transaction_id.clone(),
                report.gateway.clone(),
                format!(
                    "{} → {}",
                    report.status_before.as_str(),
                    report.status_after.as_str()
                ),
                report.gateway_state.clone().unwrap_or_else(|| "-".into()),
                report.result.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = width.saturating_sub(cell.chars().count());
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    if !rows.is_empty() {
        line(&header);
        for row in &rows {
            line(&row.each_ref().map(String::as_str));
        }
    }
    let summary = Summary::of(reports);
    let changed = match mode {
        Mode::Apply => "changed",
        Mode::DryRun => "would change",
    };
    let _ = write!(
        out,
        "checked {} payment(s): {} {changed}, {} unchanged, {} failed, {} skipped",
        reports.len(),
        summary.changed,
        summary.unchanged,
        summary.failed,
        summary.skipped
    );
    if mode == Mode::DryRun {
        out.push_str(" (dry run: nothing was written)");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use payhook_domain::{Outcome, PaymentId, PaymentStatus};

    use super::*;

    fn check(id: i64, result: CheckResult, after: PaymentStatus) -> CheckReport {
        CheckReport {
            payment_id: PaymentId(id),
            transaction_id: format!("TXN-{id}"),
            gateway: "stripe".into(),
            status_before: PaymentStatus::PendingExternal,
            gateway_state: Some("payment_intent succeeded".into()),
            result,
            status_after: after,
        }
    }

    #[test]
    fn the_table_shows_each_check_and_the_counts() {
        let reports = [
            check(
                7,
                CheckResult::Applied(Outcome::Confirmed),
                PaymentStatus::Completed,
            ),
            check(12, CheckResult::NoChange, PaymentStatus::PendingExternal),
            check(
                13,
                CheckResult::Error(GatewayApiError::RateLimited { retry_after: None }),
                PaymentStatus::PendingExternal,
            ),
            check(14, CheckResult::Skipped, PaymentStatus::PendingExternal),
        ];
        let table = render(&reports, Mode::Apply);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(
            lines[0].starts_with("PAYMENT  TRANSACTION  GATEWAY  STATUS"),
            "{table}"
        );
        assert!(
            lines[1].contains("TXN-7")
                && lines[1].contains("pending_external → completed")
                && lines[1].ends_with("applied: confirmed"),
            "{table}"
        );
        assert!(lines[3].contains("error: rate_limited"), "{table}");
        assert_eq!(
            lines[5],
            "checked 4 payment(s): 1 changed, 1 unchanged, 1 failed, 1 skipped"
        );
        let dry = render(&reports[..1], Mode::DryRun);
        assert!(
            dry.ends_with(
                "checked 1 payment(s): 1 would change, 0 unchanged, 0 failed, 0 skipped \
                 (dry run: nothing was written)\n"
            ),
            "{dry}"
        );
        assert_eq!(
            render(&[], Mode::Apply),
            "checked 0 payment(s): 0 changed, 0 unchanged, 0 failed, 0 skipped\n"
        );
    }

    #[test]
    fn a_run_fails_only_when_no_check_got_an_answer() {
        let error = || {
            check(
                1,
                CheckResult::Error(GatewayApiError::Unauthorized { status: 401 }),
                PaymentStatus::PendingExternal,
            )
        };
        let skipped = check(2, CheckResult::Skipped, PaymentStatus::PendingExternal);
        let fine = check(3, CheckResult::NoChange, PaymentStatus::PendingExternal);
        assert!(Summary::of(&[error(), skipped.clone()]).all_failed());
        assert!(!Summary::of(&[error(), fine]).all_failed());
        assert!(!Summary::of(&[]).all_failed());
        assert!(!Summary::of(&[skipped]).all_failed());
    }

    #[test]
    fn metrics_count_checks_changes_and_errors_by_gateway() {
        let metrics = crate::metrics::Metrics::new();
        let counters = metrics.reconcile();
        record_manual(
            &check(
                1,
                CheckResult::Applied(Outcome::Confirmed),
                PaymentStatus::Completed,
            ),
            &counters,
        );
        record_manual(
            &check(
                2,
                CheckResult::Error(GatewayApiError::Unauthorized { status: 401 }),
                PaymentStatus::PendingExternal,
            ),
            &counters,
        );
        counters.pass_finished(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let text = metrics.render((0, 0, 1), None, crate::metrics::Format::Prometheus);
        for line in [
            "payhook_reconcile_checks_total{gateway=\"stripe\",result=\"applied\"} 1",
            "payhook_reconcile_checks_total{gateway=\"stripe\",result=\"error\"} 1",
            "payhook_reconcile_changes_total{gateway=\"stripe\"} 1",
            "payhook_reconcile_errors_total{gateway=\"stripe\",error=\"unauthorized\"} 1",
            "payhook_reconcile_last_pass_timestamp_seconds 1700000000",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
    }

    #[test]
    fn the_not_configured_message_names_the_variables() {
        assert_eq!(
            not_configured("stripe"),
            "reconciliation is not configured for gateway stripe (set STRIPE_API_KEY)"
        );
        assert!(not_configured("paypal").contains("PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET"));
        assert!(not_configured("generic").contains("no API client"));
    }
}
