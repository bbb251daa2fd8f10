//! The management API's bearer token, checked by the [`Authorized`]
//! extractor: a handler that takes it as an argument cannot run without a
//! valid token.
//!
//! Every management handler takes [`Authorized`] as its first argument:
//! actix polls a handler's extractors in order and answers the first
//! failure, so the token is checked before the path, query or body is
//! parsed, and a caller without the token learns nothing from parser
//! messages. The integration tests call every management route without a
//! token and with a bad path, query and body to hold that order.
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
        .and_then(bearer_token);
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

/// The token of an `Authorization` value `<scheme> <token>` whose scheme is
/// `Bearer` in any case: HTTP auth schemes are case-insensitive
/// (RFC 9110, 11.1), so `bearer` and `BEARER` are the same scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The application was built without its state: a programming error,
/// answered as a bare 500 rather than a panic in a worker.
#[derive(Debug, thiserror::Error)]
#[error("the application state is not registered")]
struct MissingState;

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_name_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k "] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value}");
        }
        for value in ["Basic t0k", "Bearert0k", "t0k", "", "Bear t0k"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}
