//! The retention pruner: bodies of final events processed before the
//! cut-off are removed (their rows stay, so a re-delivery is still a
//! duplicate), events that can still be applied keep theirs, delivered
//! outbox rows go, batch by batch; a dry run only counts.

use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Binary, Nullable, Timestamp};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use payhook_domain::ports::{Applied, EventToApply, OutboxStore, Store};
use payhook_domain::{AmountPolicy, OrderStatus, Outcome, PaymentStatus};
use payhook_store_diesel::{DieselStore, PruneQuery, PruneReport, StoreOptions};

use crate::support::{
    at, by_external_id, fresh_id, outbox_of, pending_payment, succeeded, to_apply, usd, warn,
    Backend,
};

#[derive(Debug, PartialEq, QueryableByName)]
struct Body {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Binary)]
    payload: Vec<u8>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pruned_at: Option<chrono::NaiveDateTime>,
}

/// Every event's id, body (empty once pruned) and `pruned_at`, read beside
/// the store's pool.
fn bodies(url: &str) -> Vec<Body> {
    let sql = "SELECT e.id, COALESCE(b.payload, X'') AS payload, p.pruned_at \
               FROM webhook_events e \
               LEFT JOIN webhook_event_bodies b ON b.event_row = e.id \
               LEFT JOIN webhook_bodies_pruned p ON p.event_row = e.id \
               ORDER BY e.id";
    let sql = match url.strip_prefix("sqlite://") {
        Some(_) => sql.to_owned(),
        None => sql.replace("X''", "''::bytea"),
    };
    let sql = sql.as_str();
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            diesel::sql_query(sql).load(&mut SqliteConnection::establish(path).expect("SQLite"))
        }
        None => diesel::sql_query(sql).load(&mut PgConnection::establish(url).expect("PostgreSQL")),
    }
    .expect("read bodies")
}

fn body_of(url: &str, id: i64) -> Body {
    bodies(url)
        .into_iter()
        .find(|body| body.id == id)
        .expect("event row")
}

/// `event` as received (and first processed) at `at(offset)`.
fn received(mut event: EventToApply, offset: i64) -> EventToApply {
    event.received_at = at(offset);
    event
}

fn prune(before: i64, batch: u32, dry_run: bool) -> PruneQuery {
    PruneQuery {
        before: at(before),
        batch,
        dry_run,
        now: at(10_000),
    }
}

/// The id of the stored event `event_id`.
async fn event_row(store: &DieselStore, event_id: &str) -> i64 {
    store
        .events()
        .await
        .expect("events")
        .into_iter()
        .find(|event| event.event_id == event_id)
        .expect("recorded")
        .id
}

/// Delivers every due outbox row at `at(offset)`.
async fn deliver_all(store: &DieselStore, offset: i64) {
    let due = store
        .claim_due(at(offset), std::time::Duration::from_secs(60), 100)
        .await
        .expect("claim");
    for message in due {
        store
            .mark_delivered(message.id, at(offset))
            .await
            .expect("delivered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_events_lose_their_body_in_batches_and_stay_duplicates() {
    let options = StoreOptions::default();
    crate::support::for_each_backend(options, |Backend { name, url, store }| async move {
        // Three payments completed by events processed at 100, 110, 120.
        let mut confirmed = Vec::new();
        for offset in [100, 110, 120] {
            let external_id = fresh_id("pi");
            let payment = pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            let event = received(
                warn(succeeded(&fresh_id("evt"), by_external_id(&external_id), Some(usd(15000)))),
                offset,
            );
            let applied = store.apply_event(event.clone()).await.expect("apply");
            assert!(
                matches!(applied, Applied::Decided { outcome: Outcome::Confirmed, .. }),
                "{name}: {applied:?}"
            );
            confirmed.push((payment, event));
        }
        // Their notifications, delivered at 150; one more pending below.
        deliver_all(&store, 150).await;
        // Kept: an unmatched event (it can still be applied), an amount
        // refused under `reject` (a re-delivery is evaluated again), and a
        // final event processed after the cut-off.
        let unmatched_id = fresh_id("pi");
        let unmatched = received(
            warn(succeeded(&fresh_id("evt"), by_external_id(&unmatched_id), Some(usd(15000)))),
            100,
        );
        assert_eq!(
            store.apply_event(unmatched.clone()).await.expect("unmatched"),
            Applied::Unmatched,
            "{name}"
        );
        let refused_id = fresh_id("pi");
        let refused_payment = pending_payment(&store, "stripe", &refused_id, usd(15000)).await;
        let refused = received(
            to_apply(
                succeeded(&fresh_id("evt"), by_external_id(&refused_id), Some(usd(100))),
                AmountPolicy::Reject,
            ),
            100,
        );
        let answer = store.apply_event(refused.clone()).await.expect("refused");
        assert!(
            matches!(answer, Applied::Decided { outcome: Outcome::AmountRejected, .. }),
            "{name}: {answer:?}"
        );
        let late_id = fresh_id("pi");
        let late_payment = pending_payment(&store, "stripe", &late_id, usd(15000)).await;
        let late = received(
            warn(succeeded(&fresh_id("evt"), by_external_id(&late_id), Some(usd(15000)))),
            500,
        );
        store.apply_event(late.clone()).await.expect("late");
        let before_pruning = bodies(&url);
        let outbox_before = store.outbox().await.expect("outbox");

        // A dry run counts, in batches, and writes nothing. A batch reads
        // two rows in order and prunes those it may among them (the events
        // kept and the notifications pending are read too): five batches
        // prune something.
        let dry = store.prune(prune(200, 2, true)).await.expect("dry run");
        assert_eq!(
            dry,
            PruneReport {
                event_bodies: 3,
                outbox_rows: 3,
                batches: 5
            },
            "{name}"
        );
        assert_eq!(bodies(&url), before_pruning, "{name}: the dry run wrote");
        assert_eq!(
            store.outbox().await.expect("outbox"),
            outbox_before,
            "{name}: the dry run deleted"
        );

        let pruned = store.prune(prune(200, 2, false)).await.expect("prune");
        assert_eq!(pruned, dry, "{name}");
        for (payment, event) in &confirmed {
            let id = event_row(&store, &event.event.event_id).await;
            let body = body_of(&url, id);
            assert!(body.payload.is_empty(), "{name}: {body:?}");
            assert_eq!(
                body.pruned_at.map(|at| at.and_utc()),
                Some(at(10_000)),
                "{name}"
            );
            // The audit still has the event, with an empty body.
            let detail = store.webhook_event(id).await.expect("read").expect("kept");
            assert!(detail.payload.is_empty(), "{name}");
            assert_eq!(detail.record.payment_id, Some(payment.id), "{name}");
            // A late re-delivery is still recognised.
            let again = store.apply_event(event.clone()).await.expect("re-delivery");
            assert!(
                matches!(&again, Applied::Duplicate { payment: Some(seen) } if seen.id == payment.id),
                "{name}: {again:?}"
            );
            assert_eq!(outbox_of(&store, payment).await.len(), 0, "{name}");
            assert_eq!(
                store.order(payment.order_id).await.expect("order").status,
                OrderStatus::Paid,
                "{name}"
            );
        }
        // The others keep their bodies, byte for byte.
        for event in [&unmatched, &refused, &late] {
            let id = event_row(&store, &event.event.event_id).await;
            let body = body_of(&url, id);
            assert_eq!(body.payload, event.payload, "{name}");
            assert_eq!(body.pruned_at, None, "{name}");
        }
        // The late payment's notification, delivered at 500 or still
        // pending, is kept.
        assert_eq!(outbox_of(&store, &late_payment).await.len(), 1, "{name}");

        // The unmatched event can still be applied: marking its payment
        // pending picks it up.
        let waiting = crate::support::created_payment(&store, "stripe", usd(15000)).await;
        let marked = store
            .mark_pending(waiting.id, unmatched_id, AmountPolicy::Warn, at(600))
            .await
            .expect("mark pending");
        assert_eq!(marked.status, PaymentStatus::Completed, "{name}");
        // The refused amount is evaluated again on re-delivery under warn.
        let retried = store
            .apply_event(EventToApply {
                policy: AmountPolicy::Warn,
                received_at: at(700),
                ..refused
            })
            .await
            .expect("retry");
        assert!(
            matches!(&retried, Applied::Decided { payment, .. } if payment.id == refused_payment.id),
            "{name}: {retried:?}"
        );

        // Nothing left before the cut-off (those two were last processed
        // after it): the next run does nothing.
        assert_eq!(
            store.prune(prune(200, 2, false)).await.expect("again"),
            PruneReport::default(),
            "{name}"
        );
        // Later, the three are final and last processed before the
        // cut-off (the two arrived at 100, were processed at 600 and 700),
        // and every body goes.
        let later = store.prune(prune(800, 2, false)).await.expect("later");
        assert_eq!(later.event_bodies, 3, "{name}: {later:?}");
        assert!(
            bodies(&url).iter().all(|body| body.payload.is_empty() && body.pruned_at.is_some()),
            "{name}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_zero_is_one_and_an_empty_store_prunes_nothing() {
    crate::support::for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            assert_eq!(
                store.prune(prune(200, 0, false)).await.expect("empty"),
                PruneReport::default(),
                "{name}"
            );
            let external_id = fresh_id("pi");
            pending_payment(&store, "stripe", &external_id, usd(15000)).await;
            store
                .apply_event(received(
                    warn(succeeded(
                        &fresh_id("evt"),
                        by_external_id(&external_id),
                        Some(usd(15000)),
                    )),
                    100,
                ))
                .await
                .expect("apply");
            let report = store.prune(prune(200, 0, false)).await.expect("prune");
            assert_eq!(
                report,
                PruneReport {
                    event_bodies: 1,
                    outbox_rows: 0,
                    batches: 1
                },
                "{name}"
            );
        },
    )
    .await;
}

#[derive(QueryableByName)]
struct Pages {
    #[diesel(sql_type = BigInt)]
    pages: i64,
}

/// `PRAGMA page_count` of the SQLite file, after a checkpoint.
fn page_count(path: &str) -> i64 {
    let mut conn = SqliteConnection::establish(path).expect("SQLite");
    diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .expect("checkpoint");
    diesel::sql_query("SELECT page_count AS pages FROM pragma_page_count()")
        .get_result::<Pages>(&mut conn)
        .expect("page count")
        .pages
}

/// Confirms `count` payments, each by an event with a 1.5 KB body
/// received at `at(offset)`.
async fn confirm_with_bodies(store: &DieselStore, count: usize, offset: i64) {
    for _ in 0..count {
        let external_id = fresh_id("pi");
        pending_payment(store, "stripe", &external_id, usd(15000)).await;
        let mut event = received(
            warn(succeeded(
                &fresh_id("evt"),
                by_external_id(&external_id),
                Some(usd(15000)),
            )),
            offset,
        );
        event.payload = vec![b'x'; 1500];
        store.apply_event(event).await.expect("apply");
    }
}

/// On SQLite a pruned body's space is reused by the events that come
/// after: bodies live in a table of their own and are deleted in the order
/// they came, which frees whole pages (emptying them in the events' rows
/// left every page mostly empty, and new events go at the end). Without it
/// the second half of this test grows the file as much as the first did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_pruned_space_is_reused_by_later_events() {
    let db = crate::support::sqlite_db();
    let path = db
        .url
        .strip_prefix("sqlite://")
        .expect("a SQLite URL")
        .to_owned();
    let store = db.open_migrated(&StoreOptions::default());
    confirm_with_bodies(&store, 600, 100).await;
    let before = page_count(&path);
    let report = store.prune(prune(200, 100, false)).await.expect("prune");
    assert_eq!(report.event_bodies, 600);
    assert!(bodies(&db.url).iter().all(|body| body.payload.is_empty()));
    // A pruned event is still recognised.
    let pruned = bodies(&db.url);
    assert!(pruned.iter().all(|body| body.pruned_at.is_some()));
    confirm_with_bodies(&store, 600, 300).await;
    let after = page_count(&path);
    // The first 600 events took `before` pages (most of them their
    // bodies); 600 more fit mostly in what pruning freed.
    let grown = after - before;
    assert!(
        grown * 3 < before,
        "600 more events grew the file by {grown} pages from {before}"
    );
}

/// Runs `sql` beside the store's pool.
fn execute(url: &str, sql: &str) {
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            diesel::sql_query(sql).execute(&mut SqliteConnection::establish(path).expect("SQLite"))
        }
        None => {
            diesel::sql_query(sql).execute(&mut PgConnection::establish(url).expect("PostgreSQL"))
        }
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// An event's body is kept or was pruned: a detail read that finds
/// neither, or both, is an error, not an event without a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_neither_or_both_a_body_and_its_pruning_is_corrupt() {
    let options = StoreOptions::default();
    crate::support::for_each_backend(options, |Backend { name, url, store }| async move {
        let external_id = fresh_id("pi");
        pending_payment(&store, "stripe", &external_id, usd(15000)).await;
        let event = received(
            warn(succeeded(&fresh_id("evt"), by_external_id(&external_id), Some(usd(15000)))),
            100,
        );
        store.apply_event(event.clone()).await.expect("apply");
        let id = event_row(&store, &event.event.event_id).await;
        let kept = store.webhook_event(id).await.expect("read").expect("recorded");
        assert_eq!(kept.payload, event.payload, "{name}");

        execute(
            &url,
            &format!("INSERT INTO webhook_bodies_pruned (event_row, pruned_at) VALUES ({id}, '2026-12-01 00:00:00')"),
        );
        let both = store.webhook_event(id).await;
        assert!(both.is_err(), "{name}: {both:?}");

        execute(&url, &format!("DELETE FROM webhook_event_bodies WHERE event_row = {id}"));
        execute(&url, &format!("DELETE FROM webhook_bodies_pruned WHERE event_row = {id}"));
        let neither = store.webhook_event(id).await;
        assert!(neither.is_err(), "{name}: {neither:?}");
    })
    .await;
}
