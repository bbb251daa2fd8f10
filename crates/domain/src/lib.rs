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
//!
//! # Embedding
//!
//! A Rust service can use payhook in its own process, without the payhook
//! server: it gives [`PaymentService`] and [`WebhookService`] a
//! [`ports::Store`] (`payhook-store-diesel` for SQLite or PostgreSQL), a
//! [`ports::Clock`] and a [`ports::TransactionIds`], and hands every
//! webhook call its HTTP stack receives (headers and raw body) to
//! [`WebhookService::handle`] with the gateway's adapter
//! (`payhook-adapters-stripe`, `-paypal`, `-generic`, or one of its own).
//! `cargo run -p payhook-examples --example embedded_shop` runs that
//! whole path on SQLite with Stripe.
//!
//! Amounts are exact, in the currency's minor units:
//!
//! ```
//! use payhook_domain::{Currency, Money};
//!
//! let usd = Currency::parse("usd")?; // Stripe writes codes in lower case
//! let total = Money::parse("150.00", usd)?;
//! assert_eq!(total, Money::from_minor(15000, usd)); // Stripe's amount for it
//! assert_eq!(total.amount_string(), "150.00");
//! assert!(Money::parse("150.001", usd).is_err()); // never rounded
//! let yen = Currency::parse("JPY")?;
//! assert_eq!(Money::parse("150", yen)?.minor(), 150); // no minor unit
//! # Ok::<(), payhook_domain::MoneyError>(())
//! ```
//!
//! The path of one webhook, here with the in-memory store, clock and ids
//! of the `testing` feature, and a toy gateway whose "signature" is a fixed
//! token (a real adapter checks a MAC or a certificate signature over the
//! raw bytes):
//!
//! ```
//! use std::sync::Arc;
//!
//! use chrono::{DateTime, Utc};
//! use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError, WebhookRequest};
//! use payhook_domain::testing::{FixedClock, InMemoryStore, SequentialIds};
//! use payhook_domain::{
//!     AmountPolicy, Currency, EventKind, GatewayEvent, Money, OrderStatus, Outcome,
//!     PaymentService, PaymentStatus, References, WebhookError, WebhookOutcome, WebhookService,
//! };
//!
//! /// Calls carry `Toy-Token: let-me-in`; the body is
//! /// `<event id> <the gateway's payment id>`.
//! struct ToyGateway;
//!
//! impl GatewayAdapter for ToyGateway {
//!     fn name(&self) -> &'static str {
//!         "toy"
//!     }
//!
//!     fn verify(&self, request: &WebhookRequest<'_>, _now: DateTime<Utc>) -> Result<(), VerifyError> {
//!         match request.headers.get("Toy-Token") {
//!             Some("let-me-in") => Ok(()),
//!             Some(_) => Err(VerifyError::BadSignature),
//!             None => Err(VerifyError::MissingHeader("Toy-Token")),
//!         }
//!     }
//!
//!     fn parse(&self, request: &WebhookRequest<'_>) -> Result<GatewayEvent, ParseError> {
//!         let text = std::str::from_utf8(request.body)
//!             .map_err(|_| ParseError::Malformed("not UTF-8".into()))?;
//!         let (event_id, external_id) = text
//!             .split_once(' ')
//!             .ok_or(ParseError::MissingField("payment id"))?;
//!         Ok(GatewayEvent {
//!             gateway: self.name().into(),
//!             event_id: event_id.into(),
//!             event_type: "payment.succeeded".into(),
//!             kind: EventKind::Succeeded,
//!             references: References {
//!                 external_id: Some(external_id.into()),
//!                 ..References::default()
//!             },
//!             amount: None,
//!             report: None,
//!         })
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let store = Arc::new(InMemoryStore::new());
//! let clock = Arc::new(FixedClock::new(DateTime::UNIX_EPOCH));
//! let ids = Arc::new(SequentialIds::default());
//! // Payments may name only the gateways the application receives events from.
//! let payments = PaymentService::new(store.clone(), clock.clone(), ids, ["toy"]);
//! let webhooks = WebhookService::new(store, clock, AmountPolicy::Warn);
//!
//! // The shop creates an order and a payment, and sends the customer to the
//! // gateway, which knows the payment as `toy_pay_1`.
//! let total = Money::parse("20.00", Currency::parse("EUR")?)?;
//! let order = payments.create_order("customer-1".into(), total).await?;
//! let payment = payments.create_payment(order.id, "toy".into(), total).await?;
//! payments.mark_pending(payment.id, "toy_pay_1".into()).await?;
//!
//! // The gateway calls back.
//! let headers = [("Toy-Token", "let-me-in")];
//! let call = WebhookRequest { headers: &headers, body: b"evt_1 toy_pay_1" };
//! let outcome = webhooks.handle(&ToyGateway, &call).await?;
//! assert!(matches!(outcome, WebhookOutcome::Decided { outcome: Outcome::Confirmed, .. }));
//!
//! // A re-delivery changes nothing; a forged call is refused unread.
//! let again = webhooks.handle(&ToyGateway, &call).await?;
//! assert!(matches!(again, WebhookOutcome::Duplicate { .. }));
//! let forged = [("Toy-Token", "guess")];
//! let forged = WebhookRequest { headers: &forged, body: b"evt_2 toy_pay_1" };
//! let refused = webhooks.handle(&ToyGateway, &forged).await;
//! assert!(matches!(refused, Err(WebhookError::Verify(VerifyError::BadSignature))));
//!
//! assert_eq!(payments.payment(payment.id).await?.status, PaymentStatus::Completed);
//! assert_eq!(payments.order(order.id).await?.status, OrderStatus::Paid);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What an embedder depends on is this crate's types and traits, and
//! `chrono`'s `DateTime<Utc>`; no HTTP, SQL or runtime type appears in its
//! API. What a caller must decide on is exhaustive, on purpose: the
//! outcomes ([`Outcome`], [`WebhookOutcome`]), the errors the services and
//! the store return ([`PaymentError`], [`WebhookError`],
//! [`ports::StoreError`]), the payment and order statuses and the lookup
//! steps. A new variant must be given its answer by every store and
//! caller (the server's status table among them), and a compile error is
//! how they learn of it. Enums a caller only passes on or prints (event
//! kinds, verification, parse and money errors) stay `#[non_exhaustive]`.

pub mod decision;
pub mod dispute;
pub mod event;
pub mod json;
pub mod money;
pub mod outbox;
pub mod overview;
pub mod payment;
pub mod ports;
pub mod reconcile;
pub mod refund;
pub mod secret;
pub mod service;
#[cfg(feature = "testing")]
pub mod testing;

pub use decision::{
    decide, AmountPolicy, Decision, Notification, NotificationKind, OrderState, OrderUpdate,
    Outcome,
};
pub use dispute::{next_dispute, Dispute, DisputeChange, DisputeStatus};
pub use event::{EventKind, GatewayEvent, Lookup, References, Report};
pub use money::{AmountText, Currency, Money, MoneyError};
pub use outbox::{NextStep, NotifyError, OutboxMessage, OutboxStatus, RetryPolicy};
pub use overview::{Overview, OverviewStore, WebhookCount};
pub use payment::{
    AmountMismatch, NewOrder, NewPayment, Order, OrderId, OrderStatus, Payment, PaymentId,
    PaymentStatus, TransitionError, UnknownStatus,
};
pub use reconcile::{
    CheckReport, CheckResult, GatewayApi, GatewayApiError, GatewayState, ReconcileCheck,
    ReconcileError, ReconcileSettings, ReconcileStore, Reconciler,
};
pub use refund::{
    LedgerChange, LedgerEntry, Refund, RefundError, RefundLedger, RefundReport, RefundStatus,
    RunningTotal,
};
pub use secret::Secret;
pub use service::{
    EventPage, PaymentError, PaymentRef, PaymentService, WebhookError, WebhookOutcome,
    WebhookService,
};
