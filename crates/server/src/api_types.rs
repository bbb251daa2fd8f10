//! The bodies the routes share and their OpenAPI schemas: the error answer,
//! the webhook answer, the health answer, the decimal amount a request may
//! carry, the status names an answer shows and a query filters by, and the
//! error responses that many operations declare alike (declared once here,
//! listed by each `#[utoipa::path]`).
//!
//! The name enums repeat the domain's names for the document; the tests at
//! the end hold each to the domain's list, so a status or an outcome added
//! there fails them until it is documented here.
//!
//! Types a single route answers with live beside that route. Nothing here
//! handles a request.

use payhook_domain::ports::EventOutcome;
use payhook_domain::Outcome;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// The error answer of every route: `{"status":"error","message":...}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `error`.
    #[schema(example = "error", pattern = "^error$")]
    pub status: String,
    /// What went wrong, for a human.
    pub message: String,
}

/// What a webhook (or a replay) answers with 200.
#[derive(Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// `success` when the event was applied or already was; `ignored` for
    /// an event type payhook does not handle.
    pub status: WebhookStatus,
    /// What happened, e.g. `Payment confirmed`.
    pub message: String,
    /// payhook's internal payment id; absent when the event was ignored.
    pub payment_id: Option<i64>,
    /// The payment's `TXN-` id; absent when the event was ignored.
    pub transaction_id: Option<String>,
    /// The payment's status after the event; only in the answer to a
    /// refund (`Refund recorded`) or a dispute report, absent otherwise.
    #[schema(required = false)]
    pub payment_status: PaymentStatusName,
    /// Everything refunded so far, a decimal string in the payment's
    /// currency; only in the answer to a refund (`Refund recorded`),
    /// absent otherwise.
    #[schema(required = false, example = "50.00")]
    pub refunded_amount: String,
    /// The status of the payment's dispute after the event; only in the
    /// answer to a dispute report (`Dispute recorded`, or unchanged),
    /// absent otherwise.
    #[schema(required = false)]
    pub dispute_status: DisputeStatusName,
}

/// The `status` of a 200 webhook answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Applied, or already applied.
    Success,
    /// An event type payhook does not handle.
    Ignored,
}

/// `/healthz` and `/readyz` answers.
#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
    /// Why the database is not ready (503 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A decimal amount in a request: a JSON number (`150.00`) or a decimal
/// string (`"150.00"`), read exactly; `oneOf` string and number.
pub struct AmountInput;

impl PartialSchema for AmountInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[0-9]+(\.[0-9]+)?$"))
                    .examples([serde_json::json!("150.00")]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0)),
            )
            .description(Some(
                "A decimal amount: a JSON number or a decimal string, read exactly",
            ))
            .into()
    }
}

impl ToSchema for AmountInput {}

/// The webhook path segment of each gateway.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GatewaySegment {
    /// The generic gateway (Standard Webhooks or `X-Webhook-Signature`).
    Payment,
    /// Stripe (`Stripe-Signature`).
    Stripe,
    /// PayPal (the `PAYPAL-*` transmission headers).
    Paypal,
}

/// A payment's `status`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatusName {
    /// Created by the shop; no gateway has it yet.
    Created,
    /// The shop sent the customer to the gateway and recorded its id.
    PendingExternal,
    /// The gateway confirmed the money.
    Completed,
    /// The gateway reported a failure; a later success still completes it.
    Failed,
    /// The checkout expired or the payment was canceled at the gateway; a
    /// later success still completes it.
    Canceled,
    /// Completed, and part of the money went back to the customer.
    PartiallyRefunded,
    /// Completed, and all of the money went back to the customer.
    Refunded,
}

/// An order's `status`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatusName {
    /// Its completed payments do not cover its total yet (`paid_amount` <
    /// `total`); it takes new payments.
    Pending,
    /// Its completed payments cover its total; it takes no new payment.
    Paid,
    /// Every completed payment of it was refunded in full; it takes no new
    /// payment.
    Refunded,
}

/// A dispute's `status`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatusName {
    /// The customer's bank disputes the payment; the shop may answer it.
    Open,
    /// Decided for the shop. Final.
    Won,
    /// Decided for the customer: the money was taken back. Final.
    Lost,
    /// An inquiry closed without a chargeback. Final.
    Closed,
}

/// A refund's `status`. Only `succeeded` refunds count towards the
/// payment's `refunded_amount`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatusName {
    /// Asked for, not done yet. Does not count.
    Pending,
    /// The money went back to the customer. Counts.
    Succeeded,
    /// The refund failed, possibly after it had succeeded. Does not count.
    Failed,
    /// The refund was canceled. Does not count.
    Canceled,
}

/// The kinds a stored event can have, as `kind` filters them: every
/// [`payhook_domain::EventKind`] but `not_handled`, which an event type payhook does not
/// act on has before anything is stored.
pub const STORED_KIND_NAMES: [&str; 6] = [
    "succeeded",
    "failed",
    "canceled",
    "pending",
    "refund",
    "dispute",
];

/// The kind of a stored webhook event, as `kind` filters it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKindName {
    /// The payment went through.
    Succeeded,
    /// The payment was declined or failed.
    Failed,
    /// The checkout expired, or the payment was canceled at the gateway.
    Canceled,
    /// The gateway is still working on the payment.
    Pending,
    /// Money went back to the customer, or may: one or more refunds, or a
    /// running total of them.
    Refund,
    /// A chargeback or an inquiry.
    Dispute,
}

/// The outcomes an event can be stored with, as `outcome` filters them:
/// `unmatched` and every decision but [`Outcome::Ignored`], which an event
/// type payhook does not handle gets before anything is stored.
pub fn stored_outcome_names() -> impl Iterator<Item = &'static str> {
    std::iter::once(EventOutcome::Unmatched.as_str()).chain(
        Outcome::ALL
            .into_iter()
            .filter(|outcome| *outcome != Outcome::Ignored)
            .map(Outcome::as_str),
    )
}

/// Where a recorded event came from, as `source` filters it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventSourceName {
    /// A webhook call the gateway made, its signature verified.
    Webhook,
    /// The gateway's API, asked by reconciliation.
    Reconcile,
}

/// The stored outcome of a webhook event, as `outcome` filters it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcomeName {
    /// No payment matched (yet).
    Unmatched,
    /// The payment was confirmed.
    Confirmed,
    /// The payment was marked failed.
    Failed,
    /// The payment was canceled.
    Canceled,
    /// The gateway is still working on the payment.
    Pending,
    /// The payment was completed already.
    AlreadyCompleted,
    /// The payment was failed already.
    AlreadyFailed,
    /// The payment was canceled already.
    AlreadyCanceled,
    /// A failure for a completed payment: recorded, not applied.
    LateFailureIgnored,
    /// A cancel for a completed payment: recorded, not applied.
    LateCancelIgnored,
    /// The amount differed and the policy is `reject`.
    AmountRejected,
    /// A refund report was applied to the payment's refund ledger.
    RefundRecorded,
    /// A refund in another currency, or above the amount received: nothing
    /// changed.
    RefundRejected,
    /// A dispute report changed the payment's dispute.
    DisputeRecorded,
    /// A repeated dispute report, or a late one for a decided dispute:
    /// recorded, not applied.
    DisputeUnchanged,
    /// A refund or dispute for a payment that has not completed: kept and
    /// applied when it completes.
    AwaitingCompletion,
}

/// A notification's delivery status, as `status` filters it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatusName {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// Delivered.
    Delivered,
    /// Out of attempts; may be requeued.
    Dead,
}

/// The 401 of every operation behind the bearer token.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "Missing or wrong bearer token",
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
pub struct Unauthorized(pub ErrorBody);

/// The answers a management operation gives whatever it does, besides its
/// own and [`Unauthorized`]: the token budget, a processing error, and the
/// API or the database being unavailable.
#[derive(IntoResponses)]
pub enum ManagementErrors {
    /// Too many failed authentications from this client.
    #[response(
        status = 429,
        description = "Too many failed authentications from this client",
        headers(("Retry-After" = String, description = "Seconds to wait"))
    )]
    TooManyRequests(ErrorBody),
    /// Processing error; nothing was changed.
    #[response(status = 500, description = "Processing error; nothing was changed")]
    Internal(ErrorBody),
    /// The management API is disabled or the database is unavailable.
    #[response(
        status = 503,
        description = "The management API is disabled (no PAYHOOK_API_TOKEN) or the database is unavailable"
    )]
    Unavailable(ErrorBody),
}

#[cfg(test)]
mod tests {
    use payhook_domain::{DisputeStatus, EventKind, OrderStatus, PaymentStatus, RefundStatus};
    use serde_json::Value;

    use super::*;

    /// The `enum` values of `T`'s schema, in order.
    fn documented<T: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).expect("a schema serialises");
        schema["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("an enum schema: {schema}"))
            .iter()
            .map(|name| name.as_str().expect("a name").to_owned())
            .collect()
    }

    #[test]
    fn every_payment_status_is_documented() {
        let names: Vec<&str> = PaymentStatus::ALL.map(PaymentStatus::as_str).to_vec();
        assert_eq!(documented::<PaymentStatusName>(), names);
    }

    #[test]
    fn every_order_status_is_documented() {
        let names: Vec<&str> = OrderStatus::ALL.map(OrderStatus::as_str).to_vec();
        assert_eq!(documented::<OrderStatusName>(), names);
    }

    #[test]
    fn the_outcome_filter_documents_every_stored_outcome() {
        let names: Vec<&str> = stored_outcome_names().collect();
        assert_eq!(documented::<EventOutcomeName>(), names);
        // Every documented name is one the filter accepts.
        for name in &names {
            assert!(EventOutcome::parse(name).is_some(), "{name}");
        }
        // And nothing the domain decides is left out but `ignored`.
        for outcome in Outcome::ALL {
            assert_eq!(
                names.contains(&outcome.as_str()),
                outcome != Outcome::Ignored,
                "{outcome:?}"
            );
        }
        assert_eq!(names.first(), Some(&"unmatched"));
    }

    #[test]
    fn every_dispute_and_refund_status_is_documented() {
        let disputes: Vec<&str> = DisputeStatus::ALL.map(DisputeStatus::as_str).to_vec();
        assert_eq!(documented::<DisputeStatusName>(), disputes);
        let refunds: Vec<&str> = RefundStatus::ALL.map(RefundStatus::as_str).to_vec();
        assert_eq!(documented::<RefundStatusName>(), refunds);
    }

    #[test]
    fn the_kind_filter_documents_every_stored_kind() {
        assert_eq!(documented::<EventKindName>(), STORED_KIND_NAMES);
        for name in STORED_KIND_NAMES {
            let kind = EventKind::parse(name).unwrap_or_else(|| panic!("{name} is a kind"));
            assert_eq!(kind.as_str(), name);
            assert_ne!(kind, EventKind::NotHandled);
        }
        // The one kind left out is the one never stored.
        assert!(EventKind::parse("not_handled").is_some());
        assert!(!STORED_KIND_NAMES.contains(&"not_handled"));
    }

    #[test]
    fn every_event_source_is_documented() {
        use payhook_domain::ports::EventSource;
        let names: Vec<&str> = [EventSource::Webhook, EventSource::Reconcile]
            .map(EventSource::as_str)
            .to_vec();
        assert_eq!(documented::<EventSourceName>(), names);
        for name in names {
            assert_eq!(
                EventSource::parse(name).map(EventSource::as_str),
                Some(name)
            );
        }
    }

    #[test]
    fn the_schemas_are_string_enums() {
        for schema in [
            PaymentStatusName::schema(),
            OrderStatusName::schema(),
            EventOutcomeName::schema(),
            DisputeStatusName::schema(),
            RefundStatusName::schema(),
            EventKindName::schema(),
            EventSourceName::schema(),
        ] {
            let schema = serde_json::to_value(schema).expect("a schema serialises");
            assert_eq!(schema["type"], Value::from("string"), "{schema}");
        }
    }
}
