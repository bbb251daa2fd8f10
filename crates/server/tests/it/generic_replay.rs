//! Replays under the simple generic scheme (`X-Webhook-Signature`), which
//! signs the body alone: an attacker who captured one call can send it again
//! with any headers. The event id must therefore come from the signed body,
//! never from `Idempotency-Key` or `webhook-id`, so that a replay is the same
//! event ("already processed", nothing written) and a captured body cannot
//! take the id of a later real event. Standard Webhooks signs its
//! `webhook-id` and keeps it as the event id.
//!
//! Each test runs on SQLite and on PostgreSQL (the latter when
//! `PAYHOOK_TEST_POSTGRES_URL` is set; see `processes`), since recognising a
//! repeat is the store's `ON CONFLICT` on `(gateway, event_id)`.

use std::future::Future;

use awc::http::StatusCode;
use serde_json::Value;

use crate::helpers::{
    confirmed, generic_body, now, payment_failed, simple_signature_headers, spawn_app_with_generic,
    standard_webhook_headers, Answer, TestApp, GENERIC_SECRET,
};
use crate::processes::PostgresDb;

/// Runs `test` on a server over SQLite, then on one over a fresh
/// PostgreSQL database when one is configured.
async fn on_both_backends<F, Fut>(name: &str, test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    test(spawn_app_with_generic(&[])).await;
    if let Some(database) = PostgresDb::create(name) {
        test(spawn_app_with_generic(&[("DATABASE_URL", &database.url)])).await;
    }
}

/// Posts `body` under the simple scheme, signed with [`GENERIC_SECRET`],
/// with the unsigned `extra` headers an attacker may choose freely.
async fn post_simple(app: &TestApp, body: &[u8], extra: &[(&str, &str)]) -> Answer {
    let mut headers = simple_signature_headers(GENERIC_SECRET, body);
    headers.extend(
        extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    app.post_generic(body, &headers).await
}

/// Everything a webhook can change: the payments, the events and the
/// outbox.
async fn snapshot(app: &TestApp, payments: &[&Value]) -> (Vec<Value>, String, String) {
    let mut states = Vec::new();
    for payment in payments {
        states.push(app.payment(payment).await);
    }
    let events = app.store.events().await.expect("the events read");
    let outbox = app.store.outbox().await.expect("the outbox reads");
    (states, format!("{events:?}"), format!("{outbox:?}"))
}

fn assert_already_processed(answer: &Answer, payment: &Value) {
    let body = answer.assert_status(StatusCode::OK);
    assert_eq!(body["status"], "success", "{answer:?}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("already processed"), "{answer:?}");
    assert_eq!(body["payment_id"], payment["id"], "{answer:?}");
}

#[actix_rt::test]
async fn a_captured_failure_replayed_with_new_id_headers_changes_nothing() {
    on_both_backends("generic_replay_new_key", |app| async move {
        let payment = app.pending_payment_for("generic", "ext_replay").await;
        let failure = generic_body(Some("ext_replay"), None, "failed", "150.00");
        let answer = post_simple(&app, &failure, &[("Idempotency-Key", "key-1")]).await;
        assert_eq!(
            answer.assert_status(StatusCode::OK),
            &payment_failed(&payment)
        );
        // The customer tries again: the shop re-opens the payment.
        let reopened = app.external_pending(&payment["id"], "ext_replay").await;
        let reopened = reopened.assert_status(StatusCode::OK).clone();
        assert_eq!(reopened["status"], "pending_external");
        let before = snapshot(&app, &[&reopened]).await;

        // The captured failure, sent again under any id header the attacker
        // likes, or none.
        for extra in [
            &[("Idempotency-Key", "key-2")][..],
            &[("webhook-id", "msg_forged")][..],
            &[][..],
        ] {
            let replay = post_simple(&app, &failure, extra).await;

            assert_already_processed(&replay, &payment);
            assert_eq!(snapshot(&app, &[&reopened]).await, before, "{extra:?}");
        }
        assert_eq!(app.payment(&reopened).await["status"], "pending_external");
        assert_eq!(app.outbox_kinds().await, ["payment.failed"]);
    })
    .await;
}

#[actix_rt::test]
async fn a_captured_body_cannot_take_the_id_of_the_next_real_event() {
    on_both_backends("generic_replay_next_key", |app| async move {
        let first = app.pending_payment_for("generic", "ext_first").await;
        let second = app.pending_payment_for("generic", "ext_second").await;
        let first_body = generic_body(Some("ext_first"), None, "completed", "150.00");
        let answer = post_simple(&app, &first_body, &[("Idempotency-Key", "key-1")]).await;
        assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&first));

        // The attacker sends the captured body first with the key the
        // gateway will use next...
        let replay = post_simple(&app, &first_body, &[("Idempotency-Key", "key-2")]).await;
        assert_already_processed(&replay, &first);

        // ...and the gateway's real next event, another body, still applies.
        let second_body = generic_body(Some("ext_second"), None, "completed", "150.00");
        let answer = post_simple(&app, &second_body, &[("Idempotency-Key", "key-2")]).await;

        assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&second));
        assert_eq!(app.payment(&second).await["status"], "completed");
        assert_eq!(app.order_status(&second).await, "paid");
        assert_eq!(app.outbox_kinds().await, ["order.paid", "order.paid"]);
        let events = app.store.events().await.expect("the events read");
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            events
                .iter()
                .all(|event| event.event_id.starts_with("sha256:")),
            "{events:?}"
        );
    })
    .await;
}

#[actix_rt::test]
async fn an_event_id_in_the_signed_body_names_the_event() {
    on_both_backends("generic_replay_body_id", |app| async move {
        let payment = app.pending_payment_for("generic", "ext_body_id").await;
        let body = |spacing: &str| {
            format!(
                r#"{{"event_id":"evt_gw_1",{spacing}"payment_id":"ext_body_id","status":"completed","amount":"150.00","currency":"USD"}}"#
            )
            .into_bytes()
        };
        let answer = post_simple(&app, &body(""), &[]).await;
        assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
        let before = snapshot(&app, &[&payment]).await;

        // The gateway's retry, serialised with other whitespace: other
        // bytes, the same signed event id.
        let retry = post_simple(&app, &body(" "), &[("Idempotency-Key", "key-9")]).await;

        assert_already_processed(&retry, &payment);
        assert_eq!(snapshot(&app, &[&payment]).await, before);
        let events = app.store.events().await.expect("the events read");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].event_id, "evt_gw_1");
    })
    .await;
}

#[actix_rt::test]
async fn standard_webhooks_keeps_its_signed_webhook_id() {
    on_both_backends("generic_replay_standard", |app| async move {
        let payment = app.pending_payment_for("generic", "ext_standard").await;
        let body = generic_body(Some("ext_standard"), None, "completed", "150.00");
        let headers = standard_webhook_headers(GENERIC_SECRET, "msg_std_1", now(), &body);
        let answer = app.post_generic(&body, &headers).await;
        assert_eq!(answer.assert_status(StatusCode::OK), &confirmed(&payment));
        let before = snapshot(&app, &[&payment]).await;

        // The sender's retry: same message id, signed again later, with an
        // Idempotency-Key that Standard Webhooks does not read.
        let mut retry = standard_webhook_headers(GENERIC_SECRET, "msg_std_1", now() + 1, &body);
        retry.push(("Idempotency-Key".into(), "key-other".into()));
        let answer = app.post_generic(&body, &retry).await;

        assert_already_processed(&answer, &payment);
        assert_eq!(snapshot(&app, &[&payment]).await, before);
        let events = app.store.events().await.expect("the events read");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].event_id, "msg_std_1");
    })
    .await;
}
