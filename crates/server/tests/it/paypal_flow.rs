//! PayPal webhooks through the real server: the shop's flow, the lookup
//! order, repeated deliveries, failures, amount mismatches, ignored event
//! types, and the calls that are refused.
//!
//! Every call is signed here with `ring` and the PayPal adapter's test-only
//! key (see `helpers::sign_paypal`), never with the adapter under test.

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    confirmed, payment_failed, paypal_completed, paypal_denied, paypal_fixture_path, paypal_time,
    spawn_app, spawn_app_with_paypal, PaypalCall, PAYPAL_WEBHOOK_ID,
};

/// The PayPal order id the shop records as the external id.
const ORDER_ID: &str = "5O190127TN364715T";

/// The capture id of the `PAYMENT.CAPTURE.COMPLETED` fixture.
const COMPLETED_CAPTURE_ID: &str = "2GG279541U471931P";

/// The capture id of the `PAYMENT.CAPTURE.DENIED` fixture.
const DENIED_CAPTURE_ID: &str = "7NW873794T343360M";

/// The raw bytes of the PayPal adapter's event fixture of `event_type`.
fn raw_fixture(event_type: &str) -> Vec<u8> {
    let path = paypal_fixture_path(&format!("{event_type}.json"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[actix_rt::test]
async fn a_completed_capture_confirms_the_order_exactly_once() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    assert_eq!(payment["status"], "pending_external");

    let answer = app
        .send_paypal_event(&paypal_completed("WH-FLOW-1", ORDER_ID))
        .await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let completed = app.payment(&payment).await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["amount_mismatch"], Value::Null);
    assert_eq!(completed["gateway_reference"], COMPLETED_CAPTURE_ID);
    assert_eq!(completed["external_id"], ORDER_ID);
    assert_eq!(app.order_status(&payment).await, "paid");

    let outbox = app.store.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].kind, "order.paid");
    assert_eq!(Some(outbox[0].order_id), payment["order_id"].as_i64());
    assert_eq!(Some(outbox[0].payment_id), payment["id"].as_i64());

    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].gateway, "paypal");
    assert_eq!(events[0].event_id, "WH-FLOW-1");
    assert_eq!(events[0].event_type, "PAYMENT.CAPTURE.COMPLETED");
    assert_eq!(events[0].outcome, "confirmed");
    assert_eq!(events[0].payment_id, payment["id"].as_i64());
}

#[actix_rt::test]
async fn the_unmodified_fixture_confirms_the_payment_named_by_its_order_id() {
    let app = spawn_app_with_paypal(&[]);
    // The fixture as PayPal would send it, byte for byte: its custom_id
    // names no payment of this shop, so the related order id finds it.
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = raw_fixture("PAYMENT.CAPTURE.COMPLETED");
    let call = PaypalCall::signed_now(&body);

    let answer = app.post_paypal(&body, &call.headers()).await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}

#[actix_rt::test]
async fn a_denied_capture_fails_the_pending_payment() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;

    let answer = app
        .send_paypal_event(&paypal_denied("WH-DENIED-1", ORDER_ID))
        .await;

    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &payment_failed(&payment)
    );
    let failed = app.payment(&payment).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["gateway_reference"], DENIED_CAPTURE_ID);
    assert_eq!(app.order_status(&payment).await, "pending");
    let outbox = app.store.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].kind, "payment.failed");
    assert_eq!(Some(outbox[0].payment_id), payment["id"].as_i64());
    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, "failed");
}

#[actix_rt::test]
async fn a_repeated_delivery_is_answered_as_already_processed() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let event = paypal_completed("WH-TWICE", ORDER_ID);
    let first = app.send_paypal_event(&event).await;
    assert_eq!(first.assert_status(StatusCode::OK), &confirmed(&payment));
    let payment_before = app.payment(&payment).await;
    let events_before = app.store.events().await.unwrap();
    let outbox_before = app.store.outbox().await.unwrap();

    // PayPal's retry: the same event, in a new transmission.
    let second = app.send_paypal_event(&event).await;

    let second = second.assert_status(StatusCode::OK);
    assert_eq!(second["status"], "success");
    let message = second["message"].as_str().unwrap();
    assert!(message.contains("already processed"), "{message}");
    assert_eq!(second["payment_id"], payment["id"]);
    assert_eq!(second["transaction_id"], payment["transaction_id"]);
    assert_eq!(app.payment(&payment).await, payment_before);
    assert_eq!(app.store.events().await.unwrap(), events_before);
    assert_eq!(app.store.outbox().await.unwrap(), outbox_before);
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}

#[actix_rt::test]
async fn an_event_without_a_payment_is_not_found_and_kept() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;

    let answer = app
        .send_paypal_event(&paypal_completed("WH-NOBODY", "ORDER-NOBODY"))
        .await;

    answer.assert_error(StatusCode::NOT_FOUND);
    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].gateway, "paypal");
    assert_eq!(events[0].event_id, "WH-NOBODY");
    assert_eq!(events[0].outcome, "unmatched");
    assert_eq!(events[0].payment_id, None);
    assert_eq!(app.payment(&payment).await, payment);
    assert!(app.outbox_kinds().await.is_empty());
}

#[actix_rt::test]
async fn an_event_type_payhook_does_not_handle_is_ignored() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = raw_fixture("PAYMENT.AUTHORIZATION.CREATED");
    let call = PaypalCall::signed_now(&body);

    let answer = app.post_paypal(&body, &call.headers()).await;

    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "ignored");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("PAYMENT.AUTHORIZATION.CREATED"),
        "{message}"
    );
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_completed_payment_stays_completed_when_a_denial_arrives_later() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let confirmation = app
        .send_paypal_event(&paypal_completed("WH-LATE-OK", ORDER_ID))
        .await;
    assert_eq!(
        confirmation.assert_status(StatusCode::OK),
        &confirmed(&payment)
    );

    let answer = app
        .send_paypal_event(&paypal_denied("WH-LATE-DENIED", ORDER_ID))
        .await;

    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "success");
    assert_eq!(body["payment_id"], payment["id"]);
    assert_ne!(body["message"], "Payment failed");
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    let events = app.store.events().await.unwrap();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["confirmed", "late_failure_ignored"]);
}

#[actix_rt::test]
async fn a_payment_is_found_by_the_transaction_id_in_custom_id() {
    let app = spawn_app_with_paypal(&[]);
    // Never marked pending: the shop only passed its transaction id to
    // PayPal as the purchase unit's custom_id.
    let payment = app.new_payment_for("paypal", "150.00", "USD").await;
    assert_eq!(payment["status"], "created");
    let mut event = paypal_completed("WH-CUSTOM-1", "ORDER-UNKNOWN-TO-PAYHOOK");
    event["resource"]["custom_id"] = payment["transaction_id"].clone();

    let answer = app.send_paypal_event(&event).await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let completed = app.payment(&payment).await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["gateway_reference"], COMPLETED_CAPTURE_ID);
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}

#[actix_rt::test]
async fn the_transaction_id_wins_over_the_related_order_id() {
    let app = spawn_app_with_paypal(&[]);
    let by_order = app.pending_payment_for("paypal", ORDER_ID).await;
    let by_transaction = app.new_payment_for("paypal", "150.00", "USD").await;
    let mut event = paypal_completed("WH-BOTH", ORDER_ID);
    event["resource"]["custom_id"] = by_transaction["transaction_id"].clone();

    let answer = app.send_paypal_event(&event).await;

    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &confirmed(&by_transaction)
    );
    assert_eq!(app.payment(&by_transaction).await["status"], "completed");
    assert_eq!(app.payment(&by_order).await["status"], "pending_external");
}

#[actix_rt::test]
async fn an_amount_mismatch_is_recorded_and_confirmed_by_default() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let mut event = paypal_completed("WH-SHORT", ORDER_ID);
    event["resource"]["amount"]["value"] = json!("149.99");

    let answer = app.send_paypal_event(&event).await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let completed = app.payment(&payment).await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(
        completed["amount_mismatch"],
        json!({
            "expected": {"amount": "150.00", "currency": "USD"},
            "received": {"amount": "149.99", "currency": "USD"},
        })
    );
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(
        app.outbox_kinds().await,
        ["order.paid", "payment.amount_mismatch"]
    );
}

#[actix_rt::test]
async fn an_amount_mismatch_is_refused_under_the_reject_policy() {
    let app = spawn_app_with_paypal(&[("PAYHOOK_AMOUNT_MISMATCH", "reject")]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let mut event = paypal_completed("WH-SHORT", ORDER_ID);
    event["resource"]["amount"]["value"] = json!("149.99");

    let answer = app.send_paypal_event(&event).await;

    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains("amount"), "{message}");
    let unchanged = app.payment(&payment).await;
    assert_eq!(unchanged["status"], "pending_external");
    assert_eq!(unchanged["amount_mismatch"], Value::Null);
    assert_eq!(app.order_status(&payment).await, "pending");
    assert!(app.outbox_kinds().await.is_empty());
}

#[actix_rt::test]
async fn a_signature_for_another_webhook_id_is_refused() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = serde_json::to_vec(&paypal_completed("WH-1", ORDER_ID)).unwrap();
    let call = PaypalCall::signed(&body, "WH-SOMEONE-ELSE", &paypal_time(0));

    let answer = app.post_paypal(&body, &call.headers()).await;

    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains("signature"), "{message}");
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_tampered_body_is_refused() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = serde_json::to_vec(&paypal_completed("WH-1", ORDER_ID)).unwrap();
    let call = PaypalCall::signed_now(&body);
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("\"150.00\"", "\"1.00\"")
        .into_bytes();
    assert!(String::from_utf8_lossy(&tampered).contains("\"1.00\""));

    let answer = app.post_paypal(&tampered, &call.headers()).await;

    answer.assert_error(StatusCode::BAD_REQUEST);
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_corrupted_signature_is_refused() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = serde_json::to_vec(&paypal_completed("WH-1", ORDER_ID)).unwrap();
    let mut call = PaypalCall::signed_now(&body);
    // Another valid base64 signature of the right length: the first
    // character changed.
    let first = if call.signature.starts_with('A') {
        "B"
    } else {
        "A"
    };
    call.signature.replace_range(..1, first);

    let answer = app.post_paypal(&body, &call.headers()).await;

    answer.assert_error(StatusCode::BAD_REQUEST);
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_certificate_url_off_paypal_is_refused() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = serde_json::to_vec(&paypal_completed("WH-1", ORDER_ID)).unwrap();

    for url in [
        "https://evil.example.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.example.com/cert.pem",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
    ] {
        // Correctly signed by the pinned key: only the URL is wrong.
        let call = PaypalCall {
            cert_url: url.to_owned(),
            ..PaypalCall::signed_now(&body)
        };
        let answer = app.post_paypal(&body, &call.headers()).await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("certificate"), "{url}: {message}");
    }
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_stale_transmission_time_is_refused() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = serde_json::to_vec(&paypal_completed("WH-1", ORDER_ID)).unwrap();

    // Correctly signed, but 1000 s away from now either way: past the
    // 300 s tolerance.
    for offset in [-1000, 1000] {
        let call = PaypalCall::signed(&body, PAYPAL_WEBHOOK_ID, &paypal_time(offset));
        let answer = app.post_paypal(&body, &call.headers()).await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("timestamp"), "{offset}: {message}");
    }
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn missing_or_unsupported_headers_are_refused() {
    let app = spawn_app_with_paypal(&[]);
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = serde_json::to_vec(&paypal_completed("WH-1", ORDER_ID)).unwrap();
    let call = PaypalCall::signed_now(&body);

    for missing in [
        "PAYPAL-TRANSMISSION-ID",
        "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-TRANSMISSION-SIG",
        "PAYPAL-CERT-URL",
        "PAYPAL-AUTH-ALGO",
    ] {
        let headers: Vec<(String, String)> = call
            .headers()
            .into_iter()
            .filter(|(name, _)| name != missing)
            .collect();
        let answer = app.post_paypal(&body, &headers).await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains(missing), "{missing}: {message}");
    }
    let other_algorithm = PaypalCall {
        auth_algo: "SHA1withRSA".to_owned(),
        ..call
    };
    let answer = app.post_paypal(&body, &other_algorithm.headers()).await;
    answer.assert_error(StatusCode::BAD_REQUEST);
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn the_paypal_endpoint_answers_503_when_not_configured() {
    // The default test configuration has neither PAYPAL_WEBHOOK_ID nor
    // PAYPAL_CERT_FILE.
    let app = spawn_app();
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let body = serde_json::to_vec(&paypal_completed("WH-1", ORDER_ID)).unwrap();
    let call = PaypalCall::signed_now(&body);

    let answer = app.post_paypal(&body, &call.headers()).await;

    let message = answer.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("paypal"), "{message}");
    app.assert_nothing_written(Some(&payment)).await;
}
