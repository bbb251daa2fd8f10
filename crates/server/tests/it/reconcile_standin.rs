//! Stand-ins for Stripe's and PayPal's APIs: real HTTP servers on
//! 127.0.0.1 that check what the real APIs check (the exact paths, Stripe's
//! `Authorization: Bearer <secret key>`, PayPal's HTTP Basic client
//! credentials on the token call and the Bearer token it issued on the
//! order call), and answer with the API crates' fixtures of the documented
//! objects, or with the status a test scripts (429, 500, ...).
//!
//! Every request is recorded with the object it asked about and the
//! credential it carried, so a test can count the checks of each payment.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

/// The Stripe secret key the stand-in accepts, unless told otherwise.
pub const STRIPE_KEY: &str = "sk_test_standin_4eC39HqLyjWDarjtT1zdp7dc";
/// The PayPal REST app's client id the stand-in accepts.
pub const PAYPAL_CLIENT_ID: &str = "AYstandin-client-id";
/// The PayPal client secret the stand-in accepts.
pub const PAYPAL_CLIENT_SECRET: &str = "EGstandin-client-secret-value";
/// The prefix of the access tokens the PayPal stand-in issues.
pub const PAYPAL_TOKEN_PREFIX: &str = "A21AAstandin-token-";

/// What the stand-in answers about one object.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this object.
    Object(Value),
    /// This status with the gateway's error body; `Retry-After` when given.
    Status(u16, Option<u64>),
}

/// One request the stand-in received for an object.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The object asked about (the last path segment).
    pub object: String,
    /// The credential it carried, as the stand-in knows it: the Stripe key,
    /// `paypal-token`, or `refused`.
    pub credential: String,
}

#[derive(Default)]
struct Script {
    replies: HashMap<String, Reply>,
    seen: Vec<Seen>,
    /// Requests the real API would not serve (wrong path or method, missing
    /// form field): a test asserts there are none.
    unexpected: Vec<String>,
    token_calls: usize,
    issued: Vec<String>,
    /// Hold every object request until this many different credentials
    /// have asked, or until the instant: two processes' passes overlap.
    gate: Option<(usize, Instant)>,
}

enum Kind {
    Stripe { keys: Vec<String> },
    Paypal { client_id: String, secret: String },
}

struct Shared {
    kind: Kind,
    script: Mutex<Script>,
}

/// A stand-in gateway API on 127.0.0.1.
pub struct StandIn {
    /// `http://127.0.0.1:<port>`, for `PAYHOOK_*_API_BASE`.
    pub base: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl StandIn {
    /// Stripe's API accepting these secret keys.
    pub fn stripe(keys: &[&str]) -> Self {
        Self::start(Kind::Stripe {
            keys: keys.iter().map(|key| (*key).to_owned()).collect(),
        })
    }

    /// PayPal's API accepting [`PAYPAL_CLIENT_ID`] and [`PAYPAL_CLIENT_SECRET`].
    pub fn paypal() -> Self {
        Self::start(Kind::Paypal {
            client_id: PAYPAL_CLIENT_ID.to_owned(),
            secret: PAYPAL_CLIENT_SECRET.to_owned(),
        })
    }

    fn start(kind: Kind) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a stand-in");
        let port = listener.local_addr().expect("an address").port();
        let shared = Arc::new(Shared {
            kind,
            script: Mutex::new(Script::default()),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/v1/payment_intents/{id}",
                    web::get().to(|r, d| serve_stripe_object(r, d, "payment_intent")),
                )
                .route(
                    "/v1/checkout/sessions/{id}",
                    web::get().to(|r, d| serve_stripe_object(r, d, "checkout.session")),
                )
                .route("/v1/oauth2/token", web::post().to(paypal_token))
                .route("/v2/checkout/orders/{id}", web::get().to(paypal_order))
                .default_service(web::to(unexpected))
        })
        .workers(2)
        .listen(listener)
        .expect("the stand-in listens")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            shared,
            handle,
        }
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.shared.script.lock().expect("the stand-in's script")
    }

    /// From now on, answers `reply` about `object`.
    pub fn reply(&self, object: &str, reply: Reply) {
        self.script().replies.insert(object.to_owned(), reply);
    }

    /// Holds object requests until `credentials` different credentials
    /// asked, or `within` passed.
    pub fn gate(&self, credentials: usize, within: Duration) {
        self.script().gate = Some((credentials, Instant::now() + within));
    }

    /// Every object request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script().seen.clone()
    }

    /// How many times `object` was asked about.
    pub fn checks_of(&self, object: &str) -> usize {
        self.script()
            .seen
            .iter()
            .filter(|seen| seen.object == object)
            .count()
    }

    /// PayPal token calls so far.
    pub fn token_calls(&self) -> usize {
        self.script().token_calls
    }

    /// The PayPal access tokens issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.script().issued.clone()
    }

    /// Asserts that every request was one the real API serves.
    pub fn assert_no_unexpected_request(&self) {
        let unexpected = self.script().unexpected.clone();
        assert!(unexpected.is_empty(), "unexpected requests: {unexpected:?}");
    }

    /// Waits until `object` was asked about `count` times.
    pub async fn wait_checks(&self, object: &str, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.checks_of(object) < count {
            assert!(
                Instant::now() < deadline,
                "{object}: {count} checks expected, saw {:?}",
                self.seen()
            );
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the stand-in: its port refuses connections from then on.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn header(request: &HttpRequest, name: &str) -> String {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn unexpected(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let line = format!("{} {}", request.method(), request.uri());
    shared.script.lock().expect("script").unexpected.push(line);
    HttpResponse::NotFound().json(json!({"error": {"message": "Unrecognized request URL"}}))
}

/// Waits at the gate, if one is set, until enough credentials asked.
async fn pass_gate(shared: &Shared) {
    loop {
        let open = {
            let script = shared.script.lock().expect("script");
            match script.gate {
                None => true,
                Some((credentials, until)) => {
                    let seen: HashSet<&str> = script
                        .seen
                        .iter()
                        .map(|seen| seen.credential.as_str())
                        .collect();
                    seen.len() >= credentials || Instant::now() >= until
                }
            }
        };
        if open {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The scripted reply about `object`, as the gateway's HTTP answer.
fn answer(shared: &Shared, object: &str, not_found: Value) -> HttpResponse {
    let reply = shared
        .script
        .lock()
        .expect("script")
        .replies
        .get(object)
        .cloned();
    match reply {
        Some(Reply::Object(body)) => HttpResponse::Ok().json(body),
        Some(Reply::Status(status, retry_after)) => {
            let status = actix_web::http::StatusCode::from_u16(status).expect("a status");
            let mut response = HttpResponse::build(status);
            if let Some(seconds) = retry_after {
                response.insert_header(("Retry-After", seconds.to_string()));
            }
            response.json(json!({"error": {"message": format!("scripted {status}")}}))
        }
        None => HttpResponse::NotFound().json(not_found),
    }
}

async fn serve_stripe_object(
    request: HttpRequest,
    shared: web::Data<Shared>,
    object_type: &'static str,
) -> HttpResponse {
    let Kind::Stripe { keys } = &shared.kind else {
        return unexpected(request, shared).await;
    };
    let object = request
        .match_info()
        .get("id")
        .unwrap_or_default()
        .to_owned();
    let authorization = header(&request, "authorization");
    let key = authorization
        .strip_prefix("Bearer ")
        .filter(|key| keys.iter().any(|known| known == key));
    shared.script.lock().expect("script").seen.push(Seen {
        path: request.path().to_owned(),
        object: object.clone(),
        credential: key.unwrap_or("refused").to_owned(),
    });
    if key.is_none() {
        // Stripe names the key it refused, masked but for its last four
        // characters: the server must not repeat even that.
        let presented = authorization.strip_prefix("Bearer ").unwrap_or_default();
        let tail: String = presented
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return HttpResponse::Unauthorized().json(json!({"error": {
            "message": format!("Invalid API Key provided: sk_test_****{tail}"),
            "type": "invalid_request_error",
        }}));
    }
    pass_gate(&shared).await;
    answer(
        &shared,
        &object,
        json!({"error": {
            "code": "resource_missing",
            "message": format!("No such {object_type}: '{object}'"),
            "param": "id",
            "type": "invalid_request_error",
        }}),
    )
}

async fn paypal_token(
    request: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Bytes,
) -> HttpResponse {
    let Kind::Paypal { client_id, secret } = &shared.kind else {
        return unexpected(request, shared).await;
    };
    let mut script = shared.script.lock().expect("script");
    script.token_calls += 1;
    let form = String::from_utf8_lossy(&body).into_owned();
    if !form
        .split('&')
        .any(|pair| pair == "grant_type=client_credentials")
        || !header(&request, "content-type").starts_with("application/x-www-form-urlencoded")
    {
        script
            .unexpected
            .push(format!("token call with form {form:?}"));
        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
    }
    let expected = format!(
        "Basic {}",
        BASE64.encode(format!("{client_id}:{secret}").as_bytes())
    );
    if header(&request, "authorization") != expected {
        return HttpResponse::Unauthorized().json(json!({
            "error": "invalid_client",
            "error_description": "Client Authentication failed",
        }));
    }
    let token = format!("{PAYPAL_TOKEN_PREFIX}{}", script.issued.len() + 1);
    script.issued.push(token.clone());
    HttpResponse::Ok().json(json!({
        "scope": "https://uri.paypal.com/services/payments/payment/authcode",
        "access_token": token,
        "token_type": "Bearer",
        "app_id": "APP-80W284485P519543T",
        "expires_in": 32400,
        "nonce": "2026-12-04T10:00:00ZstandinNonce",
    }))
}

async fn paypal_order(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if !matches!(shared.kind, Kind::Paypal { .. }) {
        return unexpected(request, shared).await;
    }
    let object = request
        .match_info()
        .get("id")
        .unwrap_or_default()
        .to_owned();
    let authorization = header(&request, "authorization");
    let valid = {
        let script = shared.script.lock().expect("script");
        authorization
            .strip_prefix("Bearer ")
            .is_some_and(|token| script.issued.iter().any(|issued| issued == token))
    };
    shared.script.lock().expect("script").seen.push(Seen {
        path: request.path().to_owned(),
        object: object.clone(),
        credential: if valid { "paypal-token" } else { "refused" }.to_owned(),
    });
    if !valid {
        return HttpResponse::Unauthorized().json(json!({
            "error": "invalid_token",
            "error_description": "Token signature verification failed",
        }));
    }
    pass_gate(&shared).await;
    answer(
        &shared,
        &object,
        json!({
            "name": "RESOURCE_NOT_FOUND",
            "details": [{"issue": "INVALID_RESOURCE_ID", "description": "Specified resource ID does not exist."}],
            "message": "The specified resource does not exist.",
        }),
    )
}

fn fixture(crate_dir: &str, name: &str) -> Value {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        crate_dir,
        "tests",
        "fixtures",
        "api",
        name,
    ]
    .iter()
    .collect();
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The Stripe adapter's API fixture `<name>.json` (e.g.
/// `payment_intent.succeeded`) as object `id`, for 150.00 USD.
pub fn stripe_object(name: &str, id: &str) -> Value {
    let mut object = fixture("adapters-stripe", &format!("{name}.json"));
    object["id"] = json!(id);
    object["currency"] = json!("usd");
    for field in ["amount", "amount_total"] {
        if object.get(field).is_some_and(|v| !v.is_null()) {
            object[field] = json!(15000);
        }
    }
    if object["amount_received"].as_i64().is_some_and(|n| n > 0) {
        object["amount_received"] = json!(15000);
    }
    object
}

/// The PayPal adapter's API fixture `<name>.json` (e.g. `order-completed`)
/// as order `id`, every amount 150.00 USD.
pub fn paypal_object(name: &str, id: &str) -> Value {
    let mut object = fixture("adapters-paypal", &format!("{name}.json"));
    object["id"] = json!(id);
    fn amounts(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.contains_key("currency_code") && map.contains_key("value") {
                    map.insert("currency_code".into(), json!("USD"));
                    map.insert("value".into(), json!("150.00"));
                }
                map.values_mut().for_each(amounts);
            }
            Value::Array(items) => items.iter_mut().for_each(amounts),
            _ => {}
        }
    }
    amounts(&mut object);
    object
}
