//! The outbox as the dispatcher drives it, on both backends: claims in
//! order per order, leases that expire, failed and dead rows, re-queueing,
//! and concurrent claimers (as several processes) taking disjoint rows.

use std::collections::HashSet;
use std::time::Duration;

use chrono::TimeDelta;
use payhook_domain::ports::{OutboxStore, Store, StoreError};
use payhook_domain::{OutboxStatus, Payment, RetryPolicy};
use payhook_store_diesel::{DieselStore, StoreOptions};

use crate::support::{
    at, by_external_id, failed, for_each_backend, fresh_id, pending_payment, succeeded, usd, warn,
    Backend,
};

const LEASE: Duration = Duration::from_secs(30);

fn options() -> StoreOptions {
    StoreOptions {
        pool_size: 8,
        ..StoreOptions::default()
    }
}

/// A pending payment that then fails and completes with another amount:
/// three outbox rows for one order (payment.failed, order.paid,
/// payment.amount_mismatch), all due at `at(100)`.
async fn three_rows(store: &DieselStore) -> Payment {
    let external_id = fresh_id("pi");
    let payment = pending_payment(store, "stripe", &external_id, usd(15000)).await;
    store
        .apply_event(warn(failed(&fresh_id("evt"), by_external_id(&external_id))))
        .await
        .expect("fail");
    store
        .apply_event(warn(succeeded(
            &fresh_id("evt"),
            by_external_id(&external_id),
            Some(usd(14000)),
        )))
        .await
        .expect("confirm");
    payment
}

/// A confirmed payment: one order.paid row.
async fn one_row(store: &DieselStore) -> Payment {
    let external_id = fresh_id("pi");
    let payment = pending_payment(store, "stripe", &external_id, usd(15000)).await;
    store
        .apply_event(warn(succeeded(
            &fresh_id("evt"),
            by_external_id(&external_id),
            Some(usd(15000)),
        )))
        .await
        .expect("confirm");
    payment
}

fn kinds(messages: &[payhook_domain::OutboxMessage]) -> Vec<&'static str> {
    messages.iter().map(|m| m.kind.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_oldest_pending_row_of_each_order_is_claimed() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        let first = three_rows(&store).await;
        let second = one_row(&store).await;
        let now = at(100);
        // Not due before their time.
        assert!(store.claim_due(at(99), LEASE, 10).await.unwrap().is_empty());

        let claimed = store.claim_due(now, LEASE, 10).await.expect("claim");
        assert_eq!(kinds(&claimed), ["payment.failed", "order.paid"], "{name}");
        assert_eq!(claimed[0].order_id, first.order_id);
        assert_eq!(claimed[1].order_id, second.order_id);
        // Leased: nothing more now, and the second row of the order waits.
        assert!(
            store.claim_due(now, LEASE, 10).await.unwrap().is_empty(),
            "{name}"
        );

        store
            .mark_delivered(claimed[0].id, now)
            .await
            .expect("delivered");
        let next = store.claim_due(now, LEASE, 10).await.expect("claim");
        assert_eq!(kinds(&next), ["order.paid"], "{name}");
        assert_eq!(next[0].order_id, first.order_id);
        store
            .mark_delivered(next[0].id, now)
            .await
            .expect("delivered");
        let last = store.claim_due(now, LEASE, 10).await.expect("claim");
        assert_eq!(kinds(&last), ["payment.amount_mismatch"], "{name}");
        assert!(
            matches!(
                store.mark_delivered(987_654, now).await,
                Err(StoreError::NotificationNotFound(987_654))
            ),
            "{name}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_batch_is_marked_delivered_at_once() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        let first = three_rows(&store).await;
        one_row(&store).await;
        one_row(&store).await;
        let now = at(100);
        let claimed = store.claim_due(now, LEASE, 10).await.expect("claim");
        assert_eq!(claimed.len(), 3, "{name}");
        let mut ids: Vec<i64> = claimed.iter().map(|m| m.id).collect();
        // An id with no row is passed over, not an error.
        ids.push(987_654);
        let marked = store
            .mark_all_delivered(&ids, at(101))
            .await
            .expect("marked");
        assert_eq!(marked, 3, "{name}");
        let delivered = store
            .notifications(Some(OutboxStatus::Delivered), 10)
            .await
            .expect("delivered rows");
        assert_eq!(delivered.len(), 3, "{name}");
        assert!(
            delivered.iter().all(|m| m.delivered_at == Some(at(101))),
            "{name}: {delivered:?}"
        );
        // Leases released and the first order's next row now due.
        let next = store.claim_due(now, LEASE, 10).await.expect("claim");
        assert_eq!(kinds(&next), ["order.paid"], "{name}");
        assert_eq!(next[0].order_id, first.order_id, "{name}");
        assert_eq!(store.mark_all_delivered(&[], now).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_claimed_again() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        one_row(&store).await;
        let claimed = store.claim_due(at(100), LEASE, 10).await.expect("claim");
        assert_eq!(claimed.len(), 1, "{name}");
        assert!(store
            .claim_due(at(129), LEASE, 10)
            .await
            .unwrap()
            .is_empty());
        let again = store.claim_due(at(131), LEASE, 10).await.expect("claim");
        assert_eq!(again.len(), 1, "{name}: the crashed claim expired");
        assert_eq!(again[0].id, claimed[0].id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_then_die_and_a_dead_row_is_requeued() {
    for_each_backend(options(), |Backend { name, store, .. }| async move {
        let payment = three_rows(&store).await;
        let policy = RetryPolicy {
            base: Duration::from_secs(5),
            max: Duration::from_secs(600),
            max_attempts: 2,
        };
        let head = store.claim_due(at(100), LEASE, 10).await.unwrap().remove(0);
        let status = store
            .mark_failed(head.id, "the shop answered 500", at(100), &policy, 1.0)
            .await
            .expect("mark failed");
        assert_eq!(status, OutboxStatus::Pending, "{name}");
        let pending = store
            .notifications(Some(OutboxStatus::Pending), 10)
            .await
            .unwrap();
        let row = pending.iter().find(|m| m.id == head.id).expect("the row");
        assert_eq!(row.attempts, 1);
        assert_eq!(row.last_error.as_deref(), Some("the shop answered 500"));
        assert_eq!(row.next_attempt_at, at(100) + TimeDelta::seconds(5));
        // Still blocking the rest of its order, and not due before 105.
        assert!(
            store
                .claim_due(at(104), LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );

        let retry = store.claim_due(at(105), LEASE, 10).await.expect("claim");
        assert_eq!(retry[0].id, head.id, "{name}");
        let status = store
            .mark_failed(head.id, "timeout", at(105), &policy, 1.0)
            .await
            .unwrap();
        assert_eq!(status, OutboxStatus::Dead, "{name}");
        let dead = store
            .notifications(Some(OutboxStatus::Dead), 10)
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attempts, 2);

        // A dead row does not block the rows after it.
        let next = store.claim_due(at(105), LEASE, 10).await.unwrap();
        assert_eq!(kinds(&next), ["order.paid"], "{name}");
        assert_eq!(next[0].order_id, payment.order_id);

        assert!(matches!(
            store.requeue(next[0].id, at(106)).await,
            Err(StoreError::NotificationNotDead { .. })
        ));
        assert!(matches!(
            store.requeue(424_242, at(106)).await,
            Err(StoreError::NotificationNotFound(424_242))
        ));
        let requeued = store.requeue(head.id, at(106)).await.expect("requeue");
        assert_eq!(requeued.status, OutboxStatus::Pending);
        assert_eq!(requeued.attempts, 0);
        assert_eq!(requeued.next_attempt_at, at(106));
        // Pending again and older, it is the head of its order once more.
        store.mark_delivered(next[0].id, at(106)).await.unwrap();
        let claimed = store.claim_due(at(106), LEASE, 10).await.unwrap();
        assert_eq!(claimed[0].id, head.id, "{name}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_take_disjoint_rows() {
    for_each_backend(options(), |Backend { name, url, store }| async move {
        const ROWS: usize = 200;
        for _ in 0..ROWS {
            one_row(&store).await;
        }
        // Four "processes", each with a pool of its own, claiming in small batches.
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    runtime.block_on(async move {
                        let store =
                            DieselStore::open(&url, &StoreOptions::default()).expect("open");
                        let mut mine = Vec::new();
                        loop {
                            let claimed = store.claim_due(at(100), LEASE, 7).await.expect("claim");
                            if claimed.is_empty() {
                                break;
                            }
                            mine.extend(claimed.into_iter().map(|m| m.id));
                        }
                        mine
                    })
                })
            })
            .collect();
        let mut seen = HashSet::new();
        let mut total = 0;
        for handle in handles {
            let ids = handle.join().expect("a claimer");
            total += ids.len();
            seen.extend(ids);
        }
        assert_eq!(total, ROWS, "{name}: every row claimed once");
        assert_eq!(seen.len(), ROWS, "{name}: no row claimed twice");
    })
    .await;
}

/// The soak's faults on PostgreSQL: with statistics that say pending rows
/// are rare (taken while the outbox kept up, or never taken), the planner
/// found each candidate's earlier rows by scanning every pending row (an
/// anti join's join filter, then the old `(status, next_attempt_at)` index
/// by its status alone), or sorted every due row before taking 32: claims
/// of seconds to minutes over the soak's backlog. The claim must stay the
/// due index read in order, with one probe of `outbox_order` per
/// candidate, whatever the statistics say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_in_order_and_probes_each_order_whatever_the_statistics() {
    use diesel::{Connection, PgConnection, RunQueryDsl};

    let Some(db) = crate::support::postgres_db() else {
        return;
    };
    let store = db.open_migrated(&options());
    let mut pg = PgConnection::establish(&db.url).expect("a direct connection");
    let mut run = |statements: &[&str]| {
        for statement in statements {
            diesel::sql_query(*statement)
                .execute(&mut pg)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    };
    let plan_is_sound = |plan: Vec<String>, when: &str| {
        let text = plan.join("\n");
        assert!(
            !text.contains("Join Filter") && !text.contains("Sort"),
            "{when}: a claim sorts or joins by a filter:\n{text}"
        );
        assert!(
            plan.iter()
                .any(|line| line.contains("Index Scan using outbox_pending_due on outbox o")),
            "{when}: the due index read in order:\n{text}"
        );
        assert!(
            plan.iter()
                .any(|line| line.contains("Index Cond") && line.contains("order_id = o.order_id")),
            "{when}: each candidate's order probed through an index:\n{text}"
        );
    };
    let new_rows = |status: &str, copies: u32, offset: u32| {
        format!(
            "INSERT INTO outbox (kind, order_id, payment_id, payload, status, attempts, \
             next_attempt_at, created_at) \
             SELECT 'order.paid', p.order_id, p.id, '{{}}', '{status}', 0, \
             now() - interval '1 minute', now() - interval '1 minute' \
             FROM payments p, generate_series(1, {copies}) ORDER BY p.id LIMIT 4000 OFFSET {offset}"
        )
    };
    run(&[
        "INSERT INTO orders (client_id, total_minor, currency, status, created_at, updated_at) \
         SELECT 'shop', 100, 'USD', 'paid', now(), now() FROM generate_series(1, 4000)",
        "INSERT INTO payments (order_id, transaction_id, payment_method, amount_minor, currency, \
         status, created_at, updated_at) \
         SELECT id, 'TXN-' || id, 'stripe', 100, 'USD', 'completed', now(), now() FROM orders",
    ]);
    // Never analyzed: 2 000 delivered rows, then two pending rows for
    // each of 2 000 other orders.
    run(&[&new_rows("delivered", 1, 0), &new_rows("pending", 2, 4000)]);
    plan_is_sound(
        store
            .explain_claim(chrono::Utc::now(), 32)
            .await
            .expect("a plan"),
        "never analyzed",
    );
    // Analyzed while every row was delivered, then a burst.
    run(&[
        "UPDATE outbox SET status = 'delivered'",
        "ANALYZE outbox",
        "UPDATE outbox SET status = 'pending' WHERE id > 2000",
    ]);
    plan_is_sound(
        store
            .explain_claim(chrono::Utc::now(), 32)
            .await
            .expect("a plan"),
        "analyzed while delivered",
    );

    // And the claim still takes the oldest pending row of each order.
    let claimed = store
        .claim_due(chrono::Utc::now(), LEASE, 32)
        .await
        .expect("a claim");
    assert_eq!(claimed.len(), 32);
    let orders: HashSet<i64> = claimed.iter().map(|m| m.order_id.0).collect();
    assert_eq!(orders.len(), 32, "one row per order");
    #[derive(diesel::QueryableByName)]
    struct First {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let mut reader = PgConnection::establish(&db.url).expect("a direct connection");
    let firsts: HashSet<i64> = diesel::sql_query(
        "SELECT min(id) AS id FROM outbox WHERE status = 'pending' GROUP BY order_id",
    )
    .load::<First>(&mut reader)
    .expect("each order's first pending row")
    .into_iter()
    .map(|first| first.id)
    .collect();
    assert_eq!(firsts.len(), 2000);
    for message in &claimed {
        assert!(
            firsts.contains(&message.id),
            "not its order's first: {message:?}"
        );
    }
}
