//! Liveness and readiness, unauthenticated and cheap.

use actix_web::http::header::ACCEPT;
use actix_web::{web, HttpRequest, HttpResponse};
use payhook_domain::ports::Store;
use serde_json::json;

use crate::metrics::Format;
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

/// `GET /metrics`: the Prometheus metrics, as OpenMetrics text when the
/// `Accept` header asks for `application/openmetrics-text`, else in the
/// Prometheus text format 0.0.4. Unauthenticated like the health checks;
/// expose it only where the scraper can reach it.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4, or OpenMetrics 1.0 when \
                                      `Accept` names `application/openmetrics-text`",
         content(
             (String = "text/plain"),
             (String = "application/openmetrics-text"),
         )),
    ),
)]
pub async fn metrics(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let format = Format::negotiate(
        request
            .headers()
            .get(ACCEPT)
            .and_then(|value| value.to_str().ok()),
    );
    let store = state.store.clone();
    let backlog = match store.outbox_backlog().await {
        Ok(count) => Some(count),
        Err(error) => {
            tracing::warn!(%error, "cannot count the outbox backlog");
            None
        }
    };
    let text = state
        .metrics
        .render(state.store.pool_usage(), backlog, format);
    HttpResponse::Ok()
        .content_type(format.content_type())
        .body(text)
}
