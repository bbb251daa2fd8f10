//! Stripe webhooks that are accepted: the shop's whole flow, the lookup
//! order, repeated and concurrent deliveries, failures, amount mismatches
//! and event types payhook does not handle.

use awc::http::StatusCode;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{
    charge_succeeded, confirmed, fixture, intent_failed, intent_succeeded, now, sign_stripe,
    spawn_app, spawn_app_with, stripe_signature, STRIPE_SECRET,
};

#[actix_rt::test]
async fn the_whole_flow_confirms_the_order_exactly_once() {
    let app = spawn_app();

    let order = app
        .create_order(&json!({"client_id": "c-1", "total": "150.00", "currency": "USD"}))
        .await;
    let order = order.assert_status(StatusCode::CREATED).clone();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["client_id"], "c-1");
    assert_eq!(order["total"], "150.00");
    assert_eq!(order["currency"], "USD");

    let payment = app
        .create_payment(&json!({
            "order_id": order["id"],
            "payment_method": "stripe",
            "amount": "150.00",
            "currency": "USD",
        }))
        .await;
    let payment = payment.assert_status(StatusCode::CREATED).clone();
    assert_eq!(payment["status"], "created");
    assert_eq!(payment["order_id"], order["id"]);
    assert_eq!(payment["amount"], "150.00");
    assert_eq!(payment["currency"], "USD");
    let transaction_id = payment["transaction_id"].as_str().unwrap();
    assert!(transaction_id.starts_with("TXN-"), "{transaction_id}");

    let pending = app
        .external_pending(&payment["id"], "pi_3PqR8sLkdIwHu7ix1Fg4Hj5K")
        .await;
    let pending = pending.assert_status(StatusCode::OK);
    assert_eq!(pending["status"], "pending_external");
    assert_eq!(pending["external_id"], "pi_3PqR8sLkdIwHu7ix1Fg4Hj5K");

    let answer = app
        .send_stripe_event(&intent_succeeded(
            "evt_flow_1",
            "pi_3PqR8sLkdIwHu7ix1Fg4Hj5K",
        ))
        .await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));

    let completed = app.payment(&payment).await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["amount_mismatch"], Value::Null);
    assert_eq!(completed["transaction_id"], transaction_id);
    assert_eq!(app.order_status(&payment).await, "paid");

    let outbox = app.store.outbox().await.unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].kind, "order.paid");
    assert_eq!(Some(outbox[0].order_id), order["id"].as_i64());
    assert_eq!(Some(outbox[0].payment_id), payment["id"].as_i64());
    let notification: Value = serde_json::from_str(&outbox[0].payload).unwrap();
    assert_eq!(notification["type"], "order.paid");
    assert_eq!(notification["transaction_id"], transaction_id);

    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event_id, "evt_flow_1");
    assert_eq!(events[0].outcome, "confirmed");
    assert_eq!(events[0].payment_id, payment["id"].as_i64());
}

#[actix_rt::test]
async fn a_payment_is_found_by_the_transaction_id_in_the_metadata() {
    let app = spawn_app();
    // Never marked pending: the shop only put its transaction id into the
    // PaymentIntent's metadata.
    let payment = app.new_payment("150.00", "USD").await;
    let mut event = intent_succeeded("evt_meta_1", "pi_unknown_to_payhook");
    event["data"]["object"]["metadata"]["transaction_id"] = payment["transaction_id"].clone();

    let answer = app.send_stripe_event(&event).await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let completed = app.payment(&payment).await;
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["gateway_reference"], "pi_unknown_to_payhook");
    assert_eq!(app.order_status(&payment).await, "paid");
}

#[actix_rt::test]
async fn charge_succeeded_finds_the_payment_by_its_payment_intent() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_charged").await;

    let answer = app
        .send_stripe_event(&charge_succeeded("evt_charge_1", "ch_1", "pi_charged"))
        .await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let completed = app.payment(&payment).await;
    assert_eq!(completed["status"], "completed");
    // The PaymentIntent, the reference later refunds and disputes carry.
    assert_eq!(completed["gateway_reference"], "pi_charged");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}

#[actix_rt::test]
async fn a_repeated_delivery_is_answered_as_already_processed() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_twice").await;
    let event = intent_succeeded("evt_twice", "pi_twice");

    let first = app.send_stripe_event(&event).await;
    let second = app.send_stripe_event(&event).await;

    assert_eq!(first.assert_status(StatusCode::OK), &confirmed(&payment));
    let second = second.assert_status(StatusCode::OK);
    assert_eq!(second["status"], "success");
    let message = second["message"].as_str().unwrap();
    assert!(message.contains("already processed"), "{message}");
    assert_eq!(second["payment_id"], payment["id"]);
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
}

#[actix_rt::test]
async fn a_failure_event_fails_the_payment() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_declined").await;

    let answer = app
        .send_stripe_event(&intent_failed("evt_declined", "pi_declined"))
        .await;

    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "success");
    assert_eq!(body["payment_id"], payment["id"]);
    assert_eq!(body["transaction_id"], payment["transaction_id"]);
    let message = body["message"].as_str().unwrap();
    assert!(message.to_lowercase().contains("failed"), "{message}");
    assert_eq!(app.payment(&payment).await["status"], "failed");
    assert_eq!(app.order_status(&payment).await, "pending");
    assert_eq!(app.outbox_kinds().await, ["payment.failed"]);
}

#[actix_rt::test]
async fn a_failed_payment_still_completes_when_the_customer_retries() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_retried").await;
    let failed = app
        .send_stripe_event(&intent_failed("evt_retry_failed", "pi_retried"))
        .await;
    assert_eq!(
        failed.assert_status(StatusCode::OK)["message"],
        "Payment failed"
    );

    let answer = app
        .send_stripe_event(&intent_succeeded("evt_retry_succeeded", "pi_retried"))
        .await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["payment.failed", "order.paid"]);
}

#[actix_rt::test]
async fn a_failure_after_completion_is_recorded_not_applied() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_late").await;
    let confirmation = app
        .send_stripe_event(&intent_succeeded("evt_late_ok", "pi_late"))
        .await;
    assert_eq!(
        confirmation.assert_status(StatusCode::OK),
        &confirmed(&payment)
    );

    let answer = app
        .send_stripe_event(&intent_failed("evt_late_failure", "pi_late"))
        .await;

    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "success");
    assert_eq!(body["payment_id"], payment["id"]);
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    let events = app.store.events().await.unwrap();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["confirmed", "late_failure_ignored"]);
}

#[actix_rt::test]
async fn twenty_concurrent_deliveries_of_one_event_confirm_once() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_race").await;
    let body = serde_json::to_vec(&intent_succeeded("evt_race", "pi_race")).unwrap();
    // Signed once: a gateway's retries re-send the same bytes and header.
    let signature = stripe_signature(&body, STRIPE_SECRET, now());

    let headers = [("Stripe-Signature", signature.as_str())];

    let answers = join_all((0..20).map(|_| app.post_stripe(&body, &headers))).await;

    let mut confirmations = 0;
    let mut duplicates = 0;
    for answer in &answers {
        let body = answer.assert_status(StatusCode::OK);
        assert_eq!(body["status"], "success", "{answer:?}");
        assert_eq!(body["payment_id"], payment["id"], "{answer:?}");
        let message = body["message"].as_str().unwrap();
        if message == "Payment confirmed" {
            confirmations += 1;
        } else if message.contains("already processed") {
            duplicates += 1;
        } else {
            panic!("unexpected answer {answer:?}");
        }
    }
    assert_eq!((confirmations, duplicates), (1, 19));
    assert_eq!(app.payment(&payment).await["status"], "completed");
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    let events = app.store.events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].outcome, "confirmed");
}

/// `payment_intent.succeeded` for `intent_id` that received 149.99 USD.
fn short_by_a_cent(event_id: &str, intent_id: &str) -> Value {
    let mut event = intent_succeeded(event_id, intent_id);
    event["data"]["object"]["amount"] = json!(14999);
    event["data"]["object"]["amount_received"] = json!(14999);
    event
}

#[actix_rt::test]
async fn an_amount_mismatch_is_recorded_and_confirmed_by_default() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_short").await;

    let answer = app
        .send_stripe_event(&short_by_a_cent("evt_short", "pi_short"))
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
    let app = spawn_app_with(&[("PAYHOOK_AMOUNT_MISMATCH", "reject")]);
    let payment = app.pending_payment("pi_short").await;

    let answer = app
        .send_stripe_event(&short_by_a_cent("evt_short", "pi_short"))
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
async fn an_event_type_payhook_does_not_handle_is_ignored() {
    let app = spawn_app();

    let answer = app.send_stripe_event(&fixture("customer.created")).await;

    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "ignored");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("customer.created"), "{message}");
    assert!(app.store.events().await.unwrap().is_empty());
    assert!(app.outbox_kinds().await.is_empty());
}

#[actix_rt::test]
async fn any_configured_secret_is_accepted_during_rotation() {
    let app = spawn_app_with(&[("STRIPE_WEBHOOK_SECRET", "whsec_old,whsec_new")]);
    let payment = app.pending_payment("pi_rotated").await;
    let body = serde_json::to_vec(&intent_succeeded("evt_rotated", "pi_rotated")).unwrap();
    let t = now();
    let signature = format!(
        "t={t},v1={},v1={}",
        sign_stripe(&body, "whsec_unknown", t),
        sign_stripe(&body, "whsec_new", t)
    );

    let answer = app
        .post_stripe(&body, &[("Stripe-Signature", signature.as_str())])
        .await;

    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
}
