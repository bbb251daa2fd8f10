//! Stripe events of a payment's whole life (DESIGN.md, second wave):
//! Checkout Sessions that complete paid or unpaid, settle later, fail or
//! expire, and PaymentIntents that are canceled or still processing. Every
//! test runs on SQLite and, when configured, on PostgreSQL.

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    confirmed, fixture, intent_failed, intent_succeeded, payment_failed, spawn_apps_with, success,
    TestApp,
};

/// The fixture `name`, a Checkout Session event, as event `event_id` for
/// session `session_id` and PaymentIntent `intent_id`, 150.00 USD, without
/// the shop's transaction id (neither in the metadata nor as
/// `client_reference_id`), so that the lookup goes by Stripe's ids.
fn session_event(name: &str, event_id: &str, session_id: &str, intent_id: Option<&str>) -> Value {
    let mut event = fixture(name);
    event["id"] = json!(event_id);
    let session = &mut event["data"]["object"];
    session["id"] = json!(session_id);
    session["payment_intent"] = json!(intent_id);
    session["amount_subtotal"] = json!(15000);
    session["amount_total"] = json!(15000);
    session["currency"] = json!("usd");
    session["client_reference_id"] = Value::Null;
    session["metadata"]
        .as_object_mut()
        .expect("a metadata object")
        .remove("transaction_id");
    event
}

/// `checkout.session.completed` with this `payment_status`.
fn session_completed(
    event_id: &str,
    session_id: &str,
    intent_id: &str,
    payment_status: &str,
) -> Value {
    let mut event = session_event(
        "checkout.session.completed",
        event_id,
        session_id,
        Some(intent_id),
    );
    event["data"]["object"]["payment_status"] = json!(payment_status);
    event
}

/// The fixture `name`, a PaymentIntent event, as event `event_id` for
/// PaymentIntent `intent_id`, 150.00 USD, without the shop's transaction id.
fn intent_event(name: &str, event_id: &str, intent_id: &str) -> Value {
    let mut event = fixture(name);
    event["id"] = json!(event_id);
    let intent = &mut event["data"]["object"];
    intent["id"] = json!(intent_id);
    intent["amount"] = json!(15000);
    intent["currency"] = json!("usd");
    intent["metadata"]
        .as_object_mut()
        .expect("a metadata object")
        .remove("transaction_id");
    event
}

/// Asserts the payment's status and its order's, naming the backend.
async fn assert_statuses(app: &TestApp, payment: &Value, payment_status: &str, order: &str) {
    let current = app.payment(payment).await;
    assert_eq!(current["status"], payment_status, "{}", app.backend);
    assert_eq!(app.order_status(payment).await, order, "{}", app.backend);
}

/// The outcomes of the recorded events, oldest first.
async fn outcomes(app: &TestApp) -> Vec<String> {
    let events = app.store.events().await.expect("the events read");
    events.into_iter().map(|event| event.outcome).collect()
}

#[actix_rt::test]
async fn a_paid_session_confirms_and_its_payment_intent_finds_the_payment_later() {
    for app in spawn_apps_with("stripe_session_paid", &[]) {
        let session = "cs_test_paid_1";
        let intent = "pi_session_paid_1";
        let payment = app.pending_payment(session).await;

        let answer = app
            .send_stripe_event(&session_completed("evt_cs_paid_1", session, intent, "paid"))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{}",
            app.backend
        );
        let completed = app.payment(&payment).await;
        assert_eq!(completed["status"], "completed", "{}", app.backend);
        assert_eq!(completed["external_id"], session, "{}", app.backend);
        assert_eq!(completed["gateway_reference"], intent, "{}", app.backend);
        assert_eq!(completed["amount_mismatch"], Value::Null, "{}", app.backend);
        assert_eq!(app.order_status(&payment).await, "paid", "{}", app.backend);

        // Stripe also sends payment_intent.succeeded, naming only the
        // PaymentIntent: the recorded gateway reference finds the payment.
        let answer = app
            .send_stripe_event(&intent_succeeded("evt_pi_paid_1", intent))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment already completed"),
            "{}",
            app.backend
        );
        assert_statuses(&app, &payment, "completed", "paid").await;
        assert_eq!(app.outbox_kinds().await, ["order.paid"], "{}", app.backend);
        assert_eq!(
            outcomes(&app).await,
            ["confirmed", "already_completed"],
            "{}",
            app.backend
        );
    }
}

#[actix_rt::test]
async fn an_unpaid_session_waits_for_its_async_payment_to_succeed() {
    for app in spawn_apps_with("stripe_session_async_ok", &[]) {
        let session = "cs_test_async_ok_1";
        let intent = "pi_async_ok_1";
        let payment = app.pending_payment(session).await;

        let answer = app
            .send_stripe_event(&session_completed(
                "evt_cs_unpaid_1",
                session,
                intent,
                "unpaid",
            ))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment pending"),
            "{}",
            app.backend
        );
        let waiting = app.payment(&payment).await;
        assert_eq!(waiting["status"], "pending_external", "{}", app.backend);
        assert_eq!(waiting["gateway_reference"], intent, "{}", app.backend);
        assert_eq!(
            app.order_status(&payment).await,
            "pending",
            "{}",
            app.backend
        );
        assert!(app.outbox_kinds().await.is_empty(), "{}", app.backend);

        let settled = session_event(
            "checkout.session.async_payment_succeeded",
            "evt_cs_async_ok_1",
            session,
            Some(intent),
        );
        let answer = app.send_stripe_event(&settled).await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{}",
            app.backend
        );
        assert_statuses(&app, &payment, "completed", "paid").await;
        assert_eq!(app.outbox_kinds().await, ["order.paid"], "{}", app.backend);
        assert_eq!(
            outcomes(&app).await,
            ["pending", "confirmed"],
            "{}",
            app.backend
        );
    }
}

#[actix_rt::test]
async fn an_unpaid_session_whose_async_payment_fails_fails_the_payment() {
    for app in spawn_apps_with("stripe_session_async_failed", &[]) {
        let session = "cs_test_async_failed_1";
        let intent = "pi_async_failed_1";
        let payment = app.pending_payment(session).await;

        let answer = app
            .send_stripe_event(&session_completed(
                "evt_cs_unpaid_2",
                session,
                intent,
                "unpaid",
            ))
            .await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment pending"),
            "{}",
            app.backend
        );

        let bounced = session_event(
            "checkout.session.async_payment_failed",
            "evt_cs_async_failed_1",
            session,
            Some(intent),
        );
        let answer = app.send_stripe_event(&bounced).await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &payment_failed(&payment),
            "{}",
            app.backend
        );
        assert_statuses(&app, &payment, "failed", "pending").await;
        assert_eq!(
            app.outbox_kinds().await,
            ["payment.failed"],
            "{}",
            app.backend
        );
    }
}

#[actix_rt::test]
async fn an_expired_session_cancels_the_payment() {
    for app in spawn_apps_with("stripe_session_expired", &[]) {
        let session = "cs_test_expired_1";
        let payment = app.pending_payment(session).await;
        // No PaymentIntent: the customer never got as far as paying.
        let expired = session_event(
            "checkout.session.expired",
            "evt_cs_expired_1",
            session,
            None,
        );

        let answer = app.send_stripe_event(&expired).await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment canceled"),
            "{}",
            app.backend
        );
        assert_statuses(&app, &payment, "canceled", "pending").await;
        let outbox = app.store.outbox().await.expect("the outbox reads");
        assert_eq!(outbox.len(), 1, "{}: {outbox:?}", app.backend);
        assert_eq!(outbox[0].kind, "payment.canceled", "{}", app.backend);
        assert_eq!(
            Some(outbox[0].payment_id),
            payment["id"].as_i64(),
            "{}",
            app.backend
        );
        let notification: Value = serde_json::from_str(&outbox[0].payload).unwrap();
        assert_eq!(notification["type"], "payment.canceled", "{}", app.backend);
        assert_eq!(
            notification["transaction_id"], payment["transaction_id"],
            "{}",
            app.backend
        );
    }
}

#[actix_rt::test]
async fn a_canceled_intent_still_completes_on_success_and_ignores_a_late_failure() {
    for app in spawn_apps_with("stripe_intent_canceled", &[]) {
        let intent = "pi_canceled_1";
        let payment = app.pending_payment(intent).await;

        let answer = app
            .send_stripe_event(&intent_event(
                "payment_intent.canceled",
                "evt_pi_canceled_1",
                intent,
            ))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment canceled"),
            "{}",
            app.backend
        );
        assert_statuses(&app, &payment, "canceled", "pending").await;

        // Money moved after all: a success wins over the cancel.
        let answer = app
            .send_stripe_event(&intent_succeeded("evt_pi_after_cancel_1", intent))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{}",
            app.backend
        );
        assert_statuses(&app, &payment, "completed", "paid").await;

        let answer = app
            .send_stripe_event(&intent_failed("evt_pi_late_failure_1", intent))
            .await;

        let body = answer.assert_status(StatusCode::OK);
        assert_eq!(body["status"], "success", "{}", app.backend);
        assert_eq!(body["payment_id"], payment["id"], "{}", app.backend);
        let message = body["message"].as_str().expect("a message");
        assert!(
            message.contains("recorded, not applied"),
            "{}: {message}",
            app.backend
        );
        assert_statuses(&app, &payment, "completed", "paid").await;
        assert_eq!(
            app.outbox_kinds().await,
            ["payment.canceled", "order.paid"],
            "{}",
            app.backend
        );
        assert_eq!(
            outcomes(&app).await,
            ["canceled", "confirmed", "late_failure_ignored"],
            "{}",
            app.backend
        );
    }
}

#[actix_rt::test]
async fn a_processing_intent_keeps_the_payment_pending() {
    for app in spawn_apps_with("stripe_intent_processing", &[]) {
        let intent = "pi_processing_1";
        let payment = app.pending_payment(intent).await;

        let answer = app
            .send_stripe_event(&intent_event(
                "payment_intent.processing",
                "evt_pi_processing_1",
                intent,
            ))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment pending"),
            "{}",
            app.backend
        );
        assert_statuses(&app, &payment, "pending_external", "pending").await;
        assert!(app.outbox_kinds().await.is_empty(), "{}", app.backend);
        assert_eq!(outcomes(&app).await, ["pending"], "{}", app.backend);
    }
}
