//! A direct connection to payhook's database, for the work the benchmark
//! does beside the server: preloading finished payments before a run and
//! counting what a run wrote. These are set-based statements the store
//! never runs, so they do not go through it; the schema they touch is the
//! store's (created by its own migrations).

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::SqlQuery;
use diesel::sql_types::BigInt;
use diesel::sqlite::{Sqlite, SqliteConnection};
use payhook_store_diesel::Target;

/// One connection to either backend, chosen by the URL as the store does.
pub enum Database {
    /// A SQLite file, opened with the store's settings (WAL, foreign keys).
    Sqlite(SqliteConnection),
    /// A PostgreSQL database.
    Postgres(PgConnection),
}

impl std::fmt::Debug for Database {
    // The connection (and a PostgreSQL URL's password) stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.dialect().name())
    }
}

/// The SQL dialect of a backend, for statements written once per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A single `BIGINT` column named `n`, as every count here selects.
#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Database {
    /// Connects to `url` (`sqlite://path` or `postgres://...`). A SQLite
    /// connection gets the store's per-connection settings: a busy timeout
    /// (first, so that switching to WAL waits for a lock instead of failing),
    /// WAL, foreign keys enforced.
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        match Target::parse(url)? {
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path)
                    .with_context(|| format!("cannot open the SQLite database {path}"))?;
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                )
                .context("cannot configure the SQLite connection")?;
                Ok(Self::Sqlite(conn))
            }
            Target::Postgres(url) => {
                // The URL may carry a password: it is not repeated in the error.
                let conn = PgConnection::establish(&url)
                    .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
                Ok(Self::Postgres(conn))
            }
        }
    }

    /// Which backend this is.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `sql`, which may hold several statements, without parameters.
    pub fn batch(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Self::Sqlite(conn) => conn.batch_execute(sql),
            Self::Postgres(conn) => conn.batch_execute(sql),
        }
    }

    /// Runs a query selecting one `BIGINT` column named `n` and returns it
    /// (write `CAST(... AS BIGINT)` where PostgreSQL would give an `integer`).
    pub fn count(&mut self, sql: &str) -> QueryResult<i64> {
        let query = diesel::sql_query(sql);
        let row: Count = match self {
            Self::Sqlite(conn) => query.get_result(conn)?,
            Self::Postgres(conn) => query.get_result(conn)?,
        };
        Ok(row.n)
    }

    /// Runs a query without parameters and reads its rows by column name.
    pub fn load<T>(&mut self, sql: &str) -> QueryResult<Vec<T>>
    where
        T: QueryableByName<Sqlite> + QueryableByName<Pg> + 'static,
        SqlQuery: RunQueryDsl<SqliteConnection> + RunQueryDsl<PgConnection>,
    {
        let query = diesel::sql_query(sql);
        match self {
            Self::Sqlite(conn) => query.load(conn),
            Self::Postgres(conn) => query.load(conn),
        }
    }
}

/// `text` as an SQL string literal (quotes doubled), the same on both
/// backends (PostgreSQL's `standard_conforming_strings` is on by default).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(literal("evt_load_1_"), "'evt_load_1_'");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn only_database_urls_connect() {
        assert!(Database::connect("mysql://x").is_err());
        assert!(Database::connect("sqlite::memory:").is_err());
    }
}
