//! The OpenAPI document of the HTTP contract, derived from the handlers'
//! `#[utoipa::path]` annotations. [`crate::startup`] serializes it once and
//! the `GET /api/openapi.json` route serves those bytes.
//!
//! It only assembles the document: the schema types the handlers share are
//! in [`crate::api_types`], those of a single route beside the route.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{api, events, health, meta, notifications, reconcile, webhooks};

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
        meta::openapi_json,
        webhooks::receive,
        api::create_order,
        api::get_order,
        api::create_payment,
        api::search_payments,
        api::get_payment,
        api::external_pending,
        reconcile::reconcile_payment,
        events::list_events,
        events::get_event,
        events::replay_event,
        notifications::list_notifications,
        notifications::requeue_notification,
    ),
    modifiers(&BearerSecurity),
)]
pub struct ApiDoc;

/// The document as the JSON text `GET /api/openapi.json` answers.
pub fn document_json() -> serde_json::Result<String> {
    serde_json::to_string(&ApiDoc::openapi())
}
