//! `--preload`: before a run, fill payhook's (fresh) database with finished
//! payments, so that the measured run works against big tables and shows
//! whether the lookups stay indexed.
//!
//! Payment `i` (0-based) of a preload is written as the server would have
//! left a Stripe payment confirmed by `payment_intent.succeeded` and
//! notified to the shop:
//!
//! - order `i + 1`: `client_id` `pre-<i>`, status `paid`, paid sum
//!   (`paid_minor`) its amount: its one payment covered it;
//! - payment `i + 1`: `transaction_id` `tx_pre_<i>`, method `stripe`,
//!   status `completed`, external id and gateway reference `pi_pre_<i>`;
//! - event `i + 1` (a `webhook_events` row): `stripe` / `evt_pre_<i>`,
//!   `payment_intent.succeeded`, kind `succeeded`, outcome `confirmed`,
//!   with its Stripe-shaped body of about 200 bytes kept (a
//!   `webhook_event_bodies` row: a day old, it is within any retention);
//! - one `outbox` row: `order.paid`, status `delivered`, with the body the
//!   domain renders for it.
//!
//! Amounts follow [`crate::load::amount_minor`], in USD. Every time column
//! holds one instant a day before the preload, at the store's microsecond
//! precision and, on SQLite, in the text format diesel writes for the store.
//!
//! The rows are written by five set-based `INSERT ... SELECT` statements
//! over a series (SQLite: a `WITH RECURSIVE` counter; PostgreSQL:
//! `generate_series`) in one transaction, with every constraint of the
//! schema checked (SQLite's foreign keys included). Then the statistics are
//! refreshed (`ANALYZE` on SQLite, followed by a WAL checkpoint;
//! `VACUUM (ANALYZE)` on PostgreSQL, which also spares the run an
//! autovacuum of the new rows), so the server plans against realistic
//! figures.
//!
//! The ids are `1..=count`, so the database must hold no orders, payments,
//! events or outbox rows yet; a preload refuses one that does.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::Connection;
use payhook_store_diesel::{DieselStore, StoreOptions};

use crate::db::{Database, Dialect};

/// The amount of payment `i` in cents, in SQL: [`crate::load::amount_minor`].
const AMOUNT_SQL: &str = "1000 + (i * 7919) % 99000";

/// The SQLite page cache of the preloading connection, in KiB: the indexes
/// of a million rows are built without spilling to the WAL mid-transaction.
const SQLITE_CACHE_KIB: u32 = 256 * 1024;

/// The tables a preload fills, in the order they are written.
pub const TABLES: [&str; 5] = [
    "orders",
    "payments",
    "webhook_events",
    "webhook_event_bodies",
    "outbox",
];

/// What a preload wrote and how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preloaded {
    /// Rows in `orders`, `payments`, `webhook_events`,
    /// `webhook_event_bodies` and `outbox` afterwards, in the order of
    /// [`TABLES`].
    pub rows: [i64; TABLES.len()],
    /// The inserting transaction, commit included.
    pub inserting: Duration,
    /// Refreshing the statistics (and, on SQLite, the WAL checkpoint).
    pub analyzing: Duration,
}

/// The instants written into the preloaded rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Times {
    /// Creation, update, receipt and processing of every row.
    pub at: NaiveDateTime,
    /// When the outbox rows were delivered: a second after [`Times::at`].
    pub delivered: NaiveDateTime,
}

impl Times {
    /// One day before `now`, at the store's microsecond precision.
    pub fn before(now: DateTime<Utc>) -> Self {
        let at = (now - TimeDelta::days(1)).trunc_subsecs(6).naive_utc();
        Self {
            at,
            delivered: at + TimeDelta::seconds(1),
        }
    }
}

/// `at` as a literal of a `TIMESTAMP` column. On SQLite it is the text
/// diesel writes for a `NaiveDateTime` (`%F %T%.f`: the fraction only when
/// there is one), so preloaded rows compare and sort like the store's own.
pub fn timestamp_literal(dialect: Dialect, at: NaiveDateTime) -> String {
    match dialect {
        Dialect::Sqlite => format!("'{}'", at.format("%F %T%.f")),
        Dialect::Postgres => format!("TIMESTAMP '{}'", at.format("%F %T%.6f")),
    }
}

/// The statements that insert `count` finished payments (see the module
/// documentation) into empty tables, without the transaction around them.
/// `count` 0 inserts nothing.
pub fn insert_sql(dialect: Dialect, count: u64, times: &Times) -> String {
    let at = timestamp_literal(dialect, times.at);
    let delivered = timestamp_literal(dialect, times.delivered);
    let created_unix = times.at.and_utc().timestamp();
    let occurred_at = times
        .at
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // `p(i, amt)`: the series and each payment's amount in cents.
    let (with, from) = match dialect {
        Dialect::Sqlite => (
            format!(
                "WITH RECURSIVE s(i) AS (SELECT 0 WHERE 0 < {count} \
                 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {count}), \
                 p(i, amt) AS (SELECT i, {AMOUNT_SQL} FROM s) "
            ),
            "p".to_owned(),
        ),
        Dialect::Postgres => (
            String::new(),
            format!(
                "(SELECT i, {AMOUNT_SQL} AS amt \
                 FROM generate_series(0::bigint, {count}::bigint - 1) AS i) AS p"
            ),
        ),
    };
    let amount_text = match dialect {
        Dialect::Sqlite => "printf('%d.%02d', amt / 100, amt % 100)",
        Dialect::Postgres => "(amt / 100) || '.' || lpad((amt % 100)::text, 2, '0')",
    };
    // A compact `payment_intent.succeeded`, as received (about 200 bytes).
    let event_json = format!(
        r#"'{{"id":"evt_pre_' || i || '","created":{created_unix},"type":"payment_intent.succeeded","data":{{"object":{{"id":"pi_pre_' || i || '","object":"payment_intent","amount":' || amt || ',"amount_received":' || amt || ',"currency":"usd","status":"succeeded"}}}}}}'"#
    );
    let event_payload = match dialect {
        Dialect::Sqlite => format!("CAST({event_json} AS BLOB)"),
        Dialect::Postgres => format!("convert_to({event_json}, 'UTF8')"),
    };
    // The body `Notification::for_payment` renders (serde_json's sorted keys).
    let notification = format!(
        r#"'{{"amount":"' || {amount_text} || '","currency":"USD","occurred_at":"{occurred_at}","order_id":' || (i + 1) || ',"payment_id":' || (i + 1) || ',"payment_status":"completed","transaction_id":"tx_pre_' || i || '","type":"order.paid"}}'"#
    );
    let mut sql = format!(
        "{with}INSERT INTO orders (id, client_id, total_minor, currency, status, paid_minor, \
         created_at, updated_at) \
         SELECT i + 1, 'pre-' || i, amt, 'USD', 'paid', amt, {at}, {at} FROM {from};\n\
         {with}INSERT INTO payments (id, order_id, transaction_id, payment_method, amount_minor, currency, \
         status, external_id, gateway_reference, created_at, updated_at) \
         SELECT i + 1, i + 1, 'tx_pre_' || i, 'stripe', amt, 'USD', 'completed', 'pi_pre_' || i, \
         'pi_pre_' || i, {at}, {at} FROM {from};\n\
         {with}INSERT INTO webhook_events (id, gateway, event_id, event_type, kind, outcome, \
         payment_id, ref_transaction_id, ref_external_id, ref_gateway_reference, amount_minor, \
         currency, attempts, received_at, processed_at) \
         SELECT i + 1, 'stripe', 'evt_pre_' || i, 'payment_intent.succeeded', 'succeeded', \
         'confirmed', i + 1, NULL, 'pi_pre_' || i, 'pi_pre_' || i, amt, 'USD', 1, {at}, {at} \
         FROM {from};\n\
         {with}INSERT INTO webhook_event_bodies (event_row, received_at, payload) \
         SELECT i + 1, {at}, {event_payload} FROM {from};\n\
         {with}INSERT INTO outbox (kind, order_id, payment_id, payload, status, attempts, last_error, \
         next_attempt_at, created_at, delivered_at, locked_until) \
         SELECT 'order.paid', i + 1, i + 1, {notification}, 'delivered', 0, NULL, {at}, {at}, \
         {delivered}, NULL FROM {from};\n"
    );
    // Explicit ids do not move PostgreSQL's sequences; the server's next
    // order, payment and event must come after the preloaded ones.
    if dialect == Dialect::Postgres && count > 0 {
        for table in ["orders", "payments", "webhook_events"] {
            sql.push_str(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count});\n"
            ));
        }
    }
    sql
}

/// Creates payhook's schema in the database at `url` with the store's own
/// embedded migrations (those the server applies at start-up and
/// `payhook migrate` runs) and returns the versions applied.
pub fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    let options = StoreOptions {
        pool_size: 1,
        group_commit: false,
        ..StoreOptions::default()
    };
    let store = DieselStore::open(url, &options).context("cannot open the database")?;
    store.migrate().context("cannot apply payhook's migrations")
}

/// Fails unless all the tables a preload fills are empty.
fn ensure_empty(db: &mut Database) -> anyhow::Result<()> {
    let any = TABLES
        .iter()
        .map(|table| format!("EXISTS (SELECT 1 FROM {table})"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let used = db
        .count(&format!(
            "SELECT CAST(CASE WHEN {any} THEN 1 ELSE 0 END AS BIGINT) AS n"
        ))
        .context("cannot read the tables to preload")?;
    if used != 0 {
        bail!(
            "--preload needs an empty database, but this one already holds orders, payments, \
             events or outbox rows: give a freshly created one"
        );
    }
    Ok(())
}

/// Preloads `count` finished payments into the migrated, empty database
/// `db` (see the module documentation), refreshes its statistics, and
/// counts the rows of every table filled.
pub fn preload(db: &mut Database, count: u64, now: DateTime<Utc>) -> anyhow::Result<Preloaded> {
    ensure_empty(db)?;
    let sql = insert_sql(db.dialect(), count, &Times::before(now));
    let started = Instant::now();
    match db {
        Database::Sqlite(conn) => {
            conn.batch_execute(&format!("PRAGMA cache_size = -{SQLITE_CACHE_KIB};"))?;
            conn.immediate_transaction(|conn| conn.batch_execute(&sql))
        }
        Database::Postgres(conn) => conn.transaction(|conn| conn.batch_execute(&sql)),
    }
    .context("cannot insert the preloaded payments")?;
    let inserting = started.elapsed();
    let started = Instant::now();
    let refresh = match db.dialect() {
        // The checkpoint leaves the run a short WAL, as after a quiet period.
        Dialect::Sqlite => "ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);".to_owned(),
        // Outside a transaction, as VACUUM must be.
        Dialect::Postgres => format!("VACUUM (ANALYZE) {};", TABLES.join(", ")),
    };
    db.batch(&refresh)
        .context("cannot refresh the statistics after preloading")?;
    let analyzing = started.elapsed();
    let mut rows = [0; TABLES.len()];
    for (table, rows) in TABLES.iter().zip(&mut rows) {
        *rows = db
            .count(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .with_context(|| format!("cannot count {table}"))?;
    }
    Ok(Preloaded {
        rows,
        inserting,
        analyzing,
    })
}

/// What `--preload` does before the server starts: migrates the database
/// at `url`, then [`preload`]s `count` finished payments into it.
pub fn migrate_and_preload(url: &str, count: u64) -> anyhow::Result<Preloaded> {
    migrate(url)?;
    let mut db = Database::connect(url)?;
    preload(&mut db, count, Utc::now())
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;

    #[test]
    fn sqlite_times_are_written_as_diesel_writes_them() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
            .unwrap()
            .naive_utc();
        assert_eq!(
            timestamp_literal(Dialect::Sqlite, at),
            "'2026-01-02 03:04:05.123456'"
        );
        let whole = at.with_nanosecond(0).unwrap();
        assert_eq!(
            timestamp_literal(Dialect::Sqlite, whole),
            "'2026-01-02 03:04:05'"
        );
        assert_eq!(
            timestamp_literal(Dialect::Postgres, whole),
            "TIMESTAMP '2026-01-02 03:04:05.000000'"
        );
    }

    #[test]
    fn times_are_a_day_back_at_microseconds() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let times = Times::before(now);
        assert_eq!(times.at.to_string(), "2026-01-01 03:04:05.123456");
        assert_eq!(times.delivered.to_string(), "2026-01-01 03:04:06.123456");
    }

    #[test]
    fn postgres_moves_the_sequences_only_when_rows_were_written() {
        let times = Times::before(Utc::now());
        let sql = insert_sql(Dialect::Postgres, 10, &times);
        assert!(sql.contains("generate_series(0::bigint, 10::bigint - 1)"));
        assert_eq!(sql.matches("setval").count(), 3);
        assert!(!insert_sql(Dialect::Postgres, 0, &times).contains("setval"));
        assert_eq!(
            insert_sql(Dialect::Sqlite, 10, &times)
                .matches("INSERT")
                .count(),
            5
        );
    }
}
