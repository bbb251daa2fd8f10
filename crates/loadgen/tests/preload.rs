//! `--preload` against real databases: SQLite always, PostgreSQL when
//! `PAYHOOK_TEST_POSTGRES_URL` names a server (a scratch database is created
//! beside it and dropped afterwards; `PAYHOOK_REQUIRE_POSTGRES` makes its
//! absence a failure, as in the other crates' tests).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Binary, Text, Timestamp};
use payhook_loadgen::db::{literal, Database, Dialect};
use payhook_loadgen::load::{amount_minor, decimal};
use payhook_loadgen::preload;
use payhook_store_diesel::{DieselStore, StoreOptions};

const POSTGRES_ENV: &str = "PAYHOOK_TEST_POSTGRES_URL";

/// Preloaded payments per test: small, but every row is checked.
const COUNT: i64 = 1000;

/// A database of its own for one test, removed when dropped.
struct Scratch {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(mut admin) = Database::connect(admin_url) {
                    let _ = admin.batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }
}

fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

fn sqlite() -> Scratch {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("payhook_loadgen_t")));
    Scratch {
        url: format!("sqlite://{}", path.display()),
        cleanup: Cleanup::Sqlite(path),
    }
}

/// `url` with its database name replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority_start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority_start + i);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |i| &url[authority_end + i..]);
    format!("{}/{name}{query}", &url[..authority_end])
}

fn postgres() -> Option<Scratch> {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        assert!(
            std::env::var_os("PAYHOOK_REQUIRE_POSTGRES").is_none(),
            "PAYHOOK_REQUIRE_POSTGRES is set but {POSTGRES_ENV} is not"
        );
        eprintln!("=== PostgreSQL preload test SKIPPED: {POSTGRES_ENV} is not set ===");
        return None;
    };
    let name = unique_name("payhook_loadgen_t");
    let mut admin = Database::connect(&admin_url)
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but unreachable: {e:#}"));
    admin
        .batch(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    Some(Scratch {
        url: with_database(&admin_url, &name),
        cleanup: Cleanup::Postgres { admin_url, name },
    })
}

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
    assert_eq!(done.rows, [COUNT; 4], "rows per table");
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
                "SELECT payload FROM webhook_events WHERE event_id = 'evt_pre_{i}'"
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

    // The server's next order and payment come after the preloaded ones.
    db.batch(
        "INSERT INTO orders (client_id, total_minor, currency, status, created_at, updated_at) \
         VALUES ('after', 100, 'USD', 'pending', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP); \
         INSERT INTO payments (order_id, transaction_id, payment_method, amount_minor, currency, \
         status, created_at, updated_at) \
         VALUES (1001, 'TXN-AFTER', 'stripe', 100, 'USD', 'created', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
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
    assert_eq!(done.rows, [0; 4]);
}
