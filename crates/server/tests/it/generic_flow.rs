//! Generic gateway webhooks through the real server: the shop's flow, the
//! lookup order, repeated deliveries, failures, exact amounts, both
//! signature schemes, secret rotation, unsigned calls, and the calls that
//! are refused.
//!
//! Every call is signed here with `ring` (see
//! `helpers::sign_standard_webhook` and `helpers::simple_signature_headers`),
//! never with the adapter under test.

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    confirmed, generic_body, now, payment_failed, simple_signature_headers, spawn_app,
    spawn_app_with, spawn_app_with_generic, standard_webhook_headers, GENERIC_SECRET,
};

/// The gateway's id of the payment, recorded by the shop as the external id.
const EXTERNAL_ID: &str = "ext_123";

/// A body for `EXTERNAL_ID` with `status` and `amount` (JSON text), in USD.
fn body(status: &str, amount: &str) -> Vec<u8> {
    generic_body(Some(EXTERNAL_ID), None, status, amount)
}

/// `body` (a generic payload) with `"event_id": <event_id>` as its first
/// member.
fn with_event_id(body: &[u8], event_id: &str) -> Vec<u8> {
    let rest = body.strip_prefix(b"{").expect("a JSON object");
    let mut named = format!(r#"{{"event_id": {}, "#, json!(event_id)).into_bytes();
    named.extend_from_slice(rest);
    named
}

#[actix_rt::test]
async fn a_completed_payment_confirms_the_order_exactly_once() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;

    let answer = app
        .send_generic(&body("completed", "150.00"), "msg_flow_1")
        .await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let completed = app.payment(&payment).await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["amount_mismatch"], Value::Null);
    assert_eq!(app.order_status(&payment).await, "paid");

    let outbox = app.store.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].kind, "order.paid");
    assert_eq!(Some(outbox[0].order_id), payment["order_id"].as_i64());
    assert_eq!(Some(outbox[0].payment_id), payment["id"].as_i64());

    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].gateway, "generic");
    assert_eq!(events[0].event_id, "msg_flow_1");
    assert_eq!(events[0].outcome, "confirmed");
    assert_eq!(events[0].payment_id, payment["id"].as_i64());
}

#[actix_rt::test]
async fn a_failed_status_fails_the_pending_payment() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;

    let answer = app
        .send_generic(&body("failed", "150.00"), "msg_failed_1")
        .await;

    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &payment_failed(&payment)
    );
    assert_eq!(app.payment(&payment).await["status"], "failed");
    assert_eq!(app.order_status(&payment).await, "pending");
    let outbox = app.store.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].kind, "payment.failed");
    assert_eq!(Some(outbox[0].payment_id), payment["id"].as_i64());
}

#[actix_rt::test]
async fn a_repeated_webhook_id_is_answered_as_already_processed() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let body = body("completed", "150.00");
    let first = app.send_generic(&body, "msg_twice").await;
    assert_eq!(first.assert_status(StatusCode::OK), &confirmed(&payment));
    let payment_before = app.payment(&payment).await;
    let events_before = app.store.events().await.unwrap();
    let outbox_before = app.store.outbox().await.unwrap();

    // The sender's retry: the same message id, signed again.
    let second = app.send_generic(&body, "msg_twice").await;

    let second = second.assert_status(StatusCode::OK);
    assert_eq!(second["status"], "success");
    let message = second["message"].as_str().unwrap();
    assert!(message.contains("already processed"), "{message}");
    assert_eq!(second["payment_id"], payment["id"]);
    assert_eq!(app.payment(&payment).await, payment_before);
    assert_eq!(app.store.events().await.unwrap(), events_before);
    assert_eq!(app.store.outbox().await.unwrap(), outbox_before);
}

#[actix_rt::test]
async fn a_repeated_body_event_id_is_answered_as_already_processed() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    // The simple scheme signs only the body, so the sender's id of the
    // delivery travels inside it (an Idempotency-Key header is not signed,
    // and not read).
    let first_body = with_event_id(&body("completed", "150.00"), "order-42-attempt-1");
    // The same delivery re-serialised: other bytes, same event id, so only
    // the id can tell that it is a repeat.
    let mut second_body = first_body.clone();
    second_body.extend_from_slice(b"\n");
    let send = |body: Vec<u8>| {
        let headers = simple_signature_headers(GENERIC_SECRET, &body);
        let app = &app;
        async move { app.post_generic(&body, &headers).await }
    };
    let first = send(first_body).await;
    assert_eq!(first.assert_status(StatusCode::OK), &confirmed(&payment));
    let payment_before = app.payment(&payment).await;
    let events_before = app.store.events().await.unwrap();
    let outbox_before = app.store.outbox().await.unwrap();

    let second = send(second_body).await;

    let second = second.assert_status(StatusCode::OK);
    let message = second["message"].as_str().unwrap();
    assert!(message.contains("already processed"), "{message}");
    assert_eq!(second["payment_id"], payment["id"]);
    assert_eq!(events_before.len(), 1, "{events_before:?}");
    assert_eq!(events_before[0].event_id, "order-42-attempt-1");
    assert_eq!(app.payment(&payment).await, payment_before);
    assert_eq!(app.store.events().await.unwrap(), events_before);
    assert_eq!(app.store.outbox().await.unwrap(), outbox_before);
}

#[actix_rt::test]
async fn a_call_without_a_payment_is_not_found_and_kept() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let unknown = generic_body(
        Some("ext_nobody"),
        Some("TXN-NOBODY"),
        "completed",
        "150.00",
    );

    let answer = app.send_generic(&unknown, "msg_nobody").await;

    answer.assert_error(StatusCode::NOT_FOUND);
    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].gateway, "generic");
    assert_eq!(events[0].event_id, "msg_nobody");
    assert_eq!(events[0].outcome, "unmatched");
    assert_eq!(events[0].payment_id, None);
    assert_eq!(app.payment(&payment).await, payment);
    assert!(app.outbox_kinds().await.is_empty());
}

#[actix_rt::test]
async fn an_unknown_status_is_refused() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;

    for status in ["Refunded", "COMPLETED", "cancelled", "processing", ""] {
        let answer = app
            .send_generic(&body(status, "150.00"), "msg_status")
            .await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("status"), "{status:?}: {message}");
    }
    // `refunded` is a status, but says which refund only with a refund_id.
    let answer = app
        .send_generic(&body("refunded", "150.00"), "msg_status")
        .await;
    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains("refund_id"), "{message}");
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_completed_payment_stays_completed_when_a_failure_arrives_later() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let confirmation = app
        .send_generic(&body("completed", "150.00"), "msg_late_ok")
        .await;
    assert_eq!(
        confirmation.assert_status(StatusCode::OK),
        &confirmed(&payment)
    );

    let answer = app
        .send_generic(&body("failed", "150.00"), "msg_late_failure")
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
async fn a_payment_is_found_by_its_transaction_id() {
    let app = spawn_app_with_generic(&[]);
    // Never marked pending: the gateway only knows payhook's transaction id.
    let payment = app.new_payment_for("generic", "150.00", "USD").await;
    assert_eq!(payment["status"], "created");
    let transaction_id = payment["transaction_id"].as_str().unwrap();
    let body = generic_body(None, Some(transaction_id), "completed", "150.00");

    let answer = app.send_generic(&body, "msg_by_txn").await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}

#[actix_rt::test]
async fn a_payment_is_found_by_its_payment_id() {
    let app = spawn_app_with_generic(&[]);
    let payment = app
        .pending_payment_for("generic", "ext_by_payment_id")
        .await;
    let body = generic_body(Some("ext_by_payment_id"), None, "completed", "150.00");

    let answer = app.send_generic(&body, "msg_by_ext").await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.order_status(&payment).await, "paid");
}

#[actix_rt::test]
async fn the_transaction_id_wins_over_the_payment_id() {
    let app = spawn_app_with_generic(&[]);
    let by_external = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let by_transaction = app.new_payment_for("generic", "150.00", "USD").await;
    let transaction_id = by_transaction["transaction_id"].as_str().unwrap();
    let body = generic_body(
        Some(EXTERNAL_ID),
        Some(transaction_id),
        "completed",
        "150.00",
    );

    let answer = app.send_generic(&body, "msg_both").await;

    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &confirmed(&by_transaction)
    );
    assert_eq!(app.payment(&by_transaction).await["status"], "completed");
    assert_eq!(
        app.payment(&by_external).await["status"],
        "pending_external"
    );
}

#[actix_rt::test]
async fn the_amount_as_an_integer_a_decimal_or_a_string_is_read_exactly() {
    let app = spawn_app_with_generic(&[]);
    for (n, amount) in ["150", "150.00", r#""150.00""#].into_iter().enumerate() {
        let external_id = format!("ext_amount_{n}");
        let payment = app.pending_payment_for("generic", &external_id).await;
        let body = generic_body(Some(&external_id), None, "completed", amount);
        assert!(
            String::from_utf8_lossy(&body).contains(&format!(r#""amount": {amount},"#)),
            "the amount is sent as written"
        );

        let answer = app.send_generic(&body, &format!("msg_amount_{n}")).await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{amount}"
        );
        let completed = app.payment(&payment).await;
        assert_eq!(completed["status"], "completed", "{amount}");
        assert_eq!(completed["amount"], "150.00", "{amount}");
        assert_eq!(completed["currency"], "USD", "{amount}");
        assert_eq!(completed["amount_mismatch"], Value::Null, "{amount}");
    }
    assert_eq!(
        app.outbox_kinds().await,
        ["order.paid", "order.paid", "order.paid"]
    );
}

#[actix_rt::test]
async fn an_amount_mismatch_is_recorded_and_confirmed_by_default() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;

    let answer = app
        .send_generic(&body("completed", "149.99"), "msg_short")
        .await;

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
    let app = spawn_app_with_generic(&[("PAYHOOK_AMOUNT_MISMATCH", "reject")]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;

    let answer = app
        .send_generic(&body("completed", "149.99"), "msg_short")
        .await;

    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains("amount"), "{message}");
    let unchanged = app.payment(&payment).await;
    assert_eq!(unchanged["status"], "pending_external");
    assert_eq!(unchanged["amount_mismatch"], Value::Null);
    assert_eq!(app.order_status(&payment).await, "pending");
    assert!(app.outbox_kinds().await.is_empty());
}

#[actix_rt::test]
async fn the_simple_sha256_signature_is_accepted() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let body = body("completed", "150.00");
    // Keyed with the secret's text as configured, `whsec_` prefix included.
    let headers = simple_signature_headers(GENERIC_SECRET, &body);

    let answer = app.post_generic(&body, &headers).await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    assert_eq!(app.payment(&payment).await["status"], "completed");
    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].event_id.starts_with("sha256:"), "{events:?}");
}

#[actix_rt::test]
async fn a_raw_secret_signs_both_schemes_with_its_text() {
    let secret = "a-shared-secret-for-the-generic-gateway";
    let app = spawn_app_with(&[("WEBHOOK_SECRET", secret)]);
    let standard = app.pending_payment_for("generic", "ext_standard").await;
    let simple = app.pending_payment_for("generic", "ext_simple").await;

    let standard_body = generic_body(Some("ext_standard"), None, "completed", "150.00");
    let headers = standard_webhook_headers(secret, "msg_raw", now(), &standard_body);
    let answer = app.post_generic(&standard_body, &headers).await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&standard));

    let simple_body = generic_body(Some("ext_simple"), None, "completed", "150.00");
    let headers = simple_signature_headers(secret, &simple_body);
    let answer = app.post_generic(&simple_body, &headers).await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&simple));
}

/// Two Standard Webhooks secrets, the one being retired and the new one.
const OLD_SECRET: &str = "whsec_cm90YXRlZC1vdXQgc2VjcmV0IDAxMjM0NTY3ODk=";
const NEW_SECRET: &str = "whsec_cm90YXRlZC1pbiBzZWNyZXQgOTg3NjU0MzIxMA==";

#[actix_rt::test]
async fn any_configured_secret_is_accepted_during_rotation() {
    let secrets = format!("{OLD_SECRET},{NEW_SECRET}");
    let app = spawn_app_with(&[("WEBHOOK_SECRET", secrets.as_str())]);
    let standard = app.pending_payment_for("generic", "ext_rotated_1").await;
    let simple = app.pending_payment_for("generic", "ext_rotated_2").await;

    let standard_body = generic_body(Some("ext_rotated_1"), None, "completed", "150.00");
    let headers = standard_webhook_headers(NEW_SECRET, "msg_rotated", now(), &standard_body);
    let answer = app.post_generic(&standard_body, &headers).await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&standard));

    let simple_body = generic_body(Some("ext_rotated_2"), None, "completed", "150.00");
    let headers = simple_signature_headers(NEW_SECRET, &simple_body);
    let answer = app.post_generic(&simple_body, &headers).await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&simple));

    // A secret that is not configured is still refused.
    let other = app.pending_payment_for("generic", "ext_rotated_3").await;
    let other_body = generic_body(Some("ext_rotated_3"), None, "completed", "150.00");
    let headers = standard_webhook_headers(GENERIC_SECRET, "msg_other", now(), &other_body);
    let answer = app.post_generic(&other_body, &headers).await;
    answer.assert_error(StatusCode::BAD_REQUEST);
    assert_eq!(app.payment(&other).await, other);
}

#[actix_rt::test]
async fn a_signature_from_another_secret_is_refused() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let body = body("completed", "150.00");

    let standard = standard_webhook_headers(NEW_SECRET, "msg_forged", now(), &body);
    let answer = app.post_generic(&body, &standard).await;
    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains("signature"), "{message}");

    let simple = simple_signature_headers(NEW_SECRET, &body);
    let answer = app.post_generic(&body, &simple).await;
    answer.assert_error(StatusCode::BAD_REQUEST);

    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_tampered_body_is_refused() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let signed = body("completed", "1.00");
    let tampered = body("completed", "150.00");

    let standard = standard_webhook_headers(GENERIC_SECRET, "msg_tampered", now(), &signed);
    let answer = app.post_generic(&tampered, &standard).await;
    answer.assert_error(StatusCode::BAD_REQUEST);

    let simple = simple_signature_headers(GENERIC_SECRET, &signed);
    let answer = app.post_generic(&tampered, &simple).await;
    answer.assert_error(StatusCode::BAD_REQUEST);

    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn a_stale_standard_webhooks_timestamp_is_refused() {
    let app = spawn_app_with_generic(&[]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let body = body("completed", "150.00");

    for offset in [-1000, 1000] {
        let headers = standard_webhook_headers(GENERIC_SECRET, "msg_stale", now() + offset, &body);
        let answer = app.post_generic(&body, &headers).await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("timestamp"), "{offset}: {message}");
    }
    app.assert_nothing_written(Some(&payment)).await;
}

#[actix_rt::test]
async fn an_unsigned_call_is_refused_when_a_secret_is_set() {
    for overrides in [
        &[][..],
        // The opt-in does not weaken a configured secret.
        &[("PAYHOOK_ALLOW_UNSIGNED_GENERIC", "true")][..],
    ] {
        let app = spawn_app_with_generic(overrides);
        let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;

        let answer = app.post_generic(&body("completed", "150.00"), &[]).await;

        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("signature"), "{overrides:?}: {message}");
        app.assert_nothing_written(Some(&payment)).await;
    }
}

#[actix_rt::test]
async fn an_unsigned_call_is_accepted_with_the_opt_in_and_no_secret() {
    let app = spawn_app_with(&[("PAYHOOK_ALLOW_UNSIGNED_GENERIC", "true")]);
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;

    let answer = app.post_generic(&body("completed", "150.00"), &[]).await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}

#[actix_rt::test]
async fn the_generic_endpoint_answers_503_without_a_secret_or_the_opt_in() {
    // The default test configuration has no WEBHOOK_SECRET.
    let app = spawn_app();
    let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
    let body = body("completed", "150.00");

    let unsigned = app.post_generic(&body, &[]).await;
    let message = unsigned.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("generic"), "{message}");

    let signed = app.send_generic(&body, "msg_unconfigured").await;
    signed.assert_error(StatusCode::SERVICE_UNAVAILABLE);

    app.assert_nothing_written(Some(&payment)).await;
}
