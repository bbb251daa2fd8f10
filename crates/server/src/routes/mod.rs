//! Every route of the server, registered in [`routes`].

pub mod api;
pub mod events;
pub mod health;
pub mod webhooks;

use actix_web::web;

use crate::error::ApiError;

/// Registers all routes. The paths, trailing slashes included, are the
/// HTTP contract of the design brief.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|error, _| {
                ApiError::BadRequest(format!("invalid JSON body: {error}")).into()
            }),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|_, _| ApiError::NotFound("no such resource".into()).into()),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .route(
        "/api/v1/order-payments/webhooks/{gateway}/",
        web::post().to(webhooks::receive),
    )
    .route("/api/v1/orders/", web::post().to(api::create_order))
    .route("/api/v1/orders/{id}/", web::get().to(api::get_order))
    .route(
        "/api/v1/order-payments/",
        web::post().to(api::create_payment),
    )
    .route(
        "/api/v1/order-payments/{id}/",
        web::get().to(api::get_payment),
    )
    .route(
        "/api/v1/order-payments/{id}/external-pending/",
        web::post().to(api::external_pending),
    )
    .route(
        "/api/v1/webhook-events/",
        web::get().to(events::list_events),
    )
    .route(
        "/api/v1/webhook-events/{id}/",
        web::get().to(events::get_event),
    )
    .route(
        "/api/v1/webhook-events/{id}/replay/",
        web::post().to(events::replay_event),
    );
}
