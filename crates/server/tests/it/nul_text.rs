//! U+0000 (NUL) in any text that would reach the store is refused with a
//! 400 naming the field, before anything is written, so that the answer
//! does not depend on the backend (PostgreSQL's text cannot hold NUL,
//! SQLite's can). Every test runs on SQLite and, when configured, on
//! PostgreSQL.

use awc::http::StatusCode;
use serde_json::json;

use crate::helpers::{
    apps_with_every_gateway, generic_body, intent_succeeded, paypal_completed, TestApp,
};

/// Asserts a 400 whose message names `field` and NUL.
fn assert_nul_refused(app: &TestApp, answer: &crate::helpers::Answer, field: &str) {
    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains(field), "{}: {message}", app.backend);
    assert!(message.contains("NUL"), "{}: {message}", app.backend);
}

#[actix_rt::test]
async fn a_client_id_with_nul_is_refused_and_nothing_is_written() {
    for app in apps_with_every_gateway("nul_client_id") {
        let answer = app
            .create_order(&json!({"client_id": "a\u{0}b", "total": "150.00", "currency": "USD"}))
            .await;

        assert_nul_refused(&app, &answer, "client_id");
        // The next order is the first one: nothing was written.
        let order = app
            .create_order(&json!({"client_id": "ab", "total": "150.00", "currency": "USD"}))
            .await;
        assert_eq!(order.assert_status(StatusCode::CREATED)["id"], 1);
    }
}

#[actix_rt::test]
async fn a_payment_method_or_external_id_with_nul_is_refused() {
    for app in apps_with_every_gateway("nul_payment_fields") {
        let payment = app.new_payment("150.00", "USD").await;
        let answer = app
            .create_payment(&json!({
                "order_id": payment["order_id"],
                "payment_method": "stripe\u{0}",
                "amount": "150.00",
                "currency": "USD",
            }))
            .await;
        assert_nul_refused(&app, &answer, "payment_method");

        let answer = app.external_pending(&payment["id"], "pi_\u{0}1").await;
        assert_nul_refused(&app, &answer, "external_id");
        assert_eq!(app.payment(&payment).await, payment, "{}", app.backend);
    }
}

#[actix_rt::test]
async fn a_correctly_signed_stripe_event_whose_id_has_nul_is_refused() {
    for app in apps_with_every_gateway("nul_stripe_event_id") {
        let payment = app.pending_payment("pi_nul_1").await;

        let answer = app
            .send_stripe_event(&intent_succeeded("evt_\u{0}1", "pi_nul_1"))
            .await;

        assert_nul_refused(&app, &answer, "event_id");
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("invalid payload")),
            "{answer:?}"
        );
        app.assert_nothing_written(Some(&payment)).await;
    }
}

#[actix_rt::test]
async fn a_stripe_reference_with_nul_is_refused() {
    for app in apps_with_every_gateway("nul_stripe_reference") {
        let payment = app.pending_payment("pi_nul_2").await;

        let answer = app
            .send_stripe_event(&intent_succeeded("evt_nul_2", "pi_nul_2\u{0}"))
            .await;

        assert_nul_refused(&app, &answer, "external_id");
        app.assert_nothing_written(Some(&payment)).await;
    }
}

#[actix_rt::test]
async fn a_paypal_custom_id_with_nul_is_refused() {
    for app in apps_with_every_gateway("nul_paypal_custom_id") {
        let payment = app.pending_payment_for("paypal", "ORDER-NUL-1").await;
        let mut event = paypal_completed("WH-NUL-1", "ORDER-NUL-1");
        event["resource"]["custom_id"] = json!("TXN-\u{0}");

        let answer = app.send_paypal_event(&event).await;

        assert_nul_refused(&app, &answer, "transaction_id");
        app.assert_nothing_written(Some(&payment)).await;
    }
}

#[actix_rt::test]
async fn a_generic_payment_id_with_nul_is_refused() {
    for app in apps_with_every_gateway("nul_generic_payment_id") {
        let payment = app.pending_payment_for("generic", "ext_nul_1").await;
        let body = generic_body(Some("ext_nul_1\u{0}"), None, "completed", "150.00");

        let answer = app.send_generic(&body, "msg_nul_1").await;

        assert_nul_refused(&app, &answer, "external_id");
        app.assert_nothing_written(Some(&payment)).await;
    }
}

#[actix_rt::test]
async fn an_audit_filter_with_nul_is_refused() {
    for app in apps_with_every_gateway("nul_audit_filter") {
        let answer = app.list_events("gateway=stripe%00").await;

        assert_nul_refused(&app, &answer, "gateway");
    }
}
