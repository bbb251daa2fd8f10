//! A stand-in PayPal on 127.0.0.1: the OAuth2 token endpoint and
//! `GET /v2/checkout/orders/{id}`, checking what the real API checks
//! (Basic client credentials and the form body on the token call, a Bearer
//! token it issued on the order call) and counting the calls.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// The REST app's credentials the stand-in accepts.
pub const CLIENT_ID: &str = "AYSq3RDGsmBLJE-otTkBtM-jBRd1TCQwFf9RGfwddNXWz0uFU9ztymylOhRS";
/// The matching secret.
pub const CLIENT_SECRET: &str = "EGnHDxD_qRPdaLdZz8iCr8N7_MzF-YHPTkjs6NKYQvQSBngp4PTTVWkPZRbL";
/// Every token the stand-in issues starts with this (as PayPal's do), so
/// that a test can look for any of them in a text.
pub const TOKEN_PREFIX: &str = "A21AAStandInToken";

/// A scripted answer of the order endpoint.
#[derive(Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// A `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Answer {
    /// `status` with a JSON `body`.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

/// What the stand-in does and has seen.
#[derive(Default)]
struct Script {
    /// `expires_in` of the tokens it issues.
    expires_in: u64,
    /// How long the token endpoint takes.
    token_delay: Duration,
    /// An answer of the token endpoint replacing the normal one.
    token_answer: Option<Answer>,
    /// Tokens issued so far (the last is the newest).
    issued: Vec<String>,
    /// Tokens the order endpoint still accepts.
    valid: Vec<String>,
    /// Orders by id; any other id is answered 404.
    orders: HashMap<String, Answer>,
    /// Paths of the order calls, in order.
    order_paths: Vec<String>,
    /// Calls to any other path.
    unexpected: Vec<String>,
}

/// The stand-in PayPal; stopped when dropped.
pub struct StandIn {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<State>,
    handle: ServerHandle,
}

struct State {
    token_requests: AtomicUsize,
    order_requests: AtomicUsize,
    script: Mutex<Script>,
}

impl StandIn {
    /// Starts it on a port of its own, on a thread of its own, issuing
    /// tokens that expire in 9 hours (PayPal's live lifetime).
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(State {
            token_requests: AtomicUsize::new(0),
            order_requests: AtomicUsize::new(0),
            script: Mutex::new(Script {
                expires_in: 32_400,
                ..Script::default()
            }),
        });
        let shared = state.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::from(shared.clone()))
                        .route("/v1/oauth2/token", web::post().to(token))
                        .route("/v2/checkout/orders/{id}", web::get().to(order))
                        .default_service(web::to(unexpected))
                })
                .workers(2)
                .listen(listener)
                .expect("listen")
                .run();
                sender.send(server.handle()).expect("send the handle");
                server.await.expect("the stand-in stopped");
            });
        });
        let handle = receiver.recv().expect("the stand-in started");
        Self { url, state, handle }
    }

    /// Token calls so far.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Order calls so far.
    pub fn order_requests(&self) -> usize {
        self.state.order_requests.load(Ordering::SeqCst)
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.state.script.lock().expect("script")
    }

    /// Answers `GET /v2/checkout/orders/{id}` with `answer`.
    pub fn order(&self, id: &str, answer: Answer) {
        self.script().orders.insert(id.to_owned(), answer);
    }

    /// Issues tokens expiring in `seconds` from now on.
    pub fn expires_in(&self, seconds: u64) {
        self.script().expires_in = seconds;
    }

    /// Makes the token endpoint take `delay`.
    pub fn token_delay(&self, delay: Duration) {
        self.script().token_delay = delay;
    }

    /// Answers the token endpoint with `answer` instead of a token.
    pub fn token_answer(&self, answer: Answer) {
        self.script().token_answer = Some(answer);
    }

    /// Refuses every token issued so far (as after a revocation).
    pub fn revoke_tokens(&self) {
        self.script().valid.clear();
    }

    /// Refuses every token, including those it will issue.
    pub fn refuse_all_tokens(&self) {
        let mut script = self.script();
        script.valid.clear();
        script.expires_in = 0;
    }

    /// The tokens issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.script().issued.clone()
    }

    /// The paths of the order calls so far.
    pub fn order_paths(&self) -> Vec<String> {
        self.script().order_paths.clone()
    }

    /// Calls to paths PayPal does not serve here.
    pub fn unexpected(&self) -> Vec<String> {
        self.script().unexpected.clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        // Not awaited: the server's thread ends on its own.
        drop(self.handle.stop(false));
    }
}

fn answer(answer: &Answer) -> HttpResponse {
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(answer.status).expect("a status"),
    );
    response.content_type("application/json");
    if let Some(retry_after) = &answer.retry_after {
        response.insert_header((header::RETRY_AFTER, retry_after.clone()));
    }
    response.body(answer.body.clone())
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    answer(&Answer::new(
        status,
        format!(r#"{{"error":"{error}","error_description":"{description}"}}"#),
    ))
}

/// True when the request carries HTTP Basic `CLIENT_ID:CLIENT_SECRET`.
fn has_client_credentials(request: &HttpRequest) -> bool {
    let Some(value) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    BASE64.decode(encoded).ok().as_deref()
        == Some(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
}

async fn token(request: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let count = state.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let (delay, scripted) = {
        let script = state.script.lock().expect("script");
        (script.token_delay, script.token_answer.clone())
    };
    actix_rt::time::sleep(delay).await;
    if let Some(scripted) = scripted {
        return answer(&scripted);
    }
    if !has_client_credentials(&request) {
        return oauth_error(401, "invalid_client", "Client Authentication failed");
    }
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    if form != Some("application/x-www-form-urlencoded")
        || body.as_ref() != b"grant_type=client_credentials"
    {
        return oauth_error(400, "unsupported_grant_type", "Grant Type is NULL");
    }
    let token = format!("{TOKEN_PREFIX}-{count}");
    let mut script = state.script.lock().expect("script");
    script.issued.push(token.clone());
    if script.expires_in > 0 {
        script.valid.push(token.clone());
    }
    let expires_in = script.expires_in.max(1);
    answer(&Answer::new(
        200,
        format!(
            r#"{{"scope":"https://uri.paypal.com/services/payments/payment/authcapture openid","access_token":"{token}","token_type":"Bearer","app_id":"APP-80W284485P519543T","expires_in":{expires_in},"nonce":"2026-12-04T17:00:00ZstandIn"}}"#
        ),
    ))
}

async fn order(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    state.order_requests.fetch_add(1, Ordering::SeqCst);
    let scripted = {
        let mut script = state.script.lock().expect("script");
        script.order_paths.push(request.uri().to_string());
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !bearer.is_some_and(|token| script.valid.iter().any(|valid| valid == token)) {
            return oauth_error(401, "invalid_token", "Token signature verification failed");
        }
        script.orders.get(id.as_str()).cloned()
    };
    let Some(scripted) = scripted else {
        return answer(&Answer::new(
            404,
            r#"{"name":"RESOURCE_NOT_FOUND","details":[{"issue":"INVALID_RESOURCE_ID","description":"Specified resource ID does not exist. Please check the resource ID and try again."}],"message":"The specified resource does not exist.","debug_id":"f2b3f5c2a1d4e"}"#,
        ));
    };
    actix_rt::time::sleep(scripted.delay).await;
    answer(&scripted)
}

async fn unexpected(request: HttpRequest, state: web::Data<State>) -> HttpResponse {
    state
        .script
        .lock()
        .expect("script")
        .unexpected
        .push(format!("{} {}", request.method(), request.uri()));
    HttpResponse::NotFound().finish()
}
