//! payhook's pure core: exact money, orders and payments, the payment state
//! machine, gateway events, the decision for one event, and the ports the
//! outside world plugs into.
//!
//! **Invariant:** this crate does no IO. It knows nothing of HTTP, SQL, async
//! runtimes or the system clock; time and randomness come in through
//! [`ports::Clock`] and [`ports::TransactionIds`]. That keeps every rule here
//! a plain function that tests and property tests can drive directly.
//!
//! The flow of one webhook: a [`ports::GatewayAdapter`] verifies the raw
//! request and parses it into a [`GatewayEvent`]; [`WebhookService::handle`]
//! hands it to [`ports::Store::apply_event`], which, inside one transaction,
//! finds the payment by [`References::lookups`] and writes what [`decide`]
//! returns.

pub mod decision;
pub mod event;
pub mod money;
pub mod payment;
pub mod ports;
pub mod secret;
pub mod service;
#[cfg(feature = "testing")]
pub mod testing;

pub use decision::{decide, AmountPolicy, Decision, Notification, NotificationKind, Outcome};
pub use event::{EventKind, GatewayEvent, Lookup, References};
pub use money::{AmountText, Currency, Money, MoneyError};
pub use payment::{
    AmountMismatch, NewOrder, NewPayment, Order, OrderId, OrderStatus, Payment, PaymentId,
    PaymentStatus, TransitionError, UnknownStatus,
};
pub use secret::Secret;
pub use service::{
    PaymentError, PaymentRef, PaymentService, WebhookError, WebhookOutcome, WebhookService,
};
