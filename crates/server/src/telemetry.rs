//! Logging: `tracing` to stdout, filtered by `RUST_LOG` (default `info`),
//! as JSON lines or text, and a request id on every request.
//!
//! actix-http logs every connection it drops for a client's fault (a
//! malformed request head, a reset mid-request) as an ERROR
//! `stream error: ...` line, outside any request: anyone could fill the
//! error log. Those lines are written at WARN instead, and the malformed
//! requests among them counted in `payhook_http_parse_errors_total`.

use std::fmt::Debug;
use std::future::{ready, Ready};

use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;
use ring::rand::{SecureRandom, SystemRandom};
use tracing::field::{Field, Visit};
use tracing::{Event, Instrument, Level, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::metrics::ParseErrorCounter;

/// Installs the global subscriber and returns the counter its layer
/// increments for each malformed request, for [`crate::Application`] to
/// show. A second call (tests) finds one installed and leaves it; the
/// counter it returns then stays at zero.
pub fn init(format: LogFormat) -> ParseErrorCounter {
    install(format, false)
}

/// As [`init`], writing to stderr: for commands whose stdout is their
/// result (`payhook reconcile` prints a table there).
pub fn init_stderr(format: LogFormat) -> ParseErrorCounter {
    install(format, true)
}

fn install(format: LogFormat, stderr: bool) -> ParseErrorCounter {
    let parse_errors = ParseErrorCounter::default();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let output = tracing_subscriber::fmt::layer().with_target(false);
    let output = match (format, stderr) {
        (LogFormat::Json, false) => output.json().boxed(),
        (LogFormat::Pretty, false) => output.boxed(),
        (LogFormat::Json, true) => output.json().with_writer(std::io::stderr).boxed(),
        (LogFormat::Pretty, true) => output.with_writer(std::io::stderr).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output.with_filter(WithoutConnectionErrors))
        .with(ConnectionErrors {
            parse_errors: parse_errors.clone(),
        })
        .try_init();
    parse_errors
}

/// Where actix-http logs a connection it dropped.
const DISPATCHER: &str = "actix_http::h1::dispatcher";
/// How that line starts.
const STREAM_ERROR: &str = "stream error: ";
/// What a malformed request head adds after it.
const PARSE_ERROR: &str = "request parse error";

/// The cause of actix-http's ERROR line about a dropped connection, `None`
/// for every other event.
fn connection_error(event: &Event<'_>) -> Option<String> {
    let metadata = event.metadata();
    if *metadata.level() != Level::ERROR || metadata.target() != DISPATCHER {
        return None;
    }
    struct Message(Option<String>);
    impl Visit for Message {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.0 = Some(value.to_owned());
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            if field.name() == "message" {
                self.0 = Some(format!("{value:?}"));
            }
        }
    }
    let mut message = Message(None);
    event.record(&mut message);
    message.0?.strip_prefix(STREAM_ERROR).map(str::to_owned)
}

/// Keeps actix-http's connection-error lines from the output; the
/// [`ConnectionErrors`] layer writes them again at WARN.
struct WithoutConnectionErrors;

impl<S> Filter<S> for WithoutConnectionErrors {
    fn enabled(&self, _: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        connection_error(event).is_none()
    }
}

/// Writes actix-http's connection-error lines at WARN and counts the
/// malformed requests among them.
struct ConnectionErrors {
    parse_errors: ParseErrorCounter,
}

impl<S: Subscriber> Layer<S> for ConnectionErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(error) = connection_error(event) else {
            return;
        };
        // The event below has another target, so it does not come back here.
        if error.starts_with(PARSE_ERROR) {
            self.parse_errors.count();
            tracing::warn!(%error, "malformed request refused by the HTTP layer");
        } else {
            tracing::warn!(%error, "connection dropped by the HTTP layer");
        }
    }
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
