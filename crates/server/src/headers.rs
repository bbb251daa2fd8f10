//! Headers every answer of the application carries: `X-Content-Type-Options:
//! nosniff` everywhere, and `Cache-Control: no-store` on everything under
//! `/api/v1/`, whose answers name orders and payments.
//!
//! It covers what the application answers, errors and unknown paths
//! included; not the bare 400, 408 or 431 that actix-http writes itself for
//! a request it cannot parse, which never reaches the application.

use std::future::{ready, Ready};

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderValue, CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use futures_util::future::LocalBoxFuture;

/// Answers under this prefix carry payment data and must not be cached by
/// a browser or a proxy: the management API, and the webhook answers that
/// name a payment.
const NOT_CACHED: &str = "/api/v1/";

/// Middleware adding the headers above.
#[derive(Clone, Copy, Default)]
pub struct SecurityHeaders;

impl<S, B> Transform<S, ServiceRequest> for SecurityHeaders
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = SecurityHeadersService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SecurityHeadersService { service }))
    }
}

/// The service [`SecurityHeaders`] wraps around the routes.
pub struct SecurityHeadersService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for SecurityHeadersService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let not_cached = request.path().starts_with(NOT_CACHED);
        let response = self.service.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            let headers = response.headers_mut();
            headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            if not_cached {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            Ok(response)
        })
    }
}
