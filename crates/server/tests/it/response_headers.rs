//! Headers on every answer: `X-Content-Type-Options: nosniff` everywhere,
//! errors and unknown paths included, and `Cache-Control: no-store` on the
//! management API (its errors included) and the webhook answers, which name
//! payments.

use awc::http::header::{HeaderMap, CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use awc::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{intent_succeeded, spawn_app, API_TOKEN};
use crate::processes::client;

fn header<'a>(headers: &'a HeaderMap, name: &awc::http::header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[actix_rt::test]
async fn every_answer_says_nosniff_and_payment_data_is_never_cached() {
    let app = spawn_app();
    let payment = app.new_payment("150.00", "USD").await;
    let order = format!("/api/v1/orders/{}/", payment["order_id"]);
    let bearer = format!("Bearer {API_TOKEN}");
    // (method, path, token, status expected, no-store expected)
    let calls = [
        (Method::GET, "/healthz".to_owned(), false, 200, false),
        (Method::GET, "/readyz".to_owned(), false, 200, false),
        (Method::GET, "/metrics".to_owned(), false, 200, false),
        (
            Method::GET,
            "/api/openapi.json".to_owned(),
            false,
            200,
            false,
        ),
        (Method::GET, "/no/such/path".to_owned(), false, 404, false),
        (Method::DELETE, "/healthz".to_owned(), false, 405, false),
        (Method::GET, order.clone(), true, 200, true),
        (Method::GET, order.clone(), false, 401, true),
        (
            Method::GET,
            "/api/v1/orders/abc/".to_owned(),
            true,
            404,
            true,
        ),
        (
            Method::GET,
            "/api/v1/webhook-events/?x=1".to_owned(),
            true,
            400,
            true,
        ),
        (Method::DELETE, order, true, 405, true),
        (
            Method::GET,
            "/api/v1/no-such-thing/".to_owned(),
            true,
            404,
            true,
        ),
        (
            Method::POST,
            "/api/v1/order-payments/webhooks/stripe/".to_owned(),
            false,
            400,
            true,
        ),
        (
            Method::POST,
            "/api/v1/order-payments/webhooks/nowhere/".to_owned(),
            false,
            404,
            true,
        ),
    ];
    for (method, path, token, status, no_store) in calls {
        let mut request = client().request(method.clone(), format!("{}{path}", app.address));
        if token {
            request = request.insert_header(("Authorization", bearer.as_str()));
        }
        let response = request
            .insert_header(("Content-Type", "application/json"))
            .send_body("{}")
            .await
            .expect("an answer");
        let call = format!("{method} {path}");
        assert_eq!(response.status().as_u16(), status, "{call}");
        let headers = response.headers();
        assert_eq!(
            header(headers, &X_CONTENT_TYPE_OPTIONS),
            Some("nosniff"),
            "{call}"
        );
        let expected = no_store.then_some("no-store");
        assert_eq!(header(headers, &CACHE_CONTROL), expected, "{call}");
    }

    // A signed webhook's success answer names the payment: not cached either.
    app.external_pending(&payment["id"], "pi_headers").await;
    let answer = app
        .send_stripe_event(&intent_succeeded("evt_headers", "pi_headers"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["message"], json!("Payment confirmed"));
    assert_eq!(
        header(&answer.headers, &X_CONTENT_TYPE_OPTIONS),
        Some("nosniff")
    );
    assert_eq!(header(&answer.headers, &CACHE_CONTROL), Some("no-store"));
}
