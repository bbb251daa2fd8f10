//! `apply_event`, one delivery at a time: lookups, the decision's outcomes as
//! stored, duplicates, unmatched events retried, and the amount policy.

use payhook_domain::ports::{Applied, Store};
use payhook_domain::{
    AmountMismatch, AmountPolicy, EventKind, NewPayment, OrderStatus, Outcome, Payment,
    PaymentStatus, References,
};
use payhook_store_diesel::{DieselStore, EventRecord, StoreOptions};
use serde_json::Value;

use crate::support::{
    at, by_external_id, by_gateway_reference, by_transaction_id, created_payment, failed,
    for_each_backend, fresh_id, fresh_transaction_id, money, order, outbox_kinds, outbox_of,
    pending_payment, stripe_event, succeeded, to_apply, usd, warn, Backend,
};

/// The outcome and payment of a decided event; panics on any other answer.
fn decided(name: &str, applied: Applied) -> (Outcome, Payment) {
    match applied {
        Applied::Decided { outcome, payment } => (outcome, payment),
        other => panic!("{name}: expected a decision, got {other:?}"),
    }
}

/// The stored record of one event.
async fn event_record(store: &DieselStore, gateway: &str, event_id: &str) -> EventRecord {
    let matching: Vec<EventRecord> = store
        .events()
        .await
        .expect("read events")
        .into_iter()
        .filter(|e| e.gateway == gateway && e.event_id == event_id)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one record for {gateway}/{event_id}: {matching:?}"
    );
    matching.into_iter().next().expect("one record")
}

/// The whole life of a payment confirmed through `references`: confirmed
/// once, duplicates and late events recorded but not applied.
async fn confirm_and_replay(backend: Backend, references: impl Fn(&Payment) -> References) {
    let Backend { name, store, .. } = backend;
    let external_id = fresh_id("pi");
    let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
    let event_id = fresh_id("evt");
    let event = succeeded(&event_id, references(&payment), Some(usd(15000)));

    let (outcome, confirmed) = decided(
        name,
        store.apply_event(warn(event.clone())).await.expect("apply"),
    );
    assert_eq!(outcome, Outcome::Confirmed, "{name}");
    assert_eq!(confirmed.id, payment.id, "{name}");
    assert_eq!(confirmed.status, PaymentStatus::Completed, "{name}");
    assert_eq!(confirmed.amount, usd(15000), "{name}");
    assert_eq!(confirmed.amount_mismatch, None, "{name}");
    assert_eq!(
        confirmed.external_id.as_deref(),
        Some(external_id.as_str()),
        "{name}"
    );
    assert_eq!(confirmed.updated_at, at(100), "{name}");
    assert_eq!(
        store.payment(payment.id).await.expect("read payment"),
        confirmed,
        "{name}"
    );

    let order = store.order(payment.order_id).await.expect("read order");
    assert_eq!(order.status, OrderStatus::Paid, "{name}");
    assert_eq!(order.updated_at, at(100), "{name}");

    let outbox = outbox_of(&store, &payment).await;
    assert_eq!(outbox.len(), 1, "{name}: {outbox:?}");
    let row = &outbox[0];
    assert_eq!(row.kind, "order.paid", "{name}");
    assert_eq!(row.order_id, payment.order_id.0, "{name}");
    assert_eq!(row.status, "pending", "{name}");
    assert_eq!(row.attempts, 0, "{name}");
    let body: Value = serde_json::from_str(&row.payload).expect("outbox payload is JSON");
    assert_eq!(body["type"], "order.paid", "{name}");
    assert_eq!(body["order_id"], payment.order_id.0, "{name}");
    assert_eq!(body["payment_id"], payment.id.0, "{name}");
    assert_eq!(
        body["transaction_id"],
        payment.transaction_id.as_str(),
        "{name}"
    );
    assert_eq!(body["payment_status"], "completed", "{name}");
    assert_eq!(body["amount"], "150.00", "{name}");
    assert_eq!(body["currency"], "USD", "{name}");

    let record = event_record(&store, "stripe", &event_id).await;
    assert_eq!(record.outcome, "confirmed", "{name}");
    assert_eq!(record.payment_id, Some(payment.id.0), "{name}");
    assert_eq!(record.event_type, "payment_intent.succeeded", "{name}");
    assert_eq!(record.attempts, 1, "{name}");
    let events_after_first = store.events().await.expect("events").len();

    // The same delivery again: recognised, nothing changes.
    let duplicate = store
        .apply_event(warn(event.clone()))
        .await
        .expect("apply duplicate");
    assert_eq!(
        duplicate,
        Applied::Duplicate {
            payment: Some(confirmed.clone())
        },
        "{name}"
    );
    assert_eq!(
        store.events().await.expect("events").len(),
        events_after_first,
        "{name}"
    );
    assert_eq!(
        event_record(&store, "stripe", &event_id).await.outcome,
        "confirmed",
        "{name}"
    );

    // Another success for it: acknowledged, not applied.
    let second_id = fresh_id("evt");
    let (outcome, unchanged) = decided(
        name,
        store
            .apply_event(warn(succeeded(
                &second_id,
                references(&payment),
                Some(usd(15000)),
            )))
            .await
            .expect("apply second success"),
    );
    assert_eq!(outcome, Outcome::AlreadyCompleted, "{name}");
    assert_eq!(unchanged, confirmed, "{name}");
    assert_eq!(
        event_record(&store, "stripe", &second_id).await.outcome,
        "already_completed",
        "{name}"
    );

    // A late failure: recorded, never applied.
    let late_id = fresh_id("evt");
    let (outcome, unchanged) = decided(
        name,
        store
            .apply_event(warn(failed(&late_id, references(&payment))))
            .await
            .expect("apply late failure"),
    );
    assert_eq!(outcome, Outcome::LateFailureIgnored, "{name}");
    assert_eq!(unchanged.status, PaymentStatus::Completed, "{name}");
    let late = event_record(&store, "stripe", &late_id).await;
    assert_eq!(late.outcome, "late_failure_ignored", "{name}");
    assert_eq!(late.payment_id, Some(payment.id.0), "{name}");

    assert_eq!(
        store.payment(payment.id).await.expect("read"),
        confirmed,
        "{name}"
    );
    assert_eq!(
        outbox_kinds(&store, &payment).await,
        ["order.paid"],
        "{name}"
    );
    assert_eq!(
        store.order(payment.order_id).await.expect("order").status,
        OrderStatus::Paid,
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_found_by_transaction_id_confirms_once() {
    for_each_backend(StoreOptions::default(), |backend| {
        confirm_and_replay(backend, |p| by_transaction_id(&p.transaction_id))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_found_by_external_id_confirms_once() {
    for_each_backend(StoreOptions::default(), |backend| {
        confirm_and_replay(backend, |p| {
            by_external_id(p.external_id.as_deref().expect("pending"))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_found_by_a_gateway_reference_equal_to_the_external_id_confirms_once() {
    for_each_backend(StoreOptions::default(), |backend| {
        confirm_and_replay(backend, |p| {
            by_gateway_reference(p.external_id.as_deref().expect("pending"))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_found_by_the_recorded_gateway_reference_confirms() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = pending_payment(&store, "stripe", &fresh_id("pi"), usd(15000)).await;
            let charge = fresh_id("ch");
            // A failure naming the charge teaches the store the gateway's reference.
            let references = References {
                transaction_id: Some(payment.transaction_id.clone()),
                gateway_reference: Some(charge.clone()),
                ..References::default()
            };
            let (outcome, failed_payment) = decided(
                name,
                store
                    .apply_event(warn(failed(&fresh_id("evt"), references)))
                    .await
                    .expect("apply failure"),
            );
            assert_eq!(outcome, Outcome::Failed, "{name}");
            assert_eq!(
                failed_payment.gateway_reference.as_deref(),
                Some(charge.as_str()),
                "{name}"
            );
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                failed_payment,
                "{name}"
            );

            // A success that names only that charge finds the payment.
            let (outcome, confirmed) = decided(
                name,
                store
                    .apply_event(warn(succeeded(
                        &fresh_id("evt"),
                        by_gateway_reference(&charge),
                        None,
                    )))
                    .await
                    .expect("apply success"),
            );
            assert_eq!(outcome, Outcome::Confirmed, "{name}");
            assert_eq!(confirmed.id, payment.id, "{name}");
            assert_eq!(confirmed.status, PaymentStatus::Completed, "{name}");
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["payment.failed", "order.paid"],
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_follow_the_design_order() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            // The transaction id wins over an external id naming another payment.
            let by_txn = created_payment(&store, "stripe", usd(100)).await;
            let other_external = fresh_id("pi");
            let other = pending_payment(&store, "stripe", &other_external, usd(100)).await;
            let references = References {
                transaction_id: Some(by_txn.transaction_id.clone()),
                external_id: Some(other_external.clone()),
                gateway_reference: Some(other_external.clone()),
            };
            let (_, matched) = decided(
                name,
                store
                    .apply_event(warn(succeeded(&fresh_id("evt"), references, None)))
                    .await
                    .expect("apply"),
            );
            assert_eq!(matched.id, by_txn.id, "{name}");
            assert_eq!(
                store.payment(other.id).await.expect("read"),
                other,
                "{name}"
            );

            // An unknown transaction id falls through to the external id.
            let references = References {
                transaction_id: Some("TXN-NOT-OURS".into()),
                external_id: Some(other_external.clone()),
                gateway_reference: None,
            };
            let (_, matched) = decided(
                name,
                store
                    .apply_event(warn(succeeded(&fresh_id("evt"), references, None)))
                    .await
                    .expect("apply"),
            );
            assert_eq!(matched.id, other.id, "{name}");

            // The external id prefers the payment of the event's gateway, even
            // when another gateway's payment with the same id is older.
            let shared = fresh_id("shared");
            let paypal = pending_payment(&store, "paypal", &shared, usd(100)).await;
            let stripe = pending_payment(&store, "stripe", &shared, usd(100)).await;
            assert!(paypal.id < stripe.id);
            let (_, matched) = decided(
                name,
                store
                    .apply_event(warn(succeeded(
                        &fresh_id("evt"),
                        by_external_id(&shared),
                        None,
                    )))
                    .await
                    .expect("apply"),
            );
            assert_eq!(matched.id, stripe.id, "{name}");
            assert_eq!(
                store.payment(paypal.id).await.expect("read").status,
                PaymentStatus::PendingExternal,
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_id_from_another_gateway_is_another_event() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = created_payment(&store, "stripe", usd(100)).await;
            let event_id = fresh_id("evt");
            let stripe = succeeded(&event_id, by_transaction_id(&payment.transaction_id), None);
            // PayPal's event of the same id names a PayPal payment (an event
            // finds only its own gateway's payments), completed before.
            let paypal_payment = created_payment(&store, "paypal", usd(100)).await;
            let mut earlier = succeeded(
                &fresh_id("evt"),
                by_transaction_id(&paypal_payment.transaction_id),
                None,
            );
            earlier.gateway = "paypal".into();
            decided(name, store.apply_event(warn(earlier)).await.expect("apply"));
            let mut paypal = stripe.clone();
            paypal.gateway = "paypal".into();
            paypal.references = by_transaction_id(&paypal_payment.transaction_id);
            let (outcome, _) = decided(name, store.apply_event(warn(stripe)).await.expect("apply"));
            assert_eq!(outcome, Outcome::Confirmed, "{name}");
            let (outcome, _) = decided(name, store.apply_event(warn(paypal)).await.expect("apply"));
            assert_eq!(outcome, Outcome::AlreadyCompleted, "{name}");
            assert_eq!(
                event_record(&store, "paypal", &event_id).await.outcome,
                "already_completed",
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_finds_no_payment_of_another_gateway_by_any_reference() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let external_id = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            for references in [
                by_transaction_id(&payment.transaction_id),
                by_external_id(&external_id),
                by_gateway_reference(&external_id),
            ] {
                let event_id = fresh_id("evt");
                let mut generic = succeeded(&event_id, references, None);
                generic.gateway = "generic".into();
                let applied = store.apply_event(warn(generic)).await.expect("apply");
                assert_eq!(applied, Applied::Unmatched, "{name}");
                let record = event_record(&store, "generic", &event_id).await;
                assert_eq!(record.outcome, "unmatched", "{name}");
                assert_eq!(record.payment_id, None, "{name}");
            }
            assert_eq!(
                store.payment(payment.id).await.expect("payment"),
                payment,
                "{name}"
            );
            assert!(outbox_kinds(&store, &payment).await.is_empty(), "{name}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_then_a_success_confirms_the_retried_payment() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let external_id = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;

            let failure_id = fresh_id("evt");
            let (outcome, after_failure) = decided(
                name,
                store
                    .apply_event(warn(failed(&failure_id, by_external_id(&external_id))))
                    .await
                    .expect("apply failure"),
            );
            assert_eq!(outcome, Outcome::Failed, "{name}");
            assert_eq!(after_failure.status, PaymentStatus::Failed, "{name}");
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                after_failure,
                "{name}"
            );
            assert_eq!(
                store.order(payment.order_id).await.expect("order").status,
                OrderStatus::Pending,
                "{name}"
            );
            assert_eq!(
                event_record(&store, "stripe", &failure_id).await.outcome,
                "failed",
                "{name}"
            );

            // The same failure again from another delivery id: already failed.
            let (outcome, _) = decided(
                name,
                store
                    .apply_event(warn(failed(&fresh_id("evt"), by_external_id(&external_id))))
                    .await
                    .expect("apply second failure"),
            );
            assert_eq!(outcome, Outcome::AlreadyFailed, "{name}");

            let (outcome, confirmed) = decided(
                name,
                store
                    .apply_event(warn(succeeded(
                        &fresh_id("evt"),
                        by_external_id(&external_id),
                        Some(usd(15000)),
                    )))
                    .await
                    .expect("apply success"),
            );
            assert_eq!(outcome, Outcome::Confirmed, "{name}");
            assert_eq!(confirmed.status, PaymentStatus::Completed, "{name}");
            assert_eq!(
                store.order(payment.order_id).await.expect("order").status,
                OrderStatus::Paid,
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["payment.failed", "order.paid"],
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_type_payhook_does_not_handle_changes_nothing() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = created_payment(&store, "stripe", usd(100)).await;
            let event_id = fresh_id("evt");
            let event = stripe_event(
                &event_id,
                EventKind::NotHandled,
                by_transaction_id(&payment.transaction_id),
                None,
            );
            let (outcome, unchanged) = decided(
                name,
                store.apply_event(warn(event.clone())).await.expect("apply"),
            );
            assert_eq!(outcome, Outcome::Ignored, "{name}");
            assert_eq!(unchanged, payment, "{name}");
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                payment,
                "{name}"
            );
            assert_eq!(
                event_record(&store, "stripe", &event_id).await.outcome,
                "ignored",
                "{name}"
            );
            assert!(outbox_kinds(&store, &payment).await.is_empty(), "{name}");
            let again = store.apply_event(warn(event)).await.expect("apply again");
            assert_eq!(
                again,
                Applied::Duplicate {
                    payment: Some(payment)
                },
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_event_is_kept_and_applied_on_redelivery() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            // It names a transaction id no payment has yet. (An event naming
            // an external id is applied when the shop records that id: see
            // `audit.rs`.)
            let transaction_id = fresh_transaction_id();
            let event_id = fresh_id("evt");
            let event = succeeded(
                &event_id,
                by_transaction_id(&transaction_id),
                Some(usd(15000)),
            );

            let first = store
                .apply_event(warn(event.clone()))
                .await
                .expect("apply unmatched");
            assert_eq!(first, Applied::Unmatched, "{name}");
            let record = event_record(&store, "stripe", &event_id).await;
            assert_eq!(record.outcome, "unmatched", "{name}");
            assert_eq!(record.payment_id, None, "{name}");
            assert_eq!(record.attempts, 1, "{name}");

            // The payment appears afterwards; the gateway retries.
            let shop_order = order(&store, usd(15000)).await;
            let payment = store
                .create_payment(
                    NewPayment {
                        order_id: shop_order.id,
                        transaction_id,
                        payment_method: "stripe".into(),
                        amount: usd(15000),
                    },
                    at(1),
                )
                .await
                .expect("create payment");
            let (outcome, confirmed) = decided(
                name,
                store
                    .apply_event(warn(event.clone()))
                    .await
                    .expect("redeliver"),
            );
            assert_eq!(outcome, Outcome::Confirmed, "{name}");
            assert_eq!(confirmed.id, payment.id, "{name}");
            let record = event_record(&store, "stripe", &event_id).await;
            assert_eq!(record.outcome, "confirmed", "{name}");
            assert_eq!(record.payment_id, Some(payment.id.0), "{name}");
            assert_eq!(record.attempts, 2, "{name}");
            assert_eq!(
                store.order(payment.order_id).await.expect("order").status,
                OrderStatus::Paid,
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name}"
            );

            // Now it has been processed.
            let third = store
                .apply_event(warn(event))
                .await
                .expect("third delivery");
            assert_eq!(
                third,
                Applied::Duplicate {
                    payment: Some(confirmed)
                },
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_references_is_unmatched() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let event_id = fresh_id("evt");
            let empty = References {
                transaction_id: Some(String::new()),
                ..References::default()
            };
            let applied = store
                .apply_event(warn(succeeded(&event_id, empty, None)))
                .await
                .expect("apply");
            assert_eq!(applied, Applied::Unmatched, "{name}");
            assert_eq!(
                event_record(&store, "stripe", &event_id).await.outcome,
                "unmatched",
                "{name}"
            );
            assert!(store.outbox().await.expect("outbox").is_empty(), "{name}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_mismatch_under_warn_confirms_and_records_it() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            for received in [usd(14999), money(15000, "EUR"), money(150, "JPY")] {
                let payment = pending_payment(&store, "stripe", &fresh_id("pi"), usd(15000)).await;
                let event = succeeded(
                    &fresh_id("evt"),
                    by_transaction_id(&payment.transaction_id),
                    Some(received),
                );
                let (outcome, confirmed) =
                    decided(name, store.apply_event(warn(event)).await.expect("apply"));
                assert_eq!(outcome, Outcome::Confirmed, "{name}");
                assert_eq!(confirmed.status, PaymentStatus::Completed, "{name}");
                let expected_mismatch = AmountMismatch {
                    expected: usd(15000),
                    received,
                };
                assert_eq!(confirmed.amount_mismatch, Some(expected_mismatch), "{name}");
                let stored = store.payment(payment.id).await.expect("read");
                assert_eq!(stored, confirmed, "{name}");
                assert_eq!(
                    stored.amount,
                    usd(15000),
                    "{name}: the payment keeps its own amount"
                );
                assert_eq!(
                    store.order(payment.order_id).await.expect("order").status,
                    OrderStatus::Paid,
                    "{name}"
                );

                let outbox = outbox_of(&store, &payment).await;
                let kinds: Vec<&str> = outbox.iter().map(|row| row.kind.as_str()).collect();
                assert_eq!(kinds, ["order.paid", "payment.amount_mismatch"], "{name}");
                let body: Value = serde_json::from_str(&outbox[1].payload).expect("JSON");
                assert_eq!(body["expected"]["amount"], "150.00", "{name}");
                assert_eq!(body["expected"]["currency"], "USD", "{name}");
                assert_eq!(
                    body["received"]["amount"],
                    received.amount_string(),
                    "{name}"
                );
                assert_eq!(
                    body["received"]["currency"],
                    received.currency().code(),
                    "{name}"
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_mismatch_under_reject_changes_nothing_and_stays_open() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = pending_payment(&store, "stripe", &fresh_id("pi"), usd(15000)).await;
            let event_id = fresh_id("evt");
            let event = succeeded(
                &event_id,
                by_transaction_id(&payment.transaction_id),
                Some(usd(100)),
            );

            let (outcome, unchanged) = decided(
                name,
                store
                    .apply_event(to_apply(event.clone(), AmountPolicy::Reject))
                    .await
                    .expect("apply"),
            );
            assert_eq!(outcome, Outcome::AmountRejected, "{name}");
            assert_eq!(unchanged, payment, "{name}");
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                payment,
                "{name}"
            );
            assert_eq!(
                store.order(payment.order_id).await.expect("order").status,
                OrderStatus::Pending,
                "{name}"
            );
            assert!(outbox_of(&store, &payment).await.is_empty(), "{name}");
            let record = event_record(&store, "stripe", &event_id).await;
            assert_eq!(record.outcome, "amount_rejected", "{name}");
            assert_eq!(record.payment_id, Some(payment.id.0), "{name}");

            // A re-delivery is evaluated again, not answered "already processed".
            let (outcome, _) = decided(
                name,
                store
                    .apply_event(to_apply(event.clone(), AmountPolicy::Reject))
                    .await
                    .expect("redeliver under reject"),
            );
            assert_eq!(outcome, Outcome::AmountRejected, "{name}");
            assert_eq!(
                event_record(&store, "stripe", &event_id).await.attempts,
                2,
                "{name}"
            );
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                payment,
                "{name}"
            );

            // After the policy changes, the same event confirms.
            let (outcome, confirmed) = decided(
                name,
                store
                    .apply_event(warn(event))
                    .await
                    .expect("redeliver under warn"),
            );
            assert_eq!(outcome, Outcome::Confirmed, "{name}");
            assert!(confirmed.amount_mismatch.is_some(), "{name}");
            let record = event_record(&store, "stripe", &event_id).await;
            assert_eq!(record.outcome, "confirmed", "{name}");
            assert_eq!(record.attempts, 3, "{name}");
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid", "payment.amount_mismatch"],
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_amount_confirms_under_reject() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            for amount in [money(1500, "JPY"), money(1500, "KWD"), usd(15000)] {
                let payment = pending_payment(&store, "stripe", &fresh_id("pi"), amount).await;
                let event = succeeded(
                    &fresh_id("evt"),
                    by_transaction_id(&payment.transaction_id),
                    Some(amount),
                );
                let (outcome, confirmed) = decided(
                    name,
                    store
                        .apply_event(to_apply(event, AmountPolicy::Reject))
                        .await
                        .expect("apply"),
                );
                assert_eq!(outcome, Outcome::Confirmed, "{name} {amount}");
                assert_eq!(confirmed.amount_mismatch, None, "{name} {amount}");
                let body: Value =
                    serde_json::from_str(&outbox_of(&store, &payment).await[0].payload)
                        .expect("JSON");
                assert_eq!(body["amount"], amount.amount_string(), "{name}");
                assert_eq!(body["currency"], amount.currency().code(), "{name}");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_paid_once_when_two_of_its_payments_complete() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let first = created_payment(&store, "stripe", usd(15000)).await;
            // Of the same gateway as the events below, which find only its payments.
            let second = store
                .create_payment(
                    NewPayment {
                        order_id: first.order_id,
                        transaction_id: fresh_transaction_id(),
                        payment_method: "stripe".into(),
                        amount: usd(15000),
                    },
                    at(1),
                )
                .await
                .expect("second payment");
            for payment in [&first, &second] {
                let (outcome, _) = decided(
                    name,
                    store
                        .apply_event(warn(succeeded(
                            &fresh_id("evt"),
                            by_transaction_id(&payment.transaction_id),
                            None,
                        )))
                        .await
                        .expect("apply"),
                );
                assert_eq!(outcome, Outcome::Confirmed, "{name}");
            }
            let paid: Vec<_> = store
                .outbox()
                .await
                .expect("outbox")
                .into_iter()
                .filter(|row| row.order_id == first.order_id.0 && row.kind == "order.paid")
                .collect();
            assert_eq!(paid.len(), 1, "{name}: {paid:?}");
            assert_eq!(paid[0].payment_id, first.id.0, "{name}");
        },
    )
    .await;
}
