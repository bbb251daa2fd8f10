//! Exactly once under concurrency: the same delivery arriving many times at
//! once, from tasks sharing a pool and from threads with pools of their own
//! (as two server processes would), a success racing a failure, and two
//! payments of one order completing at once in two processes (the overpaid
//! race: one `order.paid`, one `order.overpaid`).

use std::sync::Arc;

use payhook_domain::ports::{Applied, EventToApply, Store, StoreError};
use payhook_domain::{
    AmountPolicy, NewPayment, OrderId, OrderStatus, Outcome, Payment, PaymentId, PaymentStatus,
};
use payhook_store_diesel::{DieselStore, StoreOptions};

use crate::support::{
    at, by_external_id, by_transaction_id, created_payment, failed, for_each_backend, fresh_id,
    fresh_transaction_id, order, outbox_kinds, outbox_of_order, payment_for, pending_payment,
    succeeded, usd, warn, Backend,
};

fn options() -> StoreOptions {
    StoreOptions {
        pool_size: 8,
        ..StoreOptions::default()
    }
}

/// Applies every event at the same moment, one tokio task each, and returns
/// the answers in the order of `events`.
async fn apply_at_once(
    store: &DieselStore,
    events: Vec<EventToApply>,
) -> Vec<Result<Applied, StoreError>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(events.len()));
    let tasks: Vec<_> = events
        .into_iter()
        .map(|event| {
            let store = store.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store.apply_event(event).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("task panicked"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_from_twenty_tasks_is_applied_once() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        for round in 0..5 {
            let external_id = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            let event_id = fresh_id("evt");
            let event = succeeded(&event_id, by_external_id(&external_id), Some(usd(15000)));
            let answers = apply_at_once(&store, vec![warn(event); 20]).await;

            let mut confirmed = 0;
            let mut duplicates = 0;
            for answer in answers {
                match answer {
                    Ok(Applied::Decided {
                        outcome: Outcome::Confirmed,
                        payment: decided,
                    }) => {
                        assert_eq!(decided.id, payment.id, "{name} round {round}");
                        confirmed += 1;
                    }
                    Ok(Applied::Duplicate {
                        payment: Some(seen),
                    }) => {
                        assert_eq!(seen.id, payment.id, "{name} round {round}");
                        assert_eq!(
                            seen.status,
                            PaymentStatus::Completed,
                            "{name} round {round}"
                        );
                        duplicates += 1;
                    }
                    other => panic!("{name} round {round}: unexpected answer {other:?}"),
                }
            }
            assert_eq!((confirmed, duplicates), (1, 19), "{name} round {round}");
            assert_eq!(
                store.payment(payment.id).await.expect("read").status,
                PaymentStatus::Completed,
                "{name} round {round}"
            );
            assert_eq!(
                store.order(payment.order_id).await.expect("order").status,
                OrderStatus::Paid,
                "{name} round {round}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name} round {round}"
            );
            let records: Vec<_> = store
                .events()
                .await
                .expect("events")
                .into_iter()
                .filter(|e| e.event_id == event_id)
                .collect();
            assert_eq!(records.len(), 1, "{name} round {round}: {records:?}");
            assert_eq!(records[0].outcome, "confirmed", "{name} round {round}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_from_two_threads_with_their_own_pools_is_applied_once() {
    for_each_backend(options(), |Backend { name, url, store }| async move {
        // A second pool on the same database, as a second server process has.
        let other = DieselStore::open(&url, &options()).expect("open a second pool");
        for round in 0..10 {
            let payment = created_payment(&store, "stripe", usd(15000)).await;
            let event = warn(succeeded(
                &fresh_id("evt"),
                by_transaction_id(&payment.transaction_id),
                Some(usd(15000)),
            ));
            let stores = [store.clone(), other.clone()];
            let answers = tokio::task::spawn_blocking(move || {
                let barrier = Arc::new(std::sync::Barrier::new(stores.len()));
                let threads: Vec<_> = stores
                    .into_iter()
                    .map(|store| {
                        let barrier = Arc::clone(&barrier);
                        let event = event.clone();
                        std::thread::spawn(move || {
                            let runtime = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .expect("runtime");
                            barrier.wait();
                            runtime.block_on(store.apply_event(event))
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|thread| thread.join().expect("thread panicked"))
                    .collect::<Vec<_>>()
            })
            .await
            .expect("blocking task");

            let applied = answers
                .iter()
                .filter(|a| {
                    matches!(
                        a,
                        Ok(Applied::Decided {
                            outcome: Outcome::Confirmed,
                            ..
                        })
                    )
                })
                .count();
            let duplicates = answers
                .iter()
                .filter(|a| matches!(a, Ok(Applied::Duplicate { payment: Some(_) })))
                .count();
            assert_eq!(
                (applied, duplicates),
                (1, 1),
                "{name} round {round}: {answers:?}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name} round {round}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_success_racing_a_failure_always_ends_completed() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        let mut failures_first = 0;
        for round in 0..40 {
            let external_id = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            let success = warn(succeeded(
                &fresh_id("evt"),
                by_external_id(&external_id),
                Some(usd(15000)),
            ));
            let failure = warn(failed(
                &fresh_id("evt"),
                by_transaction_id(&payment.transaction_id),
            ));
            // Half the rounds start the success first, half the failure.
            let success_first = round % 2 == 0;
            let events = if success_first {
                vec![success, failure]
            } else {
                vec![failure, success]
            };
            let mut answers = apply_at_once(&store, events).await.into_iter();
            let (first, second) = (
                answers.next().expect("first"),
                answers.next().expect("second"),
            );
            let (success_answer, failure_answer) = if success_first {
                (first, second)
            } else {
                (second, first)
            };
            let outcome = |answer: Result<Applied, StoreError>| match answer {
                Ok(Applied::Decided { outcome, .. }) => outcome,
                other => panic!("{name} round {round}: unexpected answer {other:?}"),
            };
            assert_eq!(
                outcome(success_answer),
                Outcome::Confirmed,
                "{name} round {round}"
            );
            let failure_outcome = outcome(failure_answer);

            let stored = store.payment(payment.id).await.expect("read");
            assert_eq!(
                stored.status,
                PaymentStatus::Completed,
                "{name} round {round}"
            );
            assert_eq!(
                store.order(payment.order_id).await.expect("order").status,
                OrderStatus::Paid,
                "{name} round {round}"
            );
            let kinds = outbox_kinds(&store, &payment).await;
            match failure_outcome {
                Outcome::LateFailureIgnored => {
                    assert_eq!(kinds, ["order.paid"], "{name} round {round}")
                }
                Outcome::Failed => {
                    failures_first += 1;
                    assert_eq!(
                        kinds,
                        ["payment.failed", "order.paid"],
                        "{name} round {round}"
                    );
                }
                other => panic!("{name} round {round}: failure decided {other:?}"),
            }
        }
        eprintln!("{name}: the failure won the race in {failures_first} of 40 rounds");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_payments_of_one_order_completing_at_once_pay_it_once() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        for round in 0..20 {
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
            let events = [&first, &second]
                .map(|p| {
                    warn(succeeded(
                        &fresh_id("evt"),
                        by_transaction_id(&p.transaction_id),
                        None,
                    ))
                })
                .to_vec();
            for answer in apply_at_once(&store, events).await {
                assert!(
                    matches!(
                        answer,
                        Ok(Applied::Decided {
                            outcome: Outcome::Confirmed,
                            ..
                        })
                    ),
                    "{name} round {round}: {answer:?}"
                );
            }
            let paid = store
                .outbox()
                .await
                .expect("outbox")
                .into_iter()
                .filter(|row| row.order_id == first.order_id.0 && row.kind == "order.paid")
                .count();
            assert_eq!(paid, 1, "{name} round {round}");
        }
    })
    .await;
}

/// Checks one order after both of its payments, each covering its total,
/// completed: paid by the sum, one `order.paid` for whichever came first and
/// one `order.overpaid` for the other naming both. Returns the payment that
/// paid it.
async fn assert_paid_then_overpaid(
    store: &DieselStore,
    context: &str,
    order_id: OrderId,
    payments: [&Payment; 2],
) -> PaymentId {
    for payment in payments {
        assert_eq!(
            store.payment(payment.id).await.expect("read").status,
            PaymentStatus::Completed,
            "{context}"
        );
    }
    let order = store.order(order_id).await.expect("order");
    assert_eq!(
        (order.status, order.paid_amount),
        (OrderStatus::Paid, usd(30000)),
        "{context}"
    );
    let rows = outbox_of_order(store, order_id).await;
    let kinds: Vec<&str> = rows.iter().map(|row| row.kind.as_str()).collect();
    assert_eq!(kinds, ["order.paid", "order.overpaid"], "{context}");
    let (paid_by, overpaid_by) = (rows[0].payment_id, rows[1].payment_id);
    let mut both = [paid_by, overpaid_by];
    both.sort_unstable();
    assert_eq!(both, payments.map(|p| p.id.0), "{context}: {rows:?}");
    let body: serde_json::Value = serde_json::from_str(&rows[1].payload).expect("JSON");
    assert_eq!(
        body["payment_ids"],
        serde_json::json!([paid_by, overpaid_by]),
        "{context}: the overpaid row names the payment that paid first"
    );
    assert_eq!(body["paid_amount"], "300.00", "{context}");
    PaymentId(paid_by)
}

/// An order of 150.00 with two pending Stripe payments of 150.00, and the
/// success event of each (by external id).
async fn order_paid_twice(store: &DieselStore) -> (OrderId, [Payment; 2], [EventToApply; 2]) {
    let shop_order = order(store, usd(15000)).await;
    let mut payments = Vec::new();
    let mut events = Vec::new();
    for _ in 0..2 {
        let external_id = fresh_id("pi");
        let created = payment_for(store, shop_order.id, usd(15000)).await;
        let pending = store
            .mark_pending(created.id, external_id.clone(), AmountPolicy::Warn, at(2))
            .await
            .expect("mark pending");
        events.push(warn(succeeded(
            &fresh_id("evt"),
            by_external_id(&external_id),
            Some(usd(15000)),
        )));
        payments.push(pending);
    }
    let payments: [Payment; 2] = payments.try_into().expect("two payments");
    let events: [EventToApply; 2] = events.try_into().expect("two events");
    (shop_order.id, payments, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_payments_of_one_order_completing_in_two_processes_overpay_it_once() {
    for_each_backend(options(), |Backend { name, url, store }| async move {
        // Two pools on one database, as two server processes have, each
        // with its own group-commit writer.
        let other = DieselStore::open(&url, &options()).expect("open a second pool");
        let mut first_won = 0;
        for round in 0..20 {
            let (order_id, payments, events) = order_paid_twice(&store).await;
            let deliveries = [
                (store.clone(), events[0].clone()),
                (other.clone(), events[1].clone()),
            ];
            let answers = tokio::task::spawn_blocking(move || {
                let barrier = Arc::new(std::sync::Barrier::new(deliveries.len()));
                let threads: Vec<_> = deliveries
                    .into_iter()
                    .map(|(store, event)| {
                        let barrier = Arc::clone(&barrier);
                        std::thread::spawn(move || {
                            let runtime = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .expect("runtime");
                            barrier.wait();
                            runtime.block_on(store.apply_event(event))
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|thread| thread.join().expect("thread panicked"))
                    .collect::<Vec<_>>()
            })
            .await
            .expect("blocking task");
            for answer in &answers {
                assert!(
                    matches!(
                        answer,
                        Ok(Applied::Decided {
                            outcome: Outcome::Confirmed,
                            ..
                        })
                    ),
                    "{name} round {round}: {answers:?}"
                );
            }
            let context = format!("{name} round {round}");
            let paid_by =
                assert_paid_then_overpaid(&store, &context, order_id, [&payments[0], &payments[1]])
                    .await;
            if paid_by == payments[0].id {
                first_won += 1;
            }
        }
        eprintln!("{name}: the first process paid the order in {first_won} of 20 rounds");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_payments_of_one_order_completing_in_one_batch_overpay_it_once() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        let (order_id, payments, events) = order_paid_twice(&store).await;
        let answers = store
            .apply_batch(events.to_vec())
            .await
            .expect("apply the batch");
        for answer in &answers {
            assert!(
                matches!(
                    answer,
                    Ok(Applied::Decided {
                        outcome: Outcome::Confirmed,
                        ..
                    })
                ),
                "{name}: {answers:?}"
            );
        }
        let paid_by =
            assert_paid_then_overpaid(&store, name, order_id, [&payments[0], &payments[1]]).await;
        assert_eq!(
            paid_by, payments[0].id,
            "{name}: the batch applies in order"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_payments_claiming_one_external_id_at_once_get_a_named_refusal() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        for round in 0..20 {
            let first = created_payment(&store, "stripe", usd(15000)).await;
            let second = created_payment(&store, "stripe", usd(15000)).await;
            let external_id = fresh_id("pi");
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let tasks: Vec<_> = [first.id, second.id]
                .into_iter()
                .map(|id| {
                    let store = store.clone();
                    let barrier = Arc::clone(&barrier);
                    let external_id = external_id.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store
                            .mark_pending(id, external_id, AmountPolicy::Warn, at(10))
                            .await
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.expect("task panicked"));
            }
            let winners: Vec<_> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
            assert_eq!(winners.len(), 1, "{name} round {round}: {answers:?}");
            let winner = winners[0].id;
            assert!(
                answers
                    .iter()
                    .any(|a| matches!(a, Err(StoreError::ExternalIdTaken(id)) if *id == winner)),
                "{name} round {round}: the loser must be told who holds the id: {answers:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redeliveries_of_an_open_event_arriving_at_once_apply_it_once() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        // Open because the amount was refused: re-deliveries under `warn` race.
        let payment = pending_payment(&store, "stripe", &fresh_id("pi"), usd(15000)).await;
        let event = succeeded(
            &fresh_id("evt"),
            by_transaction_id(&payment.transaction_id),
            Some(usd(1)),
        );
        let first = store
            .apply_event(crate::support::to_apply(
                event.clone(),
                AmountPolicy::Reject,
            ))
            .await
            .expect("apply under reject");
        assert!(
            matches!(
                first,
                Applied::Decided {
                    outcome: Outcome::AmountRejected,
                    ..
                }
            ),
            "{name}: {first:?}"
        );
        let answers = apply_at_once(&store, vec![warn(event); 10]).await;
        let confirmed = answers
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Ok(Applied::Decided {
                        outcome: Outcome::Confirmed,
                        ..
                    })
                )
            })
            .count();
        let duplicates = answers
            .iter()
            .filter(|a| matches!(a, Ok(Applied::Duplicate { payment: Some(_) })))
            .count();
        assert_eq!((confirmed, duplicates), (1, 9), "{name}: {answers:?}");
        assert_eq!(
            outbox_kinds(&store, &payment).await,
            ["order.paid", "payment.amount_mismatch"],
            "{name}"
        );

        // Open because it matched nothing: the payment it names appears
        // afterwards. (Marking a payment pending applies such events itself;
        // see `audit.rs`.)
        let transaction_id = fresh_transaction_id();
        let event = succeeded(&fresh_id("evt"), by_transaction_id(&transaction_id), None);
        let first = store
            .apply_event(warn(event.clone()))
            .await
            .expect("apply unmatched");
        assert_eq!(first, Applied::Unmatched, "{name}");
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
        let answers = apply_at_once(&store, vec![warn(event); 10]).await;
        let confirmed = answers
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Ok(Applied::Decided {
                        outcome: Outcome::Confirmed,
                        ..
                    })
                )
            })
            .count();
        assert_eq!(confirmed, 1, "{name}: {answers:?}");
        assert_eq!(
            outbox_kinds(&store, &payment).await,
            ["order.paid"],
            "{name}"
        );
    })
    .await;
}

/// The database drops every connection of the store in the middle of a
/// stream. A group-commit writer keeps its connection from one batch to
/// the next while events are queued (`group.rs`), but never one that
/// failed: the events of the batches that ran on a dropped connection fail
/// with an error (never a wrong answer), and then every event applies, on
/// connections the pool replaced. Sent again, the failed ones confirm
/// their payments (or were committed after all: a duplicate), and every
/// order is paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_dropped_in_a_stream_fail_events_only_until_they_are_replaced() {
    use diesel::{Connection, PgConnection, RunQueryDsl};

    let Some(db) = crate::support::postgres_db() else {
        return;
    };
    let store = db.open_migrated(&options());
    let mut payments = Vec::new();
    for _ in 0..160 {
        let external_id = fresh_id("pi");
        let payment = pending_payment(&store, "stripe", &external_id, usd(1000)).await;
        payments.push((payment, external_id));
    }
    let success = |external_id: &str| {
        warn(succeeded(
            &fresh_id("evt"),
            by_external_id(external_id),
            Some(usd(1000)),
        ))
    };
    let events: Vec<EventToApply> = payments.iter().map(|(_, x)| success(x)).collect();
    let (first, second) = events.split_at(100);

    // The first hundred as a stream, with every other connection to the
    // database terminated while it runs.
    let stream: Vec<_> = first
        .iter()
        .cloned()
        .map(|event| {
            let store = store.clone();
            tokio::spawn(async move { store.apply_event(event).await })
        })
        .collect();
    let url = db.url.clone();
    let terminated = tokio::task::spawn_blocking(move || {
        let mut admin = PgConnection::establish(&url).expect("connect");
        diesel::sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut admin)
        .expect("terminate the store's connections")
    })
    .await
    .expect("terminate");
    let mut failed = Vec::new();
    for (task, event) in stream.into_iter().zip(first) {
        match task.await.expect("task panicked") {
            Ok(Applied::Decided { outcome, .. }) => assert_eq!(outcome, Outcome::Confirmed),
            Ok(other) => panic!("a first delivery answered {other:?}"),
            Err(_) => failed.push(event.clone()),
        }
    }
    println!(
        "{terminated} connections terminated; {} of 100 events failed",
        failed.len()
    );

    // Then every event applies.
    for answer in apply_at_once(&store, second.to_vec()).await {
        match answer {
            Ok(Applied::Decided { outcome, .. }) => assert_eq!(outcome, Outcome::Confirmed),
            other => panic!("after the connections were dropped: {other:?}"),
        }
    }
    for answer in apply_at_once(&store, failed).await {
        match answer {
            Ok(Applied::Decided { outcome, .. }) => assert_eq!(outcome, Outcome::Confirmed),
            Ok(Applied::Duplicate { .. }) => {}
            other => panic!("a failed event sent again: {other:?}"),
        }
    }
    for (payment, _) in &payments {
        let now = store.payment(payment.id).await.expect("read payment");
        assert_eq!(now.status, PaymentStatus::Completed);
        assert_eq!(outbox_kinds(&store, payment).await, ["order.paid"]);
    }
}
