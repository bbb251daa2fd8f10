//! Test databases on both backends, and builders for orders, payments and
//! gateway events, so that each test body is written once.
//!
//! It does not hide failures: a missing PostgreSQL server is reported on the
//! real stderr (not the captured one) in every test that would have used it.

use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use payhook_domain::ports::{EventToApply, Store};
use payhook_domain::{
    AmountPolicy, Currency, EventKind, GatewayEvent, Money, NewOrder, NewPayment, Order, OrderId,
    Payment, References,
};
use payhook_store_diesel::{DieselStore, OutboxEntry, StoreOptions};
use tempfile::TempDir;

/// The variable naming the PostgreSQL server the tests may use (an admin URL:
/// it must be allowed to create and drop databases).
pub const POSTGRES_ENV: &str = "PAYHOOK_TEST_POSTGRES_URL";

/// Makes names unique within this test process.
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

fn next_number() -> u64 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

/// Writes to the process's real stderr, which the test harness does not
/// capture, so the line shows even when the test passes.
pub fn say_loudly(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// What keeps a test database alive; dropping it removes the database.
enum Guard {
    Sqlite { _dir: TempDir },
    Postgres { _database: PostgresDatabase },
}

/// A PostgreSQL database created for one test and dropped after it.
struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // FORCE: pooled connections of clones still alive must not keep the
        // database from being dropped.
        let dropped = PgConnection::establish(&self.admin_url).map(|mut admin| {
            diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
        });
        if !matches!(dropped, Ok(Ok(_))) {
            say_loudly(&format!(
                "warning: could not drop test database {}",
                self.name
            ));
        }
    }
}

/// One empty (not migrated) database of one backend.
pub struct TestDb {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The URL `DieselStore::open` takes.
    pub url: String,
    _guard: Guard,
}

impl TestDb {
    /// A store on this database, not migrated.
    pub fn open(&self, options: &StoreOptions) -> DieselStore {
        DieselStore::open(&self.url, options)
            .unwrap_or_else(|e| panic!("open {} test database: {e}", self.backend))
    }

    /// A store on this database, migrated.
    pub fn open_migrated(&self, options: &StoreOptions) -> DieselStore {
        let store = self.open(options);
        store
            .migrate()
            .unwrap_or_else(|e| panic!("migrate {} test database: {e}", self.backend));
        store
    }
}

/// A fresh SQLite file in its own temporary directory (never `:memory:`,
/// which is one database per pooled connection).
pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("t.db");
    TestDb {
        backend: "sqlite",
        url: format!("sqlite://{}", path.display()),
        _guard: Guard::Sqlite { _dir: dir },
    }
}

/// A fresh PostgreSQL database, or `None` (said loudly) when no server is configured.
pub fn postgres_db() -> Option<TestDb> {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        // CI must test PostgreSQL for real: there a missing URL is a failure.
        assert!(
            std::env::var_os("PAYHOOK_REQUIRE_POSTGRES").is_none(),
            "PAYHOOK_REQUIRE_POSTGRES is set but {POSTGRES_ENV} is not"
        );
        say_loudly(&format!(
            "PostgreSQL tests SKIPPED: {POSTGRES_ENV} is not set"
        ));
        return None;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!("payhook_t_{}_{}_{nanos}", std::process::id(), next_number());
    let mut admin = PgConnection::establish(&admin_url)
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but unreachable: {e}"));
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    Some(TestDb {
        backend: "postgres",
        url: with_database(&admin_url, &name),
        _guard: Guard::Postgres {
            _database: PostgresDatabase { admin_url, name },
        },
    })
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

/// Every backend this run can test: SQLite always, PostgreSQL when configured.
pub fn databases() -> Vec<TestDb> {
    let mut all = vec![sqlite_db()];
    all.extend(postgres_db());
    all
}

/// What a test body gets for one backend.
#[derive(Clone)]
pub struct Backend {
    /// `sqlite` or `postgres`, for assertion messages.
    pub name: &'static str,
    /// The database URL, to open more stores (other "processes") on it.
    pub url: String,
    /// A migrated store on a database of its own.
    pub store: DieselStore,
}

/// Runs `test` once per backend, each time on a fresh migrated database.
pub async fn for_each_backend<F, Fut>(options: StoreOptions, test: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for db in databases() {
        let store = db.open_migrated(&options);
        eprintln!("--- on {}", db.backend);
        test(Backend {
            name: db.backend,
            url: db.url.clone(),
            store,
        })
        .await;
    }
}

/// A fixed instant, `offset` seconds after a base time.
pub fn at(offset: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + offset, 0).expect("valid timestamp")
}

/// `minor` units of the currency `code`.
pub fn money(minor: i64, code: &str) -> Money {
    Money::from_minor(minor, Currency::parse(code).expect("ISO currency"))
}

/// `minor` cents.
pub fn usd(minor: i64) -> Money {
    money(minor, "USD")
}

/// A transaction id no other payment of this process has.
pub fn fresh_transaction_id() -> String {
    format!("TXN-IT-{}", next_number())
}

/// An external or event id no other test of this process uses.
pub fn fresh_id(prefix: &str) -> String {
    format!("{prefix}_{}", next_number())
}

/// A pending order for `total`.
pub async fn order(store: &DieselStore, total: Money) -> Order {
    store
        .create_order(
            NewOrder {
                client_id: "c-1".into(),
                total,
            },
            at(0),
        )
        .await
        .expect("create order")
}

/// A payment in `created` for a new order of the same amount.
pub async fn created_payment(store: &DieselStore, method: &str, amount: Money) -> Payment {
    let order = order(store, amount).await;
    store
        .create_payment(
            NewPayment {
                order_id: order.id,
                transaction_id: fresh_transaction_id(),
                payment_method: method.into(),
                amount,
            },
            at(1),
        )
        .await
        .expect("create payment")
}

/// Another payment in `created`, of the Stripe gateway, for the order `order_id`.
pub async fn payment_for(store: &DieselStore, order_id: OrderId, amount: Money) -> Payment {
    store
        .create_payment(
            NewPayment {
                order_id,
                transaction_id: fresh_transaction_id(),
                payment_method: "stripe".into(),
                amount,
            },
            at(1),
        )
        .await
        .expect("create payment")
}

/// A payment in `pending_external` under `external_id`, for a new order.
pub async fn pending_payment(
    store: &DieselStore,
    method: &str,
    external_id: &str,
    amount: Money,
) -> Payment {
    let payment = created_payment(store, method, amount).await;
    store
        .mark_pending(payment.id, external_id.into(), AmountPolicy::Warn, at(2))
        .await
        .expect("mark pending")
}

/// References naming only a transaction id.
pub fn by_transaction_id(id: &str) -> References {
    References {
        transaction_id: Some(id.into()),
        ..References::default()
    }
}

/// References naming only an external id.
pub fn by_external_id(id: &str) -> References {
    References {
        external_id: Some(id.into()),
        ..References::default()
    }
}

/// References naming only the gateway's own reference.
pub fn by_gateway_reference(reference: &str) -> References {
    References {
        gateway_reference: Some(reference.into()),
        ..References::default()
    }
}

/// A Stripe event of `kind`.
pub fn stripe_event(
    event_id: &str,
    kind: EventKind,
    references: References,
    amount: Option<Money>,
) -> GatewayEvent {
    let event_type = match kind {
        EventKind::Succeeded => "payment_intent.succeeded",
        EventKind::Failed => "payment_intent.payment_failed",
        EventKind::Canceled => "payment_intent.canceled",
        EventKind::Pending => "payment_intent.processing",
        EventKind::NotHandled => "customer.created",
        // `EventKind` is non-exhaustive; a kind added later is some other type.
        _ => "customer.created",
    };
    GatewayEvent {
        gateway: "stripe".into(),
        event_id: event_id.into(),
        event_type: event_type.into(),
        kind,
        references,
        amount,
        report: None,
    }
}

/// A Stripe success.
pub fn succeeded(event_id: &str, references: References, amount: Option<Money>) -> GatewayEvent {
    stripe_event(event_id, EventKind::Succeeded, references, amount)
}

/// A Stripe failure.
pub fn failed(event_id: &str, references: References) -> GatewayEvent {
    stripe_event(event_id, EventKind::Failed, references, None)
}

/// `event` as the store receives it, under `policy`.
pub fn to_apply(event: GatewayEvent, policy: AmountPolicy) -> EventToApply {
    let payload = format!(
        r#"{{"id":"{}","type":"{}"}}"#,
        event.event_id, event.event_type
    )
    .into_bytes();
    EventToApply {
        event,
        payload,
        policy,
        received_at: at(100),
        source: payhook_domain::ports::EventSource::Webhook,
    }
}

/// `event` under the default (warn) policy.
pub fn warn(event: GatewayEvent) -> EventToApply {
    to_apply(event, AmountPolicy::Warn)
}

/// The outbox rows of one payment, oldest first.
pub async fn outbox_of(store: &DieselStore, payment: &Payment) -> Vec<OutboxEntry> {
    store
        .outbox()
        .await
        .expect("read outbox")
        .into_iter()
        .filter(|row| row.payment_id == payment.id.0)
        .collect()
}

/// The outbox rows of one order, oldest first.
pub async fn outbox_of_order(store: &DieselStore, order_id: OrderId) -> Vec<OutboxEntry> {
    store
        .outbox()
        .await
        .expect("read outbox")
        .into_iter()
        .filter(|row| row.order_id == order_id.0)
        .collect()
}

/// The kinds of the outbox rows of one payment, oldest first.
pub async fn outbox_kinds(store: &DieselStore, payment: &Payment) -> Vec<String> {
    outbox_of(store, payment)
        .await
        .into_iter()
        .map(|row| row.kind)
        .collect()
}

#[test]
fn database_names_are_swapped_into_urls() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}
