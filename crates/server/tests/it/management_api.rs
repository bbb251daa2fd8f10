//! The shop's management API: the bearer token, exact amounts, refused
//! input, missing resources and conflicting state changes.

use awc::http::header::WWW_AUTHENTICATE;
use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{confirmed, intent_succeeded, spawn_app, spawn_app_without};

fn order(total: Value, currency: &str) -> Value {
    json!({"client_id": "c-1", "total": total, "currency": currency})
}

#[actix_rt::test]
async fn a_call_without_a_token_is_unauthorized() {
    let mut app = spawn_app();
    app.api_token = None;

    let answers = [
        app.create_order(&order(json!("150.00"), "USD")).await,
        app.get_order(1).await,
        app.get_payment(1).await,
        app.external_pending(1, "pi_1").await,
    ];

    for answer in &answers {
        answer.assert_error(StatusCode::UNAUTHORIZED);
        let challenge = answer.headers.get(WWW_AUTHENTICATE);
        assert_eq!(
            challenge.and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{answer:?}"
        );
    }
}

#[actix_rt::test]
async fn a_wrong_token_is_unauthorized_and_writes_nothing() {
    let mut app = spawn_app();
    app.api_token = Some("not-the-token".into());

    let answer = app.create_order(&order(json!("150.00"), "USD")).await;

    answer.assert_error(StatusCode::UNAUTHORIZED);
    assert!(answer.headers.contains_key(WWW_AUTHENTICATE));
    app.api_token = Some(crate::helpers::API_TOKEN.into());
    app.get_order(1).await.assert_error(StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn the_api_is_disabled_without_a_configured_token() {
    let mut app = spawn_app_without(&["PAYHOOK_API_TOKEN"]);
    // Whatever the caller presents, there is no token to match.
    app.api_token = Some(crate::helpers::API_TOKEN.into());

    let answer = app.create_order(&order(json!("150.00"), "USD")).await;

    let message = answer.assert_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("PAYHOOK_API_TOKEN"), "{message}");
    app.get_order(1)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE);
}

#[actix_rt::test]
async fn a_total_is_read_exactly_as_a_number_or_a_string() {
    let app = spawn_app();

    // Literal JSON text, so that `150.00` reaches the server as written.
    for total in ["150.00", r#""150.00""#, "150", r#""150""#, "150.0"] {
        let body = format!(r#"{{"client_id":"c-1","total":{total},"currency":"USD"}}"#);
        let answer = app.create_order_text(&body).await;
        let created = answer.assert_status(StatusCode::CREATED);
        assert_eq!(created["total"], "150.00", "{total}");
        assert_eq!(created["currency"], "USD", "{total}");
        assert_eq!(created["status"], "pending", "{total}");
        assert_eq!(created["client_id"], "c-1", "{total}");
    }
}

#[actix_rt::test]
async fn a_json_number_is_not_read_through_a_float() {
    let app = spawn_app();

    // As an f64, 150.10 is 150.099999999999994315658113919198513031005859375.
    let answer = app
        .create_order_text(r#"{"client_id":"c-1","total":150.10,"currency":"USD"}"#)
        .await;
    assert_eq!(answer.assert_status(StatusCode::CREATED)["total"], "150.10");

    let answer = app
        .create_order_text(r#"{"client_id":"c-1","total":0.1,"currency":"USD"}"#)
        .await;
    assert_eq!(answer.assert_status(StatusCode::CREATED)["total"], "0.10");
}

#[actix_rt::test]
async fn amounts_follow_the_currency_exponent() {
    let app = spawn_app();

    let yen = app.create_order(&order(json!("1500"), "JPY")).await;
    let yen = yen.assert_status(StatusCode::CREATED);
    assert_eq!(yen["total"], "1500");
    assert_eq!(yen["currency"], "JPY");

    let dinar = app.create_order(&order(json!("1.5"), "kwd")).await;
    let dinar = dinar.assert_status(StatusCode::CREATED);
    assert_eq!(dinar["total"], "1.500");
    assert_eq!(dinar["currency"], "KWD");
}

#[actix_rt::test]
async fn more_decimals_than_the_currency_has_are_refused() {
    let app = spawn_app();

    for (total, currency) in [("150.001", "USD"), ("1500.5", "JPY")] {
        let answer = app.create_order(&order(json!(total), currency)).await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("total"), "{total} {currency}: {message}");
    }
}

#[actix_rt::test]
async fn an_unknown_currency_is_refused() {
    let app = spawn_app();

    let answer = app.create_order(&order(json!("150.00"), "ABC")).await;

    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains("currency"), "{message}");
}

#[actix_rt::test]
async fn malformed_json_is_a_json_error() {
    let app = spawn_app();

    for text in [
        r#"{"client_id":"c-1","total":"#,
        "not json",
        r#"{"client_id":"c-1","total":"150.00"}"#,
        r#"{"client_id":"c-1","total":true,"currency":"USD"}"#,
        r#"{"client_id":"c-1","total":"150.00","currency":"USD","extra":1}"#,
    ] {
        let answer = app.create_order_text(text).await;
        answer.assert_error(StatusCode::BAD_REQUEST);
    }
    app.get_order(1).await.assert_error(StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn a_total_or_amount_must_be_positive() {
    let app = spawn_app();

    for total in [json!("-1.00"), json!(-5), json!("0"), json!(0.00)] {
        let answer = app.create_order(&order(total.clone(), "USD")).await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("total"), "{total}: {message}");
    }

    let created = app.create_order(&order(json!("150.00"), "USD")).await;
    let order_id = created.assert_status(StatusCode::CREATED)["id"].clone();
    for amount in ["0.00", "-150.00"] {
        let answer = app
            .create_payment(&json!({
                "order_id": order_id,
                "payment_method": "stripe",
                "amount": amount,
                "currency": "USD",
            }))
            .await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("amount"), "{amount}: {message}");
    }
}

#[actix_rt::test]
async fn a_payment_for_a_missing_order_is_refused() {
    let app = spawn_app();

    let answer = app
        .create_payment(&json!({
            "order_id": 4242,
            "payment_method": "stripe",
            "amount": "150.00",
            "currency": "USD",
        }))
        .await;

    let message = answer.assert_error(StatusCode::BAD_REQUEST);
    assert!(message.contains("order"), "{message}");
    app.get_payment(1).await.assert_error(StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn missing_resources_are_not_found() {
    let app = spawn_app();

    app.get_order(4242)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    app.get_payment(4242)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    app.external_pending(4242, "pi_1")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn a_non_numeric_id_is_not_found() {
    let app = spawn_app();

    app.get_order("abc")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    app.get_payment("abc")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    app.external_pending("1x", "pi_1")
        .await
        .assert_error(StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn a_completed_payment_cannot_be_marked_pending_again() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_done").await;
    let confirmation = app
        .send_stripe_event(&intent_succeeded("evt_done", "pi_done"))
        .await;
    assert_eq!(
        confirmation.assert_status(StatusCode::OK),
        &confirmed(&payment)
    );

    let answer = app.external_pending(&payment["id"], "pi_other").await;

    answer.assert_error(StatusCode::CONFLICT);
    let unchanged = app.payment(&payment).await;
    assert_eq!(unchanged["status"], "completed");
    assert_eq!(unchanged["external_id"], "pi_done");
}

#[actix_rt::test]
async fn an_external_id_belongs_to_one_payment_of_a_gateway() {
    let app = spawn_app();
    let first = app.pending_payment("pi_shared").await;
    let second = app.new_payment("150.00", "USD").await;

    let answer = app.external_pending(&second["id"], "pi_shared").await;

    answer.assert_error(StatusCode::CONFLICT);
    assert_eq!(app.payment(&second).await, second);
    // The owner may repeat its own id: marking pending again is a no-op.
    let again = app.external_pending(&first["id"], "pi_shared").await;
    assert_eq!(again.assert_status(StatusCode::OK), &first);
}
