//! The operator console: server-rendered HTML pages under `/console/` for
//! finding a payment, reading what the gateways sent for it and what the
//! shop was told, and replaying an event or re-queueing a notification.
//!
//! It is a second face of the management API, not a second data path: its
//! pages read through the same services and store queries as the API
//! ([`payhook_domain::PaymentService`], [`payhook_domain::WebhookService`],
//! the outbox, [`payhook_domain::OverviewStore`]) and its buttons call the
//! same operations. It is on exactly when the API is (`PAYHOOK_API_TOKEN`
//! set), and signing in takes that token.
//!
//! Pages are [`maud`] templates (escaped and checked at compile time), with
//! no JavaScript: every action is a plain form. What keeps a browser safe
//! is in [`security`] (cookie, `Origin`, headers) and [`session`] (sessions
//! and their CSRF tokens, held by this process only). Console routes are
//! HTML, so they are registered here, apart from the JSON API's `ROUTES`
//! and its OpenAPI document.

pub mod chart;
mod handlers;
mod pages;
pub mod pretty;
pub mod security;
pub mod session;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};

use crate::error::ApiError;

pub use session::Sessions;

/// The console's stylesheet, served from the binary.
const STYLESHEET: &str = include_str!("console.css");

/// Registers the console's routes under `/console/`, each answer with the
/// headers of [`security::HEADERS`].
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/console",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/console/"))
                .finish()
        }),
    );
    cfg.service(
        web::scope("/console")
            .wrap(actix_web::middleware::from_fn(security::console_headers))
            // Forms carry a token and an id or two.
            .app_data(web::PayloadConfig::new(16 * 1024))
            .route("/", web::get().to(handlers::overview))
            .route("/sign-in/", web::get().to(handlers::sign_in_form))
            .route("/sign-in/", web::post().to(handlers::sign_in))
            .route("/sign-out/", web::post().to(handlers::sign_out))
            .route("/payments/", web::get().to(handlers::payments))
            .route("/payments/{id}/", web::get().to(handlers::payment))
            .route("/events/", web::get().to(handlers::events))
            .route("/events/{id}/", web::get().to(handlers::event))
            .route("/events/{id}/replay/", web::post().to(handlers::replay))
            .route("/notifications/", web::get().to(handlers::notifications))
            .route(
                "/notifications/{id}/requeue/",
                web::post().to(handlers::requeue),
            )
            .route(
                "/static/console.css",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("text/css; charset=utf-8")
                        .body(STYLESHEET)
                }),
            )
            .default_service(web::to(|| async {
                ConsoleError::NotFound("There is no console page here.".into()).error_response()
            })),
    );
}

/// Everything a console page can answer other than itself: an HTML page
/// saying what happened, or the way to sign in.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// `PAYHOOK_API_TOKEN` is unset: the console is off, like the API (503).
    #[error("the console is off: PAYHOOK_API_TOKEN is not set")]
    Off,
    /// No live session: answered with a redirect to the sign-in page (303).
    #[error("sign in first")]
    SignInRequired,
    /// A POST from another origin, or without its session's CSRF token
    /// (403): nothing was changed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A request the page cannot take (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing here (404).
    #[error("{0}")]
    NotFound(String),
    /// The action conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many failed sign-ins from this address (429), retry after the
    /// seconds given.
    #[error("too many failed sign-ins; retry later")]
    TooManyRequests(u64),
    /// The database is unavailable, or the server busy (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500); the cause is logged by [`ApiError`], not shown.
    #[error("internal server error")]
    Internal,
}

// The console answers what the API would, as a page: one explicit table,
// no wildcard, so a new API error must be given its page.
impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::BadRequest(message) => Self::BadRequest(message),
            ApiError::NotFound(message) => Self::NotFound(message),
            ApiError::Conflict(message) => Self::Conflict(message),
            ApiError::TooManyRequests(seconds) => Self::TooManyRequests(seconds),
            ApiError::Unavailable(message) => Self::Unavailable(message),
            // A gateway's API failing (reconciliation): not the user's doing.
            ApiError::BadGateway { message, .. } => Self::Unavailable(message),
            ApiError::Overloaded | ApiError::ReceivingBusy => {
                Self::Unavailable("server busy; retry later".into())
            }
            // Neither happens on a console route (no bearer token, no
            // streamed webhook body); should one, it is not the user's doing.
            ApiError::Unauthorized
            | ApiError::UnsupportedMediaType
            | ApiError::PayloadTooLarge(_)
            | ApiError::BodyTimeout(_) => Self::BadRequest(error.to_string()),
            ApiError::Internal(_) => {
                // Logs the cause with its chain, as the API does.
                let _ = error.error_response();
                Self::Internal
            }
        }
    }
}

impl From<payhook_domain::ports::StoreError> for ConsoleError {
    fn from(error: payhook_domain::ports::StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<payhook_domain::PaymentError> for ConsoleError {
    fn from(error: payhook_domain::PaymentError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<payhook_domain::WebhookError> for ConsoleError {
    fn from(error: payhook_domain::WebhookError) -> Self {
        ApiError::from(error).into()
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Off => StatusCode::SERVICE_UNAVAILABLE,
            Self::SignInRequired => StatusCode::SEE_OTHER,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::SignInRequired => {
                return response
                    .insert_header((header::LOCATION, "/console/sign-in/"))
                    .finish();
            }
            Self::TooManyRequests(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        let title = match self {
            Self::Off => "Console off",
            Self::SignInRequired => "Sign in",
            Self::Forbidden(_) => "Refused",
            Self::BadRequest(_) => "Bad request",
            Self::NotFound(_) => "Not found",
            Self::Conflict(_) => "Not possible now",
            Self::TooManyRequests(_) => "Too many attempts",
            Self::Unavailable(_) => "Unavailable",
            Self::Internal => "Error",
        };
        response
            .insert_header(ContentType::html())
            .body(pages::error_page(title, &self.to_string()).into_string())
    }
}
