//! Headers every answer of the application carries: `X-Content-Type-Options:
//! nosniff` everywhere, and `Cache-Control: no-store` on everything under
//! `/api/v1/`, whose answers name orders and payments.
//!
//! It covers what the application answers, errors and unknown paths
//! included; not the bare 400, 408 or 431 that actix-http writes itself for
//! a request it cannot parse, which never reaches the application.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use actix_web::middleware::Next;

/// Answers under this prefix carry payment data and must not be cached by
/// a browser or a proxy: the management API, and the webhook answers that
/// name a payment.
const NOT_CACHED: &str = "/api/v1/";

/// Middleware (through `actix_web::middleware::from_fn`) adding the headers
/// above to whatever the routes answered.
pub async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let not_cached = request.path().starts_with(NOT_CACHED);
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if not_cached {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}
