//! The operator console over plain HTTP (no browser): off without the
//! token, its headers on every answer, sign-in (cookie attributes, wrong
//! tokens counted against the address's budget), the `Origin` and CSRF
//! checks of every POST, escaping of what the gateways sent, and the
//! search it shares with `GET /api/v1/order-payments/?q=`.
//!
//! `console_browser` walks the same pages in a real Chromium.

use awc::http::StatusCode;
use awc::Client;
use serde_json::{json, Value};

use crate::helpers::{
    intent_succeeded, spawn_app, spawn_app_with, spawn_app_without, TestApp, API_TOKEN,
};

/// A client that shows redirects instead of following them.
fn client() -> Client {
    Client::builder().disable_redirects().finish()
}

/// One answer: status, headers, body text.
pub struct Page {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the headers every console answer carries.
    #[track_caller]
    pub fn assert_console_headers(&self) {
        assert_eq!(
            self.header("content-security-policy"),
            Some(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'"
            ),
            "{}",
            self.body
        );
        assert_eq!(self.header("x-frame-options"), Some("DENY"));
        assert_eq!(self.header("referrer-policy"), Some("same-origin"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
    }
}

async fn read(request: awc::SendClientRequest) -> Page {
    let mut response = request.await.expect("the server answers");
    let body = response
        .body()
        .limit(4 * 1024 * 1024)
        .await
        .expect("a body");
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        body: String::from_utf8(body.to_vec()).expect("UTF-8"),
    }
}

/// `GET path` with the session cookie `session`, if any.
pub async fn get(app: &TestApp, path: &str, session: Option<&str>) -> Page {
    let mut request = client().get(format!("{}{path}", app.address));
    if let Some(session) = session {
        request = request.insert_header(("cookie", format!("payhook_console={session}")));
    }
    read(request.send()).await
}

/// `POST path` with `form` (urlencoded), the cookie and `origin` as given.
pub async fn post(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    session: Option<&str>,
    origin: Option<&str>,
) -> Page {
    let mut request = client().post(format!("{}{path}", app.address));
    if let Some(session) = session {
        request = request.insert_header(("cookie", format!("payhook_console={session}")));
    }
    if let Some(origin) = origin {
        request = request.insert_header(("origin", origin));
    }
    read(request.send_form(&form)).await
}

/// Signs in with the right token and returns the session id.
pub async fn sign_in(app: &TestApp) -> String {
    let page = post(
        app,
        "/console/sign-in/",
        &[("token", API_TOKEN)],
        None,
        Some(&app.address),
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), Some("/console/"));
    let cookie = page.header("set-cookie").expect("a session cookie");
    let id = cookie
        .strip_prefix("payhook_console=")
        .and_then(|rest| rest.split(';').next())
        .expect("the session id");
    id.to_owned()
}

/// The CSRF token in a signed-in page's forms.
pub fn csrf_of(page: &Page) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.body.find(marker).expect("a CSRF field") + marker.len();
    let end = page.body[start..].find('"').expect("the field's end") + start;
    page.body[start..end].to_owned()
}

#[actix_rt::test]
async fn without_the_token_the_console_is_off() {
    let app = spawn_app_without(&["PAYHOOK_API_TOKEN"]);
    for path in ["/console/", "/console/sign-in/", "/console/payments/"] {
        let page = get(&app, path, None).await;
        assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            page.body.contains("PAYHOOK_API_TOKEN is not set"),
            "{}",
            page.body
        );
        page.assert_console_headers();
    }
    let page = post(
        &app,
        "/console/sign-in/",
        &[("token", "")],
        None,
        Some(&app.address),
    )
    .await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.header("set-cookie").is_none());
}

#[actix_rt::test]
async fn every_console_answer_carries_the_security_headers() {
    let app = spawn_app();
    let session = sign_in(&app).await;
    let cases = [
        ("/console/sign-in/", None, StatusCode::OK),
        ("/console/", None, StatusCode::SEE_OTHER),
        ("/console/", Some(session.as_str()), StatusCode::OK),
        (
            "/console/payments/12345/",
            Some(session.as_str()),
            StatusCode::NOT_FOUND,
        ),
        ("/console/no-such-page", None, StatusCode::NOT_FOUND),
        ("/console/static/console.css", None, StatusCode::OK),
    ];
    for (path, session, status) in cases {
        let page = get(&app, path, session).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        page.assert_console_headers();
    }
    // The API keeps its own headers: no CSP there.
    let api = get(&app, "/healthz", None).await;
    assert!(api.header("content-security-policy").is_none());
}

#[actix_rt::test]
async fn signing_in_sets_a_strict_cookie_and_signing_out_ends_the_session() {
    let app = spawn_app();
    let page = post(
        &app,
        "/console/sign-in/",
        &[("token", API_TOKEN)],
        None,
        Some(&app.address),
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    page.assert_console_headers();
    let cookie = page.header("set-cookie").expect("a cookie").to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console/",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // Plain HTTP to 127.0.0.1: a Secure cookie would be dropped there.
    assert!(!cookie.contains("Secure"), "{cookie}");
    let session = cookie
        .strip_prefix("payhook_console=")
        .and_then(|rest| rest.split(';').next())
        .expect("an id")
        .to_owned();
    assert_eq!(session.len(), 43, "32 bytes in base64url: {session}");

    let overview = get(&app, "/console/", Some(&session)).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(
        overview.body.contains("<h1>Overview</h1>"),
        "{}",
        overview.body
    );
    let csrf = csrf_of(&overview);

    let signed_out = post(
        &app,
        "/console/sign-out/",
        &[("csrf", &csrf)],
        Some(&session),
        Some(&app.address),
    )
    .await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_out.header("location"), Some("/console/sign-in/"));
    assert!(signed_out
        .header("set-cookie")
        .is_some_and(|c| c.contains("Max-Age=0")));
    // The old cookie no longer opens anything.
    let after = get(&app, "/console/", Some(&session)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.header("location"), Some("/console/sign-in/"));
}

#[actix_rt::test]
async fn a_wrong_token_is_refused_and_counted_against_the_address() {
    let app = spawn_app_with(&[
        ("PAYHOOK_FAILED_ATTEMPTS_PER_SECOND", "1"),
        ("PAYHOOK_FAILED_ATTEMPTS_BURST", "2"),
    ]);
    for _ in 0..2 {
        let page = post(
            &app,
            "/console/sign-in/",
            &[("token", "guess")],
            None,
            Some(&app.address),
        )
        .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
        assert!(page.header("set-cookie").is_none());
        assert!(
            page.body.contains("not the management token"),
            "{}",
            page.body
        );
    }
    let page = post(
        &app,
        "/console/sign-in/",
        &[("token", "guess")],
        None,
        Some(&app.address),
    )
    .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.header("retry-after").is_some());
    // The same budget as the API's bearer tokens: the API refuses too.
    let api = client()
        .get(format!("{}/api/v1/orders/1/", app.address))
        .bearer_auth("guess")
        .send()
        .await
        .expect("an answer");
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[actix_rt::test]
async fn sign_in_from_another_origin_or_none_is_refused() {
    let app = spawn_app();
    for origin in [None, Some("http://evil.example"), Some("null")] {
        let page = post(
            &app,
            "/console/sign-in/",
            &[("token", API_TOKEN)],
            None,
            origin,
        )
        .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{origin:?}");
        assert!(page.header("set-cookie").is_none(), "{origin:?}");
        page.assert_console_headers();
    }
}

/// An event that matched no payment: each replay that reaches the store
/// counts one more attempt, so attempts show whether a POST did anything.
async fn unmatched_event(app: &TestApp, metadata_note: &str) -> i64 {
    let mut event = intent_succeeded("evt_console_unmatched", "pi_console_nobody");
    event["data"]["object"]["metadata"]["note"] = json!(metadata_note);
    let answer = app.send_stripe_event(&event).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    let listed = app.list_events("outcome=unmatched").await;
    listed.body["items"][0]["id"].as_i64().expect("an event id")
}

async fn attempts(app: &TestApp, event: i64) -> i64 {
    let answer = app.get_event(event).await;
    answer.body["attempts"].as_i64().expect("attempts")
}

#[actix_rt::test]
async fn a_post_without_the_csrf_token_or_from_another_origin_changes_nothing() {
    let app = spawn_app();
    let event = unmatched_event(&app, "plain").await;
    let session = sign_in(&app).await;
    let page = get(&app, &format!("/console/events/{event}/"), Some(&session)).await;
    let csrf = csrf_of(&page);
    let path = format!("/console/events/{event}/replay/");
    let other_session = sign_in(&app).await;
    let other_csrf = csrf_of(&get(&app, "/console/", Some(&other_session)).await);
    type Form<'a> = &'a [(&'a str, &'a str)];
    let refused: [(Form<'_>, Option<&str>); 5] = [
        (&[], Some(app.address.as_str())),
        (&[("csrf", "not-the-token")], Some(app.address.as_str())),
        // Another session's token is not this session's.
        (&[("csrf", other_csrf.as_str())], Some(app.address.as_str())),
        (&[("csrf", csrf.as_str())], Some("http://evil.example")),
        (&[("csrf", csrf.as_str())], None),
    ];
    for (form, origin) in refused {
        let answer = post(&app, &path, form, Some(&session), origin).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{origin:?}: {}",
            answer.body
        );
        assert!(
            answer.body.contains("Nothing was changed"),
            "{}",
            answer.body
        );
        answer.assert_console_headers();
        assert_eq!(attempts(&app, event).await, 1, "{origin:?}");
    }
    // Without a session: sent to sign in, nothing done.
    let answer = post(&app, &path, &[("csrf", &csrf)], None, Some(&app.address)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(attempts(&app, event).await, 1);
    // The real form: replayed (still unmatched), one more attempt.
    let answer = post(
        &app,
        &path,
        &[("csrf", &csrf)],
        Some(&session),
        Some(&app.address),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let location = answer.header("location").expect("a location").to_owned();
    assert_eq!(
        location,
        format!("/console/events/{event}/?replayed=unmatched")
    );
    assert_eq!(attempts(&app, event).await, 2);
    let shown = get(&app, &location, Some(&session)).await;
    assert!(
        shown.body.contains("still no payment matches"),
        "{}",
        shown.body
    );
}

#[actix_rt::test]
async fn what_the_gateway_sent_is_shown_escaped() {
    let app = spawn_app();
    let script = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";
    let event = unmatched_event(&app, script).await;
    let session = sign_in(&app).await;
    let page = get(&app, &format!("/console/events/{event}/"), Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(!page.body.contains("<img"), "{}", page.body);
    assert!(
        page.body.contains(
            "&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        ),
        "{}",
        page.body
    );
    // Pretty-printed: the body's fields on lines of their own.
    assert!(
        page.body
            .contains("\n  &quot;id&quot;: &quot;evt_console_unmatched&quot;,\n"),
        "{}",
        page.body
    );
}

#[actix_rt::test]
async fn the_search_is_the_apis_and_the_consoles() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_console_search").await;
    let answer = app
        .send_stripe_event(&intent_succeeded("evt_console_search", "pi_console_search"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let id = payment["id"].as_i64().expect("an id");
    let transaction = payment["transaction_id"]
        .as_str()
        .expect("a transaction id");

    for query in [
        id.to_string(),
        transaction.to_owned(),
        "pi_console_search".to_owned(),
        "  pi_console_search ".to_owned(),
    ] {
        let mut response = client()
            .get(format!("{}/api/v1/order-payments/", app.address))
            .query(&[("q", query.as_str())])
            .expect("a query")
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(1),
            "{query}: {body}"
        );
        assert_eq!(body["items"][0]["id"], id);
        assert_eq!(body["items"][0]["status"], "completed");
        assert_eq!(body["items"][0]["refunded_amount"], "0.00");
    }
    let too_long = "x".repeat(256);
    let cases = [
        ("pi_console", 200),
        ("   ", 200),
        ("pi\0x", 200),
        ("", 400),
        (too_long.as_str(), 400),
    ];
    for (query, status) in cases {
        let mut response = client()
            .get(format!("{}/api/v1/order-payments/", app.address))
            .query(&[("q", query)])
            .expect("a query")
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), status, "{query:?}");
        let body: Value = response.json().await.expect("JSON");
        if status == 200 {
            assert_eq!(body["items"], json!([]), "{query}");
        } else {
            assert_eq!(body["status"], "error");
        }
    }
    let without_token = client()
        .get(format!("{}/api/v1/order-payments/?q=1", app.address))
        .send()
        .await
        .expect("an answer");
    assert_eq!(without_token.status(), StatusCode::UNAUTHORIZED);

    let session = sign_in(&app).await;
    let page = get(
        &app,
        "/console/payments/?q=pi_console_search",
        Some(&session),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(&format!("href=\"/console/payments/{id}/\"")),
        "{}",
        page.body
    );
    let page = get(&app, &format!("/console/payments/{id}/"), Some(&session)).await;
    assert_eq!(page.status, StatusCode::OK);
    for expected in [
        "<h1>Payment ",
        "completed",
        "150.00 USD",
        "evt_console_search",
        "order.paid",
        "payment_intent.succeeded",
    ] {
        assert!(page.body.contains(expected), "{expected}: {}", page.body);
    }
    let blank = get(&app, "/console/payments/?q=+", Some(&session)).await;
    assert_eq!(blank.status, StatusCode::OK);
    assert!(
        blank.body.contains("No payment is known by"),
        "{}",
        blank.body
    );
    let empty = get(&app, "/console/payments/?q=", Some(&session)).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.body.contains("invalid q"), "{}", empty.body);
}
