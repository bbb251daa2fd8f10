//! The ports: what the domain needs from the outside world, as traits.
//!
//! - [`GatewayAdapter`]: verify a raw webhook request and parse it into a
//!   [`GatewayEvent`]. One implementation per gateway crate.
//! - [`Store`]: persistence, with one atomic [`Store::apply_event`].
//! - [`Clock`] and [`TransactionIds`]: time and randomness, injected so the
//!   domain stays deterministic under test.
//!
//! Nothing here names HTTP or SQL types: adapters receive plain bytes and
//! header lookups, stores receive domain values.

use std::error::Error as StdError;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::decision::{AmountPolicy, Outcome};
use crate::event::GatewayEvent;
use crate::money::MoneyError;
use crate::payment::{NewOrder, NewPayment, Order, OrderId, Payment, PaymentId, TransitionError};

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
#[non_exhaustive]
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
    async fn mark_pending(
        &self,
        id: PaymentId,
        external_id: String,
        now: DateTime<Utc>,
    ) -> Result<Payment, StoreError>;

    /// The atomic unit of work for one gateway event: record it (a second
    /// delivery of the same gateway and event id is `Duplicate` and changes
    /// nothing, also when both arrive at once), find and lock the payment by
    /// the lookup rules, run [`crate::decide`], write payment, order, outbox
    /// rows and the event's outcome, commit.
    async fn apply_event(&self, event: EventToApply) -> Result<Applied, StoreError>;

    /// Succeeds when the database answers and is migrated.
    async fn ping(&self) -> Result<(), StoreError>;
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
