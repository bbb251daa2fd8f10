//! `sqlite-ceiling`: the rate SQLite itself allows for payhook's per-event
//! transaction when every event is its own commit.
//!
//! It creates payhook's schema (the store's own migrations) in a fresh
//! SQLite file with the store's settings (WAL, `synchronous=FULL`,
//! foreign keys), seeds N pending payments, then applies N
//! `payment_intent.succeeded` events one transaction each, with the
//! statements payhook's store runs for one (`BEGIN IMMEDIATE`; insert the
//! event in a savepoint, then its body; find the payment by external id; read the order's
//! status, total and paid sum; update the payment; write the order's
//! status and paid sum; insert the outbox row; record the outcome;
//! `COMMIT`), on one connection, since SQLite has one writer.
//! With `synchronous=FULL` each commit is one fsync of the WAL: the result
//! is the one-fsync-per-event ceiling payhook is measured against.
//!
//! It does no HTTP, no signature check and no JSON parsing: only the
//! database's share of the work.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{NaiveDateTime, Utc};
use clap::{Parser, ValueEnum};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Binary, Nullable, Text, Timestamp};
use diesel::sqlite::SqliteConnection;
use payhook_loadgen::load::{amount_minor, decimal};
use payhook_loadgen::stats::{millis, LatencySummary};
use payhook_loadgen::stripe::{payment_intent_succeeded, EventSpec};
use payhook_store_diesel::{DieselStore, StoreOptions};

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "sqlite-ceiling", version, about)]
struct Options {
    /// Events to apply, one transaction each.
    #[arg(short = 'n', long = "events", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    events: u32,
    /// The SQLite file [default: a fresh file in the temp directory, removed afterwards].
    #[arg(long)]
    database: Option<PathBuf>,
    /// `PRAGMA synchronous`; payhook uses FULL.
    #[arg(long, value_enum, default_value_t = Synchronous::Full)]
    synchronous: Synchronous,
    /// Stop applying events after this long and report what was done.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// The durability settings compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Synchronous {
    /// An fsync per commit: payhook's setting.
    Full,
    /// No fsync per commit in WAL mode (durable up to the last checkpoint).
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// A database file created for this run, removed with its WAL files.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The order's columns the store's decision reads.
#[derive(QueryableByName)]
struct OrderState {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    total_minor: i64,
    #[diesel(sql_type = BigInt)]
    paid_minor: i64,
}

/// The whole payment row, read as the store reads it.
#[derive(QueryableByName)]
#[allow(
    dead_code,
    reason = "read in full like the store does; only some fields are used"
)]
struct PaymentRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    order_id: i64,
    #[diesel(sql_type = Text)]
    transaction_id: String,
    #[diesel(sql_type = Text)]
    payment_method: String,
    #[diesel(sql_type = BigInt)]
    amount_minor: i64,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    external_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    gateway_reference: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    mismatch_expected_minor: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    mismatch_expected_currency: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    mismatch_received_minor: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    mismatch_received_currency: Option<String>,
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    updated_at: NaiveDateTime,
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sqlite-ceiling: {error:#}");
            println!("RESULT ok=false");
            ExitCode::FAILURE
        }
    }
}

/// Microsecond precision, as the store keeps times.
fn now() -> NaiveDateTime {
    use chrono::DurationRound;
    Utc::now()
        .duration_trunc(chrono::TimeDelta::microseconds(1))
        .expect("microseconds always truncate")
        .naive_utc()
}

fn seed(conn: &mut SqliteConnection, events: usize) -> anyhow::Result<()> {
    let at = now();
    conn.immediate_transaction::<_, diesel::result::Error, _>(|conn| {
        for index in 0..events {
            let minor = amount_minor(index);
            let order: Id = sql_query(
                "INSERT INTO orders (client_id, total_minor, currency, status, created_at, updated_at) \
                 VALUES (?, ?, 'USD', 'pending', ?, ?) RETURNING id",
            )
            .bind::<Text, _>(format!("ceiling-{index}"))
            .bind::<BigInt, _>(minor)
            .bind::<Timestamp, _>(at)
            .bind::<Timestamp, _>(at)
            .get_result(conn)?;
            sql_query(
                "INSERT INTO payments (order_id, transaction_id, payment_method, amount_minor, currency, \
                 status, external_id, created_at, updated_at) \
                 VALUES (?, ?, 'stripe', ?, 'USD', 'pending_external', ?, ?, ?)",
            )
            .bind::<BigInt, _>(order.id)
            .bind::<Text, _>(format!("TXN-CEILING{index:08}"))
            .bind::<BigInt, _>(minor)
            .bind::<Text, _>(format!("pi_ceiling_{index}"))
            .bind::<Timestamp, _>(at)
            .bind::<Timestamp, _>(at)
            .execute(conn)?;
        }
        Ok(())
    })
    .context("cannot seed the payments")
}

/// One event, as payhook's store applies a first delivery that confirms.
fn apply(conn: &mut SqliteConnection, index: usize, payload: &[u8]) -> QueryResult<()> {
    let event_id = format!("evt_ceiling_{index}");
    let payment_intent = format!("pi_ceiling_{index}");
    let minor = amount_minor(index);
    let at = now();
    conn.immediate_transaction(|conn| {
        // The store inserts the event in a savepoint: on PostgreSQL a
        // duplicate's unique violation must not abort the transaction.
        let event: Id = conn.transaction(|conn| {
            sql_query(
                "INSERT INTO webhook_events (gateway, event_id, event_type, kind, outcome, \
                 ref_transaction_id, ref_external_id, ref_gateway_reference, amount_minor, currency, \
                 attempts, received_at, processed_at) \
                 VALUES ('stripe', ?, 'payment_intent.succeeded', 'succeeded', 'unmatched', NULL, ?, ?, \
                 ?, 'USD', 1, ?, ?) RETURNING id",
            )
            .bind::<Text, _>(&event_id)
            .bind::<Text, _>(&payment_intent)
            .bind::<Text, _>(&payment_intent)
            .bind::<BigInt, _>(minor)
            .bind::<Timestamp, _>(at)
            .bind::<Timestamp, _>(at)
            .get_result(conn)
        })?;
        sql_query(
            "INSERT INTO webhook_event_bodies (event_row, received_at, payload) VALUES (?, ?, ?)",
        )
        .bind::<BigInt, _>(event.id)
        .bind::<Timestamp, _>(at)
        .bind::<Binary, _>(payload)
        .execute(conn)?;
        let payment: PaymentRow = sql_query(
            "SELECT id, order_id, transaction_id, payment_method, amount_minor, currency, status, \
             external_id, gateway_reference, mismatch_expected_minor, mismatch_expected_currency, \
             mismatch_received_minor, mismatch_received_currency, created_at, updated_at \
             FROM payments WHERE external_id = ? \
             ORDER BY payment_method = 'stripe' DESC, id LIMIT 1",
        )
        .bind::<Text, _>(&payment_intent)
        .get_result(conn)?;
        let order: OrderState =
            sql_query("SELECT status, total_minor, paid_minor FROM orders WHERE id = ?")
                .bind::<BigInt, _>(payment.order_id)
                .get_result(conn)?;
        debug_assert_eq!(order.status, "pending");
        // The payment's amount counts towards the order, which is paid once
        // the sum covers its total (here always: one payment per order).
        let paid_minor = order.paid_minor + payment.amount_minor;
        let order_status = if paid_minor >= order.total_minor {
            "paid"
        } else {
            "pending"
        };
        sql_query(
            "UPDATE payments SET status = 'completed', external_id = ?, gateway_reference = ?, \
             mismatch_expected_minor = NULL, mismatch_expected_currency = NULL, \
             mismatch_received_minor = NULL, mismatch_received_currency = NULL, updated_at = ? \
             WHERE id = ?",
        )
        .bind::<Nullable<Text>, _>(payment.external_id.as_deref())
        .bind::<Text, _>(&payment_intent)
        .bind::<Timestamp, _>(at)
        .bind::<BigInt, _>(payment.id)
        .execute(conn)?;
        sql_query("UPDATE orders SET status = ?, paid_minor = ?, updated_at = ? WHERE id = ?")
            .bind::<Text, _>(order_status)
            .bind::<BigInt, _>(paid_minor)
            .bind::<Timestamp, _>(at)
            .bind::<BigInt, _>(payment.order_id)
            .execute(conn)?;
        let notification = format!(
            r#"{{"amount":"{}","currency":"USD","occurred_at":"{}","order_id":{},"payment_id":{},"payment_status":"completed","transaction_id":"{}","type":"order.paid"}}"#,
            decimal(minor),
            at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            payment.order_id,
            payment.id,
            payment.transaction_id
        );
        sql_query(
            "INSERT INTO outbox (kind, order_id, payment_id, payload, status, attempts, \
             next_attempt_at, created_at) VALUES ('order.paid', ?, ?, ?, 'pending', 0, ?, ?)",
        )
        .bind::<BigInt, _>(payment.order_id)
        .bind::<BigInt, _>(payment.id)
        .bind::<Text, _>(notification)
        .bind::<Timestamp, _>(at)
        .bind::<Timestamp, _>(at)
        .execute(conn)?;
        sql_query("UPDATE webhook_events SET outcome = 'confirmed', payment_id = ? WHERE id = ?")
            .bind::<BigInt, _>(payment.id)
            .bind::<BigInt, _>(event.id)
            .execute(conn)?;
        Ok(())
    })
}

fn run(options: &Options) -> anyhow::Result<()> {
    let events = usize::try_from(options.events).context("--events")?;
    let (path, _scratch) = match &options.database {
        Some(path) => (path.clone(), Scratch(None)),
        None => {
            let path = std::env::temp_dir().join(format!(
                "payhook-sqlite-ceiling-{}.db",
                Utc::now().timestamp_millis()
            ));
            (path.clone(), Scratch(Some(path)))
        }
    };
    let path_text = path.to_str().context("the database path is not UTF-8")?;

    // payhook's own schema, through the store's embedded migrations.
    let store = DieselStore::open(&format!("sqlite://{path_text}"), &StoreOptions::default())
        .context("cannot create the SQLite database")?;
    store
        .migrate()
        .context("cannot apply payhook's migrations")?;
    drop(store);

    let mut conn =
        SqliteConnection::establish(path_text).context("cannot open the SQLite database")?;
    conn.batch_execute(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = 5000;",
        options.synchronous.pragma()
    ))?;
    let existing: Id = sql_query("SELECT COUNT(*) AS id FROM payments").get_result(&mut conn)?;
    if existing.id != 0 {
        bail!(
            "{} already holds payments: give a fresh file",
            path.display()
        );
    }
    seed(&mut conn, events)?;
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")?;

    let created = Utc::now().timestamp();
    let deadline = Duration::from_secs(options.timeout_secs);
    let mut latencies = Vec::with_capacity(events);
    let started = Instant::now();
    for index in 0..events {
        let payload = payment_intent_succeeded(&EventSpec {
            event_id: &format!("evt_ceiling_{index}"),
            payment_intent: &format!("pi_ceiling_{index}"),
            amount_minor: amount_minor(index),
            order_id: i64::try_from(index).unwrap_or(i64::MAX),
            created,
        });
        let one = Instant::now();
        apply(&mut conn, index, &payload).with_context(|| format!("event {index}"))?;
        latencies.push(one.elapsed());
        if started.elapsed() > deadline {
            println!("stopped after {} events: --timeout-secs reached", index + 1);
            break;
        }
    }
    let elapsed = started.elapsed();
    let done = latencies.len();
    let outbox: Id = sql_query("SELECT COUNT(*) AS id FROM outbox").get_result(&mut conn)?;
    let paid: Id = sql_query(
        "SELECT COUNT(*) AS id FROM orders WHERE status = 'paid' AND paid_minor = total_minor",
    )
    .get_result(&mut conn)?;
    let rate = done as f64 / elapsed.as_secs_f64();
    let latency = LatencySummary::of(&mut latencies).context("no event applied")?;
    println!(
        "sqlite-ceiling: {done} events, one transaction each, synchronous={} on {}",
        options.synchronous.pragma(),
        path.display()
    );
    println!(
        "{rate:.1} transactions/s over {:.3} s; per transaction ms: p50 {} p99 {} max {}; outbox rows {}, orders paid {}",
        elapsed.as_secs_f64(),
        millis(latency.p50),
        millis(latency.p99),
        millis(latency.max),
        outbox.id,
        paid.id
    );
    let ok = [outbox.id, paid.id]
        .into_iter()
        .all(|rows| usize::try_from(rows).is_ok_and(|rows| rows == done));
    println!(
        "RESULT events={done} synchronous={} seconds={:.3} rate={rate:.1} p50_ms={} p99_ms={} ok={ok}",
        options.synchronous.pragma().to_lowercase(),
        elapsed.as_secs_f64(),
        millis(latency.p50),
        millis(latency.p99),
    );
    if !ok {
        bail!(
            "expected {done} outbox rows and paid orders, found {} and {}",
            outbox.id,
            paid.id
        );
    }
    Ok(())
}
