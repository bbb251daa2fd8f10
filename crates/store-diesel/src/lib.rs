//! payhook's store: the [`payhook_domain::ports::Store`] port over diesel and
//! r2d2, on SQLite (the embedded default) or PostgreSQL, chosen by the URL.
//!
//! Every operation is one transaction on one pooled connection, run on
//! tokio's blocking pool so that synchronous diesel never stalls the async
//! runtime. The decisions are the domain's ([`payhook_domain::decide`],
//! [`payhook_domain::Payment::mark_pending`]); this crate only runs them
//! inside the transaction and writes what they say.
//!
//! It deliberately knows nothing of HTTP or of any gateway.
//!
//! Gateway events take a faster road than the other calls: concurrent
//! events are queued to writer threads that apply many in one transaction
//! (see [`StoreOptions::group_commit`]), and on SQLite a thread of the store
//! runs the WAL checkpoints. Build the bundled SQLite with
//! `LIBSQLITE3_FLAGS=SQLITE_ENABLE_QPSG` (this workspace sets it in
//! `.cargo/config.toml`): without it, a database that has been `ANALYZE`d
//! re-prepares its lookups on every execution.
//!
//! # Embedding
//!
//! Open a store, run the migrations, and hand it to the domain's services
//! with a clock and a transaction id source. Calls must run inside a tokio
//! runtime (the store uses its blocking pool). The full example, with a
//! Stripe event received over HTTP, is
//! `cargo run -p payhook-examples --example embedded_shop`.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! use chrono::{DateTime, Utc};
//! use payhook_domain::ports::{Clock, Store, TransactionIds};
//! use payhook_domain::{
//!     AmountPolicy, Currency, EventKind, GatewayEvent, Money, OrderStatus, Outcome,
//!     PaymentService, PaymentStatus, References, WebhookOutcome, WebhookService,
//! };
//! use payhook_store_diesel::{DieselStore, StoreOptions};
//!
//! struct SystemClock;
//!
//! impl Clock for SystemClock {
//!     fn now(&self) -> DateTime<Utc> {
//!         std::time::SystemTime::now().into()
//!     }
//! }
//!
//! struct Counter(AtomicU64);
//!
//! impl TransactionIds for Counter {
//!     fn next_id(&self) -> String {
//!         format!("TXN-DOC-{}", self.0.fetch_add(1, Ordering::Relaxed))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("shop.db").display());
//! let store = DieselStore::open(&url, &StoreOptions::default())?;
//! store.migrate()?;
//!
//! let store: Arc<dyn Store> = Arc::new(store);
//! let clock: Arc<dyn Clock> = Arc::new(SystemClock);
//! let ids = Arc::new(Counter(AtomicU64::new(1)));
//! let payments = PaymentService::new(store.clone(), clock.clone(), ids, ["stripe"]);
//! let webhooks = WebhookService::new(store, clock, AmountPolicy::Warn);
//!
//! let usd = Currency::parse("USD")?;
//! let order = payments.create_order("customer-1".into(), Money::parse("150.00", usd)?).await?;
//! let payment = payments.create_payment(order.id, "stripe".into(), order.total).await?;
//! payments.mark_pending(payment.id, "pi_123".into()).await?;
//!
//! // What an adapter's `parse` returns for a verified call (here built by
//! // hand; `WebhookService::handle` does verify, parse and apply in one).
//! let event = GatewayEvent {
//!     gateway: "stripe".into(),
//!     event_id: "evt_1".into(),
//!     event_type: "payment_intent.succeeded".into(),
//!     kind: EventKind::Succeeded,
//!     references: References { external_id: Some("pi_123".into()), ..References::default() },
//!     amount: Some(Money::from_minor(15000, usd)),
//!     report: None,
//! };
//! let outcome = webhooks.apply(event, b"{\"id\":\"evt_1\"}".to_vec()).await?;
//! assert!(matches!(outcome, WebhookOutcome::Decided { outcome: Outcome::Confirmed, .. }));
//!
//! assert_eq!(payments.payment(payment.id).await?.status, PaymentStatus::Completed);
//! assert_eq!(payments.order(order.id).await?.status, OrderStatus::Paid);
//! # Ok(())
//! # }
//! ```

mod checkpoint;
mod conn;
mod group;
mod models;
mod ops;
mod outbox;
mod overview;
mod prune;
mod reconcile;
mod report;
mod schema;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use payhook_domain::ports::{
    Applied, EventDetail, EventFilter, EventToApply, OutboxStore, Store, StoreError, StoredEvent,
};
use payhook_domain::{
    AmountPolicy, NewOrder, NewPayment, Order, OrderId, OutboxMessage, OutboxStatus, Payment,
    PaymentId, Refund, RetryPolicy,
};

// `DbConn` stays inside: it is diesel's connection, and an embedder that
// ran SQL on it would bypass the store's transactions and locks.
use conn::{DbConn, StoreConn};
pub use conn::{Target, UnsupportedUrl};
#[cfg(feature = "testing")]
pub use ops::inspect::{EventRecord, OutboxEntry};
pub use prune::{PruneQuery, PruneReport};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The PostgreSQL advisory lock key held while migrating ("payhook" in ASCII).
const MIGRATION_LOCK: i64 = 0x0070_6179_686f_6f6b;

/// How the pool behaves.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections open at once.
    pub pool_size: u32,
    /// How long a request waits for a connection before the store answers
    /// `Unavailable`: the bound on a request when the database is down.
    pub connect_timeout: Duration,
    /// How long a SQLite writer waits for another writer's lock.
    pub busy_timeout: Duration,
    /// Applies concurrent gateway events in shared transactions (one commit
    /// for many events, each under its own savepoint); see the `group`
    /// module. Off, each event is its own transaction.
    pub group_commit: bool,
    /// Group-commit writer threads on PostgreSQL, at most `pool_size - 1`
    /// (a writer keeps its connection under load; the API needs one too).
    /// Each takes what is queued and holds a connection while events keep
    /// coming, so the writers of every process on one database share its
    /// cores: more than its cores can run makes each batch smaller and
    /// costs more per event, not less. `None`: half the pool, at most
    /// four. SQLite always has one (one writer at a time).
    pub writers: Option<NonZeroU32>,
}

impl StoreOptions {
    /// How many group-commit writers a store opened with these options on
    /// `target` starts (also when group commit is off, for a report). SQLite
    /// has one writer at a time: one thread batches for it. PostgreSQL
    /// takes several, each batching what is queued; one set explicitly
    /// leaves at least one of the pool's connections to the rest of the
    /// work.
    pub fn writers_on(&self, target: &Target) -> u32 {
        if target.is_sqlite() {
            return 1;
        }
        match self.writers {
            Some(writers) => writers.get().min(self.pool_size.saturating_sub(1)).max(1),
            None => (self.pool_size / 2).clamp(1, 4),
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            group_commit: true,
            writers: None,
        }
    }
}

/// Why the store could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL names no supported backend.
    #[error(transparent)]
    Url(#[from] UnsupportedUrl),
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] r2d2::Error),
    /// A migration failed.
    #[error("migrations failed: {0}")]
    Migrate(String),
}

/// The diesel store. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct DieselStore {
    pool: r2d2::Pool<conn::Manager>,
    target: Target,
    group: Option<Arc<group::GroupCommit>>,
    /// SQLite only; its thread stops when the last clone is dropped.
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

impl std::fmt::Debug for DieselStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl DieselStore {
    /// Opens a pool on `url` (`sqlite://path` or `postgres://...`). Fails when
    /// the database cannot be reached within `options.connect_timeout`.
    pub fn open(url: &str, options: &StoreOptions) -> Result<Self, OpenError> {
        let target = Target::parse(url)?;
        let pool = Self::pool_builder(options)
            .build(conn::Manager::new(target.clone(), options.busy_timeout))
            .map_err(OpenError::Connect)?;
        Ok(Self::with_pool(pool, target, options))
    }

    /// Like [`DieselStore::open`], but does not wait for a first connection:
    /// a server can start while its database is down, answer 503 and fail
    /// its readiness check until the database comes back.
    pub fn open_lazy(url: &str, options: &StoreOptions) -> Result<Self, OpenError> {
        let target = Target::parse(url)?;
        let pool = Self::pool_builder(options)
            .build_unchecked(conn::Manager::new(target.clone(), options.busy_timeout));
        Ok(Self::with_pool(pool, target, options))
    }

    fn with_pool(pool: r2d2::Pool<conn::Manager>, target: Target, options: &StoreOptions) -> Self {
        let writers = usize::try_from(options.writers_on(&target)).unwrap_or(1);
        let group = options
            .group_commit
            .then(|| Arc::new(group::GroupCommit::start(pool.clone(), writers)));
        let checkpointer = target
            .is_sqlite()
            .then(|| Arc::new(checkpoint::Checkpointer::start(pool.clone())));
        Self {
            pool,
            target,
            group,
            _checkpointer: checkpointer,
        }
    }

    fn pool_builder(options: &StoreOptions) -> r2d2::Builder<conn::Manager> {
        r2d2::Pool::builder()
            .max_size(options.pool_size)
            .min_idle(Some(1))
            .connection_timeout(options.connect_timeout)
            // Logged by the store's callers with context; r2d2's own log
            // line would repeat every failed attempt.
            .error_handler(Box::new(r2d2::NopErrorHandler))
    }

    /// Applies the embedded migrations of this backend that have not run yet
    /// and returns their versions. Each migration is one transaction: one
    /// that fails leaves the database as the migrations before it left it,
    /// and `migrate` may be called again.
    pub fn migrate(&self) -> Result<Vec<String>, OpenError> {
        self.migrate_with(|conn, migrations| {
            conn.run_pending_migrations(migrations)
                .map(|versions| versions.iter().map(ToString::to_string).collect())
        })
    }

    /// Applies the embedded migrations of this backend that have not run
    /// yet, up to and including `version`, and returns their versions: a
    /// database left at an earlier schema, for testing a later migration on
    /// the rows it holds. Each runs as [`DieselStore::migrate`] runs it (in
    /// a transaction unless its `metadata.toml` says otherwise). For tests
    /// (the `testing` feature); fails when `version` is not pending.
    #[cfg(feature = "testing")]
    pub fn migrate_to(&self, version: &str) -> Result<Vec<String>, OpenError> {
        self.migrate_with(|conn, migrations| {
            // Sorted by version, like `run_pending_migrations` runs them.
            let pending = conn.pending_migrations(migrations)?;
            let Some(last) = pending
                .iter()
                .position(|migration| migration.name().version().to_string() == version)
            else {
                return Err(format!("migration {version} is not pending").into());
            };
            pending[..=last]
                .iter()
                .map(|migration| {
                    conn.run_migration(migration.as_ref())
                        .map(|applied| applied.to_string())
                })
                .collect()
        })
    }

    /// Runs `run` with this backend's embedded migrations on one pooled
    /// connection, one process at a time on PostgreSQL.
    fn migrate_with(
        &self,
        run: impl FnOnce(&mut DbConn, EmbeddedMigrations) -> diesel::migration::Result<Vec<String>>,
    ) -> Result<Vec<String>, OpenError> {
        let mut pooled = self.pool.get().map_err(OpenError::Connect)?;
        let conn = &mut pooled.db;
        let migrations = match conn {
            DbConn::Sqlite(_) => SQLITE_MIGRATIONS,
            DbConn::Pg(_) => POSTGRES_MIGRATIONS,
        };
        // Several server processes may start at once on one PostgreSQL
        // database: a session advisory lock lets one migrate at a time.
        let locked = matches!(conn, DbConn::Pg(_));
        if locked {
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .map_err(|e| OpenError::Migrate(e.to_string()))?;
        }
        let done = run(conn, migrations).map_err(|e| OpenError::Migrate(e.to_string()));
        if let (Err(_), DbConn::Sqlite(sqlite)) = (&done, &mut *conn) {
            // A migration that runs outside diesel's transaction (its
            // `metadata.toml` says so) opens one of its own and turns foreign
            // keys off. Stopped midway, it leaves both so on this pooled
            // connection, which would hold the write lock and refuse the
            // next BEGIN. With no transaction open, ROLLBACK fails harmlessly.
            let _ = sqlite.batch_execute("ROLLBACK");
            sqlite
                .batch_execute("PRAGMA foreign_keys = ON")
                .map_err(|e| OpenError::Migrate(e.to_string()))?;
        }
        if locked {
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                .map_err(|e| OpenError::Migrate(e.to_string()))?;
        }
        done
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        if self.target.is_sqlite() {
            "sqlite"
        } else {
            "postgres"
        }
    }

    /// Connections open, idle, and the pool's maximum.
    pub fn pool_usage(&self) -> (u32, u32, u32) {
        let state = self.pool.state();
        (
            state.connections,
            state.idle_connections,
            self.pool.max_size(),
        )
    }

    /// Outbox rows not yet delivered (pending), for the backlog metric.
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        self.run(outbox::backlog).await
    }

    /// The outbox rows, oldest first. For tests (the `testing` feature).
    #[cfg(feature = "testing")]
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.run(ops::inspect::outbox).await
    }

    /// Applies `batch` as one group-commit batch: in one transaction, as a
    /// writer thread applies what it finds queued, and answers in `batch`
    /// order. It bypasses the queue so that a test, not the timing, decides
    /// which events share a transaction. For tests (the `testing` feature).
    #[cfg(feature = "testing")]
    pub async fn apply_batch(
        &self,
        batch: Vec<EventToApply>,
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
        self.run(move |conn| Ok(ops::apply_events(conn, &batch)))
            .await
    }

    /// PostgreSQL's plan (`EXPLAIN`, a line per row) for a dispatcher's
    /// claim at `now` of `limit` rows; empty on SQLite. For tests.
    #[cfg(feature = "testing")]
    pub async fn explain_claim(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        self.run(move |conn| outbox::explain_claim(conn, now, limit))
            .await
    }

    /// The recorded gateway events, oldest first. For tests (the `testing`
    /// feature).
    #[cfg(feature = "testing")]
    pub async fn events(&self) -> Result<Vec<EventRecord>, StoreError> {
        self.run(ops::inspect::events).await
    }

    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut StoreConn) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool
                .get()
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            work(&mut conn)
        })
        .await
        .map_err(|join| StoreError::Backend(Box::new(join)))?
    }
}

#[async_trait]
impl Store for DieselStore {
    async fn create_order(&self, order: NewOrder, now: DateTime<Utc>) -> Result<Order, StoreError> {
        self.run(move |conn| ops::create_order(conn, &order, now))
            .await
    }

    async fn order(&self, id: OrderId) -> Result<Order, StoreError> {
        self.run(move |conn| ops::order(conn, id)).await
    }

    async fn create_payment(
        &self,
        payment: NewPayment,
        now: DateTime<Utc>,
    ) -> Result<Payment, StoreError> {
        self.run(move |conn| ops::create_payment(conn, &payment, now))
            .await
    }

    async fn payment(&self, id: PaymentId) -> Result<Payment, StoreError> {
        self.run(move |conn| ops::payment(conn, id)).await
    }

    async fn mark_pending(
        &self,
        id: PaymentId,
        external_id: String,
        policy: AmountPolicy,
        now: DateTime<Utc>,
    ) -> Result<Payment, StoreError> {
        self.run(move |conn| ops::mark_pending(conn, id, &external_id, policy, now))
            .await
    }

    async fn apply_event(&self, event: EventToApply) -> Result<Applied, StoreError> {
        if let Some(group) = &self.group {
            if let Some(result) = group.apply(event.clone()).await {
                return result;
            }
        }
        self.run(move |conn| ops::apply_event(conn, &event)).await
    }

    async fn webhook_events(&self, filter: EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        self.run(move |conn| ops::webhook_events(conn, &filter))
            .await
    }

    async fn webhook_event(&self, id: i64) -> Result<Option<EventDetail>, StoreError> {
        self.run(move |conn| ops::webhook_event(conn, id)).await
    }

    async fn refunds(&self, id: PaymentId) -> Result<Vec<Refund>, StoreError> {
        self.run(move |conn| ops::refunds(conn, id)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            let conn = &mut conn.db;
            let migrations = match conn {
                DbConn::Sqlite(_) => SQLITE_MIGRATIONS,
                DbConn::Pg(_) => POSTGRES_MIGRATIONS,
            };
            match conn.has_pending_migration(migrations) {
                Ok(false) => Ok(()),
                Ok(true) => Err(StoreError::Backend("database is not migrated".into())),
                Err(e) => Err(StoreError::Unavailable(e)),
            }
        })
        .await
    }
}

#[async_trait]
impl OutboxStore for DieselStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.run(move |conn| outbox::claim_due(conn, now, lease, limit))
            .await
    }

    async fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.run(move |conn| outbox::mark_delivered(conn, id, now))
            .await
    }

    async fn mark_all_delivered(&self, ids: &[i64], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let ids = ids.to_vec();
        self.run(move |conn| outbox::mark_all_delivered(conn, &ids, now))
            .await
    }

    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
        jitter: f64,
    ) -> Result<OutboxStatus, StoreError> {
        let error = error.to_owned();
        let policy = *policy;
        self.run(move |conn| outbox::mark_failed(conn, id, &error, now, &policy, jitter))
            .await
    }

    async fn notifications(
        &self,
        status: Option<OutboxStatus>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.run(move |conn| outbox::notifications(conn, status, limit))
            .await
    }

    async fn requeue(&self, id: i64, now: DateTime<Utc>) -> Result<OutboxMessage, StoreError> {
        self.run(move |conn| outbox::requeue(conn, id, now)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use payhook_domain::{Currency, EventKind, GatewayEvent, Money, Outcome, References};

    use super::*;

    fn sqlite_store(dir: &tempfile::TempDir, name: &str) -> DieselStore {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        let store = DieselStore::open(&url, &StoreOptions::default()).unwrap();
        store.migrate().unwrap();
        store
    }

    /// The versions whose migration runs outside a transaction, per
    /// backend, as `embed_migrations!` read them from `metadata.toml`.
    fn outside_a_transaction(migrations: &EmbeddedMigrations) -> Vec<String> {
        use diesel::migration::MigrationSource;
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(migrations)
            .unwrap()
            .iter()
            .filter(|migration| !migration.metadata().run_in_transaction())
            .map(|migration| migration.name().version().to_string())
            .collect()
    }

    #[test]
    fn writers_are_one_on_sqlite_and_as_configured_within_the_pool_on_postgresql() {
        let sqlite = Target::parse("sqlite://x.db").unwrap();
        let postgres = Target::parse("postgres://localhost/x").unwrap();
        let options = |pool_size, writers| StoreOptions {
            pool_size,
            writers: NonZeroU32::new(writers),
            ..StoreOptions::default()
        };
        // The default: half the pool, at least one, at most four.
        let writer_count = |target, options: StoreOptions| options.writers_on(target);
        assert_eq!(writer_count(&postgres, options(8, 0)), 4);
        assert_eq!(writer_count(&postgres, options(32, 0)), 4);
        assert_eq!(writer_count(&postgres, options(6, 0)), 3);
        assert_eq!(writer_count(&postgres, options(1, 0)), 1);
        // As set, leaving a connection to the rest of the work.
        assert_eq!(writer_count(&postgres, options(8, 1)), 1);
        assert_eq!(writer_count(&postgres, options(32, 12)), 12);
        assert_eq!(writer_count(&postgres, options(2, 5)), 1);
        assert_eq!(writer_count(&postgres, options(8, 8)), 7);
        assert_eq!(writer_count(&postgres, options(1, 1)), 1);
        assert_eq!(writer_count(&sqlite, options(8, 0)), 1);
        assert_eq!(writer_count(&sqlite, options(8, 3)), 1);
    }

    #[test]
    fn only_the_sqlite_table_rebuild_runs_outside_a_transaction() {
        // It turns foreign keys off, a no-op inside a transaction, and opens
        // its own; `tests/it/migrations.rs` shows the rebuild keeps the rows.
        assert_eq!(
            outside_a_transaction(&SQLITE_MIGRATIONS),
            ["20261204000003"]
        );
        assert!(outside_a_transaction(&POSTGRES_MIGRATIONS).is_empty());
    }

    #[test]
    fn two_sqlite_stores_write_without_waiting_on_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let first = sqlite_store(&dir, "first.db");
        let second = sqlite_store(&dir, "second.db");
        let usd = Currency::parse("USD").unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let new_order = NewOrder {
            client_id: "c".into(),
            total: Money::from_minor(15000, usd),
        };
        // Declared before the guard so that, on a failure, the guard is
        // dropped first and the runtime's blocked threads can finish.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let held = first.pool.get().unwrap();
        let first_writer = held.writer.hold();

        // The second store writes through its pool and through its
        // group-commit writer while the first store's writer is held.
        let started = Instant::now();
        let writes = async {
            let order = second.create_order(new_order.clone(), now).await.unwrap();
            let payment = NewPayment {
                order_id: order.id,
                transaction_id: "TXN-W1".into(),
                payment_method: "stripe".into(),
                amount: order.total,
            };
            second.create_payment(payment, now).await.unwrap();
            let event = GatewayEvent {
                gateway: "stripe".into(),
                event_id: "evt_w1".into(),
                event_type: "payment_intent.succeeded".into(),
                kind: EventKind::Succeeded,
                references: References {
                    transaction_id: Some("TXN-W1".into()),
                    ..References::default()
                },
                amount: Some(order.total),
                report: None,
            };
            second
                .apply_event(EventToApply {
                    event,
                    payload: b"{}".to_vec(),
                    policy: AmountPolicy::Warn,
                    received_at: now,
                    source: payhook_domain::ports::EventSource::Webhook,
                })
                .await
                .unwrap()
        };
        let applied = runtime.block_on(async {
            // Within the runtime: the timer needs it.
            tokio::time::timeout(Duration::from_secs(5), writes).await
        });
        let applied = applied.unwrap_or_else(|_| {
            panic!(
                "the second store waited {:?} on the first store's writer",
                started.elapsed()
            )
        });
        assert!(matches!(
            applied,
            Applied::Decided {
                outcome: Outcome::Confirmed,
                ..
            }
        ));

        // The first store's writer is really held: its own write waits for it.
        let writing = first.clone();
        let waiting = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(writing.create_order(new_order, now))
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !waiting.is_finished(),
            "the first store wrote past its held writer"
        );
        drop(first_writer);
        waiting.join().unwrap().unwrap();
    }
}
