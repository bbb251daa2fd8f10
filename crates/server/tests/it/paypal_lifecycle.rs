//! PayPal's lifecycle events through the real server: an approved checkout
//! order and a pending capture mark the payment pending, a declined capture
//! fails it, a completed capture after a decline still confirms it, and a
//! decline after completion is recorded, not applied. Every test runs on
//! SQLite and, when configured, on PostgreSQL.
//!
//! Every call is signed here with `ring` and the PayPal adapter's test-only
//! key (see `helpers::sign_paypal`), never with the adapter under test.

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    apps_with_every_gateway, confirmed, pairs, payment_failed, paypal_completed, paypal_event,
    paypal_fixture_path, recorded, PaypalCall,
};

/// The PayPal order id of the `CHECKOUT.ORDER.APPROVED` fixture, which the
/// shop records as the external id.
const ORDER_ID: &str = "5O190127TN364715T";

/// The capture id of the `PAYMENT.CAPTURE.PENDING` fixture.
const PENDING_CAPTURE_ID: &str = "9HX31575EB6620418";

/// The capture id of the `PAYMENT.CAPTURE.DECLINED` fixture.
const DECLINED_CAPTURE_ID: &str = "4VR62093JN8851723";

/// The capture id of the `PAYMENT.CAPTURE.COMPLETED` fixture.
const COMPLETED_CAPTURE_ID: &str = "2GG279541U471931P";

/// The raw bytes of the PayPal adapter's event fixture of `event_type`.
fn raw_fixture(event_type: &str) -> Vec<u8> {
    let path = paypal_fixture_path(&format!("{event_type}.json"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The `CHECKOUT.ORDER.APPROVED` fixture as event `event_id` for PayPal
/// order `order_id`, for 150.00 USD, its purchase unit naming `custom_id`
/// (or no transaction id at all).
fn order_approved(event_id: &str, order_id: &str, custom_id: Option<&Value>) -> Value {
    let mut event: Value =
        serde_json::from_slice(&raw_fixture("CHECKOUT.ORDER.APPROVED")).expect("a JSON fixture");
    event["id"] = json!(event_id);
    event["resource"]["id"] = json!(order_id);
    let unit = event["resource"]["purchase_units"][0]
        .as_object_mut()
        .expect("a purchase unit");
    unit.remove("invoice_id");
    unit.insert(
        "amount".into(),
        json!({"currency_code": "USD", "value": "150.00"}),
    );
    match custom_id {
        Some(custom_id) => unit.insert("custom_id".into(), custom_id.clone()),
        None => unit.remove("custom_id"),
    };
    event
}

/// `PAYMENT.CAPTURE.PENDING` for PayPal order `order_id`, 150.00 USD.
fn capture_pending(event_id: &str, order_id: &str) -> Value {
    let event = paypal_event("PAYMENT.CAPTURE.PENDING", event_id, order_id);
    assert_eq!(event["resource"]["status"], "PENDING");
    event
}

/// `PAYMENT.CAPTURE.DECLINED` for PayPal order `order_id`, 150.00 USD.
fn capture_declined(event_id: &str, order_id: &str) -> Value {
    let event = paypal_event("PAYMENT.CAPTURE.DECLINED", event_id, order_id);
    assert_eq!(event["resource"]["status"], "DECLINED");
    event
}

/// The success answer of a pending event for `payment`.
fn payment_pending(payment: &Value) -> Value {
    json!({
        "status": "success",
        "message": "Payment pending",
        "payment_id": payment["id"],
        "transaction_id": payment["transaction_id"],
    })
}

#[actix_rt::test]
async fn an_approved_order_answers_pending_and_changes_nothing() {
    for app in apps_with_every_gateway("paypal_order_approved") {
        let backend = app.backend;
        let payment = app.pending_payment_for("paypal", ORDER_ID).await;
        // The fixture as PayPal sends it, byte for byte: its custom_id names
        // no payment of this shop, so the order id finds it.
        let body = raw_fixture("CHECKOUT.ORDER.APPROVED");
        let call = PaypalCall::signed_now(&body);

        let answer = app.post_paypal(&body, &call.headers()).await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &payment_pending(&payment),
            "{backend}"
        );
        let after = app.payment(&payment).await;
        assert_eq!(after, payment, "{backend}");
        assert_eq!(after["status"], "pending_external", "{backend}");
        // An approved order has no capture yet: nothing to learn.
        assert_eq!(after["gateway_reference"], Value::Null, "{backend}");
        assert_eq!(app.order_status(&payment).await, "pending", "{backend}");
        assert!(app.outbox_kinds().await.is_empty(), "{backend}");
        let events = app.store.events().await.unwrap();
        assert_eq!(events.len(), 1, "{backend}: {events:?}");
        assert_eq!(events[0].event_id, "WH-COC11055RA711503B-4YM959094A144403T");
        assert_eq!(events[0].event_type, "CHECKOUT.ORDER.APPROVED");
        assert_eq!(events[0].outcome, "pending", "{backend}");
        assert_eq!(events[0].payment_id, payment["id"].as_i64(), "{backend}");
    }
}

#[actix_rt::test]
async fn an_approved_order_moves_a_created_payment_found_by_custom_id_to_pending() {
    for app in apps_with_every_gateway("paypal_order_approved_created") {
        let backend = app.backend;
        let payment = app.new_payment_for("paypal", "150.00", "USD").await;
        assert_eq!(payment["status"], "created");
        let event = order_approved(
            "WH-APPROVED-1",
            "ORDER-UNKNOWN-TO-PAYHOOK",
            Some(&payment["transaction_id"]),
        );

        let answer = app.send_paypal_event(&event).await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &payment_pending(&payment),
            "{backend}"
        );
        let after = app.payment(&payment).await;
        assert_eq!(after["status"], "pending_external", "{backend}");
        assert_eq!(after["gateway_reference"], Value::Null, "{backend}");
        assert_eq!(app.order_status(&payment).await, "pending", "{backend}");
        assert!(app.outbox_kinds().await.is_empty(), "{backend}");
        assert_eq!(
            recorded(&app).await,
            pairs(&[("CHECKOUT.ORDER.APPROVED", "pending")]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_pending_capture_answers_pending_and_records_the_capture_id() {
    for app in apps_with_every_gateway("paypal_capture_pending") {
        let backend = app.backend;
        let payment = app.pending_payment_for("paypal", ORDER_ID).await;

        let answer = app
            .send_paypal_event(&capture_pending("WH-CAP-PENDING-1", ORDER_ID))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &payment_pending(&payment),
            "{backend}"
        );
        let after = app.payment(&payment).await;
        assert_eq!(after["status"], "pending_external", "{backend}");
        // Later events of this capture (refunds, reversals) name only it.
        assert_eq!(after["gateway_reference"], PENDING_CAPTURE_ID, "{backend}");
        assert_eq!(app.order_status(&payment).await, "pending", "{backend}");
        assert!(app.outbox_kinds().await.is_empty(), "{backend}");
        assert_eq!(
            recorded(&app).await,
            pairs(&[("PAYMENT.CAPTURE.PENDING", "pending")]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_declined_capture_fails_and_a_later_completed_capture_confirms() {
    for app in apps_with_every_gateway("paypal_declined_then_completed") {
        let backend = app.backend;
        let payment = app.pending_payment_for("paypal", ORDER_ID).await;

        let answer = app
            .send_paypal_event(&capture_declined("WH-DECLINED-1", ORDER_ID))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &payment_failed(&payment),
            "{backend}"
        );
        let failed = app.payment(&payment).await;
        assert_eq!(failed["status"], "failed", "{backend}");
        assert_eq!(
            failed["gateway_reference"], DECLINED_CAPTURE_ID,
            "{backend}"
        );
        assert_eq!(app.order_status(&payment).await, "pending", "{backend}");
        assert_eq!(app.outbox_kinds().await, ["payment.failed"], "{backend}");

        // The buyer paid another way at PayPal: money moved, so the success
        // wins over the earlier decline.
        let answer = app
            .send_paypal_event(&paypal_completed("WH-COMPLETED-1", ORDER_ID))
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{backend}"
        );
        let completed = app.payment(&payment).await;
        assert_eq!(completed["status"], "completed", "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(
            app.outbox_kinds().await,
            ["payment.failed", "order.paid"],
            "{backend}"
        );
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("PAYMENT.CAPTURE.DECLINED", "failed"),
                ("PAYMENT.CAPTURE.COMPLETED", "confirmed"),
            ]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_declined_capture_after_completion_is_recorded_not_applied() {
    for app in apps_with_every_gateway("paypal_declined_after_completed") {
        let backend = app.backend;
        let payment = app.pending_payment_for("paypal", ORDER_ID).await;
        let confirmation = app
            .send_paypal_event(&paypal_completed("WH-COMPLETED-2", ORDER_ID))
            .await;
        assert_eq!(
            confirmation.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{backend}"
        );
        let completed = app.payment(&payment).await;

        let answer = app
            .send_paypal_event(&capture_declined("WH-DECLINED-2", ORDER_ID))
            .await;

        let body = answer.assert_status(StatusCode::OK);
        assert_eq!(body["status"], "success", "{backend}");
        assert_eq!(body["payment_id"], payment["id"], "{backend}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("not applied"), "{backend}: {message}");
        assert_eq!(app.payment(&payment).await, completed, "{backend}");
        assert_eq!(completed["status"], "completed", "{backend}");
        assert_eq!(
            completed["gateway_reference"], COMPLETED_CAPTURE_ID,
            "{backend}"
        );
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(app.outbox_kinds().await, ["order.paid"], "{backend}");
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("PAYMENT.CAPTURE.COMPLETED", "confirmed"),
                ("PAYMENT.CAPTURE.DECLINED", "late_failure_ignored"),
            ]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn approval_then_pending_then_completed_capture_confirms_once() {
    for app in apps_with_every_gateway("paypal_whole_checkout") {
        let backend = app.backend;
        // The shop passed only its transaction id to PayPal, as custom_id.
        let payment = app.new_payment_for("paypal", "150.00", "USD").await;
        let transaction_id = &payment["transaction_id"];
        let approved = order_approved("WH-WHOLE-1", "ORDER-WHOLE", Some(transaction_id));
        let mut pending = capture_pending("WH-WHOLE-2", "ORDER-WHOLE");
        pending["resource"]["custom_id"] = transaction_id.clone();
        // The same capture, once PayPal has cleared it.
        let mut completed = paypal_completed("WH-WHOLE-3", "ORDER-WHOLE");
        completed["resource"]["custom_id"] = transaction_id.clone();
        completed["resource"]["id"] = json!(PENDING_CAPTURE_ID);

        let answers = [
            app.send_paypal_event(&approved).await,
            app.send_paypal_event(&pending).await,
            app.send_paypal_event(&completed).await,
        ];

        assert_eq!(
            answers[0].assert_status(StatusCode::OK),
            &payment_pending(&payment),
            "{backend}"
        );
        assert_eq!(
            answers[1].assert_status(StatusCode::OK),
            &payment_pending(&payment),
            "{backend}"
        );
        assert_eq!(
            answers[2].assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{backend}"
        );
        let after = app.payment(&payment).await;
        assert_eq!(after["status"], "completed", "{backend}");
        assert_eq!(after["gateway_reference"], PENDING_CAPTURE_ID, "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(app.outbox_kinds().await, ["order.paid"], "{backend}");
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("CHECKOUT.ORDER.APPROVED", "pending"),
                ("PAYMENT.CAPTURE.PENDING", "pending"),
                ("PAYMENT.CAPTURE.COMPLETED", "confirmed"),
            ]),
            "{backend}"
        );
    }
}
