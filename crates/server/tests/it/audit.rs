//! Audit and replay through the real server: the recorded webhook events
//! listed with filters and pages, one read back with its raw body, replays,
//! and the headline case: a webhook that arrives before the shop records
//! the gateway's id is applied when it does.

use awc::http::StatusCode;
use payhook_domain::ports::{EventToApply, Store};
use payhook_domain::{AmountPolicy, Currency, EventKind, GatewayEvent, Money, References};
use serde_json::{json, Value};

use crate::helpers::{
    charge_succeeded, confirmed, event, generic_body, intent_succeeded, spawn_app,
    spawn_app_with_generic, TestApp,
};

/// The fields of a listed event, and nothing more (no body).
const ITEM_FIELDS: [&str; 11] = [
    "attempts",
    "event_id",
    "event_type",
    "gateway",
    "id",
    "kind",
    "outcome",
    "payment_id",
    "processed_at",
    "received_at",
    "source",
];

/// The listed events of `query`, asserting a 200.
async fn listed(app: &TestApp, query: &str) -> Value {
    let answer = app.list_events(query).await;
    answer.assert_status(StatusCode::OK).clone()
}

/// The event ids (the gateway's) of a listing, in its order.
fn event_ids(listing: &Value) -> Vec<&str> {
    listing["items"]
        .as_array()
        .expect("an items array")
        .iter()
        .map(|item| item["event_id"].as_str().expect("an event id"))
        .collect()
}

/// The item of the listing whose gateway event id is `event_id`.
async fn item(app: &TestApp, event_id: &str) -> Value {
    let listing = listed(app, "limit=500").await;
    listing["items"]
        .as_array()
        .expect("an items array")
        .iter()
        .find(|item| item["event_id"] == event_id)
        .unwrap_or_else(|| panic!("{event_id} is listed: {listing}"))
        .clone()
}

/// Three events: a Stripe confirmation of `payment`, a Stripe event and a
/// generic one that match nothing. Returns the payment.
async fn three_events(app: &TestApp) -> Value {
    let payment = app.pending_payment("pi_audit").await;
    let answer = app
        .send_stripe_event(&intent_succeeded("evt_audit_ok", "pi_audit"))
        .await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let answer = app
        .send_stripe_event(&intent_succeeded("evt_audit_nobody", "pi_nobody"))
        .await;
    answer.assert_error(StatusCode::NOT_FOUND);
    let body = generic_body(Some("ext_nobody"), None, "completed", "150.00");
    let answer = app.send_generic(&body, "msg_audit_nobody").await;
    answer.assert_error(StatusCode::NOT_FOUND);
    payment
}

#[actix_rt::test]
async fn events_are_listed_by_id_without_their_bodies() {
    let app = spawn_app_with_generic(&[]);
    let payment = three_events(&app).await;

    let listing = listed(&app, "").await;

    assert_eq!(
        event_ids(&listing),
        ["evt_audit_ok", "evt_audit_nobody", "msg_audit_nobody"]
    );
    assert_eq!(listing["next_after_id"], Value::Null);
    let items = listing["items"].as_array().unwrap();
    for item in items {
        let mut fields: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ITEM_FIELDS, "{item}");
    }
    let ids: Vec<i64> = items
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    let first = &items[0];
    assert_eq!(first["gateway"], "stripe");
    assert_eq!(first["event_type"], "payment_intent.succeeded");
    assert_eq!(first["kind"], "succeeded");
    assert_eq!(first["outcome"], "confirmed");
    assert_eq!(first["payment_id"], payment["id"]);
    assert_eq!(first["attempts"], 1);
    let received_at = first["received_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(received_at).is_ok(),
        "{received_at}"
    );
    assert_eq!(items[1]["outcome"], "unmatched");
    assert_eq!(items[1]["payment_id"], Value::Null);
    assert_eq!(items[2]["gateway"], "generic");
}

#[actix_rt::test]
async fn each_filter_narrows_the_listing() {
    let app = spawn_app_with_generic(&[]);
    let payment = three_events(&app).await;
    let all = listed(&app, "").await;
    let second_received = all["items"][1]["received_at"].as_str().unwrap().to_owned();

    let everything = vec!["evt_audit_ok", "evt_audit_nobody", "msg_audit_nobody"];
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("gateway=generic".into(), vec!["msg_audit_nobody"]),
        (
            "gateway=stripe".into(),
            vec!["evt_audit_ok", "evt_audit_nobody"],
        ),
        ("gateway=paypal".into(), vec![]),
        (
            "outcome=unmatched".into(),
            vec!["evt_audit_nobody", "msg_audit_nobody"],
        ),
        ("outcome=confirmed".into(), vec!["evt_audit_ok"]),
        ("outcome=failed".into(), vec![]),
        (
            format!("payment_id={}", payment["id"]),
            vec!["evt_audit_ok"],
        ),
        ("payment_id=31337".into(), vec![]),
        // From `received_after` inclusive, to `received_before` exclusive.
        (
            format!("received_after={second_received}"),
            vec!["evt_audit_nobody", "msg_audit_nobody"],
        ),
        (
            format!("received_before={second_received}"),
            vec!["evt_audit_ok"],
        ),
        (
            "received_after=2000-01-01T00:00:00%2B02:00".into(),
            everything.clone(),
        ),
        ("received_before=2000-01-01T00:00:00Z".into(), vec![]),
        (
            "gateway=stripe&outcome=unmatched".into(),
            vec!["evt_audit_nobody"],
        ),
        ("limit=500".into(), everything),
    ];
    for (query, expected) in &cases {
        let listing = listed(&app, query).await;
        assert_eq!(&event_ids(&listing), expected, "{query}");
        assert_eq!(listing["next_after_id"], Value::Null, "{query}");
    }
}

#[actix_rt::test]
async fn pages_follow_the_cursor_to_the_end() {
    let app = spawn_app_with_generic(&[]);
    three_events(&app).await;

    let first = listed(&app, "limit=2").await;
    assert_eq!(event_ids(&first), ["evt_audit_ok", "evt_audit_nobody"]);
    let cursor = first["next_after_id"].as_i64().expect("a cursor");
    assert_eq!(Some(cursor), first["items"][1]["id"].as_i64());

    let second = listed(&app, &format!("limit=2&after_id={cursor}")).await;
    assert_eq!(event_ids(&second), ["msg_audit_nobody"]);
    assert_eq!(second["next_after_id"], Value::Null);

    let past = listed(
        &app,
        &format!("after_id={}", second["items"][0]["id"].as_i64().unwrap()),
    )
    .await;
    assert_eq!(past, json!({"items": [], "next_after_id": null}));
}

#[actix_rt::test]
async fn a_bad_filter_is_refused_naming_the_parameter() {
    let app = spawn_app();
    for (query, parameter) in [
        ("outcome=processed", "outcome"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("payment_id=abc", "payment_id"),
        ("after_id=-1", "after_id"),
        ("received_after=yesterday", "received_after"),
        ("received_before=2026-13-01T00:00:00Z", "received_before"),
        // An unencoded `+` arrives as a space.
        ("received_after=2026-01-01T00:00:00+02:00", "received_after"),
        ("gateway=", "gateway"),
        ("colour=red", "colour"),
    ] {
        let answer = app.list_events(query).await;
        let message = answer.assert_error(StatusCode::BAD_REQUEST);
        assert!(message.contains(parameter), "{query}: {message}");
    }
}

#[actix_rt::test]
async fn an_event_is_read_back_with_its_body_and_references() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_detail").await;
    let event = charge_succeeded("evt_detail", "ch_detail", "pi_detail");
    let body = serde_json::to_string(&event).unwrap();
    let answer = app.send_stripe_event(&event).await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let listed = item(&app, "evt_detail").await;

    let answer = app.get_event(&listed["id"]).await;

    let detail = answer.assert_status(StatusCode::OK);
    for field in ITEM_FIELDS {
        assert_eq!(detail[field], listed[field], "{field}");
    }
    assert_eq!(detail["payload"], body.as_str());
    assert_eq!(detail.get("payload_base64"), None);
    assert_eq!(detail["event_type"], "charge.succeeded");
    assert_eq!(detail["ref_transaction_id"], Value::Null);
    assert_eq!(detail["ref_external_id"], "pi_detail");
    assert_eq!(detail["ref_gateway_reference"], "pi_detail");
    assert_eq!(detail["amount"], "150.00");
    assert_eq!(detail["currency"], "USD");
}

#[actix_rt::test]
async fn a_body_that_is_not_text_is_answered_as_base64() {
    let app = spawn_app();
    // Gateways send JSON, always UTF-8; a store written by another client
    // may still hold any bytes.
    let usd = Currency::parse("USD").unwrap();
    app.store
        .apply_event(EventToApply {
            event: GatewayEvent {
                gateway: "custom".into(),
                event_id: "evt_binary".into(),
                event_type: "payment.completed".into(),
                kind: EventKind::Succeeded,
                references: References {
                    transaction_id: Some("TXN-NOBODY".into()),
                    ..References::default()
                },
                amount: Some(Money::from_minor(150, usd)),
                report: None,
            },
            payload: vec![0xff, 0x00, b'{', 0xfe],
            policy: AmountPolicy::Warn,
            received_at: chrono::Utc::now(),
            source: payhook_domain::ports::EventSource::Webhook,
        })
        .await
        .expect("recorded");
    let listed = item(&app, "evt_binary").await;

    let answer = app.get_event(&listed["id"]).await;

    let detail = answer.assert_status(StatusCode::OK);
    assert_eq!(detail["payload_base64"], "/wB7/g==");
    assert_eq!(detail.get("payload"), None);
    assert_eq!(detail["ref_transaction_id"], "TXN-NOBODY");
    assert_eq!(detail["amount"], "1.50");
    assert_eq!(detail["outcome"], "unmatched");
}

#[actix_rt::test]
async fn the_audit_api_needs_the_token() {
    let mut app = spawn_app();
    one_unmatched_event(&app).await;
    let id = item(&app, "evt_token").await["id"].clone();

    app.api_token = None;
    app.list_events("")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    app.get_event(&id)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    app.replay_event(&id)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    // Before reading the query: a bad filter without a token is still 401.
    app.list_events("limit=0")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);

    app.api_token = Some("wrong-token".into());
    app.list_events("")
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
    app.replay_event(&id)
        .await
        .assert_error(StatusCode::UNAUTHORIZED);
}

/// One unmatched Stripe event, `evt_token`.
async fn one_unmatched_event(app: &TestApp) {
    let answer = app
        .send_stripe_event(&intent_succeeded("evt_token", "pi_token"))
        .await;
    answer.assert_error(StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn an_unknown_event_is_not_found() {
    let app = spawn_app();
    for id in ["404", "abc"] {
        let message = app
            .get_event(id)
            .await
            .assert_error(StatusCode::NOT_FOUND)
            .to_owned();
        assert!(!message.is_empty());
        app.replay_event(id)
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
    let message = app
        .get_event(404)
        .await
        .assert_error(StatusCode::NOT_FOUND)
        .to_owned();
    assert!(message.contains("404"), "{message}");
}

#[actix_rt::test]
async fn replaying_a_processed_event_answers_already_processed() {
    let app = spawn_app();
    let payment = app.pending_payment("pi_replayed").await;
    let answer = app
        .send_stripe_event(&intent_succeeded("evt_replayed", "pi_replayed"))
        .await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
    let before = item(&app, "evt_replayed").await;
    let payment_before = app.payment(&payment).await;

    let answer = app.replay_event(&before["id"]).await;

    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "success");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("already processed"), "{message}");
    assert_eq!(body["payment_id"], payment["id"]);
    assert_eq!(body["transaction_id"], payment["transaction_id"]);
    assert_eq!(item(&app, "evt_replayed").await, before);
    assert_eq!(app.payment(&payment).await, payment_before);
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}

#[actix_rt::test]
async fn a_webhook_before_external_pending_is_applied_when_the_shop_records_the_id() {
    let app = spawn_app();
    let payment = app.new_payment("150.00", "USD").await;
    let event = intent_succeeded("evt_early", "pi_early");

    // Stripe is faster than the shop: nobody has pi_early yet.
    let answer = app.send_stripe_event(&event).await;
    answer.assert_error(StatusCode::NOT_FOUND);
    assert_eq!(item(&app, "evt_early").await["outcome"], "unmatched");
    assert_eq!(app.order_status(&payment).await, "pending");

    // The shop records the PaymentIntent: the waiting event is applied in
    // the same call, which answers with the completed payment.
    let answer = app.external_pending(&payment["id"], "pi_early").await;

    let marked = answer.assert_status(StatusCode::OK);
    assert_eq!(marked["status"], "completed");
    assert_eq!(marked["external_id"], "pi_early");
    assert_eq!(app.payment(&payment).await, *marked);
    assert_eq!(app.order_status(&payment).await, "paid");
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
    let applied = item(&app, "evt_early").await;
    assert_eq!(applied["outcome"], "confirmed");
    assert_eq!(applied["payment_id"], payment["id"]);
    assert_eq!(applied["attempts"], 1);

    // Stripe's retry of the 404 and a replay are both "already processed".
    let retry = app.send_stripe_event(&event).await;
    let retry = retry.assert_status(StatusCode::OK);
    assert!(
        retry["message"]
            .as_str()
            .unwrap()
            .contains("already processed"),
        "{retry}"
    );
    assert_eq!(retry["payment_id"], payment["id"]);
    let replay = app.replay_event(&applied["id"]).await;
    let replay = replay.assert_status(StatusCode::OK);
    assert!(
        replay["message"]
            .as_str()
            .unwrap()
            .contains("already processed"),
        "{replay}"
    );
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}

#[actix_rt::test]
async fn replaying_an_unmatched_event_looks_the_payment_up_again() {
    let app = spawn_app();
    // The shop redirected to Stripe Checkout: it knows the session only.
    let payment = app.pending_payment("cs_known").await;
    // A charge of the session's PaymentIntent, before any session event:
    // nobody knows `pi_of_session` yet.
    let early = charge_succeeded("evt_charge_early", "ch_1", "pi_of_session");
    app.send_stripe_event(&early)
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let unmatched = item(&app, "evt_charge_early").await;

    // Still nobody: the replay answers as the webhook did, and stays open.
    let answer = app.replay_event(&unmatched["id"]).await;
    answer.assert_error(StatusCode::NOT_FOUND);
    assert_eq!(item(&app, "evt_charge_early").await["outcome"], "unmatched");

    // The session's event confirms and teaches the payment its intent.
    let mut session = event("checkout.session.completed", "evt_session");
    let object = &mut session["data"]["object"];
    object["id"] = json!("cs_known");
    object["payment_intent"] = json!("pi_of_session");
    object["payment_status"] = json!("paid");
    object["amount_total"] = json!(15000);
    object["currency"] = json!("usd");
    object["client_reference_id"] = Value::Null;
    object["metadata"] = json!({});
    let answer = app.send_stripe_event(&session).await;
    assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));

    let answer = app.replay_event(&unmatched["id"]).await;

    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "success");
    assert_eq!(body["payment_id"], payment["id"]);
    assert_eq!(body["message"], "Payment already completed");
    let replayed = item(&app, "evt_charge_early").await;
    assert_eq!(replayed["outcome"], "already_completed");
    assert_eq!(replayed["payment_id"], payment["id"]);
    assert_eq!(replayed["attempts"], 3);
    assert_eq!(app.outbox_kinds().await, ["order.paid"]);
}
