//! The management token is checked before anything else of a call is
//! read: without it, a bad body, a bad path segment or an unknown query
//! parameter all answer 401 (never a parser's message), and each such call
//! counts towards the client's failed-token budget.

use awc::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use awc::http::{Method, StatusCode};
use payhook_server::routes::{Verb, ROUTES};
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, API_TOKEN};
use crate::processes::client;

/// The webhook endpoints authenticate by signature, not by token.
const WEBHOOKS: &str = "/api/v1/order-payments/webhooks/";

/// Every management route of the server, as registered.
fn management_routes() -> Vec<(Verb, &'static str)> {
    let routes: Vec<(Verb, &'static str)> = ROUTES
        .iter()
        .filter(|route| route.path.starts_with("/api/v1/") && !route.path.starts_with(WEBHOOKS))
        .map(|route| (route.verb, route.path))
        .collect();
    assert!(routes.len() >= 10, "{routes:?}");
    routes
}

/// `path` with every `{name}` replaced by a segment no handler can parse,
/// and an unknown query parameter.
fn unparsable(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("a closed parameter") + start;
        out.push_str(&rest[..start]);
        out.push_str("abc");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out + "?no_such_parameter=1"
}

/// Sends `verb` to `path` with a malformed JSON body and `authorization`;
/// the status, the `WWW-Authenticate` header and the body as JSON.
async fn send(
    app: &TestApp,
    verb: Verb,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let method = match verb {
        Verb::Get => Method::GET,
        Verb::Post => Method::POST,
    };
    let mut request = client()
        .request(method, format!("{}{path}", app.address))
        .insert_header((CONTENT_TYPE, "application/json"));
    if let Some(value) = authorization {
        request = request.insert_header((AUTHORIZATION, value));
    }
    let mut response = request
        .send_body("{\"client_id\": ")
        .await
        .expect("the server answers");
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.body().await.expect("a readable body");
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (response.status(), challenge, body)
}

#[actix_rt::test]
async fn every_management_route_answers_401_before_parsing_path_query_or_body() {
    // A budget large enough for every call below to be judged on its own.
    let app = spawn_app_with(&[("PAYHOOK_FAILED_ATTEMPTS_BURST", "1000")]);
    for (verb, path) in management_routes() {
        let path = unparsable(path);
        for authorization in [None, Some("Bearer wrong-token"), Some("Basic dGVzdA==")] {
            let (status, challenge, body) = send(&app, verb, &path, authorization).await;
            let call = format!("{} {path} with {authorization:?}", verb.as_str());
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{call}: {body}");
            assert_eq!(challenge.as_deref(), Some("Bearer"), "{call}");
            assert_eq!(
                body["message"], "missing or invalid bearer token",
                "{call}: {body}"
            );
        }
    }
}

#[actix_rt::test]
async fn with_the_token_the_same_calls_reach_the_parsers() {
    // The other half of the test above: the 401s are not the only answer
    // these calls can get, so they did prove the order.
    let app = spawn_app();
    let bearer = format!("Bearer {API_TOKEN}");
    for (verb, path) in management_routes() {
        let path = unparsable(path);
        let (status, _, body) = send(&app, verb, &path, Some(&bearer)).await;
        let call = format!("{} {path}", verb.as_str());
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "{call}: {status} {body}"
        );
    }
}

#[actix_rt::test]
async fn unparsable_calls_without_a_token_use_up_the_failed_token_budget() {
    let app = spawn_app_with(&[
        ("PAYHOOK_FAILED_ATTEMPTS_BURST", "3"),
        ("PAYHOOK_FAILED_ATTEMPTS_PER_SECOND", "1"),
    ]);
    let calls = [
        (Verb::Post, "/api/v1/orders/?no_such_parameter=1"),
        (Verb::Get, "/api/v1/orders/abc/"),
        (Verb::Get, "/api/v1/webhook-events/?no_such_parameter=1"),
    ];
    for (verb, path) in calls {
        let (status, _, body) = send(&app, verb, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let (status, _, body) = send(&app, Verb::Get, "/api/v1/orders/abc/", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Only failures take from the budget: the right token still gets in
    // (and only then is the path read).
    let bearer = format!("Bearer {API_TOKEN}");
    let (status, _, _) = send(&app, Verb::Get, "/api/v1/orders/abc/", Some(&bearer)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn the_bearer_scheme_name_is_case_insensitive() {
    let app = spawn_app();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let authorization = format!("{scheme} {API_TOKEN}");
        let (status, _, body) = send(
            &app,
            Verb::Get,
            "/api/v1/webhook-events/",
            Some(&authorization),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
        assert_eq!(body["items"], Value::Array(Vec::new()), "{scheme}: {body}");
    }
}
