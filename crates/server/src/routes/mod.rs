//! Every route of the server, registered in [`routes`] from the one list
//! [`ROUTES`]. Handlers depend on [`crate::state`], [`crate::auth`],
//! [`crate::api_types`] and [`crate::error`]; never on start-up or on the
//! OpenAPI document that lists them.

pub mod api;
pub mod events;
pub mod health;
pub mod meta;
pub mod notifications;
pub mod reconcile;
pub mod webhooks;

use actix_web::http::header;
use actix_web::{web, HttpResponse, Route};
use serde_json::json;

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
        web::QueryConfig::default().error_handler(|error, _| {
            ApiError::BadRequest(format!("invalid query: {error}")).into()
        }),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|_, _| ApiError::NotFound("no such resource".into()).into()),
    );
    register(cfg);
    crate::console::routes(cfg);
}

/// An HTTP method a route answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl Verb {
    /// The method's name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }

    fn route(self) -> Route {
        match self {
            Self::Get => web::get(),
            Self::Post => web::post(),
        }
    }
}

/// One registered route: method, path and handler.
pub struct Endpoint {
    /// The method it answers.
    pub verb: Verb,
    /// The path as registered, `{name}` for a path parameter.
    pub path: &'static str,
    handler: fn(Route) -> Route,
}

/// Every route of the server. [`routes`] registers exactly these, so the
/// test that looks each one up in `/api/openapi.json` sees what is served.
pub const ROUTES: &[Endpoint] = &[
    Endpoint {
        verb: Verb::Get,
        path: "/healthz",
        handler: |r| r.to(health::healthz),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/readyz",
        handler: |r| r.to(health::readyz),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/metrics",
        handler: |r| r.to(health::metrics),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/api/openapi.json",
        handler: |r| r.to(meta::openapi_json),
    },
    Endpoint {
        verb: Verb::Post,
        path: "/api/v1/order-payments/webhooks/{gateway}/",
        handler: |r| r.to(webhooks::receive),
    },
    Endpoint {
        verb: Verb::Post,
        path: "/api/v1/orders/",
        handler: |r| r.to(api::create_order),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/api/v1/orders/{id}/",
        handler: |r| r.to(api::get_order),
    },
    Endpoint {
        verb: Verb::Post,
        path: "/api/v1/order-payments/",
        handler: |r| r.to(api::create_payment),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/api/v1/order-payments/",
        handler: |r| r.to(api::search_payments),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/api/v1/order-payments/{id}/",
        handler: |r| r.to(api::get_payment),
    },
    Endpoint {
        verb: Verb::Post,
        path: "/api/v1/order-payments/{id}/external-pending/",
        handler: |r| r.to(api::external_pending),
    },
    Endpoint {
        verb: Verb::Post,
        path: "/api/v1/order-payments/{id}/reconcile/",
        handler: |r| r.to(reconcile::reconcile_payment),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/api/v1/webhook-events/",
        handler: |r| r.to(events::list_events),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/api/v1/webhook-events/{id}/",
        handler: |r| r.to(events::get_event),
    },
    Endpoint {
        verb: Verb::Post,
        path: "/api/v1/webhook-events/{id}/replay/",
        handler: |r| r.to(events::replay_event),
    },
    Endpoint {
        verb: Verb::Get,
        path: "/api/v1/notifications/",
        handler: |r| r.to(notifications::list_notifications),
    },
    Endpoint {
        verb: Verb::Post,
        path: "/api/v1/notifications/{id}/requeue/",
        handler: |r| r.to(notifications::requeue_notification),
    },
];

/// Registers [`ROUTES`], one resource per path in the order first listed;
/// another method on a known path answers 405 with `Allow`.
fn register(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<&'static str> = Vec::new();
    for endpoint in ROUTES {
        if !paths.contains(&endpoint.path) {
            paths.push(endpoint.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path);
        let mut allowed = Vec::new();
        for endpoint in ROUTES.iter().filter(|e| e.path == path) {
            resource = resource.route((endpoint.handler)(endpoint.verb.route()));
            allowed.push(endpoint.verb.as_str());
        }
        let allow = allowed.join(", ");
        cfg.service(resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move {
                HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, allow))
                    .json(json!({"status": "error", "message": "method not allowed"}))
            }
        })));
    }
}
