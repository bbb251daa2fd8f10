//! Audit and replay on the real store: listing recorded events with filters
//! and pages, reading one back with its raw body, replaying one through the
//! domain's webhook service, and the events that arrived before their
//! payment was marked pending, applied in the mark-pending transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use payhook_domain::ports::{
    Applied, EventFilter, EventOutcome, EventToApply, Store, StoreError, StoredEvent,
};
use payhook_domain::testing::FixedClock;
use payhook_domain::{
    AmountMismatch, AmountPolicy, GatewayEvent, NewPayment, OrderStatus, Outcome, Payment,
    PaymentId, PaymentRef, PaymentStatus, References, WebhookError, WebhookOutcome, WebhookService,
};
use payhook_store_diesel::{DieselStore, StoreOptions};

use crate::support::{
    at, by_external_id, by_gateway_reference, by_transaction_id, created_payment, failed,
    for_each_backend, fresh_id, fresh_transaction_id, order, outbox_kinds, pending_payment,
    succeeded, usd, Backend,
};

/// `event` arriving at `received_at` with `payload` as its raw body, under `warn`.
fn arriving(event: GatewayEvent, payload: &[u8], received_at: DateTime<Utc>) -> EventToApply {
    EventToApply {
        event,
        payload: payload.to_vec(),
        policy: AmountPolicy::Warn,
        received_at,
        source: payhook_domain::ports::EventSource::Webhook,
    }
}

/// The same event as a PayPal one.
fn on_paypal(mut event: GatewayEvent) -> GatewayEvent {
    event.gateway = "paypal".into();
    event.event_type = "PAYMENT.CAPTURE.COMPLETED".into();
    event
}

/// A webhook service over `store` whose clock says `now`.
fn service(store: &DieselStore, policy: AmountPolicy, now: DateTime<Utc>) -> WebhookService {
    WebhookService::new(
        Arc::new(store.clone()),
        Arc::new(FixedClock::new(now)),
        policy,
    )
}

/// The ids of `events`, in their order.
fn ids(events: &[StoredEvent]) -> Vec<i64> {
    events.iter().map(|event| event.id).collect()
}

/// The record of the event `event_id` of `gateway`.
async fn record(store: &DieselStore, gateway: &str, event_id: &str) -> StoredEvent {
    let all = store
        .webhook_events(EventFilter {
            gateway: Some(gateway.into()),
            limit: EventFilter::MAX_LIMIT,
            ..EventFilter::default()
        })
        .await
        .expect("list events");
    all.into_iter()
        .find(|event| event.event.event_id == event_id)
        .unwrap_or_else(|| panic!("no record of {gateway}/{event_id}"))
}

/// A payment in `created` whose transaction id is `transaction_id`.
async fn payment_with_transaction_id(store: &DieselStore, transaction_id: String) -> Payment {
    let order = order(store, usd(15000)).await;
    store
        .create_payment(
            NewPayment {
                order_id: order.id,
                transaction_id,
                payment_method: "stripe".into(),
                amount: usd(15000),
            },
            at(1),
        )
        .await
        .expect("create payment")
}

/// Runs `sql` on the test database behind the store's back.
fn execute(url: &str, sql: &str) {
    let affected = match url.strip_prefix("sqlite://") {
        Some(path) => diesel::sql_query(sql)
            .execute(&mut SqliteConnection::establish(path).expect("open the SQLite file")),
        None => diesel::sql_query(sql)
            .execute(&mut PgConnection::establish(url).expect("connect to PostgreSQL")),
    };
    assert_eq!(affected.expect("the statement runs"), 1, "{sql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_by_id_with_every_filter() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = pending_payment(&store, "stripe", "pi_listed", usd(15000)).await;
            let arrivals = [
                (
                    succeeded("evt_confirmed", by_external_id("pi_listed"), None),
                    at(100),
                ),
                (
                    succeeded("evt_nobody", by_external_id("pi_nobody"), None),
                    at(200),
                ),
                (
                    on_paypal(succeeded("WH-NOBODY", by_external_id("ORDER-1"), None)),
                    at(300),
                ),
                (
                    failed("evt_late_failure", by_external_id("pi_listed")),
                    at(400),
                ),
            ];
            for (event, received_at) in arrivals {
                store
                    .apply_event(arriving(event, b"{}", received_at))
                    .await
                    .expect("apply");
            }
            let all = store
                .webhook_events(EventFilter::default())
                .await
                .expect("list");
            let names: Vec<&str> = all.iter().map(|e| e.event.event_id.as_str()).collect();
            assert_eq!(
                names,
                [
                    "evt_confirmed",
                    "evt_nobody",
                    "WH-NOBODY",
                    "evt_late_failure"
                ],
                "{name}"
            );
            assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id), "{name}");
            let [confirmed, nobody, paypal, late] = [&all[0], &all[1], &all[2], &all[3]];
            assert_eq!(
                confirmed.outcome,
                EventOutcome::Decided(Outcome::Confirmed),
                "{name}"
            );
            assert_eq!(confirmed.payment_id, Some(payment.id), "{name}");
            assert_eq!(confirmed.attempts, 1, "{name}");
            assert_eq!(confirmed.received_at, at(100), "{name}");
            assert_eq!(confirmed.processed_at, at(100), "{name}");
            assert_eq!(
                confirmed.event.references,
                by_external_id("pi_listed"),
                "{name}"
            );
            assert_eq!(nobody.outcome, EventOutcome::Unmatched, "{name}");
            assert_eq!(nobody.payment_id, None, "{name}");
            assert_eq!(
                late.outcome,
                EventOutcome::Decided(Outcome::LateFailureIgnored),
                "{name}"
            );

            let list = |filter: EventFilter| {
                let store = store.clone();
                async move { ids(&store.webhook_events(filter).await.expect("list")) }
            };
            assert_eq!(
                list(EventFilter {
                    gateway: Some("paypal".into()),
                    ..EventFilter::default()
                })
                .await,
                [paypal.id],
                "{name}: gateway"
            );
            assert_eq!(
                list(EventFilter {
                    outcome: Some(EventOutcome::Unmatched),
                    ..EventFilter::default()
                })
                .await,
                [nobody.id, paypal.id],
                "{name}: outcome"
            );
            assert_eq!(
                list(EventFilter {
                    outcome: Some(EventOutcome::Decided(Outcome::Confirmed)),
                    ..EventFilter::default()
                })
                .await,
                [confirmed.id],
                "{name}: outcome"
            );
            assert_eq!(
                list(EventFilter {
                    payment_id: Some(payment.id),
                    ..EventFilter::default()
                })
                .await,
                [confirmed.id, late.id],
                "{name}: payment"
            );
            assert_eq!(
                list(EventFilter {
                    payment_id: Some(PaymentId(31_337)),
                    ..EventFilter::default()
                })
                .await,
                Vec::<i64>::new(),
                "{name}: unknown payment"
            );
            // A half-open window: from `received_after`, up to but not
            // including `received_before`.
            assert_eq!(
                list(EventFilter {
                    received_after: Some(at(200)),
                    received_before: Some(at(400)),
                    ..EventFilter::default()
                })
                .await,
                [nobody.id, paypal.id],
                "{name}: window"
            );
            assert_eq!(
                list(EventFilter {
                    gateway: Some("stripe".into()),
                    received_after: Some(at(150)),
                    ..EventFilter::default()
                })
                .await,
                [nobody.id, late.id],
                "{name}: gateway and time"
            );
            assert_eq!(
                list(EventFilter {
                    limit: 2,
                    ..EventFilter::default()
                })
                .await,
                [confirmed.id, nobody.id],
                "{name}: limit"
            );
            assert_eq!(
                list(EventFilter {
                    after_id: Some(nobody.id),
                    limit: 2,
                    ..EventFilter::default()
                })
                .await,
                [paypal.id, late.id],
                "{name}: cursor"
            );
            assert_eq!(
                list(EventFilter {
                    after_id: Some(late.id),
                    ..EventFilter::default()
                })
                .await,
                Vec::<i64>::new(),
                "{name}: past the end"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_pages_with_a_cursor_until_the_last_page() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let webhooks = service(&store, AmountPolicy::Warn, at(1000));
            for n in 0..5 {
                store
                    .apply_event(arriving(
                        succeeded(&format!("evt_page_{n}"), by_external_id("pi_none"), None),
                        b"{}",
                        at(n),
                    ))
                    .await
                    .expect("apply");
            }
            let mut pages = Vec::new();
            let mut after_id = None;
            loop {
                let page = webhooks
                    .events(EventFilter {
                        after_id,
                        limit: 2,
                        ..EventFilter::default()
                    })
                    .await
                    .expect("a page");
                pages.push(page.items.len());
                match page.next_after_id {
                    Some(next) => {
                        assert_eq!(Some(next), page.items.last().map(|e| e.id), "{name}");
                        after_id = Some(next);
                    }
                    None => break,
                }
            }
            assert_eq!(pages, [2, 2, 1], "{name}");

            // The page that holds the last event says so: no empty page follows.
            let four = webhooks
                .events(EventFilter {
                    limit: 4,
                    after_id: Some(0),
                    ..EventFilter::default()
                })
                .await
                .expect("a page");
            assert_eq!(four.items.len(), 4, "{name}");
            assert!(four.next_after_id.is_some(), "{name}");
            let five = webhooks
                .events(EventFilter {
                    limit: 5,
                    ..EventFilter::default()
                })
                .await
                .expect("a page");
            assert_eq!((five.items.len(), five.next_after_id), (5, None), "{name}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_read_back_with_its_raw_body() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = pending_payment(&store, "stripe", "pi_body", usd(15000)).await;
            let references = References {
                transaction_id: Some(payment.transaction_id.clone()),
                external_id: Some("pi_body".into()),
                gateway_reference: Some("ch_body".into()),
            };
            let event = succeeded("evt_body", references.clone(), Some(usd(14000)));
            // Not UTF-8 on purpose: the body is kept byte for byte.
            let payload = b"{\"id\":\"evt_body\",\"note\":\"\xff\xfe\"}\n".to_vec();
            store
                .apply_event(arriving(event.clone(), &payload, at(42)))
                .await
                .expect("apply");
            let listed = record(&store, "stripe", "evt_body").await;

            let detail = store
                .webhook_event(listed.id)
                .await
                .expect("read")
                .expect("the event exists");
            assert_eq!(detail.payload, payload, "{name}");
            assert_eq!(detail.record, listed, "{name}");
            assert_eq!(detail.record.event, event, "{name}");
            assert_eq!(detail.record.event.amount, Some(usd(14000)), "{name}");
            assert_eq!(detail.record.event.references, references, "{name}");
            assert_eq!(
                detail.record.outcome,
                EventOutcome::Decided(Outcome::Confirmed),
                "{name}"
            );
            assert_eq!(detail.record.payment_id, Some(payment.id), "{name}");
            assert_eq!(detail.record.received_at, at(42), "{name}");

            assert_eq!(
                store.webhook_event(listed.id + 1000).await.expect("read"),
                None,
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_event_of_another_gateway_is_not_applied_on_mark_pending() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let external_id = fresh_id("pi");
            let mut early = succeeded(
                &fresh_id("evt"),
                by_external_id(&external_id),
                Some(usd(15000)),
            );
            early.gateway = "generic".into();
            let applied = store
                .apply_event(arriving(early.clone(), b"{}", at(10)))
                .await
                .expect("apply");
            assert_eq!(applied, Applied::Unmatched, "{name}");
            let payment = created_payment(&store, "stripe", usd(15000)).await;

            let marked = store
                .mark_pending(payment.id, external_id.clone(), AmountPolicy::Warn, at(20))
                .await
                .expect("mark pending");

            assert_eq!(marked.status, PaymentStatus::PendingExternal, "{name}");
            assert_eq!(
                store.order(payment.order_id).await.expect("order").status,
                OrderStatus::Pending,
                "{name}"
            );
            assert!(outbox_kinds(&store, &payment).await.is_empty(), "{name}");
            let events = store.events().await.expect("events");
            let kept = events
                .iter()
                .find(|event| event.event_id == early.event_id)
                .expect("the early event");
            assert_eq!(kept.outcome, "unmatched", "{name}");
            assert_eq!(kept.payment_id, None, "{name}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_event_is_applied_when_its_payment_is_marked_pending() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let external_id = fresh_id("pi");
            let early = succeeded(
                &fresh_id("evt"),
                by_external_id(&external_id),
                Some(usd(15000)),
            );
            let unrelated = succeeded(&fresh_id("evt"), by_external_id(&fresh_id("pi")), None);
            for event in [&early, &unrelated] {
                let applied = store
                    .apply_event(arriving(event.clone(), b"{}", at(10)))
                    .await
                    .expect("apply");
                assert_eq!(applied, Applied::Unmatched, "{name}");
            }
            let payment = created_payment(&store, "stripe", usd(15000)).await;

            let marked = store
                .mark_pending(payment.id, external_id.clone(), AmountPolicy::Warn, at(20))
                .await
                .expect("mark pending");

            assert_eq!(marked.status, PaymentStatus::Completed, "{name}");
            assert_eq!(marked.external_id.as_deref(), Some(&*external_id), "{name}");
            assert_eq!(marked.updated_at, at(20), "{name}");
            assert_eq!(
                store.payment(payment.id).await.expect("payment"),
                marked,
                "{name}"
            );
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
            let applied = record(&store, "stripe", &early.event_id).await;
            assert_eq!(
                applied.outcome,
                EventOutcome::Decided(Outcome::Confirmed),
                "{name}"
            );
            assert_eq!(applied.payment_id, Some(payment.id), "{name}");
            assert_eq!(applied.attempts, 1, "{name}");
            assert_eq!(applied.received_at, at(10), "{name}");
            assert_eq!(applied.processed_at, at(20), "{name}");
            let untouched = record(&store, "stripe", &unrelated.event_id).await;
            assert_eq!(untouched.outcome, EventOutcome::Unmatched, "{name}");

            // Processed now: the gateway's retry is a duplicate.
            let retry = store
                .apply_event(arriving(early, b"{}", at(30)))
                .await
                .expect("retry");
            assert_eq!(
                retry,
                Applied::Duplicate {
                    payment: Some(marked)
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
async fn waiting_events_are_applied_oldest_first_by_either_reference() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let external_id = fresh_id("pi");
            // A failure then a success: the customer retried at the gateway.
            // The success names the id as the gateway's own reference.
            let failure = failed(&fresh_id("evt"), by_external_id(&external_id));
            let success = succeeded(&fresh_id("evt"), by_gateway_reference(&external_id), None);
            for (n, event) in [&failure, &success].into_iter().enumerate() {
                store
                    .apply_event(arriving(event.clone(), b"{}", at(n.try_into().unwrap())))
                    .await
                    .expect("apply");
            }
            let payment = created_payment(&store, "stripe", usd(15000)).await;

            let marked = store
                .mark_pending(payment.id, external_id.clone(), AmountPolicy::Warn, at(20))
                .await
                .expect("mark pending");

            assert_eq!(marked.status, PaymentStatus::Completed, "{name}");
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["payment.failed", "order.paid"],
                "{name}"
            );
            for (event, outcome) in [(&failure, Outcome::Failed), (&success, Outcome::Confirmed)] {
                let stored = record(&store, "stripe", &event.event_id).await;
                assert_eq!(stored.outcome, EventOutcome::Decided(outcome), "{name}");
                assert_eq!(stored.payment_id, Some(payment.id), "{name}");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_event_is_held_to_the_amount_policy_given() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            for policy in [AmountPolicy::Reject, AmountPolicy::Warn] {
                let external_id = fresh_id("pi");
                let early = succeeded(
                    &fresh_id("evt"),
                    by_external_id(&external_id),
                    Some(usd(14000)),
                );
                store
                    .apply_event(arriving(early.clone(), b"{}", at(10)))
                    .await
                    .expect("apply");
                let payment = created_payment(&store, "stripe", usd(15000)).await;

                let marked = store
                    .mark_pending(payment.id, external_id, policy, at(20))
                    .await
                    .expect("mark pending");

                let stored = record(&store, "stripe", &early.event_id).await;
                assert_eq!(stored.payment_id, Some(payment.id), "{name} {policy:?}");
                match policy {
                    AmountPolicy::Reject => {
                        assert_eq!(marked.status, PaymentStatus::PendingExternal, "{name}");
                        assert_eq!(
                            stored.outcome,
                            EventOutcome::Decided(Outcome::AmountRejected),
                            "{name}"
                        );
                        assert!(outbox_kinds(&store, &payment).await.is_empty(), "{name}");
                    }
                    AmountPolicy::Warn => {
                        assert_eq!(marked.status, PaymentStatus::Completed, "{name}");
                        assert_eq!(
                            marked.amount_mismatch,
                            Some(AmountMismatch {
                                expected: usd(15000),
                                received: usd(14000),
                            }),
                            "{name}"
                        );
                        assert_eq!(
                            outbox_kinds(&store, &payment).await,
                            ["order.paid", "payment.amount_mismatch"],
                            "{name}"
                        );
                    }
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_event_that_cannot_be_applied_leaves_the_payment_unmarked() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, url }| async move {
            let external_id = fresh_id("pi");
            let early = succeeded(
                &fresh_id("evt"),
                by_external_id(&external_id),
                Some(usd(15000)),
            );
            store
                .apply_event(arriving(early.clone(), b"{}", at(10)))
                .await
                .expect("apply");
            // Damage the stored event so that applying it fails midway.
            execute(
                &url,
                &format!(
                    "UPDATE webhook_events SET currency = 'ZZZ' WHERE event_id = '{}'",
                    early.event_id
                ),
            );
            let payment = created_payment(&store, "stripe", usd(15000)).await;

            let refused = store
                .mark_pending(payment.id, external_id, AmountPolicy::Warn, at(20))
                .await;

            assert!(
                matches!(refused, Err(StoreError::Backend(_))),
                "{name}: {refused:?}"
            );
            // One transaction: the payment was not marked either.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_racing_the_mark_pending_of_its_payment_is_applied_once() {
    for_each_backend(
        StoreOptions {
            pool_size: 4,
            ..StoreOptions::default()
        },
        |Backend { name, store, .. }| async move {
            for round in 0..20 {
                let external_id = fresh_id("pi");
                let payment = created_payment(&store, "stripe", usd(15000)).await;
                let event = succeeded(&fresh_id("evt"), by_external_id(&external_id), None);
                let barrier = Arc::new(tokio::sync::Barrier::new(2));
                let marking = {
                    let (store, barrier, external_id) =
                        (store.clone(), Arc::clone(&barrier), external_id.clone());
                    let id = payment.id;
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store
                            .mark_pending(id, external_id, AmountPolicy::Warn, at(20))
                            .await
                    })
                };
                let delivering = {
                    let (store, barrier, event) =
                        (store.clone(), Arc::clone(&barrier), event.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store.apply_event(arriving(event, b"{}", at(20))).await
                    })
                };
                let marked = marking.await.expect("task").expect("mark pending");
                let delivered = delivering.await.expect("task").expect("apply");

                // Whichever committed second applied the event; never neither.
                let by_delivery = matches!(
                    delivered,
                    Applied::Decided {
                        outcome: Outcome::Confirmed,
                        ..
                    }
                );
                let by_marking = marked.status == PaymentStatus::Completed;
                assert!(
                    by_delivery != by_marking,
                    "{name} round {round}: {delivered:?} / {marked:?}"
                );
                if by_marking {
                    assert_eq!(delivered, Applied::Unmatched, "{name} round {round}");
                }
                assert_eq!(
                    store.payment(payment.id).await.expect("payment").status,
                    PaymentStatus::Completed,
                    "{name} round {round}"
                );
                assert_eq!(
                    outbox_kinds(&store, &payment).await,
                    ["order.paid"],
                    "{name} round {round}"
                );
                let stored = record(&store, "stripe", &event.event_id).await;
                assert_eq!(
                    stored.outcome,
                    EventOutcome::Decided(Outcome::Confirmed),
                    "{name} round {round}"
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_processed_event_is_a_duplicate() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = pending_payment(&store, "stripe", &fresh_id("pi"), usd(15000)).await;
            let event = succeeded(
                &fresh_id("evt"),
                by_transaction_id(&payment.transaction_id),
                Some(usd(15000)),
            );
            store
                .apply_event(arriving(event.clone(), b"{}", at(10)))
                .await
                .expect("apply");
            let stored = record(&store, "stripe", &event.event_id).await;
            let after_first = store.payment(payment.id).await.expect("payment");

            let replayed = service(&store, AmountPolicy::Warn, at(50))
                .replay(stored.id)
                .await
                .expect("replay");

            assert_eq!(
                replayed,
                WebhookOutcome::Duplicate {
                    payment: Some(PaymentRef::from(&after_first))
                },
                "{name}"
            );
            assert_eq!(
                store.payment(payment.id).await.expect("payment"),
                after_first,
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name}"
            );
            assert_eq!(
                record(&store, "stripe", &event.event_id).await,
                stored,
                "{name}: a duplicate changes nothing"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_an_unmatched_event_after_its_payment_exists_applies_it() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let transaction_id = fresh_transaction_id();
            let event = succeeded(
                &fresh_id("evt"),
                by_transaction_id(&transaction_id),
                Some(usd(15000)),
            );
            let payload = br#"{"id":"replayed"}"#;
            store
                .apply_event(arriving(event.clone(), payload, at(10)))
                .await
                .expect("apply");
            let stored = record(&store, "stripe", &event.event_id).await;
            let webhooks = service(&store, AmountPolicy::Warn, at(50));

            // Still nobody: still unmatched.
            assert_eq!(
                webhooks.replay(stored.id).await.expect("replay"),
                WebhookOutcome::Unmatched {
                    event_id: event.event_id.clone()
                },
                "{name}"
            );

            let payment = payment_with_transaction_id(&store, transaction_id).await;
            let replayed = webhooks.replay(stored.id).await.expect("replay");

            let confirmed = store.payment(payment.id).await.expect("payment");
            assert_eq!(confirmed.status, PaymentStatus::Completed, "{name}");
            assert_eq!(confirmed.updated_at, at(50), "{name}");
            assert_eq!(
                replayed,
                WebhookOutcome::Decided {
                    outcome: Outcome::Confirmed,
                    payment: PaymentRef::from(&confirmed),
                },
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name}"
            );
            let after = store
                .webhook_event(stored.id)
                .await
                .expect("read")
                .expect("exists");
            assert_eq!(
                after.record.outcome,
                EventOutcome::Decided(Outcome::Confirmed),
                "{name}"
            );
            assert_eq!(after.record.attempts, 3, "{name}");
            assert_eq!(after.record.processed_at, at(50), "{name}");
            assert_eq!(after.payload, payload, "{name}: the first body is kept");

            // Now processed: a second replay is a duplicate.
            assert!(
                matches!(
                    webhooks.replay(stored.id).await,
                    Ok(WebhookOutcome::Duplicate { payment: Some(p) }) if p.id == payment.id
                ),
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_refused_amount_uses_the_policy_in_force() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = pending_payment(&store, "stripe", &fresh_id("pi"), usd(15000)).await;
            let event = succeeded(
                &fresh_id("evt"),
                by_transaction_id(&payment.transaction_id),
                Some(usd(1)),
            );
            let mut refused = arriving(event.clone(), b"{}", at(10));
            refused.policy = AmountPolicy::Reject;
            store.apply_event(refused).await.expect("apply");
            let stored = record(&store, "stripe", &event.event_id).await;
            assert_eq!(
                stored.outcome,
                EventOutcome::Decided(Outcome::AmountRejected),
                "{name}"
            );

            let still_refused = service(&store, AmountPolicy::Reject, at(40))
                .replay(stored.id)
                .await
                .expect("replay");
            assert!(
                matches!(
                    still_refused,
                    WebhookOutcome::Decided {
                        outcome: Outcome::AmountRejected,
                        ..
                    }
                ),
                "{name}: {still_refused:?}"
            );
            let confirmed = service(&store, AmountPolicy::Warn, at(50))
                .replay(stored.id)
                .await
                .expect("replay");
            assert!(
                matches!(
                    confirmed,
                    WebhookOutcome::Decided {
                        outcome: Outcome::Confirmed,
                        ..
                    }
                ),
                "{name}: {confirmed:?}"
            );
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
async fn replaying_an_unknown_id_is_not_found() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let webhooks = service(&store, AmountPolicy::Warn, at(50));
            let missing = webhooks.replay(404).await;
            assert!(
                matches!(missing, Err(WebhookError::EventNotFound(404))),
                "{name}: {missing:?}"
            );
            let missing = webhooks.event(404).await;
            assert!(
                matches!(missing, Err(WebhookError::EventNotFound(404))),
                "{name}: {missing:?}"
            );
        },
    )
    .await;
}
