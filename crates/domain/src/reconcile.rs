//! Reconciliation: asking a gateway's API where a payment stands, for when
//! its webhooks were lost (an endpoint down longer than the gateway
//! retries, a secret rotated on one side only).
//!
//! - [`GatewayApi`] is the port: "what does the gateway say about this
//!   payment now?", answered as a [`GatewayState`] in the same
//!   [`EventKind`]s the webhooks produce. The Stripe and PayPal
//!   implementations live in their own crates, with the HTTP client.
//! - [`ReconcileStore`] finds the payments that are due (stuck in
//!   `pending_external`), claims them so that several processes never check
//!   one payment at once, and keeps each payment's last check.
//! - [`Reconciler`] checks one payment or runs one pass.
//!
//! What the gateway says is applied through [`Store::apply_event`], the
//! same atomic unit of work as a webhook, as an event whose id is derived
//! from the gateway's object and its state ([`GatewayState::event_id`]).
//! So a second pass, a manual check, or the webhook arriving after all,
//! finds the event already processed or the payment already where it should
//! be, and changes nothing twice. Nothing is applied that did not come from
//! the gateway itself: the state is read from its API with the shop's
//! credentials, never from the caller.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::decision::{decide, AmountPolicy, OrderState, Outcome};
use crate::event::{EventKind, GatewayEvent, References};
use crate::money::Money;
use crate::payment::{Payment, PaymentId, PaymentStatus};
use crate::ports::{Applied, Clock, EventSource, EventToApply, Store, StoreError};
use crate::refund::RefundLedger;

/// What a gateway's API says about a payment now.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayState {
    /// The gateway's object that was read: `pi_...`, `cs_...`, a PayPal
    /// order id.
    pub object_id: String,
    /// The object's type in the gateway's words: `payment_intent`,
    /// `checkout.session`, `order`.
    pub object_type: String,
    /// The object's state in the gateway's words (`succeeded`,
    /// `requires_payment_method`, `complete.paid`, `COMPLETED`): shown to
    /// operators, and part of the derived event id.
    pub state: String,
    /// What the state means for the payment; `None` when it says nothing
    /// payhook acts on (an intent still waiting for its first payment
    /// method, an order just created).
    pub kind: Option<EventKind>,
    /// The amount received, for [`EventKind::Succeeded`].
    pub amount: Option<Money>,
    /// The gateway's own reference learnt from the object (a PayPal capture
    /// id, the PaymentIntent of a Checkout Session), recorded on a payment
    /// that has none, as a webhook's would be.
    pub gateway_reference: Option<String>,
    /// The API's answer as received, kept as the event's raw body for the
    /// audit.
    pub body: Vec<u8>,
}

impl fmt::Debug for GatewayState {
    // The body is the gateway's whole object: left out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayState")
            .field("object_id", &self.object_id)
            .field("object_type", &self.object_type)
            .field("state", &self.state)
            .field("kind", &self.kind)
            .field("amount", &self.amount)
            .field("gateway_reference", &self.gateway_reference)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl GatewayState {
    /// The id of the event this state becomes: `reconcile:<object>:<state>`.
    ///
    /// The same object in the same state is the same event, so checking
    /// twice records it once; a new state of the object is a new event.
    pub fn event_id(&self) -> String {
        format!("reconcile:{}:{}", self.object_id, self.state)
    }

    /// The event type recorded for it: `<object type>.<state>`, e.g.
    /// `payment_intent.succeeded`. The audit tells it from a webhook of the
    /// same name by its source.
    pub fn event_type(&self) -> String {
        format!("{}.{}", self.object_type, self.state)
    }

    /// The state as the event [`Store::apply_event`] takes, for `payment`;
    /// `None` when the state says nothing to act on. It names the payment
    /// by its transaction id, so it finds exactly the payment that was
    /// asked about.
    pub fn to_event(&self, payment: &Payment) -> Option<GatewayEvent> {
        let kind = self.kind?;
        Some(GatewayEvent {
            gateway: payment.payment_method.clone(),
            event_id: self.event_id(),
            event_type: self.event_type(),
            kind,
            references: References {
                transaction_id: Some(payment.transaction_id.clone()),
                external_id: None,
                gateway_reference: self.gateway_reference.clone(),
            },
            amount: self.amount,
            report: None,
        })
    }
}

/// Why a gateway's API gave no usable answer. Nothing was changed in any
/// case. The texts name the HTTP status or the field, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayApiError {
    /// The payment carries no id this API can look up (no external id, or
    /// one of a kind the API does not serve, such as a Stripe `ch_...`).
    #[error("the payment has no id the gateway's API can look up")]
    NoReference,
    /// The API does not know the object (404).
    #[error("the gateway does not know the object (404)")]
    NotFound,
    /// The credentials were refused (401 or 403).
    #[error("the gateway refused the credentials ({status})")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
    },
    /// Too many requests (429); try again after `retry_after` when given.
    #[error("the gateway is rate limiting (429)")]
    RateLimited {
        /// The gateway's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The gateway failed (5xx) or could not be reached (connection,
    /// timeout); `status` is `None` for the latter.
    #[error("the gateway is unavailable ({})", .status.map_or_else(|| "no answer".to_owned(), |s| s.to_string()))]
    Unavailable {
        /// The HTTP status, when one came back.
        status: Option<u16>,
    },
    /// Any other refusal (a 4xx other than the above).
    #[error("the gateway refused the request ({status})")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The answer is not the documented object.
    #[error("the gateway's answer is malformed: {0}")]
    Malformed(String),
}

impl GatewayApiError {
    /// The error for an answer with HTTP status `status` other than 2xx,
    /// the same for every gateway: 401 and 403 refuse the credentials, 404
    /// does not know the object, 429 rate limits (with the wait its
    /// `Retry-After` asked, see [`parse_retry_after`]), 5xx failed, and
    /// anything else refused the request.
    pub fn from_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            401 | 403 => Self::Unauthorized { status },
            404 => Self::NotFound,
            429 => Self::RateLimited { retry_after },
            500..=599 => Self::Unavailable {
                status: Some(status),
            },
            _ => Self::Rejected { status },
        }
    }

    /// True for failures that pass on their own (429, 5xx, no answer): the
    /// payment is checked again later, with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }

    /// True when checking more payments of this gateway in the same pass is
    /// pointless or harmful: it is rate limiting, down, or refusing the
    /// credentials (logged once per pass, not once per payment).
    pub fn pauses_gateway(&self) -> bool {
        self.is_transient() || matches!(self, Self::Unauthorized { .. })
    }

    /// A short name for metrics labels and the stored check.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoReference => "no_reference",
            Self::NotFound => "not_found",
            Self::Unauthorized { .. } => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// The longest wait taken from a `Retry-After`: a larger value is read as
/// this, so that one odd header cannot stop reconciliation for good.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a `Retry-After` header (RFC 9110, section 10.2.3) says to wait,
/// seen at `now`: delay seconds or an HTTP date, capped at
/// [`MAX_RETRY_AFTER`]; `None` when it is neither. A date in the past is no
/// wait.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&Utc) - now).to_std().unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A gateway's API, asked about one payment at a time.
///
/// The futures need not be `Send`, so that an implementation may use a
/// client bound to one thread (actix's `awc`), as [`crate::ports::Notifier`]
/// does; the reconciler runs on the thread that created it.
#[async_trait(?Send)]
pub trait GatewayApi {
    /// The gateway whose payments it answers for: payments whose
    /// `payment_method` is this name (`stripe`, `paypal`).
    fn gateway(&self) -> &str;

    /// What the gateway says about `payment` now, read by the payment's
    /// external id (and, where the API needs it, its gateway reference).
    async fn state(&self, payment: &Payment) -> Result<GatewayState, GatewayApiError>;
}

/// The last check of one payment, as [`ReconcileStore`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileCheck {
    /// When the gateway was asked.
    pub checked_at: DateTime<Utc>,
    /// What it said (`payment_intent succeeded`), when it answered.
    pub gateway_state: Option<String>,
    /// What came of it, as [`CheckResult`]'s text (`applied: confirmed`,
    /// `error: rate_limited`).
    pub result: String,
    /// Transient failures in a row so far (0 after any answer): the backoff
    /// grows with it.
    pub failures: u32,
}

/// Which payments are due for a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueQuery {
    /// Only payments of these gateways (those with API credentials).
    pub gateways: Vec<String>,
    /// Only payments that have not changed since this instant (`now` minus
    /// `PAYHOOK_RECONCILE_AFTER`).
    pub unchanged_since: DateTime<Utc>,
    /// Now: a payment is due when its next check is not after it.
    pub now: DateTime<Utc>,
    /// At most this many.
    pub limit: u32,
}

/// Where reconciliation keeps its own state: which payments are due, who
/// is checking them, and how the last check went.
///
/// Each method is one unit of work.
#[async_trait]
pub trait ReconcileStore: Send + Sync {
    /// The payments `query` selects: `pending_external`, of one of its
    /// gateways, unchanged since `unchanged_since`, and due (never checked,
    /// or next due at or before `now`), oldest change first (then by id), at
    /// most `limit`.
    ///
    /// With `claim`, the same statement moves each returned payment's next
    /// due time to `now + claim`, so that another call, in this or another
    /// process, does not return it until then: each payment is checked by
    /// one process at a time. Without it nothing is written (`--dry-run`).
    async fn due_payments(
        &self,
        query: &DueQuery,
        claim: Option<Duration>,
    ) -> Result<Vec<Payment>, StoreError>;

    /// Records how the check of payment `id` went, and when it is next due.
    /// `PaymentNotFound` when no payment has this id.
    async fn record_check(
        &self,
        id: PaymentId,
        check: &ReconcileCheck,
        next_due: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The last recorded check of payment `id`; `None` when it was never
    /// checked (or no payment has this id).
    async fn last_check(&self, id: PaymentId) -> Result<Option<ReconcileCheck>, StoreError>;
}

/// How often and how hard the reconciler works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// A payment is due once it has been `pending_external` this long
    /// (`PAYHOOK_RECONCILE_AFTER`, 15 minutes).
    pub after: Duration,
    /// Time between passes, and between two checks of one payment
    /// (`PAYHOOK_RECONCILE_INTERVAL`, 5 minutes).
    pub interval: Duration,
    /// Most payments checked in one pass, so that a backlog costs a bounded
    /// number of API calls per interval.
    pub batch: u32,
    /// Longest wait after transient failures (429, 5xx) of one payment.
    pub max_backoff: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(15 * 60),
            interval: Duration::from_secs(5 * 60),
            batch: 100,
            max_backoff: Duration::from_secs(6 * 60 * 60),
        }
    }
}

impl ReconcileSettings {
    /// When a payment whose check failed transiently for the `failures`-th
    /// time in a row is due again: the interval doubled per failure, capped
    /// at `max_backoff`, and never before the gateway's `Retry-After`.
    pub fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .interval
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        doubled
            .min(self.max_backoff)
            .max(retry_after.unwrap_or_default())
    }
}

/// Whether a check may change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply what the gateway says and record the check.
    Apply,
    /// Ask the gateway and say what would change; write nothing.
    DryRun,
}

/// What one check came to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckResult {
    /// The gateway's state was applied; the decision said this.
    Applied(Outcome),
    /// The event for this state was recorded before (an earlier check):
    /// nothing changed.
    AlreadyKnown,
    /// Dry run: applying the state would decide this.
    WouldApply(Outcome),
    /// The state says nothing to act on.
    NoChange,
    /// The gateway gave no usable answer; nothing changed.
    Error(GatewayApiError),
    /// Not asked: the gateway was paused in this pass (rate limiting, down,
    /// refused credentials) or until its `Retry-After`. Due again next pass.
    Skipped,
}

impl CheckResult {
    /// A short name for metrics labels: `applied`, `already_known`,
    /// `would_apply`, `no_change`, `error`, `skipped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied(_) => "applied",
            Self::AlreadyKnown => "already_known",
            Self::WouldApply(_) => "would_apply",
            Self::NoChange => "no_change",
            Self::Error(_) => "error",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Applied(outcome) => write!(f, "applied: {}", outcome.as_str()),
            Self::WouldApply(outcome) => write!(f, "would apply: {}", outcome.as_str()),
            Self::Error(error) => write!(f, "error: {} ({error})", error.as_str()),
            other => f.write_str(other.as_str()),
        }
    }
}

/// One payment checked: where it stood, what the gateway said, what came
/// of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// payhook's id.
    pub payment_id: PaymentId,
    /// payhook's transaction id.
    pub transaction_id: String,
    /// The payment's gateway.
    pub gateway: String,
    /// The payment's status before the check.
    pub status_before: PaymentStatus,
    /// What the gateway said (`payment_intent succeeded`), when it answered.
    pub gateway_state: Option<String>,
    /// What came of it.
    pub result: CheckResult,
    /// The payment's status after the check; for a dry run, the status it
    /// would have.
    pub status_after: PaymentStatus,
}

impl CheckReport {
    /// True when the payment's status changed (or, in a dry run, would).
    pub fn changed(&self) -> bool {
        self.status_before != self.status_after
    }
}

/// Why a single check could not run. Gateway failures are not errors
/// here: they are a [`CheckResult::Error`] in the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconcileError {
    /// No API is configured for the payment's gateway.
    #[error("no API credentials are configured for gateway {0}")]
    NotConfigured(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks payments against their gateways' APIs.
///
/// Not `Send` (its APIs may hold a thread-bound HTTP client): build one per
/// thread that runs checks.
pub struct Reconciler {
    store: Arc<dyn Store>,
    checks: Arc<dyn ReconcileStore>,
    clock: Arc<dyn Clock>,
    policy: AmountPolicy,
    settings: ReconcileSettings,
    apis: Vec<Rc<dyn GatewayApi>>,
    /// Gateways not to be asked before an instant (a `Retry-After`).
    paused_until: std::cell::RefCell<HashMap<String, DateTime<Utc>>>,
}

impl Reconciler {
    /// A reconciler applying to `store` under the amount `policy` (the
    /// webhooks' policy), keeping its state in `checks`, with no API yet.
    pub fn new(
        store: Arc<dyn Store>,
        checks: Arc<dyn ReconcileStore>,
        clock: Arc<dyn Clock>,
        policy: AmountPolicy,
        settings: ReconcileSettings,
    ) -> Self {
        Self {
            store,
            checks,
            clock,
            policy,
            settings,
            apis: Vec::new(),
            paused_until: std::cell::RefCell::default(),
        }
    }

    /// The same reconciler, also asking `api` about its gateway's payments.
    #[must_use]
    pub fn with_api(mut self, api: Rc<dyn GatewayApi>) -> Self {
        self.apis.push(api);
        self
    }

    /// The gateways it can ask, in the order given.
    pub fn gateways(&self) -> Vec<String> {
        self.apis
            .iter()
            .map(|api| api.gateway().to_owned())
            .collect()
    }

    /// Its settings.
    pub fn settings(&self) -> ReconcileSettings {
        self.settings
    }

    fn api(&self, gateway: &str) -> Option<&Rc<dyn GatewayApi>> {
        self.apis.iter().find(|api| api.gateway() == gateway)
    }

    /// Checks payment `id` now, whatever its status and whether or not it
    /// is due (the operator asked): `NotConfigured` when its gateway has no
    /// API. In [`Mode::Apply`] the check is recorded.
    pub async fn check(&self, id: PaymentId, mode: Mode) -> Result<CheckReport, ReconcileError> {
        let payment = self.store.payment(id).await?;
        let api = self
            .api(&payment.payment_method)
            .ok_or_else(|| ReconcileError::NotConfigured(payment.payment_method.clone()))?;
        self.check_with(api.as_ref(), payment, mode).await
    }

    /// One pass: the payments due (oldest first, at most `batch`, claimed
    /// for this process unless `mode` is a dry run), each asked once.
    ///
    /// `unchanged_for` overrides the settings' `after` (the command line's
    /// `--older-than`). A gateway that rate limits, fails or refuses the
    /// credentials is not asked again in this pass: its other payments are
    /// [`CheckResult::Skipped`], and due again at the next pass.
    pub async fn pass(
        &self,
        unchanged_for: Option<Duration>,
        mode: Mode,
    ) -> Result<Vec<CheckReport>, StoreError> {
        let now = self.clock.now();
        let gateways: Vec<String> = self
            .gateways()
            .into_iter()
            .filter(|gateway| !self.is_paused(gateway, now))
            .collect();
        if gateways.is_empty() {
            return Ok(Vec::new());
        }
        let after = unchanged_for.unwrap_or(self.settings.after);
        let query = DueQuery {
            gateways,
            unchanged_since: now - to_chrono(after),
            now,
            limit: self.settings.batch,
        };
        let claim = (mode == Mode::Apply).then_some(self.settings.interval);
        let due = self.checks.due_payments(&query, claim).await?;
        let mut reports = Vec::with_capacity(due.len());
        let mut paused: Vec<String> = Vec::new();
        for payment in due {
            let Some(api) = self.api(&payment.payment_method) else {
                continue;
            };
            if paused.contains(&payment.payment_method) {
                reports.push(CheckReport {
                    payment_id: payment.id,
                    transaction_id: payment.transaction_id.clone(),
                    gateway: payment.payment_method.clone(),
                    status_before: payment.status,
                    gateway_state: None,
                    result: CheckResult::Skipped,
                    status_after: payment.status,
                });
                continue;
            }
            let gateway = payment.payment_method.clone();
            let report = match self.check_with(api.as_ref(), payment, mode).await {
                Ok(report) => report,
                // A payment that vanished between the claim and the check
                // is nothing to report.
                Err(ReconcileError::Store(StoreError::PaymentNotFound(_))) => continue,
                Err(ReconcileError::Store(error)) => return Err(error),
                Err(ReconcileError::NotConfigured(_)) => continue,
            };
            if let CheckResult::Error(error) = &report.result {
                if error.pauses_gateway() {
                    paused.push(gateway);
                }
            }
            reports.push(report);
        }
        Ok(reports)
    }

    fn is_paused(&self, gateway: &str, now: DateTime<Utc>) -> bool {
        self.paused_until
            .borrow()
            .get(gateway)
            .is_some_and(|until| *until > now)
    }

    async fn check_with(
        &self,
        api: &dyn GatewayApi,
        payment: Payment,
        mode: Mode,
    ) -> Result<CheckReport, ReconcileError> {
        let now = self.clock.now();
        let mut report = CheckReport {
            payment_id: payment.id,
            transaction_id: payment.transaction_id.clone(),
            gateway: payment.payment_method.clone(),
            status_before: payment.status,
            gateway_state: None,
            result: CheckResult::NoChange,
            status_after: payment.status,
        };
        let previous_failures = match mode {
            Mode::Apply => self
                .checks
                .last_check(payment.id)
                .await?
                .map_or(0, |check| check.failures),
            Mode::DryRun => 0,
        };
        let state = match api.state(&payment).await {
            Ok(state) => state,
            Err(error) => {
                if let GatewayApiError::RateLimited {
                    retry_after: Some(wait),
                } = &error
                {
                    self.paused_until
                        .borrow_mut()
                        .insert(report.gateway.clone(), now + to_chrono(*wait));
                }
                let retry_after = match &error {
                    GatewayApiError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                let failures = if error.is_transient() {
                    previous_failures.saturating_add(1)
                } else {
                    0
                };
                let wait = if error.is_transient() {
                    self.settings.backoff(failures, retry_after)
                } else {
                    self.settings.interval
                };
                report.result = CheckResult::Error(error);
                if mode == Mode::Apply {
                    self.record(&report, failures, now, wait).await?;
                }
                return Ok(report);
            }
        };
        report.gateway_state = Some(format!("{} {}", state.object_type, state.state));
        let event = match state.to_event(&payment) {
            Some(event) if event.field_with_nul().is_some() => {
                report.result = CheckResult::Error(GatewayApiError::Malformed(
                    "a text contains NUL (U+0000)".into(),
                ));
                None
            }
            other => other,
        };
        if let Some(event) = event {
            match mode {
                Mode::DryRun => {
                    let order = self.store.order(payment.order_id).await?;
                    let order_state = OrderState {
                        status: order.status,
                        total: order.total,
                        paid_amount: order.paid_amount,
                        paid_by: Vec::new(),
                        paid_by_refunded: true,
                    };
                    let decision = decide(
                        &payment,
                        &order_state,
                        &RefundLedger::default(),
                        &event,
                        self.policy,
                        now,
                    );
                    report.status_after = decision.payment.status;
                    report.result = CheckResult::WouldApply(decision.outcome);
                }
                Mode::Apply => {
                    let applied = self
                        .store
                        .apply_event(EventToApply {
                            event,
                            payload: state.body,
                            policy: self.policy,
                            received_at: now,
                            source: EventSource::Reconcile,
                        })
                        .await?;
                    match applied {
                        Applied::Decided { outcome, payment } => {
                            report.status_after = payment.status;
                            report.result = CheckResult::Applied(outcome);
                        }
                        Applied::Duplicate { payment: first } => {
                            // The first delivery's payment is this one, as
                            // the event names it by transaction id.
                            if let Some(first) = first.filter(|first| first.id == payment.id) {
                                report.status_after = first.status;
                            }
                            report.result = CheckResult::AlreadyKnown;
                        }
                        // The event names the payment by its transaction id
                        // and gateway, so it matches unless the payment is
                        // gone; nothing was decided either way.
                        Applied::Unmatched => report.result = CheckResult::NoChange,
                    }
                }
            }
        }
        if mode == Mode::Apply {
            self.record(&report, 0, now, self.settings.interval).await?;
        }
        Ok(report)
    }

    async fn record(
        &self,
        report: &CheckReport,
        failures: u32,
        now: DateTime<Utc>,
        wait: Duration,
    ) -> Result<(), StoreError> {
        let check = ReconcileCheck {
            checked_at: now,
            gateway_state: report.gateway_state.clone(),
            result: report.result.to_string(),
            failures,
        };
        self.checks
            .record_check(report.payment_id, &check, now + to_chrono(wait))
            .await
    }
}

fn to_chrono(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_and_is_capped() {
        let settings = ReconcileSettings {
            interval: Duration::from_secs(300),
            max_backoff: Duration::from_secs(3600),
            ..ReconcileSettings::default()
        };
        assert_eq!(settings.backoff(1, None), Duration::from_secs(300));
        assert_eq!(settings.backoff(2, None), Duration::from_secs(600));
        assert_eq!(settings.backoff(3, None), Duration::from_secs(1200));
        assert_eq!(settings.backoff(10, None), Duration::from_secs(3600));
        assert_eq!(settings.backoff(u32::MAX, None), Duration::from_secs(3600));
        assert_eq!(
            settings.backoff(1, Some(Duration::from_secs(900))),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn the_event_id_is_the_object_and_its_state() {
        let state = GatewayState {
            object_id: "pi_1".into(),
            object_type: "payment_intent".into(),
            state: "succeeded".into(),
            kind: Some(EventKind::Succeeded),
            amount: None,
            gateway_reference: None,
            body: b"{\"secret\":1}".to_vec(),
        };
        assert_eq!(state.event_id(), "reconcile:pi_1:succeeded");
        assert_eq!(state.event_type(), "payment_intent.succeeded");
        assert!(!format!("{state:?}").contains("secret"));
    }

    #[test]
    fn retry_after_is_seconds_or_a_date_and_capped() {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
        let now = DateTime::<Utc>::from_timestamp(784_111_777, 0).expect("time");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("172800", now), Some(MAX_RETRY_AFTER));
        for bad in ["", "-5", "1.5", "soon", "Sun, 06 Nov"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn statuses_map_the_same_for_every_gateway() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            GatewayApiError::from_status(401, None),
            GatewayApiError::Unauthorized { status: 401 }
        );
        assert_eq!(
            GatewayApiError::from_status(403, None),
            GatewayApiError::Unauthorized { status: 403 }
        );
        assert_eq!(
            GatewayApiError::from_status(404, None),
            GatewayApiError::NotFound
        );
        assert_eq!(
            GatewayApiError::from_status(429, wait),
            GatewayApiError::RateLimited { retry_after: wait }
        );
        assert_eq!(
            GatewayApiError::from_status(502, None),
            GatewayApiError::Unavailable { status: Some(502) }
        );
        assert_eq!(
            GatewayApiError::from_status(302, None),
            GatewayApiError::Rejected { status: 302 }
        );
    }

    #[test]
    fn only_transient_failures_back_off() {
        assert!(GatewayApiError::RateLimited { retry_after: None }.is_transient());
        assert!(GatewayApiError::Unavailable { status: Some(503) }.is_transient());
        assert!(!GatewayApiError::Unauthorized { status: 401 }.is_transient());
        assert!(GatewayApiError::Unauthorized { status: 401 }.pauses_gateway());
        assert!(!GatewayApiError::NotFound.pauses_gateway());
        assert_eq!(
            CheckResult::Error(GatewayApiError::Unavailable { status: None }).to_string(),
            "error: unavailable (the gateway is unavailable (no answer))"
        );
    }
}
