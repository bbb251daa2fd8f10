//! The generic gateway's `pending` and `canceled` statuses through the real
//! server: pending moves a created payment to `pending_external`, canceled
//! cancels it and tells the shop, a later `completed` still confirms a
//! canceled payment, and a cancel after completion is recorded, not
//! applied. Every test runs on SQLite and, when configured, on PostgreSQL.
//!
//! Every call is signed here with `ring` (see
//! `helpers::sign_standard_webhook`), never with the adapter under test.

use awc::http::StatusCode;

use crate::helpers::{
    apps_with_every_gateway, confirmed, generic_body, pairs, payment_failed, recorded, success,
};

/// The gateway's id of the payment, recorded by the shop as the external id.
const EXTERNAL_ID: &str = "ext_123";

/// A body for `EXTERNAL_ID` with `status`, 150.00 USD.
fn body(status: &str) -> Vec<u8> {
    generic_body(Some(EXTERNAL_ID), None, status, "\"150.00\"")
}

#[actix_rt::test]
async fn pending_moves_a_created_payment_found_by_transaction_id_to_pending_external() {
    for app in apps_with_every_gateway("generic_pending") {
        let backend = app.backend;
        let payment = app.new_payment_for("generic", "150.00", "USD").await;
        assert_eq!(payment["status"], "created");
        let transaction_id = payment["transaction_id"].as_str().expect("a TXN id");
        let pending = generic_body(None, Some(transaction_id), "pending", "150.00");

        let answer = app.send_generic(&pending, "msg_pending_1").await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment pending"),
            "{backend}"
        );
        let after = app.payment(&payment).await;
        assert_eq!(after["status"], "pending_external", "{backend}");
        assert_eq!(app.order_status(&payment).await, "pending", "{backend}");
        assert!(app.outbox_kinds().await.is_empty(), "{backend}");

        // Still pending a day later: recorded, nothing changes.
        let answer = app.send_generic(&pending, "msg_pending_2").await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment pending"),
            "{backend}"
        );
        assert_eq!(app.payment(&payment).await, after, "{backend}");
        assert!(app.outbox_kinds().await.is_empty(), "{backend}");
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("payment.pending", "pending"),
                ("payment.pending", "pending")
            ]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn canceled_cancels_the_payment_and_tells_the_shop() {
    for app in apps_with_every_gateway("generic_canceled") {
        let backend = app.backend;
        let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;

        let answer = app.send_generic(&body("canceled"), "msg_canceled_1").await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment canceled"),
            "{backend}"
        );
        assert_eq!(
            app.payment(&payment).await["status"],
            "canceled",
            "{backend}"
        );
        assert_eq!(app.order_status(&payment).await, "pending", "{backend}");
        let outbox = app.store.outbox().await.unwrap();
        assert_eq!(outbox.len(), 1, "{backend}: {outbox:?}");
        assert_eq!(outbox[0].kind, "payment.canceled", "{backend}");
        assert_eq!(Some(outbox[0].payment_id), payment["id"].as_i64());
        assert_eq!(Some(outbox[0].order_id), payment["order_id"].as_i64());
        assert_eq!(
            recorded(&app).await,
            pairs(&[("payment.canceled", "canceled")]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn completed_after_canceled_confirms() {
    for app in apps_with_every_gateway("generic_completed_after_canceled") {
        let backend = app.backend;
        let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
        let cancel = app
            .send_generic(&body("canceled"), "msg_cancel_first")
            .await;
        assert_eq!(
            cancel.assert_status(StatusCode::OK),
            &success(&payment, "Payment canceled"),
            "{backend}"
        );

        // The customer paid after all: money moved, so the success wins.
        let answer = app.send_generic(&body("completed"), "msg_paid_late").await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{backend}"
        );
        assert_eq!(
            app.payment(&payment).await["status"],
            "completed",
            "{backend}"
        );
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(
            app.outbox_kinds().await,
            ["payment.canceled", "order.paid"],
            "{backend}"
        );
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("payment.canceled", "canceled"),
                ("payment.completed", "confirmed"),
            ]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn canceled_after_completed_is_recorded_not_applied() {
    for app in apps_with_every_gateway("generic_canceled_after_completed") {
        let backend = app.backend;
        let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
        let confirmation = app.send_generic(&body("completed"), "msg_paid").await;
        assert_eq!(
            confirmation.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{backend}"
        );
        let completed = app.payment(&payment).await;

        let answer = app.send_generic(&body("canceled"), "msg_cancel_late").await;

        let body = answer.assert_status(StatusCode::OK);
        assert_eq!(body["status"], "success", "{backend}");
        assert_eq!(body["payment_id"], payment["id"], "{backend}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("not applied"), "{backend}: {message}");
        assert_eq!(app.payment(&payment).await, completed, "{backend}");
        assert_eq!(completed["status"], "completed", "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(app.outbox_kinds().await, ["order.paid"], "{backend}");
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("payment.completed", "confirmed"),
                ("payment.canceled", "late_cancel_ignored"),
            ]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_failed_payment_can_be_canceled_once() {
    for app in apps_with_every_gateway("generic_failed_then_canceled") {
        let backend = app.backend;
        let payment = app.pending_payment_for("generic", EXTERNAL_ID).await;
        let failure = app.send_generic(&body("failed"), "msg_failed").await;
        assert_eq!(
            failure.assert_status(StatusCode::OK),
            &payment_failed(&payment),
            "{backend}"
        );

        // The customer gave up retrying and the checkout expired.
        let answer = app.send_generic(&body("canceled"), "msg_expired").await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment canceled"),
            "{backend}"
        );
        let canceled = app.payment(&payment).await;
        assert_eq!(canceled["status"], "canceled", "{backend}");

        // Another cancel (a new event, not a re-delivery) changes nothing.
        let answer = app
            .send_generic(&body("canceled"), "msg_expired_again")
            .await;

        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &success(&payment, "Payment already canceled"),
            "{backend}"
        );
        assert_eq!(app.payment(&payment).await, canceled, "{backend}");
        assert_eq!(app.order_status(&payment).await, "pending", "{backend}");
        assert_eq!(
            app.outbox_kinds().await,
            ["payment.failed", "payment.canceled"],
            "{backend}"
        );
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("payment.failed", "failed"),
                ("payment.canceled", "canceled"),
                ("payment.canceled", "already_canceled"),
            ]),
            "{backend}"
        );
    }
}
