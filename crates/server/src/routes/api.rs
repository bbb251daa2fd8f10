//! The management API for the shop: orders and payments, behind the bearer
//! token that [`Authorized`] checks.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use payhook_domain::{
    AmountText, Currency, Dispute, Money, Order, OrderId, OverviewStore, Payment, PaymentId,
    ReconcileCheck, ReconcileStore, Refund,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_types::{ManagementErrors, Unauthorized};
use crate::auth::Authorized;
use crate::error::ApiError;
use crate::state::AppState;

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An amount with its currency.
#[derive(Serialize, ToSchema)]
struct MoneyBody {
    /// A decimal string such as `150.00`.
    amount: String,
    #[schema(value_type = String, example = "USD")]
    currency: &'static str,
}

impl From<Money> for MoneyBody {
    fn from(money: Money) -> Self {
        Self {
            amount: money.amount_string(),
            currency: money.currency().code(),
        }
    }
}

/// An order.
#[derive(Serialize, ToSchema)]
struct OrderBody {
    #[schema(value_type = i64)]
    id: OrderId,
    client_id: String,
    /// A decimal string such as `150.00`.
    total: String,
    #[schema(value_type = String, example = "USD")]
    currency: &'static str,
    /// `pending` until `paid_amount` reaches `total`, then `paid`;
    /// `refunded` once every completed payment of it is refunded in full.
    #[schema(value_type = crate::api_types::OrderStatusName)]
    status: &'static str,
    /// The sum of its completed payments' amounts, a decimal string in
    /// `currency` (`0.00` until one completes). Several payments may share
    /// an order (split payments): the order is `paid` once this reaches
    /// `total`, and may exceed it when a payment completes after that.
    #[schema(example = "75.00")]
    paid_amount: String,
    created_at: String,
    updated_at: String,
}

impl From<Order> for OrderBody {
    fn from(order: Order) -> Self {
        Self {
            id: order.id,
            total: order.total.amount_string(),
            currency: order.total.currency().code(),
            status: order.status.as_str(),
            paid_amount: order.paid_amount.amount_string(),
            created_at: timestamp(order.created_at),
            updated_at: timestamp(order.updated_at),
            client_id: order.client_id,
        }
    }
}

/// What the payment expected and what the gateway reported.
#[derive(Serialize, ToSchema)]
struct MismatchBody {
    expected: MoneyBody,
    received: MoneyBody,
}

/// One refund of a payment, as the gateway last reported it.
#[derive(Serialize, ToSchema)]
struct RefundBody {
    /// The gateway's id of the refund (`re_...`, a PayPal refund id, the
    /// generic gateway's `refund_id`).
    refund_id: String,
    /// What this refund gives back, a decimal string such as `50.00`.
    amount: String,
    #[schema(value_type = String, example = "USD")]
    currency: &'static str,
    /// Only `succeeded` refunds count towards `refunded_amount`; a refund
    /// that succeeded and later failed stays listed as `failed`.
    #[schema(value_type = crate::api_types::RefundStatusName)]
    status: &'static str,
}

impl From<Refund> for RefundBody {
    fn from(refund: Refund) -> Self {
        Self {
            amount: refund.amount.amount_string(),
            currency: refund.amount.currency().code(),
            status: refund.status.as_str(),
            refund_id: refund.refund_id,
        }
    }
}

/// The payment's current dispute (chargeback or inquiry).
#[derive(Serialize, ToSchema)]
struct DisputeBody {
    /// The gateway's id of the dispute (`dp_...`, `PP-D-...`).
    dispute_id: String,
    /// `open` while the shop may answer it; `won`, `lost` and `closed` are
    /// final.
    #[schema(value_type = crate::api_types::DisputeStatusName)]
    status: &'static str,
    /// The amount disputed, a decimal string.
    amount: String,
    #[schema(value_type = String, example = "USD")]
    currency: &'static str,
    /// The gateway's reason code (`fraudulent`,
    /// `MERCHANDISE_OR_SERVICE_NOT_RECEIVED`, ...), when it gave one.
    reason: Option<String>,
}

impl From<Dispute> for DisputeBody {
    fn from(dispute: Dispute) -> Self {
        Self {
            status: dispute.status.as_str(),
            amount: dispute.amount.amount_string(),
            currency: dispute.amount.currency().code(),
            dispute_id: dispute.dispute_id,
            reason: dispute.reason,
        }
    }
}

/// The last time reconciliation asked the payment's gateway about it.
#[derive(Serialize, ToSchema)]
struct LastReconciliationBody {
    /// When the gateway's API was asked.
    checked_at: String,
    /// What it said, e.g. `payment_intent succeeded`; `null` when it gave
    /// no usable answer.
    #[schema(required = true)]
    gateway_state: Option<String>,
    /// What came of it, e.g. `applied: confirmed`, `no_change`,
    /// `error: rate_limited (the gateway is rate limiting (429))`.
    result: String,
}

impl From<ReconcileCheck> for LastReconciliationBody {
    fn from(check: ReconcileCheck) -> Self {
        Self {
            checked_at: timestamp(check.checked_at),
            gateway_state: check.gateway_state,
            result: check.result,
        }
    }
}

/// A payment.
#[derive(Serialize, ToSchema)]
pub(crate) struct PaymentBody {
    #[schema(value_type = i64)]
    id: PaymentId,
    #[schema(value_type = i64)]
    order_id: OrderId,
    transaction_id: String,
    payment_method: String,
    #[schema(value_type = crate::api_types::PaymentStatusName)]
    status: &'static str,
    /// A decimal string such as `150.00`.
    amount: String,
    #[schema(value_type = String, example = "USD")]
    currency: &'static str,
    external_id: Option<String>,
    gateway_reference: Option<String>,
    amount_mismatch: Option<MismatchBody>,
    /// What went back to the customer, a decimal string in `currency`
    /// (`0.00` when nothing did): the larger of the succeeded refunds' sum
    /// and the latest running total the gateway reported, so a refund the
    /// gateway reports both ways counts once.
    #[schema(example = "0.00")]
    refunded_amount: String,
    /// The refunds the gateway reported, in the order they were first
    /// reported, each with its latest status.
    refunds: Vec<RefundBody>,
    /// The current dispute; `null` when there is none.
    #[schema(required = true)]
    dispute: Option<DisputeBody>,
    /// The last check of the payment with its gateway's API
    /// (reconciliation); `null` when it was never checked.
    #[schema(required = true)]
    last_reconciliation: Option<LastReconciliationBody>,
    created_at: String,
    updated_at: String,
}

impl PaymentBody {
    /// The payment with its `refunds` (as [`payhook_domain::PaymentService::refunds`]
    /// lists them) and its last reconciliation check.
    fn new(payment: Payment, refunds: Vec<Refund>, last_check: Option<ReconcileCheck>) -> Self {
        Self {
            id: payment.id,
            order_id: payment.order_id,
            status: payment.status.as_str(),
            amount: payment.amount.amount_string(),
            currency: payment.amount.currency().code(),
            amount_mismatch: payment.amount_mismatch.map(|m| MismatchBody {
                expected: m.expected.into(),
                received: m.received.into(),
            }),
            refunded_amount: payment.refunded_amount.amount_string(),
            refunds: refunds.into_iter().map(RefundBody::from).collect(),
            dispute: payment.dispute.map(DisputeBody::from),
            last_reconciliation: last_check.map(LastReconciliationBody::from),
            created_at: timestamp(payment.created_at),
            updated_at: timestamp(payment.updated_at),
            transaction_id: payment.transaction_id,
            payment_method: payment.payment_method,
            external_id: payment.external_id,
            gateway_reference: payment.gateway_reference,
        }
    }

    /// The payment with its refunds and last reconciliation check read
    /// from `state`'s store.
    pub(crate) async fn read(state: &AppState, payment: Payment) -> Result<Self, ApiError> {
        let refunds = state.payments.refunds(payment.id).await?;
        let last_check = state.store.last_check(payment.id).await?;
        Ok(Self::new(payment, refunds, last_check))
    }
}

fn money(amount: &AmountText, currency: &str, field: &str) -> Result<Money, ApiError> {
    let currency = Currency::parse(currency)
        .map_err(|e| ApiError::BadRequest(format!("invalid currency: {e}")))?;
    amount
        .to_money(currency)
        .map_err(|e| ApiError::BadRequest(format!("invalid {field}: {e}")))
}

/// Body of `POST /api/v1/orders/`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    #[schema(min_length = 1, max_length = 255)]
    client_id: String,
    #[schema(value_type = crate::api_types::AmountInput)]
    total: AmountText,
    #[schema(pattern = "^[A-Za-z]{3}$", example = "USD")]
    currency: String,
}

/// `POST /api/v1/orders/`: 201 with the new pending order.
#[utoipa::path(
    post,
    path = "/api/v1/orders/",
    tag = "orders",
    security(("bearer" = [])),
    request_body = CreateOrder,
    responses(
        (status = 201, description = "The new pending order", body = OrderBody),
        (status = 400, description = "Malformed JSON, unknown field, invalid amount or currency, a client_id empty, too long or with NUL (U+0000)", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn create_order(
    _: Authorized,
    state: web::Data<AppState>,
    body: web::Json<CreateOrder>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let total = money(&body.total, &body.currency, "total")?;
    let order = state.payments.create_order(body.client_id, total).await?;
    Ok(HttpResponse::Created().json(OrderBody::from(order)))
}

/// `GET /api/v1/orders/{id}/`.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}/",
    tag = "orders",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "payhook's order id")),
    responses(
        (status = 200, description = "The order", body = OrderBody),
        (status = 404, description = "No order has this id", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn get_order(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let order = state.payments.order(OrderId(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(OrderBody::from(order)))
}

/// Body of `POST /api/v1/order-payments/`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    order_id: i64,
    /// The gateway the payment goes through (`stripe`, `paypal`, `generic`
    /// or a registered adapter's name): only its events can confirm or fail
    /// the payment.
    #[schema(min_length = 1, max_length = 255, example = "stripe")]
    payment_method: String,
    #[schema(value_type = crate::api_types::AmountInput)]
    amount: AmountText,
    #[schema(pattern = "^[A-Za-z]{3}$", example = "USD")]
    currency: String,
}

/// `POST /api/v1/order-payments/`: 201 with the new payment and its `TXN-` id;
/// 400 when its currency is not its order's, 409 when the order is already
/// `paid` or `refunded` (it takes no new payment). Nothing is written then.
#[utoipa::path(
    post,
    path = "/api/v1/order-payments/",
    tag = "payments",
    security(("bearer" = [])),
    request_body = CreatePayment,
    responses(
        (status = 201, description = "The new payment, status `created`", body = PaymentBody),
        (status = 400, description = "Malformed JSON, unknown field, invalid amount or currency, a currency other than the order's (the message names both), a payment_method that names no gateway (the message lists them), a text with NUL (U+0000), or no such order; nothing is written", body = crate::api_types::ErrorBody),
        (status = 409, description = "The order is already `paid` or `refunded` and takes no new payment; nothing is written", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn create_payment(
    _: Authorized,
    state: web::Data<AppState>,
    body: web::Json<CreatePayment>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let amount = money(&body.amount, &body.currency, "amount")?;
    let order_id = OrderId(body.order_id);
    let payment = state
        .payments
        .create_payment(order_id, body.payment_method, amount)
        .await?;
    // A payment just created has no refund and no check yet: nothing to read.
    Ok(HttpResponse::Created().json(PaymentBody::new(payment, Vec::new(), None)))
}

/// `GET /api/v1/order-payments/{id}/`.
#[utoipa::path(
    get,
    path = "/api/v1/order-payments/{id}/",
    tag = "payments",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "payhook's payment id")),
    responses(
        (status = 200, description = "The payment", body = PaymentBody),
        (status = 404, description = "No payment has this id", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn get_payment(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let payment = state.payments.payment(PaymentId(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(PaymentBody::read(&state, payment).await?))
}

/// Body of `POST /api/v1/order-payments/{id}/external-pending/`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalPending {
    #[schema(min_length = 1, max_length = 255)]
    external_id: String,
}

/// `POST /api/v1/order-payments/{id}/external-pending/`: 200 with the payment
/// in `pending_external`; 409 when it has already completed (`completed`,
/// `partially_refunded` or `refunded`) or the external id belongs to another
/// payment of the gateway.
#[utoipa::path(
    post,
    path = "/api/v1/order-payments/{id}/external-pending/",
    tag = "payments",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "payhook's payment id")),
    request_body = ExternalPending,
    responses(
        (status = 200, description = "The payment, status `pending_external`", body = PaymentBody),
        (status = 400, description = "Malformed JSON, unknown field, or an external_id empty, too long or with NUL (U+0000)", body = crate::api_types::ErrorBody),
        (status = 404, description = "No payment has this id", body = crate::api_types::ErrorBody),
        (status = 409, description = "The payment has completed (`completed`, `partially_refunded` or `refunded`), or the external id belongs to another payment", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn external_pending(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<ExternalPending>,
) -> Result<HttpResponse, ApiError> {
    let payment = state
        .payments
        .mark_pending(PaymentId(id.into_inner()), body.into_inner().external_id)
        .await?;
    // Marking pending applies the events that came first, and a payment they
    // complete takes the refunds that waited for it: read them after.
    Ok(HttpResponse::Ok().json(PaymentBody::read(&state, payment).await?))
}

/// Most payments one search lists: a search names a payment by an id, so
/// more than a handful means the query is not one.
pub(crate) const SEARCH_LIMIT: u32 = 50;

/// The query of `GET /api/v1/order-payments/`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
}

/// One page of `GET /api/v1/order-payments/`.
#[derive(Serialize, ToSchema)]
struct SearchPage {
    /// The payments the query names, by ascending id (at most 50).
    items: Vec<PaymentBody>,
}

/// The search text of `q`, trimmed: 400 when `q` is missing, empty or
/// longer than 255 characters (what the OpenAPI document says), `None`
/// when it can name no payment (blank, with NUL, or over 255 bytes: no id
/// is). The console reads its search box through this too, so both take
/// the same texts.
pub(crate) fn search_text(q: Option<&str>) -> Result<Option<&str>, ApiError> {
    let Some(q) = q.filter(|q| (1..=255).contains(&q.chars().count())) else {
        return Err(ApiError::BadRequest(
            "invalid q: expected a payhook payment id, a transaction id, an external id or a \
             gateway reference (1 to 255 characters)"
                .into(),
        ));
    };
    let text = q.trim();
    let names_nothing = text.is_empty() || text.len() > 255 || text.contains('\0');
    Ok((!names_nothing).then_some(text))
}

/// The payments `text` names, as [`payhook_domain::OverviewStore::search_payments`]
/// finds them, at most [`SEARCH_LIMIT`]; none for a text that names nothing.
pub(crate) async fn search(state: &AppState, text: Option<&str>) -> Result<Vec<Payment>, ApiError> {
    match text {
        Some(text) => Ok(state.store.search_payments(text, SEARCH_LIMIT).await?),
        None => Ok(Vec::new()),
    }
}

/// `GET /api/v1/order-payments/?q=<id or reference>`: the payments whose
/// payhook id, transaction id, external id or gateway reference is `q`
/// exactly, `{"items": [...]}` by ascending id (empty when none, and for a
/// `q` that can name nothing: blank, or holding NUL).
#[utoipa::path(
    get,
    path = "/api/v1/order-payments/",
    tag = "payments",
    security(("bearer" = [])),
    params(
        ("q" = String, Query, min_length = 1, max_length = 255,
         description = "A payhook payment id, a transaction id (`TXN-...`), an external id or a gateway reference, matched exactly (surrounding spaces ignored)"),
    ),
    responses(
        (status = 200, description = "The payments named, by ascending id; `items` is empty when none", body = SearchPage),
        (status = 400, description = "`q` is missing, empty or longer than 255 characters, or the query has another parameter", body = crate::api_types::ErrorBody),
        Unauthorized,
        ManagementErrors,
    ),
)]
pub async fn search_payments(
    _: Authorized,
    state: web::Data<AppState>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let text = search_text(query.q.as_deref())?;
    let mut items = Vec::new();
    for payment in search(&state, text).await? {
        items.push(PaymentBody::read(&state, payment).await?);
    }
    Ok(HttpResponse::Ok().json(SearchPage { items }))
}
