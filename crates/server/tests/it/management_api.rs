//! The shop's management API: the bearer token, exact amounts, refused
//! input, missing resources and conflicting state changes; an order's
//! `paid_amount` under split payments, and the payments an order refuses
//! (another currency, an order already paid); a payment's refund and
//! dispute fields before any refund, and the audit list's `kind` filter.
//! The lifecycle tests run on SQLite and, when configured, on PostgreSQL.

use awc::http::header::WWW_AUTHENTICATE;
use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    apps_with_every_gateway, confirmed, generic_body, intent_succeeded, spawn_app,
    spawn_app_without, TestApp,
};

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

/// Creates an order of `total` USD, asserting the answer.
async fn usd_order(app: &TestApp, total: &str) -> Value {
    let created = app.create_order(&order(json!(total), "USD")).await;
    created.assert_status(StatusCode::CREATED).clone()
}

/// Creates a generic payment of `amount` USD for `order` and marks it
/// pending under `external_id`, asserting both answers.
async fn generic_payment(app: &TestApp, order: &Value, amount: &str, external_id: &str) -> Value {
    let created = app
        .create_payment(&json!({
            "order_id": order["id"],
            "payment_method": "generic",
            "amount": amount,
            "currency": "USD",
        }))
        .await;
    let payment = created.assert_status(StatusCode::CREATED);
    let pending = app.external_pending(&payment["id"], external_id).await;
    pending.assert_status(StatusCode::OK).clone()
}

/// The generic gateway reports `external_id` completed for `amount` USD;
/// asserts the answer confirms `payment`.
async fn generic_completes(app: &TestApp, payment: &Value, external_id: &str, amount: &str) {
    let body = generic_body(Some(external_id), None, "completed", amount);
    let answer = app.send_generic(&body, &format!("msg_{external_id}")).await;
    assert_eq!(
        answer.assert_status(StatusCode::OK),
        &confirmed(payment),
        "{}",
        app.backend
    );
}

/// The order as `GET /api/v1/orders/{id}/` shows it.
async fn current_order(app: &TestApp, order: &Value) -> Value {
    let answer = app.get_order(&order["id"]).await;
    answer.assert_status(StatusCode::OK).clone()
}

#[actix_rt::test]
async fn a_new_order_has_a_paid_amount_of_zero_in_its_currency() {
    for app in apps_with_every_gateway("new_order_paid_amount") {
        for (total, currency, nothing) in [
            ("150.00", "USD", "0.00"),
            ("1500", "JPY", "0"),
            ("1.5", "KWD", "0.000"),
        ] {
            let created = app.create_order(&order(json!(total), currency)).await;
            let created = created.assert_status(StatusCode::CREATED).clone();
            assert_eq!(
                created["paid_amount"], nothing,
                "{}: {created}",
                app.backend
            );
            assert_eq!(
                current_order(&app, &created).await,
                created,
                "{}",
                app.backend
            );
        }
    }
}

#[actix_rt::test]
async fn a_payment_for_a_paid_order_is_a_conflict_and_writes_nothing() {
    for app in apps_with_every_gateway("payment_for_paid_order") {
        let payment = app.pending_payment("pi_paid_order").await;
        let confirmation = app
            .send_stripe_event(&intent_succeeded("evt_paid_order", "pi_paid_order"))
            .await;
        assert_eq!(
            confirmation.assert_status(StatusCode::OK),
            &confirmed(&payment)
        );
        let paid = app.get_order(&payment["order_id"]).await;
        let paid = paid.assert_status(StatusCode::OK).clone();
        assert_eq!(paid["status"], "paid", "{}", app.backend);
        let outbox = app.outbox_kinds().await;

        let answer = app
            .create_payment(&json!({
                "order_id": payment["order_id"],
                "payment_method": "stripe",
                "amount": "150.00",
                "currency": "USD",
            }))
            .await;

        let message = answer.assert_error(StatusCode::CONFLICT);
        assert!(message.contains("paid"), "{}: {message}", app.backend);
        let next_id = payment["id"].as_i64().expect("a payment id") + 1;
        app.get_payment(next_id)
            .await
            .assert_error(StatusCode::NOT_FOUND);
        assert_eq!(
            app.get_order(&payment["order_id"]).await.body,
            paid,
            "{}",
            app.backend
        );
        assert_eq!(app.outbox_kinds().await, outbox, "{}", app.backend);
    }
}

#[actix_rt::test]
async fn a_payment_in_another_currency_than_its_order_is_refused_naming_both() {
    for app in apps_with_every_gateway("payment_other_currency") {
        let order = usd_order(&app, "150.00").await;

        let answer = app
            .create_payment(&json!({
                "order_id": order["id"],
                "payment_method": "stripe",
                "amount": "150.00",
                "currency": "EUR",
            }))
            .await;

        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(
            message.contains("USD") && message.contains("EUR"),
            "{}: {message}",
            app.backend
        );
        app.get_payment(1).await.assert_error(StatusCode::NOT_FOUND);
        assert_eq!(current_order(&app, &order).await, order, "{}", app.backend);
        // The same payment in the order's currency is taken.
        let answer = app
            .create_payment(&json!({
                "order_id": order["id"],
                "payment_method": "stripe",
                "amount": "150.00",
                "currency": "usd",
            }))
            .await;
        assert_eq!(answer.assert_status(StatusCode::CREATED)["currency"], "USD");
    }
}

#[actix_rt::test]
async fn two_half_payments_pay_an_order_once_both_completed() {
    for app in apps_with_every_gateway("split_payment") {
        let order = usd_order(&app, "150.00").await;
        let first = generic_payment(&app, &order, "75.00", "ext_split_1").await;
        let second = generic_payment(&app, &order, "75.00", "ext_split_2").await;

        generic_completes(&app, &first, "ext_split_1", "75.00").await;

        let half = current_order(&app, &order).await;
        assert_eq!(half["status"], "pending", "{}: {half}", app.backend);
        assert_eq!(half["paid_amount"], "75.00", "{}: {half}", app.backend);
        assert_eq!(half["total"], "150.00", "{}: {half}", app.backend);
        assert_eq!(app.payment(&first).await["status"], "completed");
        assert_eq!(app.payment(&second).await["status"], "pending_external");
        assert!(
            app.outbox_kinds().await.is_empty(),
            "{}: no notification while the order is not covered",
            app.backend
        );

        generic_completes(&app, &second, "ext_split_2", "75.00").await;

        let whole = current_order(&app, &order).await;
        assert_eq!(whole["status"], "paid", "{}: {whole}", app.backend);
        assert_eq!(whole["paid_amount"], "150.00", "{}: {whole}", app.backend);
        assert_eq!(app.payment(&second).await["status"], "completed");
        assert_eq!(app.outbox_kinds().await, ["order.paid"], "{}", app.backend);
        // Told by the payment that covered the total.
        let rows = app.store.outbox().await.expect("the outbox reads");
        assert_eq!(
            Some(rows[0].payment_id),
            second["id"].as_i64(),
            "{}",
            app.backend
        );
    }
}

#[actix_rt::test]
async fn a_payment_of_part_of_the_total_completes_and_leaves_the_order_pending() {
    for app in apps_with_every_gateway("partial_payment") {
        let order = usd_order(&app, "150.00").await;
        let payment = generic_payment(&app, &order, "1.00", "ext_one_dollar").await;

        generic_completes(&app, &payment, "ext_one_dollar", "1.00").await;

        let completed = app.payment(&payment).await;
        assert_eq!(completed["status"], "completed", "{}", app.backend);
        assert_eq!(completed["amount_mismatch"], Value::Null, "{}", app.backend);
        let after = current_order(&app, &order).await;
        assert_eq!(after["status"], "pending", "{}: {after}", app.backend);
        assert_eq!(after["paid_amount"], "1.00", "{}: {after}", app.backend);
        assert!(app.outbox_kinds().await.is_empty(), "{}", app.backend);
        // Still pending, so it still takes a payment for the rest.
        let rest = generic_payment(&app, &order, "149.00", "ext_the_rest").await;
        assert_eq!(rest["status"], "pending_external", "{}", app.backend);
    }
}

#[actix_rt::test]
async fn a_new_payment_shows_nothing_refunded_no_refunds_and_no_dispute() {
    for app in apps_with_every_gateway("new_payment_refund_fields") {
        for (total, currency, nothing) in [("150.00", "USD", "0.00"), ("1500", "JPY", "0")] {
            let created = app.new_payment_for("generic", total, currency).await;
            let backend = app.backend;
            assert_eq!(created["refunded_amount"], nothing, "{backend}: {created}");
            assert_eq!(created["refunds"], json!([]), "{backend}: {created}");
            // Present and null, not absent.
            assert_eq!(created.get("dispute"), Some(&Value::Null), "{backend}");

            let read = app.payment(&created).await;
            assert_eq!(read, created, "{backend}");

            let pending = app
                .external_pending(&created["id"], &format!("ext_fresh_{currency}"))
                .await;
            let pending = pending.assert_status(StatusCode::OK);
            assert_eq!(pending["refunded_amount"], nothing, "{backend}: {pending}");
            assert_eq!(pending["refunds"], json!([]), "{backend}: {pending}");
            assert_eq!(pending.get("dispute"), Some(&Value::Null), "{backend}");
        }
    }
}

#[actix_rt::test]
async fn a_completed_payment_still_shows_nothing_refunded() {
    for app in apps_with_every_gateway("completed_payment_refund_fields") {
        let order = usd_order(&app, "150.00").await;
        let payment = generic_payment(&app, &order, "150.00", "ext_no_refund").await;
        generic_completes(&app, &payment, "ext_no_refund", "150.00").await;

        let completed = app.payment(&payment).await;
        let backend = app.backend;
        assert_eq!(completed["status"], "completed", "{backend}");
        assert_eq!(completed["refunded_amount"], "0.00", "{backend}");
        assert_eq!(completed["refunds"], json!([]), "{backend}");
        assert_eq!(completed["dispute"], Value::Null, "{backend}");
    }
}

/// The `event_id`s of the events listed for `query`, asserting a 200.
async fn listed_event_ids(app: &TestApp, query: &str) -> Vec<String> {
    let answer = app.list_events(query).await;
    let listing = answer.assert_status(StatusCode::OK);
    listing["items"]
        .as_array()
        .expect("an items array")
        .iter()
        .map(|item| {
            let id = item["event_id"].as_str().expect("an event id");
            id.to_owned()
        })
        .collect()
}

#[actix_rt::test]
async fn the_audit_list_filters_by_event_kind() {
    for app in apps_with_every_gateway("audit_kind_filter") {
        let order = usd_order(&app, "150.00").await;
        let first = generic_payment(&app, &order, "75.00", "ext_kind_1").await;
        generic_payment(&app, &order, "75.00", "ext_kind_2").await;
        // One event of each kind the generic gateway sends before a refund:
        // pending, canceled, then completed (twice: both payments).
        for (external_id, status, amount) in [
            ("ext_kind_1", "pending", "75.00"),
            ("ext_kind_2", "canceled", "75.00"),
            ("ext_kind_1", "completed", "75.00"),
            ("ext_kind_2", "completed", "75.00"),
        ] {
            let body = generic_body(Some(external_id), None, status, amount);
            let answer = app
                .send_generic(&body, &format!("msg_{status}_{external_id}"))
                .await;
            answer.assert_status(StatusCode::OK);
        }
        assert_eq!(app.payment(&first).await["status"], "completed");
        let backend = app.backend;

        assert_eq!(
            listed_event_ids(&app, "kind=succeeded").await,
            ["msg_completed_ext_kind_1", "msg_completed_ext_kind_2"],
            "{backend}"
        );
        assert_eq!(
            listed_event_ids(&app, "kind=pending").await,
            ["msg_pending_ext_kind_1"],
            "{backend}"
        );
        assert_eq!(
            listed_event_ids(&app, "kind=canceled").await,
            ["msg_canceled_ext_kind_2"],
            "{backend}"
        );
        for none in ["failed", "refund", "dispute"] {
            assert!(
                listed_event_ids(&app, &format!("kind={none}"))
                    .await
                    .is_empty(),
                "{backend}: {none}"
            );
        }
        // With the other filters, every condition holds.
        assert_eq!(
            listed_event_ids(&app, &format!("kind=succeeded&payment_id={}", first["id"])).await,
            ["msg_completed_ext_kind_1"],
            "{backend}"
        );
        // Each listed item shows its kind.
        let answer = app.list_events("kind=canceled").await;
        let listing = answer.assert_status(StatusCode::OK);
        assert_eq!(listing["items"][0]["kind"], "canceled", "{backend}");
    }
}

#[actix_rt::test]
async fn an_unknown_kind_is_refused_naming_the_accepted_ones() {
    let app = spawn_app();
    for kind in ["refunded", "REFUND", "not_handled", "", "%00"] {
        let answer = app.list_events(&format!("kind={kind}")).await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains("kind"), "{kind}: {message}");
        for accepted in [
            "succeeded",
            "failed",
            "canceled",
            "pending",
            "refund",
            "dispute",
        ] {
            assert!(message.contains(accepted), "{kind}: {message}");
        }
    }
}
