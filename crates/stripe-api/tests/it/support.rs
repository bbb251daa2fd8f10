//! The stand-in Stripe, and payments to ask it about.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use payhook_domain::{Currency, Money, OrderId, Payment, PaymentId, PaymentStatus, Secret};
use payhook_stripe_api::{StripeApi, StripeApiConfig, API_VERSION};

/// The key the stand-in accepts.
pub const KEY: &str = "sk_test_payhookStandInKey0000000000";

/// The id of every PaymentIntent fixture.
pub const INTENT_ID: &str = "pi_1PiP1gH8eMwJEsQUrZIqxEjx";

/// The id of every Checkout Session fixture.
pub const SESSION_ID: &str = "cs_test_a1dO7xJf6gQAs9Kk9bu14P7sPTKalBYaOBMbXCOXLHh5xdumR9nnVJ7Is9";

/// The bytes of the API fixture `name` (`api/<name>.json` beside the
/// Stripe adapter's webhook fixtures).
pub fn api_fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "adapters-stripe",
        "tests",
        "fixtures",
        "api",
        &format!("{name}.json"),
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// What the stand-in answers on one path.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    delay: Duration,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: Vec<u8>) -> Self {
        Self::status(200, body)
    }

    /// `status` with `body`.
    pub fn status(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
    }

    /// The same answer with one more header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The same answer, sent after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path and query as sent.
    pub target: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Stripe-Version` header.
    pub stripe_version: Option<String>,
}

#[derive(Default)]
struct Shared {
    replies: Mutex<HashMap<String, Reply>>,
    seen: Mutex<Vec<Seen>>,
}

/// Stripe's error object, as its API answers a failure.
fn stripe_error(kind: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "error": {"message": message, "type": kind}
    }))
    .unwrap()
}

async fn answer(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.path().to_owned(), |pq| pq.as_str().to_owned());
    let seen = Seen {
        method: request.method().to_string(),
        target: target.clone(),
        authorization: header("Authorization"),
        stripe_version: header("Stripe-Version"),
    };
    shared.seen.lock().unwrap().push(seen.clone());
    // Stripe's order: the key first, then the request.
    if seen.authorization.as_deref() != Some(&format!("Bearer {KEY}")) {
        return HttpResponse::Unauthorized().body(stripe_error(
            "invalid_request_error",
            "Invalid API Key provided: sk_test_****",
        ));
    }
    if seen.stripe_version.as_deref() != Some(API_VERSION) || seen.method != "GET" {
        return HttpResponse::BadRequest().body(stripe_error(
            "invalid_request_error",
            "unexpected version or method",
        ));
    }
    let reply = shared.replies.lock().unwrap().get(&target).cloned();
    let Some(reply) = reply else {
        return HttpResponse::NotFound()
            .body(stripe_error("invalid_request_error", "No such object"));
    };
    if !reply.delay.is_zero() {
        actix_rt::time::sleep(reply.delay).await;
    }
    let mut response = HttpResponse::build(StatusCode::from_u16(reply.status).unwrap());
    response.content_type("application/json");
    for (name, value) in reply.headers {
        response.insert_header((name, value));
    }
    response.body(reply.body)
}

/// A stand-in Stripe on 127.0.0.1, stopped when dropped.
pub struct StandIn {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub base_url: String,
    shared: web::Data<Shared>,
    handle: ServerHandle,
}

impl StandIn {
    /// Starts one, answering 404 on every path until told otherwise. Must
    /// be called inside an actix system (`#[actix_rt::test]`).
    pub fn start() -> Self {
        let shared = web::Data::new(Shared::default());
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", 0))
        .expect("bind 127.0.0.1:0");
        let address = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            base_url: format!("http://{address}"),
            shared,
            handle,
        }
    }

    /// Answers `reply` on `target` (path and query) from now on.
    pub fn on(&self, target: &str, reply: Reply) -> &Self {
        self.shared
            .replies
            .lock()
            .unwrap()
            .insert(target.to_owned(), reply);
        self
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// A client of this stand-in with `key` and a 5 s timeout.
    pub fn client_with_key(&self, key: &str) -> StripeApi {
        StripeApi::new(self.config(key)).expect("a valid configuration")
    }

    /// A client of this stand-in with the right key.
    pub fn client(&self) -> StripeApi {
        self.client_with_key(KEY)
    }

    /// The configuration of [`Self::client_with_key`].
    pub fn config(&self, key: &str) -> StripeApiConfig {
        StripeApiConfig::new(Secret::new(key))
            .with_base_url(&self.base_url)
            .with_timeout(Duration::from_secs(5))
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        // Not awaited: the system ends with the test anyway.
        drop(self.handle.stop(false));
    }
}

/// A Stripe payment pending at the gateway with these ids.
pub fn payment(external_id: Option<&str>, gateway_reference: Option<&str>) -> Payment {
    let usd = Currency::parse("USD").unwrap();
    let at: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    Payment {
        id: PaymentId(1),
        order_id: OrderId(1),
        transaction_id: "TXN-8F3A2C91D4".to_owned(),
        payment_method: "stripe".to_owned(),
        amount: Money::from_minor(1099, usd),
        status: PaymentStatus::PendingExternal,
        external_id: external_id.map(str::to_owned),
        gateway_reference: gateway_reference.map(str::to_owned),
        amount_mismatch: None,
        refunded_amount: Money::zero(usd),
        dispute: None,
        created_at: at,
        updated_at: at,
    }
}
