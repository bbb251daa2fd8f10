//! The outbox for operators: list notifications (the dead ones above all)
//! and re-queue a dead one. Behind the management API's bearer token.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use payhook_domain::ports::OutboxStore;
use payhook_domain::{OutboxMessage, OutboxStatus};
use serde::{Deserialize, Serialize};

use crate::api_types::Unauthorized;
use crate::auth::Authorized;
use crate::error::ApiError;
use crate::state::AppState;

/// The page size when the caller names none.
const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
const MAX_LIMIT: u32 = 500;

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One notification as the API shows it.
#[derive(Serialize)]
struct NotificationBody {
    id: i64,
    webhook_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    order_id: i64,
    payment_id: i64,
    status: &'static str,
    attempts: u32,
    last_error: Option<String>,
    next_attempt_at: String,
    created_at: String,
    delivered_at: Option<String>,
    /// The body the shop receives.
    payload: serde_json::Value,
}

impl From<OutboxMessage> for NotificationBody {
    fn from(message: OutboxMessage) -> Self {
        let payload = serde_json::from_str(&message.body())
            .unwrap_or_else(|_| serde_json::Value::String(message.payload.clone()));
        Self {
            id: message.id,
            webhook_id: message.webhook_id(),
            kind: message.kind.as_str(),
            order_id: message.order_id.0,
            payment_id: message.payment_id.0,
            status: message.status.as_str(),
            attempts: message.attempts,
            next_attempt_at: timestamp(message.next_attempt_at),
            created_at: timestamp(message.created_at),
            delivered_at: message.delivered_at.map(timestamp),
            last_error: message.last_error,
            payload,
        }
    }
}

/// Query of `GET /api/v1/notifications/`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/notifications/",
    tag = "notifications",
    security(("bearer" = [])),
    params(
        ("status" = inline(Option<crate::api_types::NotificationStatusName>), Query, description = "`pending`, `delivered` or `dead`; every status when absent"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 4_294_967_295_i64, description = "Page size, default 50; larger values are cut to 500"),
    ),
    responses(
        (status = 200, description = "The notifications, oldest first: `{\"notifications\": [...]}`", body = Object),
        (status = 400, description = "A query parameter is invalid", body = crate::api_types::ErrorBody),
        Unauthorized,
    )
)]
/// `GET /api/v1/notifications/?status=dead|pending|delivered&limit=N`:
/// the notifications, oldest first (every status when none is named).
pub async fn list_notifications(
    _: Authorized,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(OutboxStatus::parse(name).ok_or_else(|| {
            ApiError::BadRequest("invalid status: expected pending, delivered or dead".into())
        })?),
    };
    let limit = match query.limit.unwrap_or(DEFAULT_LIMIT) {
        0 => {
            return Err(ApiError::BadRequest(
                "invalid limit: must be at least 1".into(),
            ))
        }
        n => n.min(MAX_LIMIT),
    };
    let rows = OutboxStore::notifications(state.store.as_ref(), status, limit).await?;
    let rows: Vec<NotificationBody> = rows.into_iter().map(NotificationBody::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "notifications": rows })))
}

#[utoipa::path(
    post,
    path = "/api/v1/notifications/{id}/requeue/",
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The notification (outbox row) id")),
    responses(
        (status = 200, description = "The notification, pending again", body = Object),
        Unauthorized,
        (status = 404, description = "No notification has this id", body = crate::api_types::ErrorBody),
        (status = 409, description = "The notification is not dead", body = crate::api_types::ErrorBody),
    )
)]
/// `POST /api/v1/notifications/{id}/requeue/`: a dead notification back to
/// pending, attempts reset, due now. 404 for an unknown id, 409 when it is
/// not dead.
pub async fn requeue_notification(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let requeued = OutboxStore::requeue(state.store.as_ref(), id.into_inner(), Utc::now()).await?;
    Ok(HttpResponse::Ok().json(NotificationBody::from(requeued)))
}
