//! The generic gateway's `refunded` status through the real server: a
//! partial then a final refund refund the payment and its order, a refund
//! above the amount received or in another currency is refused, a refund
//! that arrives before the payment completes is kept and applied with it,
//! and one refund id sent twice under two event ids counts once. Each change
//! tells the shop once. Every test runs on SQLite and, when configured, on
//! PostgreSQL.
//!
//! Every call is signed here with `ring` (see
//! `helpers::sign_standard_webhook`), never with the adapter under test.

use awc::http::StatusCode;
use payhook_domain::ports::Store;
use payhook_domain::{Payment, PaymentId};
use serde_json::{json, Value};

use crate::helpers::{apps_with_every_gateway, confirmed, generic_body, pairs, recorded, TestApp};

/// A `refunded` body of refund `refund_id` of `amount` `currency` for the
/// payment with payhook's `transaction_id`.
fn refund_body(transaction_id: &Value, refund_id: &str, amount: &str, currency: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "transaction_id": transaction_id,
        "status": "refunded",
        "refund_id": refund_id,
        "amount": amount,
        "currency": currency,
        "metadata": {"reason": "requested_by_customer"},
    }))
    .expect("a JSON body")
}

/// A `completed` body for the payment with payhook's `transaction_id`,
/// 150.00 USD.
fn completed_body(payment: &Value) -> Vec<u8> {
    let transaction_id = payment["transaction_id"].as_str().expect("a TXN id");
    generic_body(None, Some(transaction_id), "completed", "\"150.00\"")
}

/// A 150.00 USD generic payment, completed.
async fn completed_payment(app: &TestApp) -> Value {
    let payment = app.new_payment_for("generic", "150.00", "USD").await;
    let answer = app
        .send_generic(&completed_body(&payment), "msg_completed_1")
        .await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    payment
}

/// The payment as the store holds it, with its refunded amount.
async fn stored(app: &TestApp, payment: &Value) -> Payment {
    let id = PaymentId(payment["id"].as_i64().expect("a payment id"));
    app.store.payment(id).await.expect("the payment reads")
}

/// Asserts a `Refund recorded` answer for `payment`.
fn assert_refund_recorded(answer: &Value, payment: &Value, backend: &str) {
    assert_eq!(answer["status"], "success", "{backend}: {answer}");
    assert_eq!(answer["message"], "Refund recorded", "{backend}: {answer}");
    assert_eq!(answer["payment_id"], payment["id"], "{backend}: {answer}");
    assert_eq!(
        answer["transaction_id"], payment["transaction_id"],
        "{backend}: {answer}"
    );
}

#[actix_rt::test]
async fn a_partial_then_a_final_refund_refund_the_payment_and_its_order() {
    for app in apps_with_every_gateway("generic_refunds_partial_final") {
        let backend = app.backend;
        let payment = completed_payment(&app).await;
        let txn = &payment["transaction_id"];

        let answer = app
            .send_generic(&refund_body(txn, "rf_1", "50.00", "USD"), "msg_refund_1")
            .await;

        assert_refund_recorded(answer.assert_status(StatusCode::OK), &payment, backend);
        let after = stored(&app, &payment).await;
        assert_eq!(after.status.as_str(), "partially_refunded", "{backend}");
        assert_eq!(after.refunded_amount.amount_string(), "50.00", "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");

        let answer = app
            .send_generic(&refund_body(txn, "rf_2", "100.00", "USD"), "msg_refund_2")
            .await;

        assert_refund_recorded(answer.assert_status(StatusCode::OK), &payment, backend);
        let after = stored(&app, &payment).await;
        assert_eq!(after.status.as_str(), "refunded", "{backend}");
        assert_eq!(after.refunded_amount.amount_string(), "150.00", "{backend}");
        assert_eq!(app.payment(&payment).await["status"], "refunded");
        assert_eq!(app.order_status(&payment).await, "refunded", "{backend}");
        assert_eq!(
            app.outbox_kinds().await,
            [
                "order.paid",
                "payment.refunded",
                "payment.refunded",
                "order.refunded"
            ],
            "{backend}"
        );
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("payment.completed", "confirmed"),
                ("payment.refunded", "refund_recorded"),
                ("payment.refunded", "refund_recorded"),
            ]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_refund_above_the_amount_received_or_in_another_currency_changes_nothing() {
    for app in apps_with_every_gateway("generic_refund_refused") {
        let backend = app.backend;
        let payment = completed_payment(&app).await;
        let txn = &payment["transaction_id"];
        let before = stored(&app, &payment).await;

        for (body, id) in [
            (refund_body(txn, "rf_1", "150.01", "USD"), "msg_too_much"),
            (refund_body(txn, "rf_1", "10.00", "EUR"), "msg_in_euros"),
        ] {
            let answer = app.send_generic(&body, id).await;
            answer.assert_error(StatusCode::BAD_REQUEST);
        }
        // Two refunds that fit alone but not together: the second is refused.
        let answer = app
            .send_generic(&refund_body(txn, "rf_2", "100.00", "USD"), "msg_fits")
            .await;
        assert_refund_recorded(answer.assert_status(StatusCode::OK), &payment, backend);
        let partly = stored(&app, &payment).await;
        let answer = app
            .send_generic(&refund_body(txn, "rf_3", "50.01", "USD"), "msg_over")
            .await;
        answer.assert_error(StatusCode::BAD_REQUEST);

        assert_eq!(stored(&app, &payment).await, partly, "{backend}");
        assert_eq!(partly.refunded_amount.amount_string(), "100.00");
        assert_ne!(partly, before);
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.refunded"],
            "{backend}"
        );
        let refunds = app.store.refunds(partly.id).await.unwrap();
        let ids: Vec<&str> = refunds.iter().map(|r| r.refund_id.as_str()).collect();
        assert_eq!(ids, ["rf_2"], "{backend}");
    }
}

#[actix_rt::test]
async fn a_refund_before_the_payment_completes_is_kept_and_applied_with_it() {
    for app in apps_with_every_gateway("generic_refund_early") {
        let backend = app.backend;
        let payment = app.new_payment_for("generic", "150.00", "USD").await;
        let txn = &payment["transaction_id"];
        let early = refund_body(txn, "rf_1", "50.00", "USD");

        let answer = app.send_generic(&early, "msg_refund_early").await;

        answer.assert_error(StatusCode::CONFLICT);
        assert_eq!(app.payment(&payment).await, payment, "{backend}");
        assert!(app.outbox_kinds().await.is_empty(), "{backend}");

        let answer = app
            .send_generic(&completed_body(&payment), "msg_completed_1")
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{backend}"
        );
        let after = stored(&app, &payment).await;
        assert_eq!(after.status.as_str(), "partially_refunded", "{backend}");
        assert_eq!(after.refunded_amount.amount_string(), "50.00", "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.refunded"],
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn one_refund_id_sent_under_two_event_ids_counts_once() {
    for app in apps_with_every_gateway("generic_refund_twice") {
        let backend = app.backend;
        let payment = completed_payment(&app).await;
        let body = refund_body(&payment["transaction_id"], "rf_1", "50.00", "USD");

        let first = app.send_generic(&body, "msg_refund_1").await;
        // The sender lost our answer and sent the refund again as a new
        // message: a new event id, the same refund.
        let second = app.send_generic(&body, "msg_refund_1_again").await;

        assert_refund_recorded(first.assert_status(StatusCode::OK), &payment, backend);
        assert_refund_recorded(second.assert_status(StatusCode::OK), &payment, backend);
        let after = stored(&app, &payment).await;
        assert_eq!(after.status.as_str(), "partially_refunded", "{backend}");
        assert_eq!(after.refunded_amount.amount_string(), "50.00", "{backend}");
        assert_eq!(app.store.refunds(after.id).await.unwrap().len(), 1);
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.refunded"],
            "{backend}"
        );
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("payment.completed", "confirmed"),
                ("payment.refunded", "refund_recorded"),
                ("payment.refunded", "refund_recorded"),
            ]),
            "{backend}"
        );
    }
}
