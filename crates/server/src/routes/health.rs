//! Liveness and readiness, unauthenticated and cheap.

use actix_web::{web, HttpResponse};
use payhook_domain::ports::Store;
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process answers", body = crate::api_types::HealthBody)),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers and is migrated.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "The database answers and is migrated", body = crate::api_types::HealthBody),
        (status = 503, description = "The database is unreachable", body = crate::api_types::HealthBody),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "message": error.to_string()}))
        }
    }
}

/// `GET /metrics`: Prometheus (OpenMetrics) text. Unauthenticated like the
/// health checks; expose it only where the scraper can reach it.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus (OpenMetrics) text", body = String,
         content_type = "application/openmetrics-text"),
    ),
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    let backlog = match store.outbox_backlog().await {
        Ok(count) => Some(count),
        Err(error) => {
            tracing::warn!(%error, "cannot count the outbox backlog");
            None
        }
    };
    let text = state.metrics.render(state.store.pool_usage(), backlog);
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text)
}
