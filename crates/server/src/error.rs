//! The server's errors and the one explicit table from domain and adapter
//! errors to HTTP statuses. An internal error is logged with its cause chain
//! and answered as a bare 500: its text never reaches the caller.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use payhook_domain::ports::StoreError;
use payhook_domain::{PaymentError, ReconcileError, WebhookError};
use serde_json::json;

/// Everything a route can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or refused by a rule (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong bearer token (401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Nothing at this id (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is not JSON (415).
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// Too many failed attempts from this client (429); retry after the seconds given.
    #[error("too many failed attempts; retry later")]
    TooManyRequests(u64),
    /// Too many requests in flight (503); the gateway's retry will succeed.
    #[error("server busy; retry later")]
    Overloaded,
    /// Body over the limit (413).
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive whole within the deadline of this many
    /// milliseconds (408); the connection is closed.
    #[error("request body not received within {0} ms")]
    BodyTimeout(u128),
    /// The bodies being received hold the whole receiving budget (503);
    /// retry after a second, on a new connection.
    #[error("server busy receiving other requests; retry later")]
    ReceivingBusy,
    /// A feature or gateway is not configured, or the database is down (503).
    #[error("{0}")]
    Unavailable(String),
    /// A gateway's API gave no usable answer (502); nothing was changed.
    /// The message is the API error's text, which never holds a credential.
    #[error("{message}")]
    BadGateway {
        /// What went wrong.
        message: String,
        /// Seconds to wait, when the gateway was rate limiting.
        retry_after: Option<u64>,
    },
    /// Anything else (500); the cause is logged, not shown.
    #[error("internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Logs an internal cause with its chain and hides it from the caller.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(cause))
    }
}

fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::ReceivingBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(error = %cause_chain(cause.as_ref()), "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::TooManyRequests(seconds) => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            Self::Overloaded => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            // The rest of the body may still be on its way (or never come):
            // closing is the only way to stop reading it.
            Self::BodyTimeout(_) => {
                response.force_close();
            }
            Self::ReceivingBusy => {
                response.insert_header((header::RETRY_AFTER, "1"));
                response.force_close();
            }
            Self::BadGateway {
                retry_after: Some(seconds),
                ..
            } => {
                response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        response.json(json!({"status": "error", "message": self.to_string()}))
    }
}

// The table: every domain, adapter and store error with its status. No arm
// is a wildcard, so a new variant does not compile until it is given one.
// Verification and parse errors need no finer split: each is a 400 whose
// message names the fact.

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::OrderNotFound(_)
            | StoreError::PaymentNotFound(_)
            | StoreError::NotificationNotFound(_) => Self::NotFound(error.to_string()),
            StoreError::ExternalIdTaken(_)
            | StoreError::Transition(_)
            | StoreError::NotificationNotDead { .. } => Self::Conflict(error.to_string()),
            StoreError::Unavailable(cause) => {
                tracing::error!(error = %cause_chain(cause.as_ref()), "database unavailable");
                Self::Unavailable("database unavailable".into())
            }
            StoreError::Backend(_) => Self::internal(error),
        }
    }
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> Self {
        match error {
            // An order named in the body, not the URL: a bad request.
            PaymentError::InvalidInput { .. }
            | PaymentError::UnknownGateway { .. }
            | PaymentError::UnknownOrder(_)
            | PaymentError::CurrencyMismatch { .. } => Self::BadRequest(error.to_string()),
            // The request is sound; the order's state refuses it.
            PaymentError::OrderClosed { .. } => Self::Conflict(error.to_string()),
            PaymentError::Store(store) => store.into(),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Verify(_) | WebhookError::Parse(_) => Self::BadRequest(error.to_string()),
            WebhookError::EventNotFound(_) => Self::NotFound(error.to_string()),
            WebhookError::Store(store) => store.into(),
        }
    }
}

impl From<ReconcileError> for ApiError {
    fn from(error: ReconcileError) -> Self {
        match error {
            ReconcileError::NotConfigured(gateway) => {
                Self::Unavailable(crate::reconciler::not_configured(&gateway))
            }
            ReconcileError::Store(store) => store.into(),
            // The domain's error is non-exhaustive: a variant added there
            // is a processing error here until it is given a status.
            other => Self::internal(other),
        }
    }
}
