//! Stripe webhooks that are refused: each answers the contract's status and
//! `{"status":"error","message":...}`, and a refused request writes nothing.

use awc::http::StatusCode;
use serde_json::json;

use crate::helpers::{
    intent_succeeded, now, sign_stripe, spawn_app, spawn_app_with, spawn_app_without,
    stripe_signature, STRIPE_SECRET,
};

#[actix_rt::test]
async fn a_signature_from_another_secret_is_refused() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_1").await;
    let body = serde_json::to_vec(&intent_succeeded("evt_1", "pi_1")).unwrap();
    let signature = stripe_signature(&body, "whsec_someone_else", now());

    let answer = app
        .post_stripe(&body, &[("Stripe-Signature", signature.as_str())])
        .await;

    answer.assert_error(StatusCode::BAD_REQUEST);
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_tampered_body_is_refused() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_1").await;
    let body = serde_json::to_vec(&intent_succeeded("evt_1", "pi_1")).unwrap();
    let signature = stripe_signature(&body, STRIPE_SECRET, now());
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("\"amount_received\":15000", "\"amount_received\":15")
        .into_bytes();
    assert!(
        String::from_utf8_lossy(&tampered).contains("\"amount_received\":15,"),
        "the body was changed"
    );

    let answer = app
        .post_stripe(&tampered, &[("Stripe-Signature", signature.as_str())])
        .await;

    answer.assert_error(StatusCode::BAD_REQUEST);
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn an_expired_timestamp_is_refused() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_1").await;
    let body = serde_json::to_vec(&intent_succeeded("evt_1", "pi_1")).unwrap();
    // Correctly signed, but 1000 s old: past the 300 s tolerance.
    let signature = stripe_signature(&body, STRIPE_SECRET, now() - 1000);

    let answer = app
        .post_stripe(&body, &[("Stripe-Signature", signature.as_str())])
        .await;

    answer.assert_error(StatusCode::BAD_REQUEST);
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_missing_signature_is_refused() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_1").await;
    let body = serde_json::to_vec(&intent_succeeded("evt_1", "pi_1")).unwrap();

    let answer = app.post_stripe(&body, &[]).await;

    answer.assert_error(StatusCode::BAD_REQUEST);
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_malformed_signature_header_is_refused() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_1").await;
    let body = serde_json::to_vec(&intent_succeeded("evt_1", "pi_1")).unwrap();
    let t = now();
    let good = sign_stripe(&body, STRIPE_SECRET, t);

    for header in [
        String::new(),
        "garbage".to_owned(),
        format!("v1={good}"),
        format!("t={t}"),
        format!("t=soon,v1={good}"),
        format!("t={t},v0={good}"),
        format!("t={t},v1={}", &good[..32]),
        format!("t={t},v1={}", "z".repeat(64)),
    ] {
        let answer = app
            .post_stripe(&body, &[("Stripe-Signature", header.as_str())])
            .await;
        answer.assert_error(StatusCode::BAD_REQUEST);
    }
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn malformed_json_is_refused_even_when_signed() {
    let app = spawn_app();
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded","data":"#;
    let signature = stripe_signature(body, STRIPE_SECRET, now());

    let answer = app
        .post_stripe(body, &[("Stripe-Signature", signature.as_str())])
        .await;

    answer.assert_error(StatusCode::BAD_REQUEST);
    app.assert_nothing_written(None).await;
}

#[actix_rt::test]
async fn an_unknown_currency_is_refused() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_1").await;
    let mut event = intent_succeeded("evt_1", "pi_1");
    event["data"]["object"]["currency"] = json!("abc");

    let answer = app.send_stripe_event(&event).await;

    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains("currency"), "{message}");
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn an_event_without_a_payment_is_kept_and_applied_once_the_payment_is_known() {
    let app = spawn_app();
    let payment = app.new_payment("150.00", "USD").await;
    let event = intent_succeeded("evt_early", "pi_early");

    let answer = app.send_stripe_event(&event).await;

    answer.assert_error(StatusCode::NOT_FOUND);
    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event_id, "evt_early");
    assert_eq!(events[0].outcome, "unmatched");
    assert_eq!(events[0].payment_id, None);
    assert_eq!(app.payment(&payment).await["status"], "created");
    assert!(app.outbox_kinds().await.is_empty());

    // The shop catches up and records the PaymentIntent: the kept event is
    // applied in the same call. Stripe's retry is then a duplicate.
    let pending = app.external_pending(&payment["id"], "pi_early").await;
    assert_eq!(pending.assert_status(StatusCode::OK)["status"], "completed");
    let retry = app.send_stripe_event(&event).await;

    let retry = retry.assert_status(StatusCode::OK);
    assert_eq!(retry["payment_id"], payment["id"]);
    let message = retry["message"].as_str().unwrap();
    assert!(message.contains("already processed"), "{message}");
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, "confirmed");
    assert_eq!(events[0].attempts, 1);
    assert_eq!(events[0].payment_id, payment["id"].as_i64());
}

#[actix_rt::test]
async fn a_body_over_the_limit_is_refused() {
    let app = spawn_app_with(&[("PAYHOOK_MAX_BODY_BYTES", "1024")]);
    let body = vec![b' '; 2048];
    let signature = stripe_signature(&body, STRIPE_SECRET, now());

    let answer = app
        .post_stripe(&body, &[("Stripe-Signature", signature.as_str())])
        .await;

    let message = answer.assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message.contains("1024"), "{message}");
    app.assert_nothing_written(None).await;
}

#[actix_rt::test]
async fn a_streamed_body_over_the_limit_is_refused() {
    let app = spawn_app_with(&[("PAYHOOK_MAX_BODY_BYTES", "1024")]);
    let body = vec![b' '; 2048];
    let signature = stripe_signature(&body, STRIPE_SECRET, now());

    // No Content-Length to go by: the limit holds while reading.
    let answer = app
        .post_stripe_streamed(&body, 256, &[("Stripe-Signature", signature.as_str())])
        .await;

    answer.assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    app.assert_nothing_written(None).await;
}

#[actix_rt::test]
async fn a_body_at_the_limit_is_read() {
    let app = spawn_app_with(&[("PAYHOOK_MAX_BODY_BYTES", "1024")]);
    // A complete, ignorable event padded with whitespace to exactly 1024 bytes.
    let mut body = br#"{"id":"evt_padded","type":"customer.created"}"#.to_vec();
    body.resize(1024, b' ');
    let signature = stripe_signature(&body, STRIPE_SECRET, now());

    let answer = app
        .post_stripe(&body, &[("Stripe-Signature", signature.as_str())])
        .await;

    assert_eq!(answer.assert_status(StatusCode::OK)["status"], "ignored");
}

#[actix_rt::test]
async fn the_stripe_endpoint_answers_503_when_not_configured() {
    let app = spawn_app_without(&["STRIPE_WEBHOOK_SECRET"]);
    let body = serde_json::to_vec(&intent_succeeded("evt_1", "pi_1")).unwrap();
    let signature = stripe_signature(&body, STRIPE_SECRET, now());

    let answer = app
        .post_stripe(&body, &[("Stripe-Signature", signature.as_str())])
        .await;

    let message = answer.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("stripe"), "{message}");
    app.assert_nothing_written(None).await;
}

#[actix_rt::test]
async fn an_unknown_gateway_path_is_not_found() {
    let app = spawn_app();
    let body = serde_json::to_vec(&intent_succeeded("evt_1", "pi_1")).unwrap();
    let signature = stripe_signature(&body, STRIPE_SECRET, now());

    let answer = app
        .post_webhook("nopay", &body, &[("Stripe-Signature", signature.as_str())])
        .await;

    answer.assert_error(StatusCode::NOT_FOUND);
    app.assert_nothing_written(None).await;
}
