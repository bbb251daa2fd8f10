//! Logging: `tracing` to stdout, filtered by `RUST_LOG` (default `info`),
//! as JSON lines or text, and a request id on every request.

use std::future::{ready, Ready};

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;
use ring::rand::{SecureRandom, SystemRandom};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. A second call (tests) finds one installed
/// and leaves it.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The header that carries the request id in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An incoming id is kept only when it is short visible ASCII, so a client
/// cannot inject line breaks or megabytes into the logs.
fn acceptable(id: &HeaderValue) -> Option<&str> {
    let text = id.to_str().ok()?;
    (!text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic()))
        .then_some(text)
}

fn generate(random: &SystemRandom) -> String {
    let mut bytes = [0u8; 12];
    if random.fill(&mut bytes).is_err() {
        return "unavailable".to_owned();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Middleware: takes `X-Request-Id` or makes one, runs the request inside a
/// `request` span carrying it (so every log line of the request has it) and
/// echoes it in the answer.
#[derive(Clone, Default)]
pub struct RequestId;

impl<S, B> Transform<S, ServiceRequest> for RequestId
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestIdService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestIdService {
            service,
            random: SystemRandom::new(),
        }))
    }
}

/// The service [`RequestId`] wraps around the routes.
pub struct RequestIdService<S> {
    service: S,
    random: SystemRandom,
}

impl<S, B> Service<ServiceRequest> for RequestIdService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(acceptable)
            .map_or_else(|| generate(&self.random), str::to_owned);
        let span = tracing::info_span!("request", request_id = %id);
        let response = self.service.call(request).instrument(span);
        Box::pin(async move {
            let mut response = response.await?;
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            Ok(response)
        })
    }
}
