//! PayPal's refunds, reversals and disputes through the real server: a
//! partial then a final refund refund the payment and its order, a refund
//! above the amount received is refused, a refund that arrives before the
//! capture completes is kept and applied with it, a dispute opens, is won
//! and stays won, and a reversal is a lost dispute. Each change tells the
//! shop once. Every test runs on SQLite and, when configured, on PostgreSQL.
//!
//! The events are the PayPal adapter's fixtures with their ids and amounts
//! changed, signed here with `ring` and the adapter's test-only key (see
//! `helpers::sign_paypal`), never with the adapter under test.

use awc::http::StatusCode;
use payhook_domain::ports::Store;
use payhook_domain::{DisputeStatus, Payment, PaymentId, RefundStatus};
use serde_json::{json, Value};

use crate::helpers::{
    apps_with_every_gateway, confirmed, pairs, paypal_completed, paypal_fixture_path, recorded,
    TestApp,
};

/// The PayPal order id the shop records as the external id.
const ORDER_ID: &str = "5O190127TN364715T";

/// The capture id of the `PAYMENT.CAPTURE.COMPLETED` fixture, which the
/// refund fixtures' `up` link and the dispute fixtures' disputed
/// transaction name.
const CAPTURE_ID: &str = "2GG279541U471931P";

/// The PayPal adapter's fixture of `event_type`, as JSON.
fn fixture(event_type: &str) -> Value {
    let path = paypal_fixture_path(&format!("{event_type}.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_slice(&bytes).expect("a JSON fixture")
}

/// `PAYMENT.CAPTURE.REFUNDED` as event `event_id` for refund `refund_id` of
/// `value` USD of the fixture's capture, with PayPal's running total
/// `total`, created at `time` (RFC 3339).
fn refunded(event_id: &str, refund_id: &str, value: &str, total: &str, time: &str) -> Value {
    let mut event = fixture("PAYMENT.CAPTURE.REFUNDED");
    event["id"] = json!(event_id);
    event["create_time"] = json!(time);
    event["summary"] = json!(format!("A $ {value} USD capture payment was refunded"));
    let resource = &mut event["resource"];
    resource["id"] = json!(refund_id);
    resource["amount"]["value"] = json!(value);
    let breakdown = &mut resource["seller_payable_breakdown"];
    breakdown["gross_amount"]["value"] = json!(value);
    breakdown["net_amount"]["value"] = json!(value);
    breakdown["total_refunded_amount"]["value"] = json!(total);
    assert_eq!(resource["links"][1]["rel"], "up");
    event
}

/// The `CUSTOMER.DISPUTE.*` fixture of `event_type` as event `event_id`.
fn dispute_event(event_type: &str, event_id: &str) -> Value {
    let mut event = fixture(event_type);
    event["id"] = json!(event_id);
    assert_eq!(
        event["resource"]["disputed_transactions"][0]["seller_transaction_id"],
        CAPTURE_ID
    );
    event
}

/// A 150.00 USD PayPal payment marked pending with [`ORDER_ID`] and
/// completed by the fixture's capture, whose id it then records.
async fn completed_payment(app: &TestApp) -> Value {
    let payment = app.pending_payment_for("paypal", ORDER_ID).await;
    let answer = app
        .send_paypal_event(&paypal_completed("WH-COMPLETED-1", ORDER_ID))
        .await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let completed = app.payment(&payment).await;
    assert_eq!(completed["gateway_reference"], CAPTURE_ID);
    completed
}

/// The payment as the store holds it, with its refunded amount and dispute.
async fn stored(app: &TestApp, payment: &Value) -> Payment {
    let id = PaymentId(payment["id"].as_i64().expect("a payment id"));
    app.store.payment(id).await.expect("the payment reads")
}

/// Asserts a success answer with `message` for `payment`.
fn assert_success(answer: &Value, payment: &Value, message: &str, backend: &str) {
    assert_eq!(answer["status"], "success", "{backend}: {answer}");
    assert_eq!(answer["message"], message, "{backend}: {answer}");
    assert_eq!(answer["payment_id"], payment["id"], "{backend}: {answer}");
    assert_eq!(
        answer["transaction_id"], payment["transaction_id"],
        "{backend}: {answer}"
    );
}

/// The JSON payloads of the outbox rows of `kind`, oldest first.
async fn notifications(app: &TestApp, kind: &str) -> Vec<Value> {
    let rows = app.store.outbox().await.expect("the outbox reads");
    rows.into_iter()
        .filter(|row| row.kind == kind)
        .map(|row| serde_json::from_str(&row.payload).expect("a JSON payload"))
        .collect()
}

#[actix_rt::test]
async fn a_partial_then_a_final_refund_refund_the_payment_and_its_order() {
    for app in apps_with_every_gateway("paypal_refunds_partial_final") {
        let backend = app.backend;
        let payment = completed_payment(&app).await;

        // A refund from PayPal's dashboard: no custom_id, the capture of
        // its up link finds the payment. PayPal's running total includes
        // this refund: counted once.
        let first = refunded(
            "WH-REFUND-1",
            "5KF30129YH667841R",
            "50.00",
            "50.00",
            "2026-11-28T09:10:00Z",
        );
        let answer = app.send_paypal_event(&first).await;

        assert_success(
            answer.assert_status(StatusCode::OK),
            &payment,
            "Refund recorded",
            backend,
        );
        let after = stored(&app, &payment).await;
        assert_eq!(after.status.as_str(), "partially_refunded", "{backend}");
        assert_eq!(after.refunded_amount.amount_string(), "50.00", "{backend}");
        assert_eq!(app.payment(&payment).await["status"], "partially_refunded");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");

        let last = refunded(
            "WH-REFUND-2",
            "6LG41230ZJ778952S",
            "100.00",
            "150.00",
            "2026-11-28T09:20:00Z",
        );
        let answer = app.send_paypal_event(&last).await;

        assert_success(
            answer.assert_status(StatusCode::OK),
            &payment,
            "Refund recorded",
            backend,
        );
        let after = stored(&app, &payment).await;
        assert_eq!(after.status.as_str(), "refunded", "{backend}");
        assert_eq!(after.refunded_amount.amount_string(), "150.00", "{backend}");
        assert_eq!(app.order_status(&payment).await, "refunded", "{backend}");
        let refunds = app.store.refunds(after.id).await.unwrap();
        let ids: Vec<(&str, &str, RefundStatus)> = refunds
            .iter()
            .map(|refund| {
                (
                    refund.refund_id.as_str(),
                    refund.amount.currency().code(),
                    refund.status,
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("5KF30129YH667841R", "USD", RefundStatus::Succeeded),
                ("6LG41230ZJ778952S", "USD", RefundStatus::Succeeded),
            ],
            "{backend}"
        );

        // PayPal delivers the last one again: nothing more happens.
        let answer = app.send_paypal_event(&last).await;
        assert_eq!(
            answer.assert_status(StatusCode::OK)["message"],
            "Webhook already processed",
            "{backend}"
        );

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
        let told: Vec<(Value, Value)> = notifications(&app, "payment.refunded")
            .await
            .into_iter()
            .map(|body| (body["refund_id"].clone(), body["refunded_amount"].clone()))
            .collect();
        assert_eq!(
            told,
            [
                (json!("5KF30129YH667841R"), json!("50.00")),
                (json!("6LG41230ZJ778952S"), json!("150.00")),
            ],
            "{backend}"
        );
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("PAYMENT.CAPTURE.COMPLETED", "confirmed"),
                ("PAYMENT.CAPTURE.REFUNDED", "refund_recorded"),
                ("PAYMENT.CAPTURE.REFUNDED", "refund_recorded"),
            ]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_refund_above_the_amount_received_or_in_another_currency_changes_nothing() {
    for app in apps_with_every_gateway("paypal_refund_refused") {
        let backend = app.backend;
        let payment = completed_payment(&app).await;
        let before = stored(&app, &payment).await;

        let too_much = refunded(
            "WH-REFUND-TOO-MUCH",
            "5KF30129YH667841R",
            "150.01",
            "150.01",
            "2026-11-28T09:10:00Z",
        );
        let answer = app.send_paypal_event(&too_much).await;
        answer.assert_error(StatusCode::BAD_REQUEST);

        let mut in_euros = refunded(
            "WH-REFUND-EUR",
            "6LG41230ZJ778952S",
            "10.00",
            "10.00",
            "2026-11-28T09:20:00Z",
        );
        in_euros["resource"]["amount"]["currency_code"] = json!("EUR");
        in_euros["resource"]["seller_payable_breakdown"]["total_refunded_amount"]
            ["currency_code"] = json!("EUR");
        let answer = app.send_paypal_event(&in_euros).await;
        answer.assert_error(StatusCode::BAD_REQUEST);

        assert_eq!(stored(&app, &payment).await, before, "{backend}");
        assert!(app.store.refunds(before.id).await.unwrap().is_empty());
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(app.outbox_kinds().await, ["order.paid"], "{backend}");

        // Refused, not spent: the same refund id at a possible amount is
        // still counted.
        let possible = refunded(
            "WH-REFUND-OK",
            "5KF30129YH667841R",
            "150.00",
            "150.00",
            "2026-11-28T09:30:00Z",
        );
        let answer = app.send_paypal_event(&possible).await;
        assert_success(
            answer.assert_status(StatusCode::OK),
            &payment,
            "Refund recorded",
            backend,
        );
        assert_eq!(stored(&app, &payment).await.status.as_str(), "refunded");
    }
}

#[actix_rt::test]
async fn a_refund_before_the_capture_completes_is_kept_and_applied_with_it() {
    for app in apps_with_every_gateway("paypal_refund_early") {
        let backend = app.backend;
        let payment = app.pending_payment_for("paypal", ORDER_ID).await;
        // Before the capture's own event nothing has recorded the capture
        // id: this refund, made through the API, names the payment by the
        // custom_id the shop passed again.
        let mut early = refunded(
            "WH-REFUND-EARLY",
            "5KF30129YH667841R",
            "50.00",
            "50.00",
            "2026-11-28T09:10:00Z",
        );
        early["resource"]["custom_id"] = payment["transaction_id"].clone();

        let answer = app.send_paypal_event(&early).await;

        answer.assert_error(StatusCode::CONFLICT);
        let waiting = stored(&app, &payment).await;
        assert_eq!(waiting.status.as_str(), "pending_external", "{backend}");
        assert_eq!(waiting.refunded_amount.minor(), 0, "{backend}");
        assert!(app.store.refunds(waiting.id).await.unwrap().is_empty());
        // What the payment does learn is the capture its refund names.
        assert_eq!(waiting.gateway_reference.as_deref(), Some(CAPTURE_ID));
        assert!(app.outbox_kinds().await.is_empty(), "{backend}");

        let answer = app
            .send_paypal_event(&paypal_completed("WH-COMPLETED-1", ORDER_ID))
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

        // PayPal retries the refund it was answered 409 for: applied
        // already, so it changes nothing and tells nobody again.
        let answer = app.send_paypal_event(&early).await;
        answer.assert_status(StatusCode::OK);
        assert_eq!(stored(&app, &payment).await, after, "{backend}");
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.refunded"],
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_dispute_opens_is_won_and_a_late_update_does_not_reopen_it() {
    for app in apps_with_every_gateway("paypal_dispute_won") {
        let backend = app.backend;
        let payment = completed_payment(&app).await;

        let answer = app
            .send_paypal_event(&dispute_event("CUSTOMER.DISPUTE.CREATED", "WH-DISPUTE-1"))
            .await;

        assert_success(
            answer.assert_status(StatusCode::OK),
            &payment,
            "Dispute recorded",
            backend,
        );
        let dispute = stored(&app, &payment).await.dispute.expect("a dispute");
        assert_eq!(dispute.dispute_id, "PP-R-NMW-10060094", "{backend}");
        assert_eq!(dispute.status, DisputeStatus::Open, "{backend}");
        assert_eq!(dispute.amount.amount_string(), "150.00", "{backend}");
        assert_eq!(
            dispute.reason.as_deref(),
            Some("MERCHANDISE_OR_SERVICE_NOT_RECEIVED")
        );

        let answer = app
            .send_paypal_event(&dispute_event("CUSTOMER.DISPUTE.RESOLVED", "WH-DISPUTE-2"))
            .await;

        assert_success(
            answer.assert_status(StatusCode::OK),
            &payment,
            "Dispute recorded",
            backend,
        );
        let won = stored(&app, &payment).await;
        assert_eq!(
            won.dispute.as_ref().map(|dispute| dispute.status),
            Some(DisputeStatus::Won),
            "{backend}"
        );

        // An update PayPal sent before the resolution arrives after it.
        let answer = app
            .send_paypal_event(&dispute_event("CUSTOMER.DISPUTE.UPDATED", "WH-DISPUTE-3"))
            .await;

        assert_success(
            answer.assert_status(StatusCode::OK),
            &payment,
            "Dispute already decided or unchanged; the event was recorded, not applied",
            backend,
        );
        assert_eq!(stored(&app, &payment).await, won, "{backend}");
        // A dispute never changes the payment's or the order's status.
        assert_eq!(won.status.as_str(), "completed", "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.disputed", "payment.dispute_closed"],
            "{backend}"
        );
        let closed = notifications(&app, "payment.dispute_closed").await;
        assert_eq!(closed[0]["dispute"]["status"], "won", "{backend}");
        assert_eq!(
            recorded(&app).await,
            pairs(&[
                ("PAYMENT.CAPTURE.COMPLETED", "confirmed"),
                ("CUSTOMER.DISPUTE.CREATED", "dispute_recorded"),
                ("CUSTOMER.DISPUTE.RESOLVED", "dispute_recorded"),
                ("CUSTOMER.DISPUTE.UPDATED", "dispute_unchanged"),
            ]),
            "{backend}"
        );
    }
}

#[actix_rt::test]
async fn a_reversal_is_a_lost_dispute() {
    for app in apps_with_every_gateway("paypal_reversal") {
        let backend = app.backend;
        let payment = completed_payment(&app).await;
        let mut reversal = fixture("PAYMENT.CAPTURE.REVERSED");
        reversal["id"] = json!("WH-REVERSED-1");

        let answer = app.send_paypal_event(&reversal).await;

        assert_success(
            answer.assert_status(StatusCode::OK),
            &payment,
            "Dispute recorded",
            backend,
        );
        let after = stored(&app, &payment).await;
        let dispute = after.dispute.expect("a dispute");
        assert_eq!(dispute.dispute_id, "0RV43916MS285017J", "{backend}");
        assert_eq!(dispute.status, DisputeStatus::Lost, "{backend}");
        assert_eq!(dispute.amount.amount_string(), "150.00", "{backend}");
        // Counted as a dispute, not a refund: the shop decides.
        assert_eq!(after.status.as_str(), "completed", "{backend}");
        assert_eq!(after.refunded_amount.minor(), 0, "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        // Opened and closed by one event: the shop hears both, once.
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.disputed", "payment.dispute_closed"],
            "{backend}"
        );

        // PayPal delivers it again: already processed, nobody told twice.
        let answer = app.send_paypal_event(&reversal).await;
        assert_eq!(
            answer.assert_status(StatusCode::OK)["message"],
            "Webhook already processed",
            "{backend}"
        );
        assert_eq!(app.outbox_kinds().await.len(), 3, "{backend}");
    }
}

#[actix_rt::test]
async fn a_refund_that_fails_after_completing_stops_counting() {
    for app in apps_with_every_gateway("paypal_refund_fails") {
        let backend = app.backend;
        let payment = completed_payment(&app).await;
        let completed = refunded(
            "WH-REFUND-OK",
            "7MH52341AK889063T",
            "50.00",
            "50.00",
            "2026-11-28T09:10:00Z",
        );
        app.send_paypal_event(&completed)
            .await
            .assert_status(StatusCode::OK);
        assert_eq!(
            stored(&app, &payment).await.refunded_amount.amount_string(),
            "50.00",
            "{backend}"
        );

        // The same refund, reported failed later: PayPal's running total no
        // longer includes it.
        let mut failed = refunded(
            "WH-REFUND-FAILED",
            "7MH52341AK889063T",
            "50.00",
            "0.00",
            "2026-11-29T10:00:00Z",
        );
        failed["resource"]["status"] = json!("FAILED");
        let answer = app.send_paypal_event(&failed).await;

        assert_success(
            answer.assert_status(StatusCode::OK),
            &payment,
            "Refund recorded",
            backend,
        );
        let after = stored(&app, &payment).await;
        assert_eq!(after.status.as_str(), "completed", "{backend}");
        assert_eq!(after.refunded_amount.amount_string(), "0.00", "{backend}");
        assert_eq!(app.order_status(&payment).await, "paid", "{backend}");
        let failed_rows = notifications(&app, "payment.refund_failed").await;
        assert_eq!(failed_rows.len(), 1, "{backend}: {failed_rows:?}");
        assert_eq!(
            failed_rows[0]["refund_id"], "7MH52341AK889063T",
            "{backend}"
        );
        assert_eq!(notifications(&app, "payment.refunded").await.len(), 1);

        // Delivered again, it changes nothing more.
        app.send_paypal_event(&failed)
            .await
            .assert_status(StatusCode::OK);
        assert_eq!(notifications(&app, "payment.refund_failed").await.len(), 1);
    }
}
