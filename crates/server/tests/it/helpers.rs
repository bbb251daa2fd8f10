//! `spawn_app()`: a payhook server on a free port over a fresh SQLite file,
//! with a client that has one method per endpoint, plus Stripe, PayPal and
//! generic gateway events built from the fixtures and signed here with
//! `ring`, independently of the adapters under test.

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::web::Bytes;
use awc::http::header::HeaderMap;
use awc::http::StatusCode;
use awc::SendClientRequest;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use payhook_server::{Application, Config};
use payhook_store_diesel::DieselStore;
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::processes::PostgresDb;

/// The management API token of [`spawn_app`].
pub const API_TOKEN: &str = "test-api-token";

/// The Stripe endpoint secret of [`spawn_app`].
pub const STRIPE_SECRET: &str = "whsec_server_test_secret";

/// A running server and what a test needs to talk to it and look inside.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The store the server writes to, for assertions on what was written.
    pub store: Arc<DieselStore>,
    /// The bearer token the management methods send; `None` sends none.
    pub api_token: Option<String>,
    /// `sqlite` or `postgres`, for assertion messages.
    pub backend: &'static str,
    /// The server's `DATABASE_URL`, for tests that reach under the store.
    pub database_url: String,
    client: awc::Client,
    // Kept so the database lives as long as the test.
    _database: Database,
}

/// A test server's database, removed when the server's [`TestApp`] is dropped.
enum Database {
    Sqlite { _dir: TempDir },
    Postgres { _database: PostgresDb },
}

/// A server with the default test configuration: a token, a Stripe secret,
/// the `warn` amount policy.
pub fn spawn_app() -> TestApp {
    spawn_app_with(&[])
}

/// A server whose configuration is the default test one with `overrides`
/// applied; an empty value unsets a variable, as it does in the environment.
pub fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let database_dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!(
        "sqlite://{}",
        database_dir.path().join("payhook.db").display()
    );
    spawn_app_on(
        database_url,
        Database::Sqlite { _dir: database_dir },
        overrides,
    )
}

/// One server per backend this run can test, each with the default test
/// configuration plus `overrides` on a database of its own: SQLite always,
/// PostgreSQL when `PAYHOOK_TEST_POSTGRES_URL` names a server (skipped
/// loudly otherwise, a failure under `PAYHOOK_REQUIRE_POSTGRES`).
pub fn spawn_apps_with(test: &str, overrides: &[(&str, &str)]) -> Vec<TestApp> {
    let mut apps = vec![spawn_app_with(overrides)];
    if let Some(database) = PostgresDb::create(test) {
        let url = database.url.clone();
        apps.push(spawn_app_on(
            url,
            Database::Postgres {
                _database: database,
            },
            overrides,
        ));
    }
    apps
}

/// Servers (one per backend) with Stripe, PayPal and the generic gateway
/// configured.
pub fn apps_with_every_gateway(test: &str) -> Vec<TestApp> {
    let cert = paypal_fixture_path("test-only-cert.pem");
    let cert = cert.to_str().expect("a UTF-8 fixture path").to_owned();
    spawn_apps_with(
        test,
        &[
            ("WEBHOOK_SECRET", GENERIC_SECRET),
            ("PAYPAL_WEBHOOK_ID", PAYPAL_WEBHOOK_ID),
            ("PAYPAL_CERT_FILE", &cert),
        ],
    )
}

fn spawn_app_on(database_url: String, database: Database, overrides: &[(&str, &str)]) -> TestApp {
    let backend = match database {
        Database::Sqlite { .. } => "sqlite",
        Database::Postgres { .. } => "postgres",
    };
    let mut variables: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url),
        ("PAYHOOK_ADDR".into(), "127.0.0.1:0".into()),
        ("PAYHOOK_API_TOKEN".into(), API_TOKEN.into()),
        ("STRIPE_WEBHOOK_SECRET".into(), STRIPE_SECRET.into()),
    ];
    for (name, value) in overrides {
        variables.retain(|(existing, _)| existing != name);
        variables.push(((*name).to_owned(), (*value).to_owned()));
    }
    let database_url = variables
        .iter()
        .rev()
        .find(|(name, _)| name == "DATABASE_URL")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let config = Config::from_lookup(|name| {
        variables
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.clone())
    })
    .expect("a valid test configuration");

    let application = Application::build(&config).expect("the application builds");
    let port = application.port();
    let store = application.store();
    actix_rt::spawn(application.run_until_stopped());

    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        store,
        api_token: config.api_token.is_some().then(|| API_TOKEN.to_owned()),
        backend,
        database_url,
        client: awc::Client::default(),
        _database: database,
    }
}

/// A server without these variables configured.
pub fn spawn_app_without(variables: &[&str]) -> TestApp {
    let unset: Vec<(&str, &str)> = variables.iter().map(|name| (*name, "")).collect();
    spawn_app_with(&unset)
}

/// One HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when empty, a JSON string when not JSON.
    pub body: Value,
}

impl Answer {
    /// Asserts the contract's error answer `{"status":"error","message":...}`
    /// with `status`, and returns the message.
    pub fn assert_error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.body["status"], "error", "{self:?}");
        let message = self.body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("an error message in {self:?}"));
        assert!(!message.is_empty(), "{self:?}");
        message
    }

    /// Asserts a success with `status` and returns the body.
    pub fn assert_status(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{self:?}");
        &self.body
    }
}

async fn read(request: SendClientRequest) -> Answer {
    let mut response = request.await.expect("the server answers");
    let bytes = response
        .body()
        .limit(1024 * 1024)
        .await
        .expect("a readable body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body,
    }
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    fn authorized(&self, request: awc::ClientRequest) -> awc::ClientRequest {
        match &self.api_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn api_get(&self, path: &str) -> SendClientRequest {
        self.authorized(self.client.get(self.url(path))).send()
    }

    fn api_post(&self, path: &str, body: &Value) -> SendClientRequest {
        self.authorized(self.client.post(self.url(path)))
            .send_json(body)
    }

    /// `POST /api/v1/orders/` with `body` as JSON.
    pub async fn create_order(&self, body: &Value) -> Answer {
        read(self.api_post("/api/v1/orders/", body)).await
    }

    /// `POST /api/v1/orders/` with `text` as the body, declared as JSON.
    pub async fn create_order_text(&self, text: &str) -> Answer {
        let request = self
            .authorized(self.client.post(self.url("/api/v1/orders/")))
            .content_type("application/json")
            .send_body(text.to_owned());
        read(request).await
    }

    /// `GET /api/v1/orders/{id}/`.
    pub async fn get_order(&self, id: impl Display) -> Answer {
        read(self.api_get(&format!("/api/v1/orders/{id}/"))).await
    }

    /// `POST /api/v1/order-payments/` with `body` as JSON.
    pub async fn create_payment(&self, body: &Value) -> Answer {
        read(self.api_post("/api/v1/order-payments/", body)).await
    }

    /// `POST /api/v1/order-payments/{id}/external-pending/`.
    pub async fn external_pending(&self, id: impl Display, external_id: &str) -> Answer {
        let path = format!("/api/v1/order-payments/{id}/external-pending/");
        read(self.api_post(&path, &json!({ "external_id": external_id }))).await
    }

    /// `GET /api/v1/order-payments/{id}/`.
    pub async fn get_payment(&self, id: impl Display) -> Answer {
        read(self.api_get(&format!("/api/v1/order-payments/{id}/"))).await
    }

    /// `GET /api/v1/webhook-events/?<query>`; `query` is sent as given
    /// (already encoded), none when empty.
    pub async fn list_events(&self, query: &str) -> Answer {
        let path = if query.is_empty() {
            "/api/v1/webhook-events/".to_owned()
        } else {
            format!("/api/v1/webhook-events/?{query}")
        };
        read(self.api_get(&path)).await
    }

    /// `GET /api/v1/webhook-events/{id}/`.
    pub async fn get_event(&self, id: impl Display) -> Answer {
        read(self.api_get(&format!("/api/v1/webhook-events/{id}/"))).await
    }

    /// `POST /api/v1/order-payments/{id}/reconcile/`, with `?<query>` when
    /// `query` is not empty.
    pub async fn reconcile(&self, id: impl Display, query: &str) -> Answer {
        let mut path = format!("/api/v1/order-payments/{id}/reconcile/");
        if !query.is_empty() {
            path = format!("{path}?{query}");
        }
        read(self.authorized(self.client.post(self.url(&path))).send()).await
    }

    /// `GET /metrics` as text.
    pub async fn metrics_text(&self) -> String {
        let mut response = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("the server answers");
        let body = response.body().limit(4 << 20).await.expect("a body");
        String::from_utf8(body.to_vec()).expect("UTF-8 metrics")
    }

    /// `POST /api/v1/webhook-events/{id}/replay/`, without a body.
    pub async fn replay_event(&self, id: impl Display) -> Answer {
        let url = self.url(&format!("/api/v1/webhook-events/{id}/replay/"));
        read(self.authorized(self.client.post(url)).send()).await
    }

    /// `POST` of `body` to the webhook endpoint of `gateway` with `headers`.
    pub async fn post_webhook(
        &self,
        gateway: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = self.url(&format!("/api/v1/order-payments/webhooks/{gateway}/"));
        let mut request = self
            .client
            .post(url)
            .content_type("application/json; charset=utf-8");
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        read(request.send_body(body.to_vec())).await
    }

    /// `POST /api/v1/order-payments/webhooks/stripe/` with `headers`.
    pub async fn post_stripe(&self, body: &[u8], headers: &[(&str, &str)]) -> Answer {
        self.post_webhook("stripe", body, headers).await
    }

    /// `POST /api/v1/order-payments/webhooks/stripe/` with the body sent in
    /// `chunk`-byte pieces, chunked, without a `Content-Length`.
    pub async fn post_stripe_streamed(
        &self,
        body: &[u8],
        chunk: usize,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .client
            .post(self.url("/api/v1/order-payments/webhooks/stripe/"))
            .content_type("application/json; charset=utf-8");
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let pieces: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(chunk)
            .map(|piece| Ok(Bytes::copy_from_slice(piece)))
            .collect();
        read(request.send_stream(futures_util::stream::iter(pieces))).await
    }

    /// Sends `event` the way Stripe does: serialised once, signed now with
    /// [`STRIPE_SECRET`].
    pub async fn send_stripe_event(&self, event: &Value) -> Answer {
        let body = serde_json::to_vec(event).expect("an event serialises");
        let signature = stripe_signature(&body, STRIPE_SECRET, now());
        self.post_stripe(&body, &[("Stripe-Signature", signature.as_str())])
            .await
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Answer {
        read(self.client.get(self.url("/healthz")).send()).await
    }

    /// `GET /readyz`.
    pub async fn readyz(&self) -> Answer {
        read(self.client.get(self.url("/readyz")).send()).await
    }

    /// Creates an order of `total` `currency` and a Stripe payment of the
    /// same amount for it, asserting both answers.
    pub async fn new_payment(&self, total: &str, currency: &str) -> Value {
        self.new_payment_for("stripe", total, currency).await
    }

    /// Creates an order of `total` `currency` and a payment of the same
    /// amount by `payment_method` for it, asserting both answers.
    pub async fn new_payment_for(
        &self,
        payment_method: &str,
        total: &str,
        currency: &str,
    ) -> Value {
        let order = self
            .create_order(&json!({"client_id": "c-1", "total": total, "currency": currency}))
            .await;
        let order = order.assert_status(StatusCode::CREATED);
        let payment = self
            .create_payment(&json!({
                "order_id": order["id"],
                "payment_method": payment_method,
                "amount": total,
                "currency": currency,
            }))
            .await;
        payment.assert_status(StatusCode::CREATED).clone()
    }

    /// A 150.00 USD Stripe payment marked pending with `intent_id`.
    pub async fn pending_payment(&self, intent_id: &str) -> Value {
        let payment = self.new_payment("150.00", "USD").await;
        let pending = self.external_pending(&payment["id"], intent_id).await;
        let pending = pending.assert_status(StatusCode::OK);
        assert_eq!(pending["status"], "pending_external");
        pending.clone()
    }

    /// A 150.00 USD payment by `payment_method` marked pending with
    /// `external_id`.
    pub async fn pending_payment_for(&self, payment_method: &str, external_id: &str) -> Value {
        let payment = self.new_payment_for(payment_method, "150.00", "USD").await;
        let pending = self.external_pending(&payment["id"], external_id).await;
        let pending = pending.assert_status(StatusCode::OK);
        assert_eq!(pending["status"], "pending_external");
        assert_eq!(pending["external_id"], external_id);
        pending.clone()
    }

    /// `POST /api/v1/order-payments/webhooks/paypal/` with these headers.
    pub async fn post_paypal(&self, body: &[u8], headers: &[(String, String)]) -> Answer {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        self.post_webhook("paypal", body, &headers).await
    }

    /// Sends `event` the way PayPal does: serialised once, signed now with
    /// the first test-only key for [`PAYPAL_WEBHOOK_ID`].
    pub async fn send_paypal_event(&self, event: &Value) -> Answer {
        let body = serde_json::to_vec(event).expect("an event serialises");
        let call = PaypalCall::signed_now(&body);
        self.post_paypal(&body, &call.headers()).await
    }

    /// `POST /api/v1/order-payments/webhooks/payment/` with these headers.
    pub async fn post_generic(&self, body: &[u8], headers: &[(String, String)]) -> Answer {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        self.post_webhook("payment", body, &headers).await
    }

    /// Sends `body` the way a Standard Webhooks sender does: message
    /// `webhook_id`, signed now with [`GENERIC_SECRET`].
    pub async fn send_generic(&self, body: &[u8], webhook_id: &str) -> Answer {
        let headers = standard_webhook_headers(GENERIC_SECRET, webhook_id, now(), body);
        self.post_generic(body, &headers).await
    }

    /// The payment's current state, asserting the lookup succeeds.
    pub async fn payment(&self, payment: &Value) -> Value {
        let answer = self.get_payment(&payment["id"]).await;
        answer.assert_status(StatusCode::OK).clone()
    }

    /// The order's current status, asserting the lookup succeeds.
    pub async fn order_status(&self, payment: &Value) -> String {
        let answer = self.get_order(&payment["order_id"]).await;
        let order = answer.assert_status(StatusCode::OK);
        order["status"]
            .as_str()
            .expect("an order status")
            .to_owned()
    }

    /// The kinds of the outbox rows, oldest first.
    pub async fn outbox_kinds(&self) -> Vec<String> {
        let rows = self.store.outbox().await.expect("the outbox reads");
        rows.into_iter().map(|row| row.kind).collect()
    }

    /// Asserts that nothing was written for a refused webhook: no event
    /// recorded, no outbox row, and `payment` (when given) unchanged.
    pub async fn assert_nothing_written(&self, payment: Option<&Value>) {
        let events = self.store.events().await.expect("the events read");
        assert!(events.is_empty(), "{events:?}");
        assert!(self.outbox_kinds().await.is_empty());
        if let Some(before) = payment {
            assert_eq!(&self.payment(before).await, before);
        }
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    i64::try_from(seconds).expect("seconds fit in i64")
}

/// The lower-case hex HMAC-SHA256 of `"<t>.<body>"` keyed with the whole
/// `secret` string: Stripe's `v1` signature.
pub fn sign_stripe(body: &[u8], secret: &str, t: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    hex::encode(hmac::sign(&key, &signed).as_ref())
}

/// A `Stripe-Signature` value with one `v1` for `secret` at `t`.
pub fn stripe_signature(body: &[u8], secret: &str, t: i64) -> String {
    format!("t={t},v1={}", sign_stripe(body, secret, t))
}

/// `tests/fixtures/<name>.json`, a Stripe event as Stripe sends it.
pub fn fixture(name: &str) -> Value {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        &format!("{name}.json"),
    ]
    .iter()
    .collect();
    let text = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The fixture `name` as event `event_id`, for 150.00 USD, without the
/// shop's transaction id in its metadata (so the lookup goes by ids).
pub fn event(name: &str, event_id: &str) -> Value {
    let mut event = fixture(name);
    event["id"] = json!(event_id);
    let object = &mut event["data"]["object"];
    object["amount"] = json!(15000);
    object["currency"] = json!("usd");
    object["metadata"]
        .as_object_mut()
        .expect("a metadata object")
        .remove("transaction_id");
    event
}

/// `payment_intent.succeeded` for PaymentIntent `intent_id`, 150.00 USD.
pub fn intent_succeeded(event_id: &str, intent_id: &str) -> Value {
    let mut event = event("payment_intent.succeeded", event_id);
    event["data"]["object"]["id"] = json!(intent_id);
    event["data"]["object"]["amount_received"] = json!(15000);
    event
}

/// `payment_intent.payment_failed` for PaymentIntent `intent_id`, 150.00 USD.
pub fn intent_failed(event_id: &str, intent_id: &str) -> Value {
    let mut event = event("payment_intent.payment_failed", event_id);
    event["data"]["object"]["id"] = json!(intent_id);
    event
}

/// `charge.succeeded` of charge `charge_id` for PaymentIntent `intent_id`,
/// 150.00 USD.
pub fn charge_succeeded(event_id: &str, charge_id: &str, intent_id: &str) -> Value {
    let mut event = event("charge.succeeded", event_id);
    event["data"]["object"]["id"] = json!(charge_id);
    event["data"]["object"]["payment_intent"] = json!(intent_id);
    event
}

/// The success message of a confirming webhook for `payment`.
pub fn confirmed(payment: &Value) -> Value {
    json!({
        "status": "success",
        "message": "Payment confirmed",
        "payment_id": payment["id"],
        "transaction_id": payment["transaction_id"],
    })
}

/// The PayPal webhook id of [`spawn_app_with_paypal`].
pub const PAYPAL_WEBHOOK_ID: &str = "1JE4291016473214C";

/// Where PayPal's live certificates are served from.
pub const PAYPAL_CERT_URL: &str =
    "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270";

/// The generic gateway secret of [`spawn_app_with_generic`], a Standard
/// Webhooks `whsec_<base64>` secret.
pub const GENERIC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The path of the PayPal adapter crate's test-only fixture `name`.
pub fn paypal_fixture_path(name: &str) -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "adapters-paypal",
        "tests",
        "fixtures",
        name,
    ]
    .iter()
    .collect()
}

fn paypal_fixture_bytes(name: &str) -> Vec<u8> {
    let path = paypal_fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A server with the default test configuration plus PayPal, pinning the
/// PayPal adapter's test-only certificate, with `overrides` applied last.
pub fn spawn_app_with_paypal(overrides: &[(&str, &str)]) -> TestApp {
    let cert = paypal_fixture_path("test-only-cert.pem");
    let cert = cert.to_str().expect("a UTF-8 fixture path");
    let mut variables = vec![
        ("PAYPAL_WEBHOOK_ID", PAYPAL_WEBHOOK_ID),
        ("PAYPAL_CERT_FILE", cert),
    ];
    variables.extend_from_slice(overrides);
    spawn_app_with(&variables)
}

/// A server with the default test configuration plus the generic gateway
/// secret [`GENERIC_SECRET`], with `overrides` applied last.
pub fn spawn_app_with_generic(overrides: &[(&str, &str)]) -> TestApp {
    let mut variables = vec![("WEBHOOK_SECRET", GENERIC_SECRET)];
    variables.extend_from_slice(overrides);
    spawn_app_with(&variables)
}

/// The PayPal adapter's event fixture of `event_type` as event `event_id`
/// for 150.00 USD, naming PayPal order `order_id` and no transaction id
/// (neither `custom_id` nor `invoice_id`), so the lookup goes by order id.
pub fn paypal_event(event_type: &str, event_id: &str, order_id: &str) -> Value {
    let bytes = paypal_fixture_bytes(&format!("{event_type}.json"));
    let mut event: Value = serde_json::from_slice(&bytes).expect("a JSON fixture");
    event["id"] = json!(event_id);
    let resource = event["resource"].as_object_mut().expect("a resource");
    resource.remove("custom_id");
    resource.remove("invoice_id");
    resource.insert(
        "amount".into(),
        json!({"currency_code": "USD", "value": "150.00"}),
    );
    resource.insert(
        "supplementary_data".into(),
        json!({"related_ids": {"order_id": order_id}}),
    );
    event
}

/// `PAYMENT.CAPTURE.COMPLETED` for PayPal order `order_id`, 150.00 USD.
pub fn paypal_completed(event_id: &str, order_id: &str) -> Value {
    paypal_event("PAYMENT.CAPTURE.COMPLETED", event_id, order_id)
}

/// `PAYMENT.CAPTURE.DENIED` (capture status `DECLINED`) for PayPal order
/// `order_id`, 150.00 USD.
pub fn paypal_denied(event_id: &str, order_id: &str) -> Value {
    let event = paypal_event("PAYMENT.CAPTURE.DENIED", event_id, order_id);
    assert_eq!(event["resource"]["status"], "DECLINED");
    event
}

/// The first test-only RSA key of the PayPal adapter's fixtures, read from
/// its PKCS#8 PEM with base64 alone.
fn paypal_signing_key() -> RsaKeyPair {
    let pem = String::from_utf8(paypal_fixture_bytes("test-only-signing-key.pk8.pem"))
        .expect("a PEM text");
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let pkcs8 = BASE64.decode(body).expect("a base64 PEM body");
    RsaKeyPair::from_pkcs8(&pkcs8).expect("a PKCS#8 RSA key")
}

/// PayPal's transmission signature as PayPal documents it: base64 of RSA
/// PKCS#1 v1.5 SHA-256 over
/// `<transmission id>|<time>|<webhook id>|<CRC32 of the body, decimal>`.
pub fn sign_paypal(transmission_id: &str, time: &str, webhook_id: &str, body: &[u8]) -> String {
    let message = format!(
        "{transmission_id}|{time}|{webhook_id}|{}",
        crc32fast::hash(body)
    );
    let key = paypal_signing_key();
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .expect("signing");
    BASE64.encode(signature)
}

/// A transmission time `offset` seconds from now, as PayPal writes it.
pub fn paypal_time(offset: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::seconds(offset))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The five `PAYPAL-*` headers of one call.
#[derive(Clone, Debug)]
pub struct PaypalCall {
    /// `PAYPAL-TRANSMISSION-ID`.
    pub transmission_id: String,
    /// `PAYPAL-TRANSMISSION-TIME`.
    pub time: String,
    /// `PAYPAL-TRANSMISSION-SIG`.
    pub signature: String,
    /// `PAYPAL-CERT-URL`.
    pub cert_url: String,
    /// `PAYPAL-AUTH-ALGO`.
    pub auth_algo: String,
}

impl PaypalCall {
    /// A call of `body` signed with the test key for `webhook_id` at `time`,
    /// with a fresh transmission id.
    pub fn signed(body: &[u8], webhook_id: &str, time: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let transmission_id = format!(
            "b2d5a4e0-cb7f-11f0-9a3b-{:012x}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self {
            signature: sign_paypal(&transmission_id, time, webhook_id, body),
            transmission_id,
            time: time.to_owned(),
            cert_url: PAYPAL_CERT_URL.to_owned(),
            auth_algo: "SHA256withRSA".to_owned(),
        }
    }

    /// A call of `body` signed now for [`PAYPAL_WEBHOOK_ID`].
    pub fn signed_now(body: &[u8]) -> Self {
        Self::signed(body, PAYPAL_WEBHOOK_ID, &paypal_time(0))
    }

    /// The headers, with the names PayPal uses.
    pub fn headers(&self) -> Vec<(String, String)> {
        [
            ("PAYPAL-TRANSMISSION-ID", &self.transmission_id),
            ("PAYPAL-TRANSMISSION-TIME", &self.time),
            ("PAYPAL-TRANSMISSION-SIG", &self.signature),
            ("PAYPAL-CERT-URL", &self.cert_url),
            ("PAYPAL-AUTH-ALGO", &self.auth_algo),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.clone()))
        .collect()
    }
}

/// A generic gateway body, written by hand so that `amount` is exactly the
/// JSON text given (`150`, `150.00`, `"150.00"`); a `None` id is left out.
pub fn generic_body(
    payment_id: Option<&str>,
    transaction_id: Option<&str>,
    status: &str,
    amount: &str,
) -> Vec<u8> {
    let mut fields = Vec::new();
    if let Some(id) = payment_id {
        fields.push(format!(r#""payment_id": {}"#, json!(id)));
    }
    if let Some(id) = transaction_id {
        fields.push(format!(r#""transaction_id": {}"#, json!(id)));
    }
    fields.push(format!(r#""status": {}"#, json!(status)));
    fields.push(format!(r#""amount": {amount}"#));
    fields.push(r#""currency": "USD""#.to_owned());
    fields.push(r#""metadata": {}"#.to_owned());
    format!("{{{}}}", fields.join(", ")).into_bytes()
}

/// The base64 HMAC-SHA256 of `"<id>.<timestamp>.<body>"` keyed with the
/// base64-decoded part after `whsec_` (or the text of any other secret):
/// a Standard Webhooks `v1` signature.
pub fn sign_standard_webhook(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64.decode(encoded).expect("a base64 test secret"),
        None => secret.as_bytes().to_vec(),
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    BASE64.encode(hmac::sign(&key, &content).as_ref())
}

/// The three Standard Webhooks headers with one `v1` for `secret`.
pub fn standard_webhook_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let signature = sign_standard_webhook(secret, id, timestamp, body);
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), format!("v1,{signature}")),
    ]
}

/// `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed with
/// the text of `secret`.
pub fn simple_signature_headers(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hex::encode(hmac::sign(&key, body).as_ref());
    vec![("X-Webhook-Signature".into(), format!("sha256={tag}"))]
}

/// The success answer of a failing webhook for `payment`.
pub fn payment_failed(payment: &Value) -> Value {
    json!({
        "status": "success",
        "message": "Payment failed",
        "payment_id": payment["id"],
        "transaction_id": payment["transaction_id"],
    })
}

/// The success answer with `message` for `payment`.
pub fn success(payment: &Value, message: &str) -> Value {
    json!({
        "status": "success",
        "message": message,
        "payment_id": payment["id"],
        "transaction_id": payment["transaction_id"],
    })
}

/// `(event_type, outcome)` of every recorded event, oldest first.
pub async fn recorded(app: &TestApp) -> Vec<(String, String)> {
    let events = app.store.events().await.expect("the events read");
    events
        .into_iter()
        .map(|event| (event.event_type, event.outcome))
        .collect()
}

/// Expected `(event_type, outcome)` pairs, as [`recorded`] lists them.
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(event_type, outcome)| ((*event_type).to_owned(), (*outcome).to_owned()))
        .collect()
}
