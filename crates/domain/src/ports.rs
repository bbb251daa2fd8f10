//! The ports: what the domain needs from the outside world, as traits.
//!
//! - [`GatewayAdapter`]: verify a raw webhook request and parse it into a
//!   [`GatewayEvent`]. One implementation per gateway crate.
//! - [`Store`]: persistence, with one atomic [`Store::apply_event`], and the
//!   recorded events for audit and replay ([`Store::webhook_events`],
//!   [`Store::webhook_event`]).
//! - [`OutboxStore`] and [`Notifier`]: delivering the outbox to the shop,
//!   at least once and in order per order (see [`crate::outbox`]).
//! - [`Clock`] and [`TransactionIds`]: time and randomness, injected so the
//!   domain stays deterministic under test.
//!
//! Nothing here names HTTP or SQL types: adapters receive plain bytes and
//! header lookups, stores receive domain values.

use std::error::Error as StdError;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::decision::{AmountPolicy, Outcome};
use crate::event::{EventKind, GatewayEvent};
use crate::money::MoneyError;
use crate::outbox::{NotifyError, OutboxMessage, OutboxStatus, RetryPolicy};
use crate::payment::{NewOrder, NewPayment, Order, OrderId, Payment, PaymentId, TransitionError};
use crate::refund::Refund;

/// Case-insensitive access to request headers, whatever HTTP stack holds them.
pub trait Headers {
    /// The value of the header `name` (any case), if present and valid text.
    /// When a header is repeated, the first value.
    fn get(&self, name: &str) -> Option<&str>;
}

fn find_header<'a, K: AsRef<str>, V: AsRef<str>>(
    pairs: &'a [(K, V)],
    name: &str,
) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_ref())
}

impl Headers for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<&str> {
        find_header(self, name)
    }
}

impl Headers for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        find_header(self, name)
    }
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        find_header(self, name)
    }
}

impl<const N: usize> Headers for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<&str> {
        find_header(self, name)
    }
}

impl Headers for Vec<(&str, &str)> {
    fn get(&self, name: &str) -> Option<&str> {
        find_header(self, name)
    }
}

/// A webhook call as it arrived: headers and the raw, unparsed body.
///
/// Signatures are computed over the exact bytes, so the body must reach the
/// adapter before anything parses or re-serialises it.
#[derive(Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The request headers.
    pub headers: &'a (dyn Headers + Sync),
    /// The raw body.
    pub body: &'a [u8],
}

/// Why a request's signature was refused. The texts name the fact, never
/// the secret or the received signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but not in the scheme's format.
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    /// The header carries no signature of a scheme we accept (e.g. only `v0`).
    #[error("no signature with an accepted scheme")]
    NoAcceptedSignature,
    /// The signed timestamp is outside the tolerance.
    #[error("timestamp outside tolerance")]
    StaleTimestamp,
    /// No signature matches any configured secret or key.
    #[error("signature mismatch")]
    BadSignature,
    /// The request names an algorithm we do not accept.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// The request points at a certificate we do not trust.
    #[error("untrusted certificate")]
    UntrustedCertificate,
}

/// Why a verified body could not become a [`GatewayEvent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The body is not the JSON the gateway sends.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// A field the event needs is absent.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field is present but unusable.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's path, e.g. `data.object.amount`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The amount or currency cannot be read exactly.
    #[error("invalid {field}: {source}")]
    Money {
        /// The field's path.
        field: &'static str,
        /// Why it cannot be read.
        #[source]
        source: MoneyError,
    },
}

/// One gateway: how its calls are verified and what they mean.
///
/// Implementations are pure functions of the request (and of `now`, for
/// timestamp tolerance): no IO, no state, so they can be fuzzed and tested
/// without a server.
pub trait GatewayAdapter: Send + Sync {
    /// The gateway's name, stored with its events (`stripe`, `paypal`, `generic`).
    fn name(&self) -> &'static str;

    /// Checks that the request really comes from the gateway. Called first,
    /// on the raw bytes; nothing is parsed or written when it fails.
    fn verify(&self, request: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<(), VerifyError>;

    /// Reads a verified request. Event types the gateway sends but payhook
    /// does not act on come back with [`crate::EventKind::NotHandled`], not
    /// as an error, so the gateway stops retrying them.
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<GatewayEvent, ParseError>;
}

/// The boxed cause of a store failure, kept for logs and never shown to callers.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation did not happen. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No order has this id.
    #[error("order {0} not found")]
    OrderNotFound(OrderId),
    /// No payment has this id.
    #[error("payment {0} not found")]
    PaymentNotFound(PaymentId),
    /// Another payment of the same gateway already has this external id.
    #[error("external id is already used by payment {0}")]
    ExternalIdTaken(PaymentId),
    /// The state machine refused the change.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The database cannot be reached (pool timeout, connection refused).
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// Any other database failure.
    #[error("database error")]
    Backend(#[source] BoxError),
    /// No outbox row has this id.
    #[error("notification {0} not found")]
    NotificationNotFound(i64),
    /// The outbox row is not dead, so it cannot be re-queued.
    #[error("notification {id} is {status}, not dead")]
    NotificationNotDead {
        /// The row id.
        id: i64,
        /// Where it stands (`pending` or `delivered`).
        status: &'static str,
    },
}

/// What the store hands back for an event, after its transaction committed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// The event was recorded and decided; `payment` is as stored now.
    Decided {
        /// What the decision was.
        outcome: Outcome,
        /// The payment after the decision.
        payment: Payment,
    },
    /// This gateway event id was already processed; nothing changed.
    Duplicate {
        /// The payment the first delivery matched.
        payment: Option<Payment>,
    },
    /// No payment matched; the event is kept as unmatched, and a
    /// re-delivery will try the lookup again.
    Unmatched,
}

/// One event for [`Store::apply_event`].
#[derive(Debug, Clone)]
pub struct EventToApply {
    /// The verified, parsed event.
    pub event: GatewayEvent,
    /// The raw body, kept for audit and replay.
    pub payload: Vec<u8>,
    /// The amount policy in force.
    pub policy: AmountPolicy,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
    /// Where it came from: a webhook call, or the gateway's API.
    pub source: EventSource,
}

/// Where a recorded event came from. Both are the gateway's word (a
/// verified signature, or an authenticated call to its API), and both go
/// through the same atomic apply; the audit shows which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EventSource {
    /// A webhook call the gateway made, signature verified.
    #[default]
    Webhook,
    /// payhook asked the gateway's API ([`crate::reconcile`]).
    Reconcile,
}

impl EventSource {
    /// The stored name: `webhook` or `reconcile`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Reconcile => "reconcile",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "webhook" => Some(Self::Webhook),
            "reconcile" => Some(Self::Reconcile),
            _ => None,
        }
    }
}

/// Where a recorded gateway event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventOutcome {
    /// No payment matched it (yet). It is not "processed": a re-delivery, a
    /// replay, or marking a payment pending under an id it names, applies it.
    Unmatched,
    /// A payment matched and the decision said this.
    Decided(Outcome),
}

impl EventOutcome {
    /// The stored name: `unmatched` or the decision's name (`confirmed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unmatched => "unmatched",
            Self::Decided(outcome) => outcome.as_str(),
        }
    }

    /// Reads a stored name back; `None` for a name no outcome has.
    pub fn parse(name: &str) -> Option<Self> {
        if name == Self::Unmatched.as_str() {
            return Some(Self::Unmatched);
        }
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
            .map(Self::Decided)
    }

    /// True when a re-delivery or a replay of the event must be answered
    /// "already processed" instead of being evaluated again. An unmatched
    /// event and an amount refused under `reject` are not final.
    pub fn is_final(self) -> bool {
        match self {
            Self::Unmatched => false,
            Self::Decided(outcome) => outcome.is_final(),
        }
    }
}

/// A gateway event as the store recorded it, without its raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The store's id of the record, increasing with the order of arrival.
    pub id: i64,
    /// The event as first delivered: gateway, event id, type, kind,
    /// references and amount. Enough to apply it again.
    pub event: GatewayEvent,
    /// Where it stands now.
    pub outcome: EventOutcome,
    /// The payment it matched, once one did.
    pub payment_id: Option<PaymentId>,
    /// Deliveries and replays that reached the store.
    pub attempts: u32,
    /// When the first delivery arrived.
    pub received_at: DateTime<Utc>,
    /// When it was last evaluated.
    pub processed_at: DateTime<Utc>,
    /// Where the first delivery came from.
    pub source: EventSource,
}

/// One recorded event with the raw body it arrived with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDetail {
    /// The record.
    pub record: StoredEvent,
    /// The raw body of the first delivery, byte for byte (its signature was
    /// verified before it was stored); empty once pruned.
    pub payload: Vec<u8>,
    /// When retention removed the raw body, if it did: `payload` is then
    /// empty, not the body the gateway sent. The record stays, so a late
    /// re-delivery is still recognised as a duplicate.
    pub pruned_at: Option<DateTime<Utc>>,
}

/// Which recorded events to list, and one page of them.
///
/// Every condition that is set must hold. Events come by ascending id, so
/// a caller pages by passing the last id it saw as `after_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of this gateway (`stripe`, `paypal`, `generic`, ...).
    pub gateway: Option<String>,
    /// Only events that stand here.
    pub outcome: Option<EventOutcome>,
    /// Only events of this kind (`refund`, `dispute`, `succeeded`, ...).
    pub kind: Option<EventKind>,
    /// Only events that matched this payment.
    pub payment_id: Option<PaymentId>,
    /// Only events from this source (webhooks, or reconciliation).
    pub source: Option<EventSource>,
    /// Only events received at or after this instant.
    pub received_after: Option<DateTime<Utc>>,
    /// Only events received strictly before this instant, so that
    /// consecutive windows neither overlap nor leave a gap.
    pub received_before: Option<DateTime<Utc>>,
    /// Only events whose id is greater than this one: the page cursor.
    pub after_id: Option<i64>,
    /// At most this many events.
    pub limit: u32,
}

impl EventFilter {
    /// The page size when the caller names none.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page a caller may ask for.
    pub const MAX_LIMIT: u32 = 500;
}

impl Default for EventFilter {
    /// Every event, first page of [`EventFilter::DEFAULT_LIMIT`].
    fn default() -> Self {
        Self {
            gateway: None,
            outcome: None,
            kind: None,
            payment_id: None,
            source: None,
            received_after: None,
            received_before: None,
            after_id: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// Persistence of orders, payments, gateway events and the outbox.
///
/// Each method is one unit of work: it commits entirely or not at all.
#[async_trait]
pub trait Store: Send + Sync {
    /// Records a new pending order.
    async fn create_order(&self, order: NewOrder, now: DateTime<Utc>) -> Result<Order, StoreError>;

    /// The order with this id, or `OrderNotFound`.
    async fn order(&self, id: OrderId) -> Result<Order, StoreError>;

    /// Records a new payment in `created`; `OrderNotFound` when the order
    /// does not exist.
    async fn create_payment(
        &self,
        payment: NewPayment,
        now: DateTime<Utc>,
    ) -> Result<Payment, StoreError>;

    /// The payment with this id, or `PaymentNotFound`.
    async fn payment(&self, id: PaymentId) -> Result<Payment, StoreError>;

    /// Marks the payment pending at its gateway under `external_id`, with
    /// [`Payment::mark_pending`] deciding inside the transaction. Returns
    /// `ExternalIdTaken` when another payment of the same gateway has it.
    ///
    /// In the same transaction it then applies the events that arrived
    /// before the shop recorded the id: every [`EventOutcome::Unmatched`]
    /// event whose external id or gateway reference equals `external_id`
    /// and whose lookup ([`crate::References::lookups`]) now finds this
    /// payment, oldest first, exactly as [`Store::apply_event`] would under
    /// `policy` at `now`. The payment returned is the state after them, so
    /// it may already be completed or failed. A webhook that raced the shop
    /// is thus never left behind: either this transaction sees it, or its
    /// own lookup sees this one's payment.
    async fn mark_pending(
        &self,
        id: PaymentId,
        external_id: String,
        policy: AmountPolicy,
        now: DateTime<Utc>,
    ) -> Result<Payment, StoreError>;

    /// The atomic unit of work for one gateway event: record it (a second
    /// delivery of the same gateway and event id is `Duplicate` and changes
    /// nothing, also when both arrive at once), find and lock the payment by
    /// the lookup rules, run [`crate::decide`], write payment, order, outbox
    /// rows and the event's outcome, commit.
    async fn apply_event(&self, event: EventToApply) -> Result<Applied, StoreError>;

    /// The recorded events that pass `filter`, by ascending id, at most
    /// `filter.limit` of them, without their raw bodies.
    async fn webhook_events(&self, filter: EventFilter) -> Result<Vec<StoredEvent>, StoreError>;

    /// The recorded event with this id and its raw body; `None` when no
    /// event has this id.
    async fn webhook_event(&self, id: i64) -> Result<Option<EventDetail>, StoreError>;

    /// The refunds recorded for the payment, in the order they were first
    /// reported (empty when none, or when no payment has this id).
    async fn refunds(&self, id: PaymentId) -> Result<Vec<Refund>, StoreError>;

    /// Succeeds when the database answers and is migrated.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The outbox, as the dispatcher and the management API use it.
///
/// Each method is one unit of work. A claim is a lease: the rows it returns
/// are not returned by another claim (of this or another process) until the
/// lease runs out or the row is marked; a dispatcher that crashes loses its
/// claims when their leases expire.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims at most `limit` due rows for `lease`, oldest first: rows in
    /// `pending` whose `next_attempt_at` is not after `now`, not leased
    /// (or whose lease ran out), and which are the oldest pending row of
    /// their order. So a batch holds at most one row per order, and a later
    /// row of an order waits until the earlier ones are delivered or dead.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Marks the row delivered at `now` and releases its lease.
    /// `NotificationNotFound` when no row has this id.
    async fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Marks the rows `ids` delivered at `now` and releases their leases,
    /// in one transaction where the store can, and returns how many it
    /// marked (an id with no row is passed over). A dispatcher marks its
    /// whole batch at once: on SQLite that takes the one writer once per
    /// batch instead of once per notification, which under a webhook load
    /// left the dispatcher far behind. The default marks them one by one.
    async fn mark_all_delivered(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut marked = 0;
        for id in ids {
            match self.mark_delivered(*id, now).await {
                Ok(()) => marked += 1,
                Err(StoreError::NotificationNotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(marked)
    }

    /// Records a failed attempt: one more attempt, `error` as the last
    /// error, the lease released, and by `policy` (after this many failures,
    /// with `jitter` in `[0, 1]`) either a next attempt time or `dead`.
    /// Returns the status it leaves the row in (`pending` or `dead`).
    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
        jitter: f64,
    ) -> Result<OutboxStatus, StoreError>;

    /// The rows in `status` (every row when `None`), oldest first, at most `limit`.
    async fn notifications(
        &self,
        status: Option<OutboxStatus>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;

    /// Puts a dead row back in `pending`, with its attempts reset to 0 and
    /// due at `now`, and returns it. `NotificationNotFound` when no row has
    /// this id, `NotificationNotDead` when it is not dead.
    async fn requeue(&self, id: i64, now: DateTime<Utc>) -> Result<OutboxMessage, StoreError>;
}

/// Tells the shop about one outbox row (an HTTP callback, a log line, a
/// queue). `Ok` means the shop has it; any error is retried.
///
/// The futures need not be `Send`, so that an implementation may use a
/// client bound to one thread (actix's `awc`); the dispatcher runs them on
/// the thread that created it.
#[async_trait(?Send)]
pub trait Notifier {
    /// Delivers `message` once. The same message may be delivered again
    /// after a failure or a crash; it keeps its
    /// [`OutboxMessage::webhook_id`] so that the shop can recognise it.
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), NotifyError>;
}

/// The current time. A port so that tests can pin it.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// A source of fresh transaction ids (`TXN-...`). A port because it needs
/// randomness, which the domain does not own.
pub trait TransactionIds: Send + Sync {
    /// A new id, unique with overwhelming probability.
    fn next_id(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_outcomes_round_trip_through_their_names() {
        let all = std::iter::once(EventOutcome::Unmatched)
            .chain(Outcome::ALL.into_iter().map(EventOutcome::Decided));
        for outcome in all {
            assert_eq!(EventOutcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(EventOutcome::parse("processed"), None);
        assert_eq!(EventOutcome::parse(""), None);
    }

    #[test]
    fn only_unmatched_and_refused_amounts_stay_open() {
        assert!(!EventOutcome::Unmatched.is_final());
        assert!(!EventOutcome::Decided(Outcome::AmountRejected).is_final());
        assert!(EventOutcome::Decided(Outcome::Confirmed).is_final());
        assert!(EventOutcome::Decided(Outcome::LateFailureIgnored).is_final());
    }
}
