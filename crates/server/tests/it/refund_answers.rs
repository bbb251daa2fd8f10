//! What the webhook endpoint answers to refunds, and what the management
//! API then shows, through the generic gateway (`status: "refunded"` with
//! `refund_id` and `amount`): the exact bodies of a refund recorded, of a
//! refund before its payment completed (409, kept, applied when it
//! completes) and of a refund above the amount received (400, nothing
//! changed), the payment's `refunded_amount` and `refunds`, and the
//! outcomes `/metrics` counts them under; and, through PayPal's dispute
//! fixtures, the answers to a dispute and the payment's `dispute`. Every test
//! runs on SQLite and, when configured, on PostgreSQL.
//!
//! Every call is signed here with `ring` (see
//! `helpers::sign_standard_webhook` and `helpers::sign_paypal`), never with
//! the adapter under test.

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    apps_with_every_gateway, confirmed, generic_body, paypal_completed, paypal_fixture_path,
    TestApp,
};

/// The generic gateway's refund report: refund `refund_id` of `amount`
/// (JSON text) in `currency`, for the payment it knows as `external_id`.
fn refund_body(external_id: &str, refund_id: &str, amount: &str, currency: &str) -> Vec<u8> {
    format!(
        r#"{{"payment_id": {}, "status": "refunded", "refund_id": {}, "amount": {amount}, "currency": {}, "metadata": {{}}}}"#,
        json!(external_id),
        json!(refund_id),
        json!(currency),
    )
    .into_bytes()
}

/// A 150.00 USD generic payment marked pending under `external_id`.
async fn pending(app: &TestApp, external_id: &str) -> Value {
    app.pending_payment_for("generic", external_id).await
}

/// `pending`, then completed by the gateway; asserts the confirmation.
async fn completed(app: &TestApp, external_id: &str) -> Value {
    let payment = pending(app, external_id).await;
    let body = generic_body(Some(external_id), None, "completed", "\"150.00\"");
    let answer = app
        .send_generic(&body, &format!("msg_paid_{external_id}"))
        .await;
    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &confirmed(&payment),
        "{}",
        app.backend
    );
    payment
}

/// The answer to a refund recorded for `payment`.
fn refund_recorded(payment: &Value, payment_status: &str, refunded_amount: &str) -> Value {
    json!({
        "status": "success",
        "message": "Refund recorded",
        "payment_id": payment["id"],
        "transaction_id": payment["transaction_id"],
        "payment_status": payment_status,
        "refunded_amount": refunded_amount,
    })
}

/// `payhook_webhooks_total` of the generic gateway and `outcome`, as
/// `/metrics` shows it (0 when absent).
async fn counted(app: &TestApp, outcome: &str) -> u64 {
    let mut response = awc::Client::default()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics answer");
    let body = response.body().await.expect("a metrics body");
    let text = String::from_utf8_lossy(&body);
    let sample = format!(r#"payhook_webhooks_total{{gateway="generic",outcome="{outcome}"}} "#);
    text.lines()
        .find_map(|line| line.strip_prefix(&sample))
        .map_or(0, |value| value.parse().expect("a count"))
}

/// One entry of a payment's `refunds`.
fn refund(refund_id: &str, amount: &str) -> Value {
    json!({"refund_id": refund_id, "amount": amount, "currency": "USD", "status": "succeeded"})
}

#[actix_rt::test]
async fn a_partial_then_a_final_refund_are_answered_and_shown_on_the_payment() {
    for app in apps_with_every_gateway("refund_answers_partial_final") {
        let backend = app.backend;
        let payment = completed(&app, "ext_refund_1").await;

        let answer = app
            .send_generic(
                &refund_body("ext_refund_1", "rf_1", "\"50.00\"", "USD"),
                "msg_rf_1",
            )
            .await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &refund_recorded(&payment, "partially_refunded", "50.00"),
            "{backend}"
        );
        let partial = app.payment(&payment).await;
        assert_eq!(partial["status"], "partially_refunded", "{backend}");
        assert_eq!(partial["refunded_amount"], "50.00", "{backend}");
        assert_eq!(
            partial["refunds"],
            json!([refund("rf_1", "50.00")]),
            "{backend}"
        );
        assert_eq!(partial["dispute"], Value::Null, "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");

        // The rest, as a JSON number: the amount is read exactly.
        let answer = app
            .send_generic(
                &refund_body("ext_refund_1", "rf_2", "100.00", "USD"),
                "msg_rf_2",
            )
            .await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &refund_recorded(&payment, "refunded", "150.00"),
            "{backend}"
        );
        let refunded = app.payment(&payment).await;
        assert_eq!(refunded["status"], "refunded", "{backend}");
        assert_eq!(refunded["refunded_amount"], "150.00", "{backend}");
        assert_eq!(
            refunded["refunds"],
            json!([refund("rf_1", "50.00"), refund("rf_2", "100.00")]),
            "{backend}"
        );
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
        assert_eq!(counted(&app, "refund_recorded").await, 2, "{backend}");
    }
}

#[actix_rt::test]
async fn a_refund_reported_again_counts_once() {
    for app in apps_with_every_gateway("refund_answers_again") {
        let backend = app.backend;
        let payment = completed(&app, "ext_refund_again").await;
        let body = refund_body("ext_refund_again", "rf_again", "\"50.00\"", "USD");
        let answer = app.send_generic(&body, "msg_again_1").await;
        answer.assert_status(StatusCode::OK);
        let once = app.payment(&payment).await;
        let outbox = app.outbox_kinds().await;

        // The same delivery again is recognised...
        let answer = app.send_generic(&body, "msg_again_1").await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &json!({
                "status": "success",
                "message": "Webhook already processed",
                "payment_id": payment["id"],
                "transaction_id": payment["transaction_id"],
            }),
            "{backend}"
        );
        // ...and the same refund under a new message id is recorded and
        // counts once: the answer shows the amount unchanged.
        let answer = app.send_generic(&body, "msg_again_2").await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &refund_recorded(&payment, "partially_refunded", "50.00"),
            "{backend}"
        );
        assert_eq!(app.payment(&payment).await, once, "{backend}");
        assert_eq!(app.outbox_kinds().await, outbox, "{backend}");
    }
}

#[actix_rt::test]
async fn a_refund_before_the_payment_completed_is_409_and_applied_when_it_completes() {
    for app in apps_with_every_gateway("refund_answers_early") {
        let backend = app.backend;
        let payment = pending(&app, "ext_refund_early").await;
        let early = refund_body("ext_refund_early", "rf_early", "\"50.00\"", "USD");

        let answer = app.send_generic(&early, "msg_early_refund").await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{backend}: {answer:?}");
        assert_eq!(
            answer.body,
            json!({
                "status": "error",
                "message": "the payment has not completed yet; the event is kept and applied when it completes",
            }),
            "{backend}"
        );
        let waiting = app.payment(&payment).await;
        assert_eq!(waiting["status"], "pending_external", "{backend}");
        assert_eq!(waiting["refunded_amount"], "0.00", "{backend}");
        assert_eq!(waiting["refunds"], json!([]), "{backend}");
        // A re-delivery is not "already processed": still 409.
        let again = app.send_generic(&early, "msg_early_refund").await;
        again.assert_error(StatusCode::CONFLICT);
        let listed = app.list_events("outcome=awaiting_completion").await;
        let listed = listed.assert_status(StatusCode::OK);
        assert_eq!(
            listed["items"][0]["event_id"], "msg_early_refund",
            "{backend}: {listed}"
        );

        assert_eq!(counted(&app, "awaiting_completion").await, 2, "{backend}");

        // The success completes the payment and, in the same transaction,
        // applies the refund that waited for it.
        let body = generic_body(Some("ext_refund_early"), None, "completed", "\"150.00\"");
        let answer = app.send_generic(&body, "msg_early_paid").await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &confirmed(&payment),
            "{backend}"
        );
        let applied = app.payment(&payment).await;
        assert_eq!(applied["status"], "partially_refunded", "{backend}");
        assert_eq!(applied["refunded_amount"], "50.00", "{backend}");
        assert_eq!(
            applied["refunds"],
            json!([refund("rf_early", "50.00")]),
            "{backend}"
        );
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.refunded"],
            "{backend}"
        );
        // Now it was processed.
        let late = app.send_generic(&early, "msg_early_refund").await;
        assert_eq!(
            late.assert_status(StatusCode::OK)["message"],
            "Webhook already processed",
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_refund_above_the_amount_received_or_in_another_currency_is_400_and_changes_nothing() {
    for app in apps_with_every_gateway("refund_answers_refused") {
        let backend = app.backend;
        let payment = completed(&app, "ext_refund_over").await;
        let answer = app
            .send_generic(
                &refund_body("ext_refund_over", "rf_first", "\"50.00\"", "USD"),
                "msg_over_first",
            )
            .await;
        answer.assert_status(StatusCode::OK);
        let before = app.payment(&payment).await;
        let outbox = app.outbox_kinds().await;

        let refused = [
            // 50.00 + 100.01 > 150.00.
            refund_body("ext_refund_over", "rf_over", "\"100.01\"", "USD"),
            refund_body("ext_refund_over", "rf_euro", "\"10.00\"", "EUR"),
        ];
        for (i, body) in refused.iter().enumerate() {
            let answer = app.send_generic(body, &format!("msg_refused_{i}")).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{backend}: {answer:?}"
            );
            assert_eq!(
                answer.body,
                json!({
                    "status": "error",
                    "message": "refund refused: its currency differs from the payment's, or it would take the refunded amount above the amount received; nothing changed",
                }),
                "{backend}"
            );
            assert_eq!(app.payment(&payment).await, before, "{backend}");
            assert_eq!(app.outbox_kinds().await, outbox, "{backend}");
        }
        assert_eq!(counted(&app, "refund_rejected").await, 2, "{backend}");
        assert_eq!(before["refunded_amount"], "50.00", "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        // Exactly the rest is taken.
        let answer = app
            .send_generic(
                &refund_body("ext_refund_over", "rf_rest", "\"100.00\"", "USD"),
                "msg_over_rest",
            )
            .await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &refund_recorded(&payment, "refunded", "150.00"),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn the_audit_list_shows_the_refund_events_by_kind() {
    for app in apps_with_every_gateway("refund_answers_kind") {
        let backend = app.backend;
        let payment = completed(&app, "ext_refund_kind").await;
        let answer = app
            .send_generic(
                &refund_body("ext_refund_kind", "rf_kind", "\"25.00\"", "USD"),
                "msg_kind_refund",
            )
            .await;
        answer.assert_status(StatusCode::OK);

        let listed = app.list_events("kind=refund").await;
        let listed = listed.assert_status(StatusCode::OK);
        let items = listed["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{backend}: {listed}");
        assert_eq!(items[0]["event_id"], "msg_kind_refund", "{backend}");
        assert_eq!(items[0]["kind"], "refund", "{backend}");
        assert_eq!(items[0]["event_type"], "payment.refunded", "{backend}");
        assert_eq!(items[0]["outcome"], "refund_recorded", "{backend}");
        assert_eq!(items[0]["payment_id"], payment["id"], "{backend}");
        let succeeded = app.list_events("kind=succeeded").await;
        let succeeded = succeeded.assert_status(StatusCode::OK);
        assert_eq!(
            succeeded["items"][0]["event_id"], "msg_paid_ext_refund_kind",
            "{backend}"
        );
        assert_eq!(
            succeeded["items"].as_array().map(Vec::len),
            Some(1),
            "{backend}"
        );
    }
}

/// The PayPal adapter's `CUSTOMER.DISPUTE.*` fixture of `event_type` as
/// event `event_id`: dispute `PP-R-NMW-10060094` of 150.00 USD over the
/// capture of the `PAYMENT.CAPTURE.COMPLETED` fixture.
fn paypal_dispute(event_type: &str, event_id: &str) -> Value {
    let path = paypal_fixture_path(&format!("{event_type}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut event: Value = serde_json::from_slice(&bytes).expect("a JSON fixture");
    event["id"] = json!(event_id);
    event
}

/// The answer to a dispute report for `payment`.
fn dispute_answer(payment: &Value, message: &str, dispute_status: &str) -> Value {
    json!({
        "status": "success",
        "message": message,
        "payment_id": payment["id"],
        "transaction_id": payment["transaction_id"],
        "payment_status": "completed",
        "dispute_status": dispute_status,
    })
}

#[actix_rt::test]
async fn a_dispute_is_answered_with_its_status_and_shown_on_the_payment() {
    for app in apps_with_every_gateway("refund_answers_dispute") {
        let backend = app.backend;
        let order_id = "5O190127TN364715T";
        let payment = app.pending_payment_for("paypal", order_id).await;
        let answer = app
            .send_paypal_event(&paypal_completed("WH-ANSWERS-PAID", order_id))
            .await;
        assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));

        let answer = app
            .send_paypal_event(&paypal_dispute("CUSTOMER.DISPUTE.CREATED", "WH-ANSWERS-D1"))
            .await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &dispute_answer(&payment, "Dispute recorded", "open"),
            "{backend}"
        );
        let open = app.payment(&payment).await;
        assert_eq!(
            open["dispute"],
            json!({
                "dispute_id": "PP-R-NMW-10060094",
                "status": "open",
                "amount": "150.00",
                "currency": "USD",
                "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            }),
            "{backend}"
        );
        assert_eq!(open["status"], "completed", "{backend}");

        let answer = app
            .send_paypal_event(&paypal_dispute(
                "CUSTOMER.DISPUTE.RESOLVED",
                "WH-ANSWERS-D2",
            ))
            .await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &dispute_answer(&payment, "Dispute recorded", "won"),
            "{backend}"
        );
        // A late update does not reopen it, and says so.
        let answer = app
            .send_paypal_event(&paypal_dispute("CUSTOMER.DISPUTE.UPDATED", "WH-ANSWERS-D3"))
            .await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &dispute_answer(
                &payment,
                "Dispute already decided or unchanged; the event was recorded, not applied",
                "won"
            ),
            "{backend}"
        );
        let won = app.payment(&payment).await;
        assert_eq!(won["dispute"]["status"], "won", "{backend}");
        assert_eq!(won["status"], "completed", "{backend}");
        assert_eq!(won["refunded_amount"], "0.00", "{backend}");

        let listed = app.list_events("kind=dispute").await;
        let listed = listed.assert_status(StatusCode::OK);
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(3),
            "{backend}: {listed}"
        );
    }
}
