//! The whole life of a payment as the store applies it: cancels and pending
//! events, a success after a cancel, the gateway reference a checkout
//! session teaches, split payments and an overpaid order. Each sequence runs
//! three ways: every event in a transaction of its own (`apply_event`
//! without group commit), through the group-commit queue, and all events of
//! a step in one group-commit batch, where later events see the earlier
//! ones' uncommitted writes.

use payhook_domain::ports::{Applied, Store};
use payhook_domain::{
    AmountPolicy, EventKind, GatewayEvent, Order, OrderId, OrderStatus, Outcome, Payment,
    PaymentStatus, References,
};
use payhook_store_diesel::{DieselStore, OutboxEntry, StoreOptions};
use serde_json::Value;

use crate::support::{
    at, by_external_id, by_gateway_reference, by_transaction_id, created_payment, for_each_backend,
    fresh_id, order, outbox_kinds, outbox_of_order, payment_for, pending_payment, stripe_event,
    succeeded, usd, warn, Backend,
};

/// How a test's events reach the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `apply_event` with group commit off: one transaction per event.
    Alone,
    /// `apply_event` with group commit on: through a writer's queue
    /// (`apply_events`), one event at a time.
    Queued,
    /// All events given at once as one group-commit batch: one transaction.
    OneBatch,
}

const MODES: [Mode; 3] = [Mode::Alone, Mode::Queued, Mode::OneBatch];

/// A store on `backend`'s database that applies events as `mode` says.
fn store_for(backend: &Backend, mode: Mode) -> DieselStore {
    match mode {
        Mode::Alone => DieselStore::open(
            &backend.url,
            &StoreOptions {
                group_commit: false,
                ..StoreOptions::default()
            },
        )
        .expect("open a store without group commit"),
        Mode::Queued | Mode::OneBatch => backend.store.clone(),
    }
}

/// Applies `events` in order as `mode` says and returns the outcomes;
/// panics on an answer that is not a decision.
async fn apply_all(store: &DieselStore, mode: Mode, events: Vec<GatewayEvent>) -> Vec<Outcome> {
    let answers = match mode {
        Mode::Alone | Mode::Queued => {
            let mut answers = Vec::new();
            for event in events {
                answers.push(store.apply_event(warn(event)).await);
            }
            answers
        }
        Mode::OneBatch => store
            .apply_batch(events.into_iter().map(warn).collect())
            .await
            .expect("apply the batch"),
    };
    answers
        .into_iter()
        .map(|answer| match answer {
            Ok(Applied::Decided { outcome, .. }) => outcome,
            other => panic!("{mode:?}: expected a decision, got {other:?}"),
        })
        .collect()
}

/// Applies one event as `mode` says.
async fn apply_one(store: &DieselStore, mode: Mode, event: GatewayEvent) -> Outcome {
    apply_all(store, mode, vec![event]).await[0]
}

/// A Stripe event of `kind` under a fresh event id.
fn event(kind: EventKind, references: References) -> GatewayEvent {
    stripe_event(&fresh_id("evt"), kind, references, None)
}

/// The event naming `payment` by its transaction id.
fn about(payment: &Payment, kind: EventKind) -> GatewayEvent {
    event(kind, by_transaction_id(&payment.transaction_id))
}

async fn read_payment(store: &DieselStore, payment: &Payment) -> Payment {
    store.payment(payment.id).await.expect("read payment")
}

async fn read_order(store: &DieselStore, id: OrderId) -> Order {
    store.order(id).await.expect("read order")
}

/// The stored outcome of every event in `events`, by event id.
async fn stored_outcomes(store: &DieselStore, event_ids: &[&str]) -> Vec<(String, Option<i64>)> {
    let records = store.events().await.expect("read events");
    event_ids
        .iter()
        .map(|id| {
            let record = records
                .iter()
                .find(|record| record.event_id == *id)
                .unwrap_or_else(|| panic!("no record of {id}"));
            (record.outcome.clone(), record.payment_id)
        })
        .collect()
}

/// The JSON body of one outbox row.
fn body(row: &OutboxEntry) -> Value {
    serde_json::from_str(&row.payload).expect("outbox payload is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_cancel_open_payments_and_are_recorded_for_completed_ones() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        for mode in MODES {
            let store = store_for(&backend, mode);
            let name = format!("{} {mode:?}", backend.name);
            let pending = pending_payment(&store, "stripe", &fresh_id("pi"), usd(15000)).await;
            let failing = created_payment(&store, "stripe", usd(15000)).await;
            let paid = created_payment(&store, "stripe", usd(15000)).await;
            let cancel_pending = event(
                EventKind::Canceled,
                by_external_id(pending.external_id.as_deref().expect("external id")),
            );
            let cancel_paid = about(&paid, EventKind::Canceled);
            let events = vec![
                cancel_pending.clone(),
                about(&pending, EventKind::Canceled),
                about(&failing, EventKind::Failed),
                about(&failing, EventKind::Canceled),
                about(&paid, EventKind::Succeeded),
                cancel_paid.clone(),
            ];
            assert_eq!(
                apply_all(&store, mode, events).await,
                [
                    Outcome::Canceled,
                    Outcome::AlreadyCanceled,
                    Outcome::Failed,
                    Outcome::Canceled,
                    Outcome::Confirmed,
                    Outcome::LateCancelIgnored,
                ],
                "{name}"
            );

            let stored = read_payment(&store, &pending).await;
            assert_eq!(stored.status, PaymentStatus::Canceled, "{name}");
            assert_eq!(stored.updated_at, at(100), "{name}");
            assert_eq!(
                read_payment(&store, &failing).await.status,
                PaymentStatus::Canceled,
                "{name}"
            );
            assert_eq!(
                read_payment(&store, &paid).await.status,
                PaymentStatus::Completed,
                "{name}: a cancel after the money moved is not applied"
            );
            for (payment, status, paid_minor) in [
                (&pending, OrderStatus::Pending, 0),
                (&failing, OrderStatus::Pending, 0),
                (&paid, OrderStatus::Paid, 15000),
            ] {
                let order = read_order(&store, payment.order_id).await;
                assert_eq!(
                    (order.status, order.paid_amount),
                    (status, usd(paid_minor)),
                    "{name}"
                );
            }
            assert_eq!(
                outbox_kinds(&store, &pending).await,
                ["payment.canceled"],
                "{name}: a second cancel tells the shop nothing"
            );
            assert_eq!(
                outbox_kinds(&store, &failing).await,
                ["payment.failed", "payment.canceled"],
                "{name}"
            );
            assert_eq!(outbox_kinds(&store, &paid).await, ["order.paid"], "{name}");
            let canceled = outbox_of_order(&store, pending.order_id).await;
            let canceled = body(&canceled[0]);
            assert_eq!(canceled["type"], "payment.canceled", "{name}");
            assert_eq!(canceled["payment_status"], "canceled", "{name}");
            assert_eq!(canceled["payment_id"], pending.id.0, "{name}");

            assert_eq!(
                stored_outcomes(&store, &[&cancel_pending.event_id, &cancel_paid.event_id]).await,
                [
                    ("canceled".to_owned(), Some(pending.id.0)),
                    ("late_cancel_ignored".to_owned(), Some(paid.id.0)),
                ],
                "{name}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_move_a_created_payment_and_change_nothing_else() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        for mode in MODES {
            let store = store_for(&backend, mode);
            let name = format!("{} {mode:?}", backend.name);
            let created = created_payment(&store, "stripe", usd(15000)).await;
            let external_id = fresh_id("pi");
            let waiting = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            let failed = created_payment(&store, "stripe", usd(15000)).await;
            let paid = created_payment(&store, "stripe", usd(15000)).await;
            let first = about(&created, EventKind::Pending);
            let events = vec![
                first.clone(),
                about(&created, EventKind::Pending),
                event(EventKind::Pending, by_external_id(&external_id)),
                about(&failed, EventKind::Failed),
                about(&failed, EventKind::Pending),
                about(&paid, EventKind::Succeeded),
                about(&paid, EventKind::Pending),
            ];
            assert_eq!(
                apply_all(&store, mode, events).await,
                [
                    Outcome::Pending,
                    Outcome::Pending,
                    Outcome::Pending,
                    Outcome::Failed,
                    Outcome::Pending,
                    Outcome::Confirmed,
                    Outcome::AlreadyCompleted,
                ],
                "{name}"
            );

            let moved = read_payment(&store, &created).await;
            assert_eq!(moved.status, PaymentStatus::PendingExternal, "{name}");
            assert_eq!(moved.updated_at, at(100), "{name}");
            // Nothing else changed: not even the time of the last change.
            assert_eq!(read_payment(&store, &waiting).await, waiting, "{name}");
            assert_eq!(
                read_payment(&store, &failed).await.status,
                PaymentStatus::Failed,
                "{name}"
            );
            assert_eq!(
                read_payment(&store, &paid).await.status,
                PaymentStatus::Completed,
                "{name}"
            );
            // The shop hears nothing of a payment still at the gateway.
            assert!(outbox_kinds(&store, &created).await.is_empty(), "{name}");
            assert!(outbox_kinds(&store, &waiting).await.is_empty(), "{name}");
            assert_eq!(
                outbox_kinds(&store, &failed).await,
                ["payment.failed"],
                "{name}"
            );
            assert_eq!(outbox_kinds(&store, &paid).await, ["order.paid"], "{name}");
            assert_eq!(
                read_order(&store, created.order_id).await.status,
                OrderStatus::Pending,
                "{name}"
            );
            assert_eq!(
                stored_outcomes(&store, &[&first.event_id]).await,
                [("pending".to_owned(), Some(created.id.0))],
                "{name}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_after_a_cancel_confirms_and_pays_the_order() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        for mode in MODES {
            let store = store_for(&backend, mode);
            let name = format!("{} {mode:?}", backend.name);
            let external_id = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            // The checkout expired, then the customer paid after all.
            let events = vec![
                event(EventKind::Canceled, by_external_id(&external_id)),
                about(&payment, EventKind::Succeeded),
            ];
            assert_eq!(
                apply_all(&store, mode, events).await,
                [Outcome::Canceled, Outcome::Confirmed],
                "{name}"
            );
            assert_eq!(
                read_payment(&store, &payment).await.status,
                PaymentStatus::Completed,
                "{name}"
            );
            let order = read_order(&store, payment.order_id).await;
            assert_eq!(
                (order.status, order.paid_amount),
                (OrderStatus::Paid, usd(15000)),
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["payment.canceled", "order.paid"],
                "{name}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_sessions_payment_intent_finds_the_payment_later() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        for mode in MODES {
            let store = store_for(&backend, mode);
            let name = format!("{} {mode:?}", backend.name);
            // The shop marked the payment pending with the session id.
            let session = fresh_id("cs");
            let intent = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &session, usd(15000)).await;
            let stripe = |event_type: &str, kind, references| {
                let mut typed = event(kind, references);
                typed.event_type = event_type.into();
                typed
            };
            // checkout.session.completed with payment_status `unpaid` (a
            // bank debit still processing): the session id, then its
            // PaymentIntent as the gateway's reference.
            let session_event = stripe(
                "checkout.session.completed",
                EventKind::Pending,
                References {
                    external_id: Some(session.clone()),
                    gateway_reference: Some(intent.clone()),
                    ..References::default()
                },
            );
            // Then events that know only the PaymentIntent: one naming it as
            // the gateway's reference alone, one as a charge names it (as
            // external id and reference), arriving after the success.
            let intent_success = stripe(
                "payment_intent.succeeded",
                EventKind::Succeeded,
                by_gateway_reference(&intent),
            );
            let charge_failed = stripe(
                "charge.failed",
                EventKind::Failed,
                References {
                    external_id: Some(intent.clone()),
                    gateway_reference: Some(intent.clone()),
                    ..References::default()
                },
            );
            let events = vec![
                session_event.clone(),
                intent_success.clone(),
                charge_failed.clone(),
            ];
            assert_eq!(
                apply_all(&store, mode, events).await,
                [
                    Outcome::Pending,
                    Outcome::Confirmed,
                    Outcome::LateFailureIgnored
                ],
                "{name}"
            );
            let stored = read_payment(&store, &payment).await;
            assert_eq!(stored.status, PaymentStatus::Completed, "{name}");
            assert_eq!(
                stored.external_id.as_deref(),
                Some(session.as_str()),
                "{name}"
            );
            assert_eq!(
                stored.gateway_reference.as_deref(),
                Some(intent.as_str()),
                "{name}"
            );
            let matched = Some(payment.id.0);
            assert_eq!(
                stored_outcomes(
                    &store,
                    &[
                        &session_event.event_id,
                        &intent_success.event_id,
                        &charge_failed.event_id
                    ]
                )
                .await,
                [
                    ("pending".to_owned(), matched),
                    ("confirmed".to_owned(), matched),
                    ("late_failure_ignored".to_owned(), matched),
                ],
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_payments_pay_the_order_once_their_sum_covers_it() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        for mode in MODES {
            let store = store_for(&backend, mode);
            let name = format!("{} {mode:?}", backend.name);
            let shop_order = order(&store, usd(15000)).await;
            let first = payment_for(&store, shop_order.id, usd(7500)).await;
            let second = payment_for(&store, shop_order.id, usd(7500)).await;

            if mode == Mode::OneBatch {
                // Both in one transaction: the second sees the first's sum.
                assert_eq!(
                    apply_all(
                        &store,
                        mode,
                        vec![
                            about(&first, EventKind::Succeeded),
                            about(&second, EventKind::Succeeded)
                        ]
                    )
                    .await,
                    [Outcome::Confirmed, Outcome::Confirmed],
                    "{name}"
                );
            } else {
                let outcome = apply_one(&store, mode, about(&first, EventKind::Succeeded)).await;
                assert_eq!(outcome, Outcome::Confirmed, "{name}");
                let half = read_order(&store, shop_order.id).await;
                assert_eq!(
                    (half.status, half.paid_amount),
                    (OrderStatus::Pending, usd(7500)),
                    "{name}: half paid"
                );
                assert!(
                    outbox_of_order(&store, shop_order.id).await.is_empty(),
                    "{name}: nothing to tell the shop yet"
                );
                let outcome = apply_one(&store, mode, about(&second, EventKind::Succeeded)).await;
                assert_eq!(outcome, Outcome::Confirmed, "{name}");
            }

            let paid = read_order(&store, shop_order.id).await;
            assert_eq!(
                (paid.status, paid.paid_amount),
                (OrderStatus::Paid, usd(15000)),
                "{name}"
            );
            let rows = outbox_of_order(&store, shop_order.id).await;
            let kinds: Vec<&str> = rows.iter().map(|row| row.kind.as_str()).collect();
            assert_eq!(kinds, ["order.paid"], "{name}");
            assert_eq!(
                rows[0].payment_id, second.id.0,
                "{name}: the payment that completed the sum"
            );
            let notified = body(&rows[0]);
            assert_eq!(notified["amount"], "75.00", "{name}");

            // A third payment of the paid order overpays it, and the shop is
            // told of every payment that paid it.
            let third = payment_for(&store, shop_order.id, usd(7500)).await;
            let outcome = apply_one(&store, mode, about(&third, EventKind::Succeeded)).await;
            assert_eq!(outcome, Outcome::Confirmed, "{name}");
            let overpaid = read_order(&store, shop_order.id).await;
            assert_eq!(
                (overpaid.status, overpaid.paid_amount),
                (OrderStatus::Paid, usd(22500)),
                "{name}"
            );
            let rows = outbox_of_order(&store, shop_order.id).await;
            let kinds: Vec<&str> = rows.iter().map(|row| row.kind.as_str()).collect();
            assert_eq!(kinds, ["order.paid", "order.overpaid"], "{name}");
            let notified = body(&rows[1]);
            assert_eq!(
                notified["payment_ids"],
                serde_json::json!([first.id.0, second.id.0, third.id.0]),
                "{name}"
            );
            assert_eq!(notified["paid_amount"], "225.00", "{name}");
        }
    })
    .await;
}

/// Checks that `order_id` is paid by `first` and overpaid by `second`,
/// each covering its total of 150.00.
async fn assert_overpaid(
    store: &DieselStore,
    name: &str,
    order_id: OrderId,
    first: &Payment,
    second: &Payment,
) {
    let order = read_order(store, order_id).await;
    assert_eq!(
        (order.status, order.paid_amount),
        (OrderStatus::Paid, usd(30000)),
        "{name}"
    );
    let rows = outbox_of_order(store, order_id).await;
    let kinds: Vec<&str> = rows.iter().map(|row| row.kind.as_str()).collect();
    assert_eq!(kinds, ["order.paid", "order.overpaid"], "{name}");
    assert_eq!(rows[0].payment_id, first.id.0, "{name}");
    assert_eq!(rows[1].payment_id, second.id.0, "{name}");
    let overpaid = body(&rows[1]);
    assert_eq!(overpaid["type"], "order.overpaid", "{name}");
    assert_eq!(
        overpaid["payment_ids"],
        serde_json::json!([first.id.0, second.id.0]),
        "{name}"
    );
    assert_eq!(overpaid["payment_id"], second.id.0, "{name}");
    assert_eq!(overpaid["order_status"], "paid", "{name}");
    assert_eq!(overpaid["order_total"], "150.00", "{name}");
    assert_eq!(overpaid["paid_amount"], "300.00", "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_payment_of_a_paid_order_overpays_it_naming_both() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        for mode in MODES {
            let store = store_for(&backend, mode);
            let name = format!("{} {mode:?}", backend.name);
            let shop_order = order(&store, usd(15000)).await;
            let first = payment_for(&store, shop_order.id, usd(15000)).await;
            let second = payment_for(&store, shop_order.id, usd(15000)).await;
            let events = vec![
                about(&first, EventKind::Succeeded),
                about(&second, EventKind::Succeeded),
                // A re-sent success of the second changes nothing more.
                about(&second, EventKind::Succeeded),
            ];
            assert_eq!(
                apply_all(&store, mode, events).await,
                [
                    Outcome::Confirmed,
                    Outcome::Confirmed,
                    Outcome::AlreadyCompleted
                ],
                "{name}"
            );
            for payment in [&first, &second] {
                assert_eq!(
                    read_payment(&store, payment).await.status,
                    PaymentStatus::Completed,
                    "{name}"
                );
            }
            assert_overpaid(&store, &name, shop_order.id, &first, &second).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_success_applied_by_mark_pending_overpays_a_paid_order() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let shop_order = order(&store, usd(15000)).await;
            let first = payment_for(&store, shop_order.id, usd(15000)).await;
            let second = payment_for(&store, shop_order.id, usd(15000)).await;
            let outcome =
                apply_one(&store, Mode::Queued, about(&first, EventKind::Succeeded)).await;
            assert_eq!(outcome, Outcome::Confirmed, "{name}");
            // The second payment's success arrives before the shop recorded
            // its external id: it waits, and marking it pending applies it.
            let external_id = fresh_id("pi");
            let early = store
                .apply_event(warn(succeeded(
                    &fresh_id("evt"),
                    by_external_id(&external_id),
                    Some(usd(15000)),
                )))
                .await
                .expect("apply the early success");
            assert_eq!(early, Applied::Unmatched, "{name}");
            let marked = store
                .mark_pending(second.id, external_id, AmountPolicy::Warn, at(5))
                .await
                .expect("mark pending");
            assert_eq!(marked.status, PaymentStatus::Completed, "{name}");
            assert_overpaid(&store, name, shop_order.id, &first, &second).await;
        },
    )
    .await;
}
