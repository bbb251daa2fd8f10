//! The OpenAPI document of the HTTP contract, derived from the handlers'
//! `#[utoipa::path]` annotations and served at `GET /api/openapi.json`.
//!
//! The answers that handlers build with `json!` are described here by small
//! schema-only types; the management API's bodies derive their schema where
//! they are defined.

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::routes::{api, events, health, webhooks};

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
    /// The payment was completed already.
    AlreadyCompleted,
    /// The payment was failed already.
    AlreadyFailed,
    /// A failure for a completed payment: recorded, not applied.
    LateFailureIgnored,
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

/// Adds the management API's bearer token scheme, named `bearer`.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The whole HTTP contract.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "payhook",
        description = "Payment-gateway webhooks and the shop's management API. \
                       Management routes need `Authorization: Bearer $PAYHOOK_API_TOKEN`.",
    ),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
        webhooks::receive,
        api::create_order,
        api::get_order,
        api::create_payment,
        api::get_payment,
        api::external_pending,
        events::list_events,
        events::get_event,
        events::replay_event,
        crate::routes::notifications::list_notifications,
        crate::routes::notifications::requeue_notification,
    ),
    modifiers(&BearerSecurity),
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this server", body = Object),
    ),
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
