//! Stripe refunds and disputes over HTTP (DESIGN.md, "The whole life of a
//! payment"): partial and final refunds, a refund reported both per refund
//! and as a running total, a refund above the amount, a refund before the
//! success it refunds, a refund that fails after succeeding, and a
//! dispute that is won and then reported open again. Every test runs on
//! SQLite and, when configured, on PostgreSQL, and checks that each change
//! is notified once.
//!
//! The events go over HTTP; the statuses are read over HTTP, and the
//! refunded amount, the refunds and the dispute straight from the store,
//! which is what the management API shows of them.

use awc::http::StatusCode;
use payhook_domain::ports::Store;
use payhook_domain::{Currency, Dispute, DisputeStatus, Money, PaymentId};
use serde_json::{json, Value};

use crate::helpers::{confirmed, fixture, intent_succeeded, spawn_apps_with, TestApp};

/// The fixture `name` (a Refund event) as event `event_id` for refund
/// `refund_id` of PaymentIntent `intent_id`: `minor` cents of USD, in
/// `status`, reported at `created` (unix seconds).
fn refund_event(
    name: &str,
    event_id: &str,
    intent_id: &str,
    (refund_id, minor, status): (&str, i64, &str),
    created: i64,
) -> Value {
    let mut event = fixture(name);
    event["id"] = json!(event_id);
    event["created"] = json!(created);
    let refund = &mut event["data"]["object"];
    refund["id"] = json!(refund_id);
    refund["amount"] = json!(minor);
    refund["currency"] = json!("usd");
    refund["status"] = json!(status);
    refund["payment_intent"] = json!(intent_id);
    event
}

/// `refund.created` of a refund that succeeded at once (a card refund).
fn refund_created(
    event_id: &str,
    intent_id: &str,
    refund_id: &str,
    minor: i64,
    created: i64,
) -> Value {
    refund_event(
        "refund.created",
        event_id,
        intent_id,
        (refund_id, minor, "succeeded"),
        created,
    )
}

/// `refund.failed` of a refund that had succeeded.
fn refund_failed(
    event_id: &str,
    intent_id: &str,
    refund_id: &str,
    minor: i64,
    created: i64,
) -> Value {
    refund_event(
        "refund.failed",
        event_id,
        intent_id,
        (refund_id, minor, "failed"),
        created,
    )
}

/// `charge.refunded` of the 150.00 USD charge of PaymentIntent `intent_id`,
/// with `total` cents refunded so far and `refunds` (id, cents, all
/// succeeded) in its embedded list, newest first as Stripe lists them,
/// reported at `created`. Without the shop's transaction id, so that the
/// PaymentIntent finds the payment.
fn charge_refunded(
    event_id: &str,
    intent_id: &str,
    total: i64,
    refunds: &[(&str, i64)],
    created: i64,
) -> Value {
    let mut event = fixture("charge.refunded");
    event["id"] = json!(event_id);
    event["created"] = json!(created);
    let charge = &mut event["data"]["object"];
    charge["amount"] = json!(15000);
    charge["amount_captured"] = json!(15000);
    charge["amount_refunded"] = json!(total);
    charge["refunded"] = json!(total == 15000);
    charge["currency"] = json!("usd");
    charge["payment_intent"] = json!(intent_id);
    charge["metadata"]
        .as_object_mut()
        .expect("a metadata object")
        .remove("transaction_id");
    let template = charge["refunds"]["data"][0].clone();
    let listed: Vec<Value> = refunds
        .iter()
        .map(|(refund_id, minor)| {
            let mut refund = template.clone();
            refund["id"] = json!(refund_id);
            refund["amount"] = json!(minor);
            refund["payment_intent"] = json!(intent_id);
            refund
        })
        .collect();
    charge["refunds"]["data"] = json!(listed);
    event
}

/// The fixture `name` (a Dispute event) as event `event_id` for dispute
/// `dispute_id` of PaymentIntent `intent_id`, 150.00 USD, in `status`.
fn dispute_event(
    name: &str,
    event_id: &str,
    intent_id: &str,
    dispute_id: &str,
    status: &str,
) -> Value {
    let mut event = fixture(name);
    event["id"] = json!(event_id);
    let dispute = &mut event["data"]["object"];
    dispute["id"] = json!(dispute_id);
    dispute["amount"] = json!(15000);
    dispute["currency"] = json!("usd");
    dispute["payment_intent"] = json!(intent_id);
    dispute["status"] = json!(status);
    event
}

/// A 150.00 USD payment marked pending with `intent_id` and confirmed by
/// `payment_intent.succeeded`; its order is paid.
async fn paid_payment(app: &TestApp, intent_id: &str) -> Value {
    let payment = app.pending_payment(intent_id).await;
    let answer = app
        .send_stripe_event(&intent_succeeded(&format!("evt_ok_{intent_id}"), intent_id))
        .await;
    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &confirmed(&payment),
        "{}",
        app.backend
    );
    payment
}

/// Sends `event`, asserts a 200 success with `message` for `payment`, and
/// returns the answer's body.
async fn send_ok(app: &TestApp, event: &Value, payment: &Value, message: &str) -> Value {
    let answer = app.send_stripe_event(event).await;
    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "success", "{} {body}", app.backend);
    assert_eq!(body["message"], message, "{} {body}", app.backend);
    assert_eq!(body["payment_id"], payment["id"], "{} {body}", app.backend);
    assert_eq!(
        body["transaction_id"], payment["transaction_id"],
        "{} {body}",
        app.backend
    );
    body.clone()
}

fn payment_id(payment: &Value) -> PaymentId {
    PaymentId(payment["id"].as_i64().expect("a payment id"))
}

/// Asserts the payment's status and refunded amount, and its order's
/// status, naming the backend.
async fn assert_refunded(
    app: &TestApp,
    payment: &Value,
    status: &str,
    refunded_amount: &str,
    order: &str,
) {
    let current = app.payment(payment).await;
    assert_eq!(current["status"], status, "{} {current}", app.backend);
    let stored = app
        .store
        .payment(payment_id(payment))
        .await
        .expect("the payment reads");
    assert_eq!(
        stored.refunded_amount.amount_string(),
        refunded_amount,
        "{}",
        app.backend
    );
    assert_eq!(stored.refunded_amount.currency().code(), "USD");
    assert_eq!(app.order_status(payment).await, order, "{}", app.backend);
}

/// The payment's refunds as (id, amount, status), sorted by id.
async fn refunds_of(app: &TestApp, payment: &Value) -> Vec<(String, String, String)> {
    let refunds = app
        .store
        .refunds(payment_id(payment))
        .await
        .expect("the refunds read");
    let mut refunds: Vec<_> = refunds
        .into_iter()
        .map(|refund| {
            assert_eq!(refund.amount.currency().code(), "USD", "{refund:?}");
            (
                refund.refund_id,
                refund.amount.amount_string(),
                refund.status.as_str().to_owned(),
            )
        })
        .collect();
    refunds.sort();
    refunds
}

/// The payment's current dispute.
async fn dispute_of(app: &TestApp, payment: &Value) -> Option<Dispute> {
    let stored = app
        .store
        .payment(payment_id(payment))
        .await
        .expect("the payment reads");
    stored.dispute
}

fn refund(id: &str, amount: &str, status: &str) -> (String, String, String) {
    (id.to_owned(), amount.to_owned(), status.to_owned())
}

/// Sends every event again: each is recognised as already processed and
/// nothing more is notified.
async fn redeliver_all(app: &TestApp, events: &[&Value]) {
    let before = app.outbox_kinds().await;
    for event in events {
        let answer = app.send_stripe_event(event).await;
        let body = answer.assert_status(StatusCode::OK);
        assert_eq!(
            body["message"], "Webhook already processed",
            "{} {body}",
            app.backend
        );
    }
    assert_eq!(app.outbox_kinds().await, before, "{}", app.backend);
}

#[actix_rt::test]
async fn a_partial_then_a_final_refund_end_refunded_with_the_order() {
    for app in spawn_apps_with("stripe_refund_partial_final", &[]) {
        let intent = "pi_refund_partial_final";
        let payment = paid_payment(&app, intent).await;

        // 50.00 refunded from the dashboard...
        let first = refund_created("evt_re_created_1", intent, "re_first", 5000, 1_700_040_001);
        send_ok(&app, &first, &payment, "Refund recorded").await;
        assert_refunded(&app, &payment, "partially_refunded", "50.00", "paid").await;
        assert_eq!(
            refunds_of(&app, &payment).await,
            [refund("re_first", "50.00", "succeeded")],
            "{}",
            app.backend
        );

        // ...then the remaining 100.00: Stripe reports the charge's total
        // and lists both refunds, the first one again.
        let full = charge_refunded(
            "evt_ch_refunded_1",
            intent,
            15000,
            &[("re_second", 10000), ("re_first", 5000)],
            1_700_086_201,
        );
        send_ok(&app, &full, &payment, "Refund recorded").await;
        assert_refunded(&app, &payment, "refunded", "150.00", "refunded").await;
        assert_eq!(
            refunds_of(&app, &payment).await,
            [
                refund("re_first", "50.00", "succeeded"),
                refund("re_second", "100.00", "succeeded"),
            ],
            "{}",
            app.backend
        );
        assert_eq!(
            app.outbox_kinds().await,
            [
                "order.paid",
                "payment.refunded",
                "payment.refunded",
                "order.refunded"
            ],
            "{}",
            app.backend
        );

        redeliver_all(&app, &[&first, &full]).await;
        assert_refunded(&app, &payment, "refunded", "150.00", "refunded").await;
    }
}

#[actix_rt::test]
async fn a_refund_reported_per_refund_and_as_a_running_total_counts_once() {
    for app in spawn_apps_with("stripe_refund_counted_once", &[]) {
        // Per refund first, then the total that includes it.
        let intent = "pi_refund_once_a";
        let payment = paid_payment(&app, intent).await;
        let created = refund_created("evt_once_a_1", intent, "re_once_a", 5000, 1_700_040_001);
        send_ok(&app, &created, &payment, "Refund recorded").await;
        let total = charge_refunded(
            "evt_once_a_2",
            intent,
            5000,
            &[("re_once_a", 5000)],
            1_700_040_002,
        );
        send_ok(&app, &total, &payment, "Refund recorded").await;
        assert_refunded(&app, &payment, "partially_refunded", "50.00", "paid").await;

        // The total first, then the refund it includes; and a running total
        // without the list, as later API versions send it.
        let intent = "pi_refund_once_b";
        let other = paid_payment(&app, intent).await;
        let mut total = charge_refunded("evt_once_b_1", intent, 5000, &[], 1_700_040_002);
        total["data"]["object"]
            .as_object_mut()
            .expect("a charge")
            .remove("refunds");
        send_ok(&app, &total, &other, "Refund recorded").await;
        let created = refund_created("evt_once_b_2", intent, "re_once_b", 5000, 1_700_040_001);
        send_ok(&app, &created, &other, "Refund recorded").await;
        assert_refunded(&app, &other, "partially_refunded", "50.00", "paid").await;
        assert_eq!(
            refunds_of(&app, &other).await,
            [refund("re_once_b", "50.00", "succeeded")],
            "{}",
            app.backend
        );

        // One payment.refunded per payment: the second report changed nothing.
        assert_eq!(
            app.outbox_kinds().await,
            [
                "order.paid",
                "payment.refunded",
                "order.paid",
                "payment.refunded"
            ],
            "{}",
            app.backend
        );
    }
}

#[actix_rt::test]
async fn a_refund_above_the_amount_received_is_refused_and_changes_nothing() {
    for app in spawn_apps_with("stripe_refund_above", &[]) {
        let intent = "pi_refund_above";
        let payment = paid_payment(&app, intent).await;
        let first = refund_created("evt_above_1", intent, "re_above_1", 10000, 1_700_040_001);
        send_ok(&app, &first, &payment, "Refund recorded").await;
        let before = app.payment(&payment).await;
        let outbox = app.outbox_kinds().await;

        // 100.00 + 60.00 > 150.00.
        let above = refund_created("evt_above_2", intent, "re_above_2", 6000, 1_700_040_002);
        app.send_stripe_event(&above)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
        // A running total above the amount received, too.
        let total = charge_refunded(
            "evt_above_3",
            intent,
            15001,
            &[("re_above_1", 10000)],
            1_700_040_003,
        );
        app.send_stripe_event(&total)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
        // And a refund in another currency.
        let mut euros = refund_created("evt_above_4", intent, "re_above_4", 100, 1_700_040_004);
        euros["data"]["object"]["currency"] = json!("eur");
        app.send_stripe_event(&euros)
            .await
            .assert_error(StatusCode::BAD_REQUEST);

        assert_eq!(app.payment(&payment).await, before, "{}", app.backend);
        assert_eq!(app.order_status(&payment).await, "paid", "{}", app.backend);
        assert_eq!(app.outbox_kinds().await, outbox, "{}", app.backend);
    }
}

#[actix_rt::test]
async fn a_refund_before_the_success_is_kept_and_applied_when_the_success_comes() {
    for app in spawn_apps_with("stripe_refund_early", &[]) {
        let intent = "pi_refund_early";
        let payment = app.pending_payment(intent).await;

        let early = charge_refunded(
            "evt_early_1",
            intent,
            5000,
            &[("re_early", 5000)],
            1_700_000_100,
        );
        app.send_stripe_event(&early)
            .await
            .assert_error(StatusCode::CONFLICT);
        assert_refunded(&app, &payment, "pending_external", "0.00", "pending").await;
        assert!(
            refunds_of(&app, &payment).await.is_empty(),
            "{}",
            app.backend
        );
        assert!(app.outbox_kinds().await.is_empty(), "{}", app.backend);

        let answer = app
            .send_stripe_event(&intent_succeeded("evt_early_2", intent))
            .await;
        assert_eq!(
            answer.assert_status(StatusCode::OK)["status"],
            "success",
            "{}",
            app.backend
        );
        assert_refunded(&app, &payment, "partially_refunded", "50.00", "paid").await;
        assert_eq!(
            refunds_of(&app, &payment).await,
            [refund("re_early", "50.00", "succeeded")],
            "{}",
            app.backend
        );
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.refunded"],
            "{}",
            app.backend
        );
    }
}

#[actix_rt::test]
async fn a_refund_that_fails_after_succeeding_stops_counting() {
    for app in spawn_apps_with("stripe_refund_failed", &[]) {
        let intent = "pi_refund_failed";
        let payment = paid_payment(&app, intent).await;
        let created = refund_created("evt_fail_1", intent, "re_fails", 5000, 1_700_040_001);
        send_ok(&app, &created, &payment, "Refund recorded").await;
        assert_refunded(&app, &payment, "partially_refunded", "50.00", "paid").await;

        let failed = refund_failed("evt_fail_2", intent, "re_fails", 5000, 1_700_300_000);
        send_ok(&app, &failed, &payment, "Refund recorded").await;
        assert_refunded(&app, &payment, "completed", "0.00", "paid").await;
        assert_eq!(
            refunds_of(&app, &payment).await,
            [refund("re_fails", "50.00", "failed")],
            "{}",
            app.backend
        );
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.refunded", "payment.refund_failed"],
            "{}",
            app.backend
        );

        redeliver_all(&app, &[&created, &failed]).await;
        assert_refunded(&app, &payment, "completed", "0.00", "paid").await;
    }
}

#[actix_rt::test]
async fn a_dispute_opens_is_won_and_a_late_open_does_not_reopen_it() {
    for app in spawn_apps_with("stripe_dispute_won", &[]) {
        let intent = "pi_dispute_won";
        let payment = paid_payment(&app, intent).await;
        let dispute = "dp_won_1";

        let created = dispute_event(
            "charge.dispute.created",
            "evt_dp_1",
            intent,
            dispute,
            "needs_response",
        );
        send_ok(&app, &created, &payment, "Dispute recorded").await;
        let usd = Currency::parse("USD").expect("USD");
        let reported = |status| Dispute {
            dispute_id: dispute.into(),
            status,
            amount: Money::from_minor(15000, usd),
            reason: Some("fraudulent".into()),
        };
        assert_eq!(
            dispute_of(&app, &payment).await,
            Some(reported(DisputeStatus::Open)),
            "{}",
            app.backend
        );

        let closed = dispute_event("charge.dispute.closed", "evt_dp_2", intent, dispute, "won");
        send_ok(&app, &closed, &payment, "Dispute recorded").await;
        assert_eq!(
            dispute_of(&app, &payment).await,
            Some(reported(DisputeStatus::Won)),
            "{}",
            app.backend
        );

        // Stripe retries an older update after the decision: recorded,
        // acknowledged, not applied.
        let late = dispute_event(
            "charge.dispute.updated",
            "evt_dp_3",
            intent,
            dispute,
            "needs_response",
        );
        let answer = app.send_stripe_event(&late).await;
        assert_eq!(
            answer.assert_status(StatusCode::OK)["status"],
            "success",
            "{}",
            app.backend
        );
        assert_eq!(
            dispute_of(&app, &payment).await,
            Some(reported(DisputeStatus::Won)),
            "{}",
            app.backend
        );
        // A dispute changes neither the payment's status nor the order's.
        assert_refunded(&app, &payment, "completed", "0.00", "paid").await;
        assert_eq!(
            app.outbox_kinds().await,
            ["order.paid", "payment.disputed", "payment.dispute_closed"],
            "{}",
            app.backend
        );

        redeliver_all(&app, &[&created, &closed, &late]).await;
        assert_eq!(
            dispute_of(&app, &payment).await,
            Some(reported(DisputeStatus::Won)),
            "{}",
            app.backend
        );
    }
}
