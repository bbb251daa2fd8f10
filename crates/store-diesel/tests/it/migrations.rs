//! Migrations and readiness: `migrate` is idempotent, `ping` tells a migrated
//! database from an empty one, and a migration keeps the rows an older
//! schema holds.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::pg::{Pg, PgConnection};
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text, Timestamp};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Connection, QueryResult, QueryableByName, RunQueryDsl};
use payhook_domain::ports::{Applied, Store, StoreError};
use payhook_domain::{EventKind, OrderId, OrderStatus, Outcome, PaymentId, PaymentStatus};
use payhook_store_diesel::{OpenError, StoreOptions};

use crate::support::{
    by_external_id, created_payment, databases, order, sqlite_db, stripe_event, usd, warn, TestDb,
};

/// The versions of the migrations both folders hold.
const VERSIONS: [&str; 8] = [
    "20261127000001",
    "20261127000002",
    "20261204000003",
    "20261204000004",
    "20261204000005",
    "20261204000006",
    "20261205000007",
    "20261205000008",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_twice_applies_nothing_the_second_time() {
    for db in databases() {
        let store = db.open(&StoreOptions::default());
        let first = store.migrate().expect("first migrate");
        assert_eq!(first, VERSIONS, "{}", db.backend);
        let second = store.migrate().expect("second migrate");
        assert!(second.is_empty(), "{}: {second:?}", db.backend);

        // Another pool on the same database (a second server process) finds
        // nothing to do either, and sees the data of the first.
        let created = order(&store, usd(15000)).await;
        let other = db.open(&StoreOptions::default());
        assert_eq!(
            other.migrate().expect("migrate from a second pool"),
            Vec::<String>::new()
        );
        assert_eq!(
            other
                .order(created.id)
                .await
                .expect("order from a second pool"),
            created
        );
        other.ping().await.expect("ping from a second pool");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_fails_on_an_unmigrated_database_and_succeeds_after_migrate() {
    for db in databases() {
        let store = db.open(&StoreOptions::default());
        assert_eq!(store.backend(), db.backend);
        let before = store.ping().await;
        assert!(
            matches!(before, Err(StoreError::Backend(_))),
            "{}: {before:?}",
            db.backend
        );
        store.migrate().expect("migrate");
        store.ping().await.expect("ping after migrate");
        // Pinging again does not change the answer.
        store.ping().await.expect("second ping after migrate");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_an_unmigrated_database_are_errors_not_empty_answers() {
    for db in databases() {
        let store = db.open(&StoreOptions::default());
        let missing = store.order(OrderId(1)).await;
        assert!(
            matches!(missing, Err(StoreError::Backend(_))),
            "{}: {missing:?}",
            db.backend
        );
    }
}

/// The last version before the lifecycle migration, the lifecycle's, the
/// refunds migration after it, and reconciliation's.
const BEFORE_LIFECYCLE: &str = "20261127000002";
const LIFECYCLE: &str = "20261204000003";
const REFUNDS: &str = "20261204000004";
const RECONCILE: &str = "20261204000005";
/// The outbox's dispatcher indexes.
const OUTBOX_DUE: &str = "20261204000006";
/// The events table's autovacuum settings (PostgreSQL; nothing on SQLite).
const EVENTS_VACUUM: &str = "20261205000007";
/// Moves the events' bodies to a table of their own.
const EVENT_BODIES: &str = "20261205000008";

/// A plain connection beside the store's pool, for what the store's API
/// cannot do: write rows of an older schema and read every column back as
/// stored.
enum Raw {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

impl Raw {
    fn connect(db: &TestDb) -> Self {
        match db.url.strip_prefix("sqlite://") {
            Some(path) => {
                let mut conn = SqliteConnection::establish(path).expect("open the SQLite file");
                // As the store's connections have them.
                conn.batch_execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                    .expect("pragmas");
                Self::Sqlite(conn)
            }
            None => Self::Pg(PgConnection::establish(&db.url).expect("connect to PostgreSQL")),
        }
    }

    fn try_execute(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Self::Sqlite(conn) => conn.batch_execute(sql),
            Self::Pg(conn) => conn.batch_execute(sql),
        }
    }

    fn execute(&mut self, sql: &str) {
        self.try_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn load<T>(&mut self, sql: &str) -> Vec<T>
    where
        T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
    {
        match self {
            Self::Sqlite(conn) => diesel::sql_query(sql).load(conn),
            Self::Pg(conn) => diesel::sql_query(sql).load(conn),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn count(&mut self, sql: &str) -> i64 {
        self.load::<Count>(sql).pop().expect("one row").n
    }

    /// Runs an `INSERT ... RETURNING id` and returns the id.
    fn insert(&mut self, sql: &str) -> i64 {
        self.count(&format!("{sql} RETURNING id AS n"))
    }

    /// Whether the schema has table `name`.
    fn has_table(&mut self, name: &str) -> bool {
        let sql = match self {
            Self::Sqlite(_) => {
                format!("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '{name}'")
            }
            Self::Pg(_) => format!(
                "SELECT COUNT(*) AS n FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_name = '{name}'"
            ),
        };
        self.count(&sql) > 0
    }

    /// `text` as a literal of a binary column.
    fn blob(&self, text: &str) -> String {
        match self {
            Self::Sqlite(_) => format!("CAST('{text}' AS BLOB)"),
            Self::Pg(_) => format!("convert_to('{text}', 'UTF8')"),
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The columns `orders` had before the lifecycle migration.
const ORDER_COLUMNS: &str = "id, client_id, total_minor, currency, status, created_at, updated_at";

#[derive(Debug, PartialEq, QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    client_id: String,
    #[diesel(sql_type = BigInt)]
    total_minor: i64,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    updated_at: NaiveDateTime,
}

const PAYMENT_COLUMNS: &str = "id, order_id, transaction_id, payment_method, amount_minor, \
    currency, status, external_id, gateway_reference, mismatch_expected_minor, \
    mismatch_expected_currency, mismatch_received_minor, mismatch_received_currency, \
    created_at, updated_at";

#[derive(Debug, PartialEq, QueryableByName)]
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

const EVENT_COLUMNS: &str = "id, gateway, event_id, event_type, kind, outcome, payment_id, \
    ref_transaction_id, ref_external_id, ref_gateway_reference, amount_minor, currency, payload, \
    attempts, received_at, processed_at";

#[derive(Debug, PartialEq, QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    gateway: String,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    payment_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    ref_transaction_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ref_external_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    ref_gateway_reference: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    amount_minor: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    currency: Option<String>,
    #[diesel(sql_type = Binary)]
    payload: Vec<u8>,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Timestamp)]
    received_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    processed_at: NaiveDateTime,
}

const OUTBOX_COLUMNS: &str = "id, kind, order_id, payment_id, payload, status, attempts, \
    last_error, next_attempt_at, created_at, delivered_at, locked_until";

#[derive(Debug, PartialEq, QueryableByName)]
struct OutboxRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    order_id: i64,
    #[diesel(sql_type = BigInt)]
    payment_id: i64,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Timestamp)]
    next_attempt_at: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    delivered_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    locked_until: Option<NaiveDateTime>,
}

/// One foreign key: the referencing table and column, the referenced table.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, QueryableByName)]
struct ForeignKey {
    #[diesel(sql_type = Text)]
    from_table: String,
    #[diesel(sql_type = Text)]
    from_column: String,
    #[diesel(sql_type = Text)]
    to_table: String,
}

/// Every row of the four tables, every column the older schema has.
#[derive(Debug, PartialEq)]
struct Snapshot {
    orders: Vec<OrderRow>,
    payments: Vec<PaymentRow>,
    events: Vec<EventRow>,
    outbox: Vec<OutboxRow>,
    foreign_keys: Vec<ForeignKey>,
}

impl Snapshot {
    fn take(raw: &mut Raw) -> Self {
        let all = |columns: &str, table: &str| format!("SELECT {columns} FROM {table} ORDER BY id");
        let foreign_keys = match raw {
            Raw::Sqlite(_) => {
                r#"SELECT m.name AS from_table, f."from" AS from_column, f."table" AS to_table
                   FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
                   WHERE m.type = 'table' ORDER BY 1, 2"#
            }
            Raw::Pg(_) => {
                "SELECT c.conrelid::regclass::text AS from_table, a.attname::text AS from_column, \
                        c.confrelid::regclass::text AS to_table \
                 FROM pg_constraint c \
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                 WHERE c.contype = 'f' ORDER BY 1, 2"
            }
        };
        Self {
            orders: raw.load(&all(ORDER_COLUMNS, "orders")),
            payments: raw.load(&all(PAYMENT_COLUMNS, "payments")),
            events: {
                let sql = events_sql(raw);
                raw.load(&sql)
            },
            outbox: raw.load(&all(OUTBOX_COLUMNS, "outbox")),
            foreign_keys: raw.load(foreign_keys),
        }
    }
}

/// Every event row, every column [`EVENT_COLUMNS`] names: from migration
/// 8 on, the body comes from its own table (empty once pruned).
fn events_sql(raw: &mut Raw) -> String {
    if !raw.has_table("webhook_event_bodies") {
        return format!("SELECT {EVENT_COLUMNS} FROM webhook_events ORDER BY id");
    }
    let columns = EVENT_COLUMNS.replace(
        "payload",
        &format!(
            "COALESCE((SELECT b.payload FROM webhook_event_bodies b \
             WHERE b.event_row = webhook_events.id), {}) AS payload",
            raw.blob("")
        ),
    );
    format!("SELECT {columns} FROM webhook_events ORDER BY id")
}

/// The ids of what [`seed_before_lifecycle`] wrote.
struct Seeded {
    /// Paid by one completed payment; a failed payment beside it.
    paid_order: i64,
    completed: i64,
    failed: i64,
    /// Pending, with a payment pending at the gateway (`pi_wait`).
    pending_order: i64,
    waiting: i64,
    /// Paid by two completed USD payments of 150.00 (split payments, as the
    /// first wave allowed), with a completed EUR payment that its sum leaves out.
    split_order: i64,
}

/// Rows as the first wave's store wrote them, on its schema (version 2).
fn seed_before_lifecycle(raw: &mut Raw) -> Seeded {
    let order = |client: &str, total: i64, status: &str| {
        format!(
            "INSERT INTO orders (client_id, total_minor, currency, status, created_at, updated_at) \
             VALUES ('{client}', {total}, 'USD', '{status}', '2026-11-28 10:00:00', '2026-11-28 10:05:00')"
        )
    };
    let payment = |order: i64,
                   txn: &str,
                   amount: i64,
                   currency: &str,
                   status: &str,
                   external: &str| {
        format!(
            "INSERT INTO payments (order_id, transaction_id, payment_method, amount_minor, currency, \
             status, external_id, gateway_reference, created_at, updated_at) \
             VALUES ({order}, '{txn}', 'stripe', {amount}, '{currency}', '{status}', '{external}', \
             NULL, '2026-11-28 10:00:01', '2026-11-28 10:05:00.123456')"
        )
    };
    let paid_order = raw.insert(&order("c-paid", 15000, "paid"));
    let completed = raw.insert(&payment(
        paid_order,
        "TXN-M1",
        15000,
        "USD",
        "completed",
        "pi_done",
    ));
    let failed = raw.insert(&payment(
        paid_order, "TXN-M2", 15000, "USD", "failed", "pi_fail",
    ));
    raw.execute(&format!(
        "UPDATE payments SET gateway_reference = 'ch_done', mismatch_expected_minor = 15000, \
         mismatch_expected_currency = 'USD', mismatch_received_minor = 15001, \
         mismatch_received_currency = 'USD' WHERE id = {completed}"
    ));
    let pending_order = raw.insert(&order("c-pending", 20000, "pending"));
    let waiting = raw.insert(&payment(
        pending_order,
        "TXN-M3",
        20000,
        "USD",
        "pending_external",
        "pi_wait",
    ));
    let split_order = raw.insert(&order("c-split", 30000, "paid"));
    for (txn, amount, currency) in [
        ("TXN-M4", 15000, "USD"),
        ("TXN-M5", 15000, "USD"),
        ("TXN-M6", 500, "EUR"),
    ] {
        raw.insert(&payment(
            split_order,
            txn,
            amount,
            currency,
            "completed",
            &txn.to_lowercase(),
        ));
    }
    let payload = raw.blob(r#"{"id":"evt_m"}"#);
    for (event_id, kind, outcome, payment_id) in [
        ("evt_m1", "succeeded", "confirmed", completed.to_string()),
        ("evt_m2", "failed", "failed", failed.to_string()),
        ("evt_m3", "succeeded", "unmatched", "NULL".to_owned()),
    ] {
        raw.insert(&format!(
            "INSERT INTO webhook_events (gateway, event_id, event_type, kind, outcome, payment_id, \
             ref_transaction_id, ref_external_id, ref_gateway_reference, amount_minor, currency, \
             payload, attempts, received_at, processed_at) \
             VALUES ('stripe', '{event_id}', 'payment_intent.{kind}', '{kind}', '{outcome}', \
             {payment_id}, NULL, 'pi_{event_id}', NULL, 15000, 'USD', {payload}, 2, \
             '2026-11-28 10:04:00', '2026-11-28 10:05:00')"
        ));
    }
    for (kind, payment_id, status, delivered, locked) in [
        (
            "order.paid",
            completed,
            "delivered",
            "'2026-11-28 10:06:00'",
            "NULL",
        ),
        (
            "payment.failed",
            failed,
            "pending",
            "NULL",
            "'2026-11-28 10:07:00'",
        ),
    ] {
        raw.insert(&format!(
            "INSERT INTO outbox (kind, order_id, payment_id, payload, status, attempts, last_error, \
             next_attempt_at, created_at, delivered_at, locked_until) \
             VALUES ('{kind}', {paid_order}, {payment_id}, '{{\"type\":\"{kind}\"}}', '{status}', 1, \
             'HTTP 503', '2026-11-28 10:05:00', '2026-11-28 10:05:00', {delivered}, {locked})"
        ));
    }
    Seeded {
        paid_order,
        completed,
        failed,
        pending_order,
        waiting,
        split_order,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_migration_keeps_every_row_and_backfills_paid_sums() {
    for db in databases() {
        let name = db.backend;
        // One connection: the migrations, then the store's writes, run on
        // the connection the SQLite rebuild ran on.
        let options = StoreOptions {
            pool_size: 1,
            group_commit: false,
            ..StoreOptions::default()
        };
        let store = db.open(&options);
        assert_eq!(
            store
                .migrate_to(BEFORE_LIFECYCLE)
                .expect("migrate to version 2"),
            VERSIONS[..2],
            "{name}"
        );
        let mut raw = Raw::connect(&db);
        let seeded = seed_before_lifecycle(&mut raw);
        let before = Snapshot::take(&mut raw);
        assert_eq!(before.orders.len(), 3, "{name}");
        assert_eq!(before.payments.len(), 6, "{name}");
        let expected_keys = [
            ("outbox", "order_id", "orders"),
            ("outbox", "payment_id", "payments"),
            ("payments", "order_id", "orders"),
            ("webhook_events", "payment_id", "payments"),
        ]
        .map(|(from_table, from_column, to_table)| ForeignKey {
            from_table: from_table.into(),
            from_column: from_column.into(),
            to_table: to_table.into(),
        });
        assert_eq!(before.foreign_keys, expected_keys, "{name}");

        // What a server of version 3 does at start-up. On SQLite the
        // rebuild drops `orders` while `payments` rows reference it: with
        // foreign keys on (the pragma ignored, or the migration run inside
        // diesel's transaction, where the pragma is a no-op) it fails.
        assert_eq!(
            store
                .migrate_to(LIFECYCLE)
                .expect("the lifecycle migration"),
            [LIFECYCLE],
            "{name}"
        );

        assert_eq!(Snapshot::take(&mut raw), before, "{name}: rows changed");
        #[derive(Debug, PartialEq, QueryableByName)]
        struct Paid {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = BigInt)]
            paid_minor: i64,
        }
        assert_eq!(
            raw.load::<Paid>("SELECT id, paid_minor FROM orders ORDER BY id"),
            [
                Paid {
                    id: seeded.paid_order,
                    paid_minor: 15000
                },
                Paid {
                    id: seeded.pending_order,
                    paid_minor: 0
                },
                Paid {
                    id: seeded.split_order,
                    paid_minor: 30000
                },
            ],
            "{name}"
        );
        // The store reads the backfilled sums as the orders' paid amounts.
        for (order, status, paid) in [
            (seeded.paid_order, OrderStatus::Paid, 15000),
            (seeded.pending_order, OrderStatus::Pending, 0),
            (seeded.split_order, OrderStatus::Paid, 30000),
        ] {
            let read = store.order(OrderId(order)).await.expect("read order");
            assert_eq!(
                (read.status, read.paid_amount),
                (status, usd(paid)),
                "{name}"
            );
        }

        if let Raw::Sqlite(_) = raw {
            assert_eq!(
                raw.count("SELECT COUNT(*) AS n FROM pragma_foreign_key_check"),
                0,
                "{name}: dangling references"
            );
            #[derive(QueryableByName)]
            struct Check {
                #[diesel(sql_type = Text)]
                integrity_check: String,
            }
            let checks = raw.load::<Check>("SELECT integrity_check FROM pragma_integrity_check");
            assert_eq!(checks.len(), 1);
            assert_eq!(checks[0].integrity_check, "ok", "{name}");
            // AUTOINCREMENT still tracks the rebuilt tables from their largest id.
            assert_eq!(
                raw.count("SELECT seq AS n FROM sqlite_sequence WHERE name = 'orders'"),
                seeded.split_order,
                "{name}"
            );
            assert_eq!(
                raw.count("SELECT seq AS n FROM sqlite_sequence WHERE name = 'payments'"),
                before.payments.last().expect("payments").id,
                "{name}"
            );
        }
        // The foreign keys still hold: a row naming a missing order or
        // payment is refused.
        for orphan in [
            "INSERT INTO payments (order_id, transaction_id, payment_method, amount_minor, \
                 currency, status, created_at, updated_at) VALUES (999999, 'TXN-ORPHAN', 'stripe', \
                 1, 'USD', 'created', '2026-12-05 00:00:00', '2026-12-05 00:00:00')"
                .to_owned(),
            format!(
                "INSERT INTO outbox (kind, order_id, payment_id, payload, status, attempts, \
                 next_attempt_at, created_at) VALUES ('order.paid', {}, 999999, '{{}}', 'pending', \
                 0, '2026-12-05 00:00:00', '2026-12-05 00:00:00')",
                seeded.paid_order
            ),
        ] {
            assert!(raw.try_execute(&orphan).is_err(), "{name}: {orphan}");
        }

        // The store of this version writes payments with the refunds
        // migration's columns too.
        assert_eq!(
            store.migrate().expect("the refunds and later migrations"),
            [REFUNDS, RECONCILE, OUTBOX_DUE, EVENTS_VACUUM, EVENT_BODIES],
            "{name}"
        );

        // The new statuses pass the new checks, through the store and as
        // plain SQL; the checks still refuse a status nobody knows.
        let canceled = store
            .apply_event(warn(stripe_event(
                "evt_after_migration",
                EventKind::Canceled,
                by_external_id("pi_wait"),
                None,
            )))
            .await
            .expect("cancel after the migration");
        assert!(
            matches!(
                canceled,
                Applied::Decided {
                    outcome: Outcome::Canceled,
                    ..
                }
            ),
            "{name}: {canceled:?}"
        );
        assert_eq!(
            store
                .payment(PaymentId(seeded.waiting))
                .await
                .expect("read")
                .status,
            PaymentStatus::Canceled,
            "{name}"
        );
        raw.execute(&format!(
            "UPDATE payments SET status = 'refunded' WHERE id = {}; \
             UPDATE orders SET status = 'refunded' WHERE id = {}",
            seeded.completed, seeded.paid_order
        ));
        raw.execute(&format!(
            "UPDATE payments SET status = 'partially_refunded' WHERE id = {}",
            seeded.completed
        ));
        for bogus in [
            format!(
                "UPDATE payments SET status = 'bogus' WHERE id = {}",
                seeded.failed
            ),
            format!(
                "UPDATE orders SET status = 'canceled' WHERE id = {}",
                seeded.pending_order
            ),
        ] {
            assert!(raw.try_execute(&bogus).is_err(), "{name}: {bogus}");
        }

        // New rows take ids after the largest kept one.
        let next_order = order(&store, usd(100)).await;
        assert!(
            next_order.id.0 > seeded.split_order,
            "{name}: {next_order:?}"
        );
        assert_eq!(next_order.paid_amount, usd(0), "{name}");
        let next_payment = created_payment(&store, "stripe", usd(100)).await;
        assert!(
            next_payment.id.0 > before.payments.last().expect("payments").id,
            "{name}: {next_payment:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_rebuild_that_fails_midway_leaves_nothing_open_and_can_be_retried() {
    // SQLite only: its rebuild runs outside diesel's transaction, in one of
    // its own. PostgreSQL's migrations run in diesel's, which rolls back.
    let db = sqlite_db();
    let options = StoreOptions {
        pool_size: 1,
        group_commit: false,
        ..StoreOptions::default()
    };
    let store = db.open(&options);
    store
        .migrate_to(BEFORE_LIFECYCLE)
        .expect("migrate to version 2");
    let mut raw = Raw::connect(&db);
    let seeded = seed_before_lifecycle(&mut raw);
    let before = Snapshot::take(&mut raw);
    // A table in the way of the rebuild's second step: `orders` has been
    // rebuilt when `CREATE TABLE payments_new` fails, as a full disk or an
    // I/O error would stop it.
    raw.execute("CREATE TABLE payments_new (id INTEGER PRIMARY KEY)");

    let failed = store.migrate_to(LIFECYCLE);
    assert!(
        matches!(&failed, Err(OpenError::Migrate(message)) if message.contains("payments_new")),
        "{failed:?}"
    );
    // The rebuild's transaction did not stay open on the store's only
    // connection: another connection can write at once (it would wait for
    // the write lock, then fail) ...
    raw.execute("PRAGMA busy_timeout = 200; DROP TABLE payments_new;");
    assert_eq!(
        Snapshot::take(&mut raw),
        before,
        "the failed rebuild was rolled back"
    );
    // ... and the same connection can run the migration again.
    assert_eq!(
        store.migrate_to(LIFECYCLE).expect("the retried migration"),
        [LIFECYCLE]
    );
    assert_eq!(Snapshot::take(&mut raw), before);
    let read = store
        .order(OrderId(seeded.split_order))
        .await
        .expect("read order");
    assert_eq!(read.paid_amount, usd(30000));
    assert_eq!(
        raw.count("SELECT COUNT(*) AS n FROM pragma_foreign_key_check"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcile_migration_keeps_every_row_and_marks_old_events_as_webhooks() {
    for db in databases() {
        let name = db.backend;
        let store = db.open(&StoreOptions::default());
        assert_eq!(
            store.migrate_to(REFUNDS).expect("migrate to version 4"),
            VERSIONS[..4],
            "{name}"
        );
        let mut raw = Raw::connect(&db);
        let seeded = seed_before_lifecycle(&mut raw);
        raw.execute(&format!(
            "INSERT INTO refunds (payment_id, refund_id, amount_minor, currency, status, \
             status_at, created_at, updated_at) VALUES ({}, 're_1', 500, 'USD', 'succeeded', \
             '2026-11-29 10:00:00', '2026-11-29 10:00:00', '2026-11-29 10:00:00')",
            seeded.completed
        ));
        let before = Snapshot::take(&mut raw);
        let refunds_before = raw.count("SELECT COUNT(*) AS n FROM refunds");

        assert_eq!(
            store.migrate().expect("the reconcile migration"),
            [RECONCILE, OUTBOX_DUE, EVENTS_VACUUM, EVENT_BODIES],
            "{name}"
        );
        // The rows are as they were; the only new key is the new table's.
        let mut after = Snapshot::take(&mut raw);
        let new_key = ForeignKey {
            from_table: "reconciliations".into(),
            from_column: "payment_id".into(),
            to_table: "payments".into(),
        };
        let position = after.foreign_keys.iter().position(|key| *key == new_key);
        after
            .foreign_keys
            .remove(position.unwrap_or_else(|| panic!("{name}: no key {new_key:?}")));
        assert_eq!(after, before, "{name}: rows changed");
        assert_eq!(
            raw.count("SELECT COUNT(*) AS n FROM refunds"),
            refunds_before,
            "{name}"
        );
        // Every event recorded before came from a webhook, and keeps its body.
        assert_eq!(
            raw.count(
                "SELECT COUNT(*) AS n FROM webhook_events e \
                 JOIN webhook_event_bodies b ON b.event_row = e.id \
                 WHERE e.source = 'webhook'"
            ),
            i64::try_from(before.events.len()).expect("small"),
            "{name}"
        );
        let events = store
            .webhook_events(payhook_domain::ports::EventFilter::default())
            .await
            .expect("events");
        assert_eq!(events.len(), before.events.len(), "{name}");
        assert!(
            events
                .iter()
                .all(|e| e.source == payhook_domain::ports::EventSource::Webhook),
            "{name}: {events:?}"
        );
        assert_eq!(
            raw.count("SELECT COUNT(*) AS n FROM reconciliations"),
            0,
            "{name}"
        );
        // The source is checked like every other code.
        let bogus = format!(
            "UPDATE webhook_events SET source = 'bogus' WHERE id = {}",
            before.events[0].id
        );
        assert!(raw.try_execute(&bogus).is_err(), "{name}: {bogus}");

        // The payment left pending before the migration is due for a check.
        let due = payhook_domain::ReconcileStore::due_payments(
            &store,
            &payhook_domain::reconcile::DueQuery {
                gateways: vec!["stripe".into()],
                unchanged_since: chrono::DateTime::from_timestamp(1_900_000_000, 0).expect("time"),
                now: chrono::DateTime::from_timestamp(1_900_000_000, 0).expect("time"),
                limit: 10,
            },
            Some(std::time::Duration::from_secs(60)),
        )
        .await
        .expect("due");
        assert_eq!(
            due.iter().map(|p| p.id).collect::<Vec<_>>(),
            [PaymentId(seeded.waiting)],
            "{name}"
        );
        // A claim's row references the payment, as the foreign key says.
        let orphan = "INSERT INTO reconciliations (payment_id, failures) VALUES (999999, 0)";
        assert!(raw.try_execute(orphan).is_err(), "{name}: {orphan}");
    }
}

#[derive(Debug, PartialEq, QueryableByName)]
struct KeptBody {
    #[diesel(sql_type = BigInt)]
    event_row: i64,
    #[diesel(sql_type = Timestamp)]
    received_at: NaiveDateTime,
    #[diesel(sql_type = Binary)]
    payload: Vec<u8>,
}

#[derive(Debug, PartialEq, QueryableByName)]
struct PrunedBody {
    #[diesel(sql_type = BigInt)]
    event_row: i64,
    #[diesel(sql_type = Timestamp)]
    pruned_at: NaiveDateTime,
}

#[derive(Debug, PartialEq, QueryableByName)]
struct PrunedMark {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pruned_at: Option<NaiveDateTime>,
}

/// Migration 8 moves every kept body to `webhook_event_bodies` and every
/// pruning's time to `webhook_bodies_pruned`, keeps every other column of
/// every row, and the store reads the events as before; its `down.sql`
/// puts the bodies and marks back where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_bodies_migration_moves_bodies_and_marks_and_back() {
    for db in databases() {
        let name = db.backend;
        let store = db.open(&StoreOptions::default());
        store
            .migrate_to(BEFORE_LIFECYCLE)
            .expect("migrate to version 2");
        let mut raw = Raw::connect(&db);
        let seeded = seed_before_lifecycle(&mut raw);
        assert_eq!(
            store
                .migrate_to(EVENTS_VACUUM)
                .expect("migrate to version 7"),
            VERSIONS[2..7],
            "{name}"
        );
        // The first event was pruned by the pruner of version 7.
        let first: i64 = raw.count("SELECT MIN(id) AS n FROM webhook_events");
        raw.execute(&format!(
            "UPDATE webhook_events SET payload = {}, pruned_at = '2026-12-01 08:00:00' \
             WHERE id = {first}",
            raw.blob("")
        ));
        let marks_sql = "SELECT id, pruned_at FROM webhook_events ORDER BY id";
        let marks: Vec<PrunedMark> = raw.load(marks_sql);
        let before = Snapshot::take(&mut raw);
        assert_eq!(before.events.len(), 3, "{name}");

        assert_eq!(
            store.migrate().expect("migration 8"),
            [EVENT_BODIES],
            "{name}"
        );
        let after = Snapshot::take(&mut raw);
        assert_eq!(after, before, "{name}: rows changed");
        let kept: Vec<KeptBody> = raw.load(
            "SELECT event_row, received_at, payload FROM webhook_event_bodies ORDER BY event_row",
        );
        let expected: Vec<KeptBody> = before
            .events
            .iter()
            .filter(|event| event.id != first)
            .map(|event| KeptBody {
                event_row: event.id,
                received_at: event.received_at,
                payload: event.payload.clone(),
            })
            .collect();
        assert_eq!(kept, expected, "{name}");
        let pruned: Vec<PrunedBody> =
            raw.load("SELECT event_row, pruned_at FROM webhook_bodies_pruned ORDER BY event_row");
        assert_eq!(
            pruned,
            [PrunedBody {
                event_row: first,
                pruned_at: "2026-12-01T08:00:00".parse().expect("time"),
            }],
            "{name}"
        );
        // The store reads a kept body and a pruned one as before.
        let detail = |id: i64| {
            let store = &store;
            async move {
                store
                    .webhook_event(id)
                    .await
                    .expect("event detail")
                    .expect("the event")
            }
        };
        let pruned_detail = detail(first).await;
        assert!(pruned_detail.payload.is_empty(), "{name}");
        assert_eq!(
            pruned_detail.pruned_at,
            "2026-12-01T08:00:00Z".parse().ok(),
            "{name}"
        );
        let kept_detail = detail(expected[0].event_row).await;
        assert_eq!(kept_detail.payload, expected[0].payload, "{name}");
        assert_eq!(kept_detail.pruned_at, None, "{name}");
        // A second delivery of a migrated event is still a duplicate.
        let again = store
            .apply_event(warn(stripe_event(
                "evt_m1",
                EventKind::Succeeded,
                by_external_id("pi_evt_m1"),
                Some(usd(15000)),
            )))
            .await
            .expect("a re-delivery");
        assert!(
            matches!(again, Applied::Duplicate { .. }),
            "{name}: {again:?}"
        );
        assert_eq!(
            store
                .payment(PaymentId(seeded.completed))
                .await
                .expect("payment")
                .status,
            PaymentStatus::Completed,
            "{name}"
        );

        // Back: the bodies and marks are where version 7 had them.
        let down = match raw {
            Raw::Sqlite(_) => include_str!(
                "../../../../migrations/sqlite/2026-12-05-000008_event_bodies/down.sql"
            ),
            Raw::Pg(_) => include_str!(
                "../../../../migrations/postgres/2026-12-05-000008_event_bodies/down.sql"
            ),
        };
        raw.execute(down);
        assert!(!raw.has_table("webhook_event_bodies"), "{name}");
        assert_eq!(Snapshot::take(&mut raw), before, "{name}: after down.sql");
        assert_eq!(raw.load::<PrunedMark>(marks_sql), marks, "{name}");
    }
}
