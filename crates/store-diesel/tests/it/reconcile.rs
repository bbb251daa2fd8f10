//! Reconciliation's state in the diesel store: which payments are due, the
//! claim that hands each to one process at a time (two pools racing, on
//! both backends), the last check of a payment, the source of recorded
//! events, and the domain's `Reconciler` running over the store.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::pg::PgConnection;
use diesel::sql_types::BigInt;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use payhook_domain::ports::{Applied, EventFilter, EventSource, Store, StoreError};
use payhook_domain::reconcile::{DueQuery, Mode, ReconcileCheck};
use payhook_domain::testing::FixedClock;
use payhook_domain::{
    AmountPolicy, CheckResult, EventKind, GatewayApi, GatewayApiError, GatewayState, Outcome,
    Payment, PaymentId, PaymentStatus, ReconcileSettings, ReconcileStore, Reconciler,
};
use payhook_store_diesel::{DieselStore, StoreOptions};

use crate::support::{
    at, by_external_id, created_payment, for_each_backend, fresh_id, outbox_kinds, pending_payment,
    succeeded, usd, warn, Backend,
};

/// A payment of `gateway` marked pending at `at(offset)`: its `updated_at`.
async fn pending_since(store: &DieselStore, gateway: &str, offset: i64) -> Payment {
    let payment = created_payment(store, gateway, usd(15000)).await;
    store
        .mark_pending(payment.id, fresh_id("pi"), AmountPolicy::Warn, at(offset))
        .await
        .expect("mark pending")
}

fn query(gateways: &[&str], unchanged_since: i64, now: i64, limit: u32) -> DueQuery {
    DueQuery {
        gateways: gateways.iter().map(|g| (*g).to_owned()).collect(),
        unchanged_since: at(unchanged_since),
        now: at(now),
        limit,
    }
}

fn ids(payments: &[Payment]) -> Vec<PaymentId> {
    payments.iter().map(|payment| payment.id).collect()
}

fn check(at_offset: i64, result: &str, failures: u32) -> ReconcileCheck {
    ReconcileCheck {
        checked_at: at(at_offset),
        gateway_state: Some("payment_intent processing".into()),
        result: result.into(),
        failures,
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The rows of `reconciliations`, read beside the store's pool.
fn reconciliation_rows(url: &str) -> i64 {
    let sql = "SELECT COUNT(*) AS n FROM reconciliations";
    let rows: Vec<Count> = match url.strip_prefix("sqlite://") {
        Some(path) => {
            diesel::sql_query(sql).load(&mut SqliteConnection::establish(path).expect("SQLite"))
        }
        None => diesel::sql_query(sql).load(&mut PgConnection::establish(url).expect("PostgreSQL")),
    }
    .expect("count reconciliations");
    rows[0].n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_payments_are_pending_of_the_gateways_unchanged_and_due_oldest_first() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let oldest = pending_since(&store, "stripe", 5).await;
            let paypal = pending_since(&store, "paypal", 7).await;
            let checked_due_now = pending_since(&store, "stripe", 9).await;
            let first_of_two = pending_since(&store, "stripe", 10).await;
            let second_of_two = pending_since(&store, "stripe", 10).await;
            // Not due: another gateway, changed too recently, not yet
            // pending, no longer pending, or checked and next due later.
            pending_since(&store, "generic", 3).await;
            pending_since(&store, "stripe", 101).await;
            created_payment(&store, "stripe", usd(15000)).await;
            let completed = pending_since(&store, "stripe", 4).await;
            let applied = store
                .apply_event(warn(succeeded(
                    &fresh_id("evt"),
                    by_external_id(completed.external_id.as_deref().expect("external id")),
                    Some(usd(15000)),
                )))
                .await
                .expect("complete");
            assert!(
                matches!(applied, Applied::Decided { .. }),
                "{name}: {applied:?}"
            );
            let checked_later = pending_since(&store, "stripe", 6).await;
            store
                .record_check(checked_later.id, &check(900, "no_change", 0), at(1001))
                .await
                .expect("record");
            store
                .record_check(checked_due_now.id, &check(900, "no_change", 0), at(1000))
                .await
                .expect("record");

            let due = store
                .due_payments(&query(&["stripe", "paypal"], 100, 1000, 10), None)
                .await
                .expect("due");
            assert_eq!(
                ids(&due),
                ids(&[
                    oldest.clone(),
                    paypal.clone(),
                    checked_due_now.clone(),
                    first_of_two.clone(),
                    second_of_two.clone()
                ]),
                "{name}"
            );
            // The payments come back whole, as the store reads them.
            assert_eq!(
                due[0],
                store.payment(oldest.id).await.expect("read"),
                "{name}"
            );
            assert!(
                due.iter()
                    .all(|p| p.status == PaymentStatus::PendingExternal),
                "{name}"
            );

            // The limit keeps the oldest.
            let two = store
                .due_payments(&query(&["stripe", "paypal"], 100, 1000, 2), None)
                .await
                .expect("due");
            assert_eq!(ids(&two), ids(&[oldest.clone(), paypal.clone()]), "{name}");
            // Only the gateways asked for.
            let only_paypal = store
                .due_payments(&query(&["paypal"], 100, 1000, 10), None)
                .await
                .expect("due");
            assert_eq!(ids(&only_paypal), [paypal.id], "{name}");
            // `unchanged_since` is inclusive, and moves the window.
            let older = store
                .due_payments(&query(&["stripe", "paypal"], 7, 1000, 10), None)
                .await
                .expect("due");
            assert_eq!(
                ids(&older),
                ids(&[oldest.clone(), paypal.clone()]),
                "{name}"
            );
            // A second later, the payment checked until then is due too.
            let later = store
                .due_payments(&query(&["stripe"], 100, 1001, 10), None)
                .await
                .expect("due");
            assert_eq!(
                ids(&later),
                ids(&[
                    oldest,
                    checked_later,
                    checked_due_now,
                    first_of_two,
                    second_of_two
                ]),
                "{name}"
            );
            // Nothing asked, nothing returned.
            for empty in [query(&[], 100, 1000, 10), query(&["stripe"], 100, 1000, 0)] {
                assert!(
                    store
                        .due_payments(&empty, Some(Duration::from_secs(300)))
                        .await
                        .expect("due")
                        .is_empty(),
                    "{name}"
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_a_claim_holds_until_it_ends() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, url, store }| async move {
            let first = pending_since(&store, "stripe", 5).await;
            let second = pending_since(&store, "stripe", 6).await;
            let everything = query(&["stripe"], 100, 1000, 10);

            for _ in 0..2 {
                let dry = store
                    .due_payments(&everything, None)
                    .await
                    .expect("dry run");
                assert_eq!(ids(&dry), ids(&[first.clone(), second.clone()]), "{name}");
            }
            assert_eq!(reconciliation_rows(&url), 0, "{name}: a dry run wrote");

            let claimed = store
                .due_payments(&everything, Some(Duration::from_secs(300)))
                .await
                .expect("claim");
            assert_eq!(
                ids(&claimed),
                ids(&[first.clone(), second.clone()]),
                "{name}"
            );
            assert_eq!(reconciliation_rows(&url), 2, "{name}");
            // A claim is not a check.
            assert_eq!(
                store.last_check(first.id).await.expect("last"),
                None,
                "{name}"
            );

            // Until the claim ends, neither a claim nor a dry run returns them.
            for now in [1000, 1299] {
                let at_now = query(&["stripe"], 100, now, 10);
                for claim in [None, Some(Duration::from_secs(300))] {
                    let during = store.due_payments(&at_now, claim).await.expect("due");
                    assert!(during.is_empty(), "{name} at {now}: {during:?}");
                }
            }
            // When it ends they are due again, and can be claimed again.
            let again = store
                .due_payments(
                    &query(&["stripe"], 100, 1300, 10),
                    Some(Duration::from_secs(60)),
                )
                .await
                .expect("claim again");
            assert_eq!(ids(&again), ids(&[first, second]), "{name}");
            assert_eq!(reconciliation_rows(&url), 2, "{name}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_check_round_trips_and_sets_the_next_due_time() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = pending_since(&store, "stripe", 5).await;
            assert_eq!(
                store.last_check(payment.id).await.expect("last"),
                None,
                "{name}"
            );

            let failed = ReconcileCheck {
                checked_at: at(900),
                gateway_state: None,
                result: "error: rate_limited (the gateway is rate limiting (429))".into(),
                failures: 3,
            };
            store
                .record_check(payment.id, &failed, at(2000))
                .await
                .expect("record");
            assert_eq!(
                store.last_check(payment.id).await.expect("last"),
                Some(failed),
                "{name}"
            );
            let due_at = |now| {
                let store = store.clone();
                async move {
                    ids(&store
                        .due_payments(&query(&["stripe"], 100, now, 10), None)
                        .await
                        .expect("due"))
                }
            };
            assert!(due_at(1999).await.is_empty(), "{name}");
            assert_eq!(due_at(2000).await, [payment.id], "{name}");

            // The next check replaces it, all fields.
            let answered = check(2000, "no_change", 0);
            store
                .record_check(payment.id, &answered, at(2300))
                .await
                .expect("record again");
            assert_eq!(
                store.last_check(payment.id).await.expect("last"),
                Some(answered),
                "{name}"
            );
            assert!(due_at(2299).await.is_empty(), "{name}");
            assert_eq!(due_at(2300).await, [payment.id], "{name}");

            // Recording after a claim keeps one row and the check's due time.
            let claimed = store
                .due_payments(
                    &query(&["stripe"], 100, 2300, 10),
                    Some(Duration::from_secs(900)),
                )
                .await
                .expect("claim");
            assert_eq!(ids(&claimed), [payment.id], "{name}");
            store
                .record_check(payment.id, &check(2310, "no_change", 0), at(2400))
                .await
                .expect("record after claim");
            assert_eq!(due_at(2400).await, [payment.id], "{name}");

            // An unknown payment: refused on record, never checked on read.
            let unknown = PaymentId(payment.id.0 + 1_000_000);
            let refused = store
                .record_check(unknown, &check(2000, "no_change", 0), at(2300))
                .await;
            assert!(
                matches!(refused, Err(StoreError::PaymentNotFound(id)) if id == unknown),
                "{name}: {refused:?}"
            );
            assert_eq!(
                store.last_check(unknown).await.expect("last"),
                None,
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_keep_their_source_and_a_duplicate_keeps_the_first() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let external_id = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            let from_webhook = warn(succeeded(
                &fresh_id("evt"),
                by_external_id(&external_id),
                Some(usd(15000)),
            ));
            store
                .apply_event(from_webhook.clone())
                .await
                .expect("webhook");
            // The same event id from the API: a duplicate, source unchanged.
            let duplicate = store
                .apply_event(payhook_domain::ports::EventToApply {
                    source: EventSource::Reconcile,
                    ..from_webhook.clone()
                })
                .await
                .expect("duplicate");
            assert!(
                matches!(duplicate, Applied::Duplicate { .. }),
                "{name}: {duplicate:?}"
            );
            let mut from_api = warn(succeeded(
                &format!("reconcile:{external_id}:succeeded"),
                by_external_id(&external_id),
                Some(usd(15000)),
            ));
            from_api.source = EventSource::Reconcile;
            store.apply_event(from_api.clone()).await.expect("api");
            // And the other way round: the webhook after the API's event.
            let late = store
                .apply_event(payhook_domain::ports::EventToApply {
                    source: EventSource::Webhook,
                    ..from_api.clone()
                })
                .await
                .expect("late webhook");
            assert!(
                matches!(late, Applied::Duplicate { .. }),
                "{name}: {late:?}"
            );

            let listed = |source| {
                let store = store.clone();
                async move {
                    store
                        .webhook_events(EventFilter {
                            source,
                            payment_id: Some(payment.id),
                            ..EventFilter::default()
                        })
                        .await
                        .expect("events")
                        .into_iter()
                        .map(|event| (event.event.event_id, event.source))
                        .collect::<Vec<_>>()
                }
            };
            let webhook_id = from_webhook.event.event_id.clone();
            let api_id = from_api.event.event_id.clone();
            assert_eq!(
                listed(None).await,
                [
                    (webhook_id.clone(), EventSource::Webhook),
                    (api_id.clone(), EventSource::Reconcile)
                ],
                "{name}"
            );
            assert_eq!(
                listed(Some(EventSource::Webhook)).await,
                [(webhook_id, EventSource::Webhook)],
                "{name}"
            );
            assert_eq!(
                listed(Some(EventSource::Reconcile)).await,
                [(api_id, EventSource::Reconcile)],
                "{name}"
            );
            let stored = store
                .webhook_events(EventFilter {
                    source: Some(EventSource::Reconcile),
                    ..EventFilter::default()
                })
                .await
                .expect("events");
            let detail = store
                .webhook_event(stored[0].id)
                .await
                .expect("detail")
                .expect("found");
            assert_eq!(detail.record.source, EventSource::Reconcile, "{name}");
            assert_eq!(detail.payload, from_api.payload, "{name}");
        },
    )
    .await;
}

fn pool_of(size: u32) -> StoreOptions {
    StoreOptions {
        pool_size: size,
        ..StoreOptions::default()
    }
}

/// Claims with `query` from each store at once, one thread and runtime
/// each (as separate processes would), and returns each one's claim.
async fn claim_at_once(stores: Vec<DieselStore>, query: DueQuery) -> Vec<Vec<PaymentId>> {
    tokio::task::spawn_blocking(move || {
        let barrier = Arc::new(std::sync::Barrier::new(stores.len()));
        let threads: Vec<_> = stores
            .into_iter()
            .map(|store| {
                let barrier = Arc::clone(&barrier);
                let query = query.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    barrier.wait();
                    runtime
                        .block_on(store.due_payments(&query, Some(Duration::from_secs(300))))
                        .map(|claimed| ids(&claimed))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .expect("thread panicked")
                    .expect("claim failed")
            })
            .collect()
    })
    .await
    .expect("blocking task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_claiming_at_once_never_get_the_same_payment() {
    for_each_backend(pool_of(4), |Backend { name, url, store }| async move {
        // A second pool on the same database, as a second server process has.
        let other = DieselStore::open(&url, &pool_of(4)).expect("open a second pool");
        for round in 0..20 {
            // A gateway of its own per round, so that earlier rounds'
            // payments are not due.
            let gateway = format!("race{round}");
            let mut due = BTreeSet::new();
            for n in 0..12 {
                due.insert(pending_since(&store, &gateway, n).await.id);
            }
            // Even rounds: each may take all. Odd rounds: fewer than all,
            // and a third claim afterwards takes what is left.
            let limit = if round % 2 == 0 { 100 } else { 5 };
            let claims = claim_at_once(
                vec![store.clone(), other.clone()],
                query(&[&gateway], 100, 1000, limit),
            )
            .await;
            let mut seen = BTreeSet::new();
            for claim in &claims {
                assert!(
                    claim.len() <= limit as usize,
                    "{name} round {round}: {claims:?}"
                );
                for id in claim {
                    assert!(
                        seen.insert(*id),
                        "{name} round {round}: {id:?} claimed twice: {claims:?}"
                    );
                }
            }
            if limit < 12 {
                let rest = store
                    .due_payments(
                        &query(&[&gateway], 100, 1000, 100),
                        Some(Duration::from_secs(300)),
                    )
                    .await
                    .expect("claim the rest");
                for id in ids(&rest) {
                    assert!(
                        seen.insert(id),
                        "{name} round {round}: {id:?} claimed again by the third claim"
                    );
                }
            }
            assert_eq!(seen, due, "{name} round {round}: {claims:?}");
            // All are held now: nobody gets any until the claim ends.
            let after = other
                .due_payments(
                    &query(&[&gateway], 100, 1000, 100),
                    Some(Duration::from_secs(300)),
                )
                .await
                .expect("claim after");
            assert!(after.is_empty(), "{name} round {round}: {after:?}");
        }
    })
    .await;
}

/// A gateway API answering from a script, counting calls.
struct Scripted {
    answer: RefCell<Result<GatewayState, GatewayApiError>>,
    calls: RefCell<usize>,
}

#[async_trait(?Send)]
impl GatewayApi for Scripted {
    fn gateway(&self) -> &str {
        "stripe"
    }

    async fn state(&self, payment: &Payment) -> Result<GatewayState, GatewayApiError> {
        *self.calls.borrow_mut() += 1;
        let object_id = payment.external_id.clone().unwrap_or_default();
        self.answer
            .borrow()
            .clone()
            .map(|state| GatewayState { object_id, ..state })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_domains_reconciler_completes_a_stuck_payment_once_over_the_store() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let external_id = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            // Another gateway's stuck payment is not this API's business.
            let paypal = pending_since(&store, "paypal", 2).await;
            let api = Rc::new(Scripted {
                answer: RefCell::new(Err(GatewayApiError::RateLimited { retry_after: None })),
                calls: RefCell::new(0),
            });
            let clock = Arc::new(FixedClock::new(at(3600)));
            let shared = Arc::new(store.clone());
            let settings = ReconcileSettings::default();
            let reconciler = Reconciler::new(
                shared.clone(),
                shared,
                clock.clone(),
                AmountPolicy::Warn,
                settings,
            )
            .with_api(api.clone());

            // The gateway rate limits: nothing changes, the failure is kept,
            // and the payment is not due until the backoff ends.
            let limited = reconciler.pass(None, Mode::Apply).await.expect("pass");
            assert_eq!(limited.len(), 1, "{name}: {limited:?}");
            assert!(
                matches!(
                    limited[0].result,
                    CheckResult::Error(GatewayApiError::RateLimited { .. })
                ),
                "{name}: {limited:?}"
            );
            let kept = store
                .last_check(payment.id)
                .await
                .expect("last")
                .expect("checked");
            assert_eq!(kept.failures, 1, "{name}");
            assert_eq!(kept.checked_at, at(3600), "{name}");
            assert!(
                reconciler
                    .pass(None, Mode::Apply)
                    .await
                    .expect("pass")
                    .is_empty(),
                "{name}"
            );
            assert_eq!(*api.calls.borrow(), 1, "{name}");

            // After the backoff the gateway answers: the payment completes.
            *api.answer.borrow_mut() = Ok(GatewayState {
                object_id: String::new(),
                object_type: "payment_intent".into(),
                state: "succeeded".into(),
                kind: Some(EventKind::Succeeded),
                amount: Some(usd(15000)),
                gateway_reference: Some("ch_1".into()),
                body: br#"{"object":"payment_intent","status":"succeeded"}"#.to_vec(),
            });
            clock.set(
                at(3600) + chrono::TimeDelta::from_std(settings.backoff(1, None)).expect("delta"),
            );
            // A dry run says what would change and changes nothing.
            let dry = reconciler.pass(None, Mode::DryRun).await.expect("dry run");
            assert_eq!(dry.len(), 1, "{name}: {dry:?}");
            assert_eq!(
                dry[0].result,
                CheckResult::WouldApply(Outcome::Confirmed),
                "{name}"
            );
            assert_eq!(
                store.payment(payment.id).await.expect("read").status,
                PaymentStatus::PendingExternal,
                "{name}"
            );
            assert_eq!(
                store.last_check(payment.id).await.expect("last"),
                Some(kept),
                "{name}"
            );

            let reports = reconciler.pass(None, Mode::Apply).await.expect("pass");
            assert_eq!(reports.len(), 1, "{name}: {reports:?}");
            assert_eq!(reports[0].payment_id, payment.id, "{name}");
            assert_eq!(
                reports[0].result,
                CheckResult::Applied(Outcome::Confirmed),
                "{name}"
            );
            let completed = store.payment(payment.id).await.expect("read");
            assert_eq!(completed.status, PaymentStatus::Completed, "{name}");
            assert_eq!(
                completed.gateway_reference.as_deref(),
                Some("ch_1"),
                "{name}"
            );
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name}"
            );
            let last = store
                .last_check(payment.id)
                .await
                .expect("last")
                .expect("checked");
            assert_eq!(last.result, "applied: confirmed", "{name}");
            assert_eq!(last.failures, 0, "{name}");
            assert_eq!(
                last.gateway_state.as_deref(),
                Some("payment_intent succeeded"),
                "{name}"
            );

            let events = store
                .webhook_events(EventFilter {
                    source: Some(EventSource::Reconcile),
                    ..EventFilter::default()
                })
                .await
                .expect("events");
            assert_eq!(events.len(), 1, "{name}: {events:?}");
            assert_eq!(
                events[0].event.event_id,
                format!("reconcile:{external_id}:succeeded"),
                "{name}"
            );
            assert_eq!(events[0].payment_id, Some(payment.id), "{name}");

            // A second pass has nothing to do; a manual check finds the event
            // already known, and nothing is notified twice.
            clock.set(at(100_000));
            assert!(
                reconciler
                    .pass(None, Mode::Apply)
                    .await
                    .expect("pass")
                    .is_empty(),
                "{name}"
            );
            let manual = reconciler
                .check(payment.id, Mode::Apply)
                .await
                .expect("check");
            assert_eq!(manual.result, CheckResult::AlreadyKnown, "{name}");
            assert_eq!(
                outbox_kinds(&store, &payment).await,
                ["order.paid"],
                "{name}"
            );
            // The PayPal payment was never asked about, nor claimed.
            assert_eq!(
                store.last_check(paypal.id).await.expect("last"),
                None,
                "{name}"
            );
        },
    )
    .await;
}
