//! Connections: one diesel code base over SQLite and PostgreSQL through
//! `#[derive(MultiConnection)]`, a pool manager that picks the backend from
//! the URL scheme, and the write transaction each backend needs.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;

/// A connection to either backend. Queries written once against it run on
/// both; backend-specific SQL is a `match` on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// PostgreSQL, for several server processes on one database.
    Pg(PgConnection),
    /// SQLite, the embedded default.
    Sqlite(SqliteConnection),
}

/// Which database a URL names.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file path.
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(String),
}

impl std::fmt::Debug for Target {
    // A PostgreSQL URL may carry a password, so only the backend is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{path}"),
            Self::Postgres(_) => f.write_str("postgres://[redacted]"),
        }
    }
}

/// A `DATABASE_URL` that names no supported backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported database URL: expected sqlite://<path> or postgres://...")]
pub struct UnsupportedUrl;

impl Target {
    /// Reads `sqlite://path`, `sqlite:path` or `postgres://` / `postgresql://`.
    /// `:memory:` is refused: every pooled connection would get its own
    /// empty database.
    pub fn parse(url: &str) -> Result<Self, UnsupportedUrl> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or(UnsupportedUrl)?;
        if path.is_empty() || path.contains(":memory:") {
            return Err(UnsupportedUrl);
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    /// True for the embedded backend.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

/// Serialises one SQLite database's write transactions within this process.
///
/// SQLite has one write lock per database. Without this, pooled connections
/// compete for it through SQLite's busy handler, which sleeps in steps of up
/// to 100 ms instead of being woken when the lock frees: the lock sits idle
/// between commits and, under load, a writer can exceed the busy timeout and
/// fail. A mutex hands the lock over at once, in arrival order. Other
/// processes on the same file still meet the busy timeout.
///
/// It belongs to one store (its pool's connections, its group-commit writer
/// and its checkpoint thread share it), never to the process: two stores on
/// two files must not wait on each other. Unused on PostgreSQL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Writer(Arc<Mutex<()>>);

impl Writer {
    /// No write transaction of this store starts until the guard is dropped.
    pub(crate) fn hold(&self) -> MutexGuard<'_, ()> {
        // A panic in another writer leaves no half transaction behind (its
        // connection rolled back or was dropped), so a poisoned lock is
        // still safe to take.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pooled connection and the writer lock of its store.
pub(crate) struct StoreConn {
    /// The connection itself; reads run on it directly.
    pub(crate) db: DbConn,
    /// Taken by [`write_transaction`] on SQLite.
    pub(crate) writer: Writer,
}

/// Opens connections for the pool, with the per-connection settings of each backend.
#[derive(Debug)]
pub(crate) struct Manager {
    target: Target,
    busy_timeout: Duration,
    writer: Writer,
}

impl Manager {
    pub(crate) fn new(target: Target, busy_timeout: Duration) -> Self {
        Self {
            target,
            busy_timeout,
            writer: Writer::default(),
        }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = StoreConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<StoreConn, Self::Error> {
        let db = self.connect_db()?;
        Ok(StoreConn {
            db,
            writer: self.writer.clone(),
        })
    }

    fn is_valid(&self, conn: &mut StoreConn) -> Result<(), Self::Error> {
        conn.db
            .batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut StoreConn) -> bool {
        <DbConn as TransactionManager<DbConn>>::is_broken_transaction_manager(&mut conn.db)
    }
}

impl Manager {
    fn connect_db(&self) -> Result<DbConn, diesel::r2d2::Error> {
        match &self.target {
            Target::Postgres(url) => PgConnection::establish(url)
                .map(DbConn::Pg)
                .map_err(diesel::r2d2::Error::ConnectionError),
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the writer; synchronous=FULL
                // makes every acknowledged commit survive a power loss; the
                // busy timeout makes a second writer wait instead of failing;
                // checkpoints run on the store's own thread (`checkpoint`).
                // The busy timeout comes first: switching to WAL needs a
                // lock, and without it a connection opened while another
                // one writes fails at once with "database is locked".
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                     PRAGMA wal_autocheckpoint = 0;",
                    self.busy_timeout.as_millis()
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

/// Runs `body` in a transaction that may write.
///
/// On SQLite it holds the store's [`Writer`] and starts with `BEGIN IMMEDIATE`,
/// taking the write lock up front: a deferred transaction that reads first
/// and writes later can fail with `SQLITE_BUSY` instead of waiting. On
/// PostgreSQL it is a READ COMMITTED transaction, planned without
/// sequential scans (`enable_seqscan = off`); rows are locked explicitly
/// where needed.
pub(crate) fn write_transaction<T, E>(
    store_conn: &mut StoreConn,
    body: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let StoreConn { db: conn, writer } = store_conn;
    let _writer = match conn {
        DbConn::Sqlite(sqlite) => {
            let guard = writer.hold();
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
            Some(guard)
        }
        DbConn::Pg(pg) => {
            // Every statement of a write transaction finds its rows by a
            // key, through an index. A prepared statement's generic plan is
            // kept for the connection's life, and one made while the tables
            // were a few pages would scan them whole as they grow, until
            // an ANALYZE replaces it. Planned without sequential scans, a
            // plan keeps its index scans from the first; the setting goes
            // with the BEGIN, in the same round trip, and ends with the
            // transaction.
            AnsiTransactionManager::begin_transaction_sql(
                pg,
                "BEGIN; SET LOCAL enable_seqscan = off",
            )?;
            None
        }
    };
    match body(conn) {
        Ok(value) => {
            <DbConn as TransactionManager<DbConn>>::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            <DbConn as TransactionManager<DbConn>>::rollback_transaction(conn)?;
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl;

    use super::*;

    #[test]
    fn urls_select_the_backend() {
        assert_eq!(
            Target::parse("sqlite://payhook.db"),
            Ok(Target::Sqlite("payhook.db".into()))
        );
        assert_eq!(
            Target::parse("sqlite:///var/lib/x.db"),
            Ok(Target::Sqlite("/var/lib/x.db".into()))
        );
        assert_eq!(
            Target::parse("sqlite:a.db"),
            Ok(Target::Sqlite("a.db".into()))
        );
        assert!(matches!(
            Target::parse("postgresql://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        for bad in [
            "",
            "mysql://x",
            "sqlite://",
            "sqlite::memory:",
            "payhook.db",
        ] {
            assert_eq!(Target::parse(bad), Err(UnsupportedUrl), "{bad}");
        }
    }

    #[test]
    fn bundled_sqlite_has_the_wal_reset_fix() {
        // SQLite 3.7.0 to 3.51.2 can corrupt a WAL database when a
        // checkpoint starts right after another one that copied the whole
        // WAL while a third connection commits and restarts the WAL. The
        // checkpoint thread (`checkpoint`) runs passive checkpoints back to
        // back beside the writers, which is that race's setting: a soak on
        // SQLite 3.50.2, with the load generator writing from a second
        // process, stopped on "database disk image is malformed". Fixed in
        // 3.51.3.
        #[derive(diesel::QueryableByName)]
        struct Version {
            #[diesel(sql_type = diesel::sql_types::Text)]
            version: String,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let version = diesel::sql_query("SELECT sqlite_version() AS version")
            .get_result::<Version>(&mut conn)
            .unwrap()
            .version;
        let parts: Vec<u32> = version
            .split('.')
            .map(|part| part.parse().unwrap())
            .collect();
        assert!(parts >= vec![3, 51, 3], "bundled SQLite {version}");
    }

    #[test]
    fn bundled_sqlite_plans_without_looking_at_bound_values() {
        // Set in .cargo/config.toml (LIBSQLITE3_FLAGS); see the comment there.
        #[derive(diesel::QueryableByName)]
        struct CompileOption {
            #[diesel(sql_type = diesel::sql_types::Text)]
            compile_options: String,
        }
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let options: Vec<String> =
            diesel::sql_query("SELECT compile_options FROM pragma_compile_options")
                .load::<CompileOption>(&mut conn)
                .unwrap()
                .into_iter()
                .map(|option| option.compile_options)
                .collect();
        assert!(
            options.iter().any(|option| option == "ENABLE_QPSG"),
            "{options:?}"
        );
    }

    #[test]
    fn debug_never_shows_a_postgres_password() {
        let target = Target::parse("postgres://u:hunter2@h/db").unwrap();
        assert!(!format!("{target:?}").contains("hunter2"));
    }
}
