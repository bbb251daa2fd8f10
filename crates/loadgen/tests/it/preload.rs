//! `--preload` against real databases: SQLite always, PostgreSQL when
//! `PAYHOOK_TEST_POSTGRES_URL` names a server (a scratch database is created
//! beside it and dropped afterwards; `PAYHOOK_REQUIRE_POSTGRES` makes its
//! absence a failure, as in the other crates' tests).

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Binary, Text, Timestamp};
use payhook_loadgen::db::{literal, Database, Dialect};
use payhook_loadgen::load::{amount_minor, decimal};
use payhook_loadgen::preload;
use payhook_store_diesel::{DieselStore, StoreOptions};

use crate::support::{postgres, sqlite, Scratch};

/// Preloaded payments per test: small, but every row is checked.
const COUNT: i64 = 1000;

#[derive(QueryableByName)]
struct Bytes {
    #[diesel(sql_type = Binary)]
    payload: Vec<u8>,
}

#[derive(QueryableByName)]
struct Body {
    #[diesel(sql_type = Text)]
    payload: String,
}

#[derive(QueryableByName)]
struct Times {
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    updated_at: NaiveDateTime,
}

#[derive(QueryableByName)]
struct Detail {
    #[diesel(sql_type = Text)]
    detail: String,
}

#[derive(QueryableByName)]
struct Plan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

fn count(db: &mut Database, sql: &str) -> i64 {
    db.count(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The store's lookup of a payment by external id (`ops::find_payment`).
fn lookup_sql(external_id: &str) -> String {
    format!(
        "SELECT id FROM payments WHERE external_id = {} \
         ORDER BY payment_method = 'stripe' DESC, id LIMIT 1",
        literal(external_id)
    )
}

/// Preloads [`COUNT`] payments into a fresh database and checks every row.
fn preload_and_check(scratch: &Scratch) {
    let url = &scratch.url;
    let done = preload::migrate_and_preload(url, COUNT.unsigned_abs()).expect("preload");
    assert_eq!(done.rows, [COUNT; 5], "rows per table");
    let mut db = Database::connect(url).expect("connect");
    let backend = db.dialect().name();

    // What each row says, and that the rows of one payment agree.
    for (sql, expected) in [
        (
            "SELECT COUNT(*) AS n FROM orders WHERE status = 'paid' AND currency = 'USD'",
            COUNT,
        ),
        // Paid by its one payment, as the store sums it.
        (
            "SELECT COUNT(*) AS n FROM orders o JOIN payments p ON p.order_id = o.id \
             WHERE o.paid_minor = p.amount_minor AND o.paid_minor = o.total_minor",
            COUNT,
        ),
        (
            "SELECT COUNT(*) AS n FROM payments p JOIN orders o ON o.id = p.order_id \
             WHERE p.status = 'completed' AND p.payment_method = 'stripe' \
             AND p.amount_minor = o.total_minor AND p.currency = 'USD' \
             AND p.external_id = 'pi_pre_' || (p.id - 1) AND p.gateway_reference = p.external_id \
             AND p.mismatch_expected_minor IS NULL",
            COUNT,
        ),
        (
            "SELECT COUNT(DISTINCT transaction_id) AS n FROM payments",
            COUNT,
        ),
        (
            "SELECT COUNT(*) AS n FROM webhook_events e JOIN payments p ON p.id = e.payment_id \
             WHERE e.gateway = 'stripe' AND e.event_type = 'payment_intent.succeeded' \
             AND e.kind = 'succeeded' AND e.outcome = 'confirmed' AND e.attempts = 1 \
             AND e.ref_external_id = p.external_id AND e.amount_minor = p.amount_minor \
             AND e.event_id = 'evt_pre_' || (p.id - 1)",
            COUNT,
        ),
        // Each event's body is kept, as of its first delivery.
        (
            "SELECT COUNT(*) AS n FROM webhook_events e \
             JOIN webhook_event_bodies b ON b.event_row = e.id \
             WHERE b.received_at = e.received_at AND e.id = e.payment_id",
            COUNT,
        ),
        (
            "SELECT COUNT(*) AS n FROM outbox x JOIN payments p ON p.id = x.payment_id \
             WHERE x.order_id = p.order_id AND x.kind = 'order.paid' \
             AND x.status = 'delivered' AND x.delivered_at > x.created_at \
             AND x.locked_until IS NULL AND x.last_error IS NULL",
            COUNT,
        ),
        (
            "SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'",
            0,
        ),
    ] {
        assert_eq!(count(&mut db, sql), expected, "{backend}: {sql}");
    }

    // Amounts are the run's; the payloads are what the server writes.
    for i in [0_usize, 1, 499, 999] {
        let minor = count(
            &mut db,
            &format!("SELECT amount_minor AS n FROM payments WHERE transaction_id = 'tx_pre_{i}'"),
        );
        assert_eq!(minor, amount_minor(i), "{backend}: payment {i}");
        let event: Bytes = db
            .load(&format!(
                "SELECT b.payload FROM webhook_events e \
                 JOIN webhook_event_bodies b ON b.event_row = e.id \
                 WHERE e.event_id = 'evt_pre_{i}'"
            ))
            .expect("event payload")
            .pop()
            .expect("one event");
        assert!(
            (150..=300).contains(&event.payload.len()),
            "{backend}: {} bytes",
            event.payload.len()
        );
        let event: serde_json::Value = serde_json::from_slice(&event.payload).expect("JSON");
        assert_eq!(event["id"], format!("evt_pre_{i}"));
        assert_eq!(event["type"], "payment_intent.succeeded");
        assert_eq!(event["data"]["object"]["id"], format!("pi_pre_{i}"));
        assert_eq!(event["data"]["object"]["amount_received"], minor);
        let body: Body = db
            .load(&format!(
                "SELECT payload FROM outbox WHERE payment_id = {}",
                i + 1
            ))
            .expect("outbox payload")
            .pop()
            .expect("one outbox row");
        let body: serde_json::Value = serde_json::from_str(&body.payload).expect("JSON");
        let occurred_at = body["occurred_at"]
            .as_str()
            .expect("occurred_at")
            .to_owned();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "order.paid", "order_id": i + 1, "payment_id": i + 1,
                "transaction_id": format!("tx_pre_{i}"), "payment_status": "completed",
                "amount": decimal(minor), "currency": "USD", "occurred_at": occurred_at,
            }),
            "{backend}"
        );
    }

    // Times: a day back, read back as the store reads them; on SQLite the
    // very text diesel writes for the same value.
    let times: Times = db
        .load("SELECT created_at, updated_at FROM orders WHERE id = 1")
        .expect("times")
        .pop()
        .expect("order 1");
    assert_eq!(times.created_at, times.updated_at);
    let age = Utc::now().naive_utc() - times.created_at;
    assert!(
        (TimeDelta::hours(23)..TimeDelta::hours(25)).contains(&age),
        "{backend}: {age}"
    );
    if let Database::Sqlite(conn) = &mut db {
        #[derive(QueryableByName)]
        struct Written {
            #[diesel(sql_type = Text)]
            text: String,
        }
        let stored: Written =
            diesel::sql_query("SELECT created_at AS text FROM payments WHERE id = 1")
                .get_result(conn)
                .expect("stored text");
        let diesel_writes: Written = diesel::sql_query("SELECT CAST(? AS TEXT) AS text")
            .bind::<Timestamp, _>(times.created_at)
            .get_result(conn)
            .expect("diesel's text");
        assert_eq!(stored.text, diesel_writes.text);
    }

    // The store's own reads accept every preloaded row.
    let store = DieselStore::open(
        url,
        &StoreOptions {
            pool_size: 1,
            group_commit: false,
            ..StoreOptions::default()
        },
    )
    .expect("store");
    let (events, outbox, backlog) = actix_rt::System::new().block_on(async {
        (
            store.events().await.expect("events"),
            store.outbox().await.expect("outbox"),
            store.outbox_backlog().await.expect("backlog"),
        )
    });
    assert_eq!(events.len(), 1000);
    assert!(events
        .iter()
        .all(|e| e.outcome == "confirmed" && e.payment_id.is_some()));
    assert_eq!(outbox.len(), 1000);
    assert!(outbox.iter().all(|row| row.status == "delivered"));
    assert_eq!(backlog, 0, "{backend}: nothing for the dispatcher");
    drop(store);

    // The store's lookup finds a preloaded payment by its external id, and
    // through an index.
    assert_eq!(
        count(
            &mut db,
            &lookup_sql("pi_pre_500").replace("SELECT id", "SELECT id AS n")
        ),
        501
    );
    let plan = match db.dialect() {
        Dialect::Sqlite => db
            .load::<Detail>(&format!("EXPLAIN QUERY PLAN {}", lookup_sql("pi_pre_500")))
            .expect("plan")
            .into_iter()
            .map(|row| row.detail)
            .collect::<Vec<_>>(),
        Dialect::Postgres => db
            .load::<Plan>(&format!("EXPLAIN {}", lookup_sql("pi_pre_500")))
            .expect("plan")
            .into_iter()
            .map(|row| row.line)
            .collect(),
    }
    .join("\n");
    assert!(
        plan.contains("payments_external_id") || plan.contains("payments_method_external_id"),
        "{backend}: {plan}"
    );

    // The server's next order, payment and event come after the preloaded
    // ones.
    db.batch(
        "INSERT INTO orders (client_id, total_minor, currency, status, created_at, updated_at) \
         VALUES ('after', 100, 'USD', 'pending', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP); \
         INSERT INTO payments (order_id, transaction_id, payment_method, amount_minor, currency, \
         status, created_at, updated_at) \
         VALUES (1001, 'TXN-AFTER', 'stripe', 100, 'USD', 'created', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP); \
         INSERT INTO webhook_events (gateway, event_id, event_type, kind, outcome, attempts, \
         received_at, processed_at) VALUES ('stripe', 'evt_after', 'payment_intent.succeeded', \
         'succeeded', 'unmatched', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    .expect("insert after the preload");
    assert_eq!(
        count(
            &mut db,
            "SELECT id AS n FROM orders WHERE client_id = 'after'"
        ),
        1001
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT id AS n FROM payments WHERE transaction_id = 'TXN-AFTER'"
        ),
        1001
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT id AS n FROM webhook_events WHERE event_id = 'evt_after'"
        ),
        1001
    );

    // A database that already holds rows is refused.
    let again = preload::migrate_and_preload(url, 10).expect_err("a second preload");
    assert!(format!("{again:#}").contains("empty database"), "{again:#}");
}

#[test]
fn preload_fills_sqlite() {
    preload_and_check(&sqlite());
}

#[test]
fn preload_fills_postgres() {
    if let Some(scratch) = postgres() {
        preload_and_check(&scratch);
    }
}

#[test]
fn preloading_nothing_writes_nothing() {
    let scratch = sqlite();
    let done = preload::migrate_and_preload(&scratch.url, 0).expect("preload 0");
    assert_eq!(done.rows, [0; 5]);
}
