//! A payment belongs to one gateway: the shop names it in `payment_method`
//! (a gateway payhook knows, else 400), and an event finds only payments of
//! its own gateway, whichever reference it names. Whoever holds one
//! gateway's secret (often a small custom gateway's) cannot confirm the
//! payments of another. Every test runs on SQLite and, when configured, on
//! PostgreSQL.

use awc::http::StatusCode;
use serde_json::json;

use crate::helpers::{
    apps_with_every_gateway, generic_body, intent_succeeded, paypal_completed, TestApp,
};

/// Asserts that the last recorded event is `event_id`, kept unmatched.
async fn assert_kept_unmatched(app: &TestApp, event_id: &str) {
    let events = app.store.events().await.expect("the events read");
    let last = events.last().expect("the event is recorded");
    assert_eq!(last.event_id, event_id, "{}: {events:?}", app.backend);
    assert_eq!(last.outcome, "unmatched", "{}: {events:?}", app.backend);
    assert_eq!(last.payment_id, None, "{}: {events:?}", app.backend);
}

#[actix_rt::test]
async fn a_generic_event_naming_a_stripe_payments_transaction_id_does_not_confirm_it() {
    for app in apps_with_every_gateway("generic_cannot_confirm_stripe") {
        let payment = app.pending_payment("pi_bound_1").await;
        let transaction_id = payment["transaction_id"].as_str().expect("a TXN id");
        let body = generic_body(None, Some(transaction_id), "completed", "150.00");

        let answer = app.send_generic(&body, "msg_cross_1").await;

        answer.assert_error(StatusCode::NOT_FOUND);
        assert_eq!(app.payment(&payment).await, payment, "{}", app.backend);
        assert_eq!(
            app.order_status(&payment).await,
            "pending",
            "{}",
            app.backend
        );
        assert!(app.outbox_kinds().await.is_empty(), "{}", app.backend);
        assert_kept_unmatched(&app, "msg_cross_1").await;
    }
}

#[actix_rt::test]
async fn a_generic_event_naming_a_stripe_payments_external_id_does_not_confirm_it() {
    for app in apps_with_every_gateway("generic_cannot_confirm_stripe_by_id") {
        let payment = app.pending_payment("pi_bound_2").await;
        let body = generic_body(Some("pi_bound_2"), None, "completed", "150.00");

        let answer = app.send_generic(&body, "msg_cross_2").await;

        answer.assert_error(StatusCode::NOT_FOUND);
        assert_eq!(app.payment(&payment).await, payment, "{}", app.backend);
        assert_kept_unmatched(&app, "msg_cross_2").await;
    }
}

#[actix_rt::test]
async fn a_paypal_custom_id_cannot_confirm_a_stripe_payment() {
    for app in apps_with_every_gateway("paypal_cannot_confirm_stripe") {
        let payment = app.new_payment("150.00", "USD").await;
        let mut event = paypal_completed("WH-CROSS-1", "ORDER-UNKNOWN-TO-PAYHOOK");
        event["resource"]["custom_id"] = payment["transaction_id"].clone();

        let answer = app.send_paypal_event(&event).await;

        answer.assert_error(StatusCode::NOT_FOUND);
        assert_eq!(app.payment(&payment).await, payment, "{}", app.backend);
        assert_eq!(
            app.order_status(&payment).await,
            "pending",
            "{}",
            app.backend
        );
        assert_kept_unmatched(&app, "WH-CROSS-1").await;
    }
}

#[actix_rt::test]
async fn an_event_still_confirms_a_payment_of_its_own_gateway() {
    for app in apps_with_every_gateway("own_gateway_confirms") {
        let payment = app.pending_payment("pi_bound_3").await;

        let answer = app
            .send_stripe_event(&intent_succeeded("evt_bound_3", "pi_bound_3"))
            .await;

        answer.assert_status(StatusCode::OK);
        assert_eq!(app.payment(&payment).await["status"], "completed");
    }
}

#[actix_rt::test]
async fn an_early_event_of_another_gateway_is_not_applied_when_the_payment_is_marked_pending() {
    for app in apps_with_every_gateway("early_event_other_gateway") {
        // The generic event arrives first, naming an id no payment has yet.
        let body = generic_body(Some("pi_shared"), None, "completed", "150.00");
        let early = app.send_generic(&body, "msg_early_1").await;
        early.assert_error(StatusCode::NOT_FOUND);

        // A Stripe payment is then recorded under that id: the generic event
        // waiting for it is not its gateway's, so it stays unmatched.
        let payment = app.pending_payment("pi_shared").await;

        assert_eq!(payment["status"], "pending_external", "{}", app.backend);
        assert_eq!(
            app.order_status(&payment).await,
            "pending",
            "{}",
            app.backend
        );
        assert!(app.outbox_kinds().await.is_empty(), "{}", app.backend);
        assert_kept_unmatched(&app, "msg_early_1").await;
    }
}

#[actix_rt::test]
async fn a_payment_method_that_names_no_gateway_is_refused_with_the_list() {
    for app in apps_with_every_gateway("unknown_payment_method") {
        let order = app
            .create_order(&json!({"client_id": "c-1", "total": "150.00", "currency": "USD"}))
            .await;
        let order = order.assert_status(StatusCode::CREATED).clone();

        for method in ["card", "Stripe", "payment"] {
            let answer = app
                .create_payment(&json!({
                    "order_id": order["id"],
                    "payment_method": method,
                    "amount": "150.00",
                    "currency": "USD",
                }))
                .await;

            let message = answer.assert_error(StatusCode::BAD_REQUEST);
            assert!(message.contains("payment_method"), "{message}");
            for gateway in ["stripe", "paypal", "generic"] {
                assert!(message.contains(gateway), "{message}");
            }
        }
        // Nothing was written: the next payment is the order's first.
        let created = app
            .create_payment(&json!({
                "order_id": order["id"],
                "payment_method": "generic",
                "amount": "150.00",
                "currency": "USD",
            }))
            .await;
        assert_eq!(created.assert_status(StatusCode::CREATED)["id"], 1);
    }
}
