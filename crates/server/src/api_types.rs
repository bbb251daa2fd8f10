//! The bodies the routes share and their OpenAPI schemas: the error answer,
//! the webhook answer, the health answer, the decimal amount a request may
//! carry, the names a query filters by, and the error responses that many
//! operations declare alike (declared once here, listed by each
//! `#[utoipa::path]`).
//!
//! Types a single route answers with live beside that route. Nothing here
//! handles a request.

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
