//! The management API's bearer token, checked by the [`Authorized`]
//! extractor: a handler that takes it as an argument cannot run without a
//! valid token.
//!
//! It does not decide what a caller may do once authorized: there is one
//! token and it opens the whole management API.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};

use crate::error::ApiError;
use crate::state::AppState;

/// Proof that the request carried `Authorization: Bearer <token>` with the
/// configured token. Extracting it answers 503 when the management API is
/// disabled, 401 for a missing or wrong token, and 429 once the client has
/// failed too often.
#[derive(Debug, Clone, Copy)]
pub struct Authorized;

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize(request))
    }
}

fn authorize(request: &HttpRequest) -> Result<Authorized, ApiError> {
    let Some(state) = request.app_data::<web::Data<AppState>>() else {
        return Err(ApiError::internal(MissingState));
    };
    let Some(expected) = &state.api_token else {
        return Err(ApiError::Unavailable(
            "the management API is disabled: PAYHOOK_API_TOKEN is not set".into(),
        ));
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if presented.is_some_and(|token| expected.matches(token)) {
        return Ok(Authorized);
    }
    // Failed attempts are budgeted per client address, so guessing the
    // token runs into 429 long before it could succeed.
    let client = request.peer_addr().map(|addr| addr.ip());
    if let Err(retry_after) = state.limits.failed_authentication(client) {
        state.metrics.rate_limited("failed_authentication");
        return Err(ApiError::TooManyRequests(retry_after));
    }
    Err(ApiError::Unauthorized)
}

/// The application was built without its state: a programming error,
/// answered as a bare 500 rather than a panic in a worker.
#[derive(Debug, thiserror::Error)]
#[error("the application state is not registered")]
struct MissingState;
