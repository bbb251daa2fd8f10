//! Schema parity: the SQLite and PostgreSQL migrations describe the same
//! tables, columns, nullability and named indexes, so that the one
//! hand-written `schema.rs` is true on both. And what PostgreSQL alone
//! has: the events table's autovacuum threshold.

use std::collections::BTreeSet;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sql_types::{Bool, Text};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use payhook_store_diesel::StoreOptions;

use crate::support::{postgres_db, say_loudly, sqlite_db};

#[derive(Debug, QueryableByName, PartialEq, Eq, PartialOrd, Ord)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(Debug, QueryableByName)]
struct OptionsRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    options: Option<String>,
}

#[derive(Debug, QueryableByName, PartialEq, Eq, PartialOrd, Ord)]
struct IndexRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
}

// Primary keys count as not null on both sides: SQLite's `INTEGER PRIMARY
// KEY` is an alias of the rowid, which never is null, whatever the pragma says.
const SQLITE_COLUMNS: &str = r#"
    SELECT m.name AS table_name, p.name AS column_name,
           (p."notnull" = 0 AND p.pk = 0) AS nullable
    FROM sqlite_master m JOIN pragma_table_info(m.name) p
    WHERE m.type = 'table'
      AND m.name NOT IN ('__diesel_schema_migrations', 'sqlite_sequence')
    ORDER BY 1, 2"#;

const POSTGRES_COLUMNS: &str = r#"
    SELECT c.table_name::text AS table_name, c.column_name::text AS column_name,
           (c.is_nullable = 'YES') AS nullable
    FROM information_schema.columns c
    WHERE c.table_schema = 'public' AND c.table_name <> '__diesel_schema_migrations'
    ORDER BY 1, 2"#;

// Only the indexes the migrations name: SQLite's automatic ones (primary
// key, UNIQUE constraints) have no SQL, and PostgreSQL's are named *_pkey / *_key.
const SQLITE_INDEXES: &str = r#"
    SELECT tbl_name AS table_name, name AS index_name,
           (sql LIKE 'CREATE UNIQUE INDEX%') AS is_unique
    FROM sqlite_master
    WHERE type = 'index' AND sql IS NOT NULL
    ORDER BY 1, 2"#;

const POSTGRES_INDEXES: &str = r#"
    SELECT tablename::text AS table_name, indexname::text AS index_name,
           (indexdef LIKE 'CREATE UNIQUE INDEX%') AS is_unique
    FROM pg_indexes
    WHERE schemaname = 'public'
      AND indexname NOT LIKE '%\_pkey' AND indexname NOT LIKE '%\_key'
    ORDER BY 1, 2"#;

#[test]
fn sqlite_and_postgres_migrations_define_the_same_schema() {
    let Some(postgres) = postgres_db() else {
        say_loudly("schema parity SKIPPED: it needs PostgreSQL");
        return;
    };
    let sqlite = sqlite_db();
    // Migrate through the store, exactly as the server does.
    drop(sqlite.open_migrated(&StoreOptions::default()));
    drop(postgres.open_migrated(&StoreOptions::default()));

    let sqlite_path = sqlite.url.strip_prefix("sqlite://").expect("sqlite URL");
    let mut lite = SqliteConnection::establish(sqlite_path).expect("open SQLite file");
    let mut pg = PgConnection::establish(&postgres.url).expect("connect to PostgreSQL");

    let lite_columns: BTreeSet<ColumnRow> = diesel::sql_query(SQLITE_COLUMNS)
        .load(&mut lite)
        .expect("SQLite columns")
        .into_iter()
        .collect();
    let pg_columns: BTreeSet<ColumnRow> = diesel::sql_query(POSTGRES_COLUMNS)
        .load(&mut pg)
        .expect("PostgreSQL columns")
        .into_iter()
        .collect();

    let tables = |columns: &BTreeSet<ColumnRow>| -> BTreeSet<String> {
        columns.iter().map(|c| c.table_name.clone()).collect()
    };
    let expected_tables: BTreeSet<String> = [
        "orders",
        "outbox",
        "payments",
        "reconciliations",
        "refunds",
        "webhook_bodies_pruned",
        "webhook_event_bodies",
        "webhook_events",
    ]
    .map(String::from)
    .into();
    assert_eq!(tables(&lite_columns), expected_tables);
    assert_eq!(tables(&pg_columns), expected_tables);
    assert_eq!(
        lite_columns.difference(&pg_columns).collect::<Vec<_>>(),
        Vec::<&ColumnRow>::new(),
        "columns only SQLite has (or with another nullability)"
    );
    assert_eq!(
        pg_columns.difference(&lite_columns).collect::<Vec<_>>(),
        Vec::<&ColumnRow>::new(),
        "columns only PostgreSQL has (or with another nullability)"
    );

    let lite_indexes: BTreeSet<IndexRow> = diesel::sql_query(SQLITE_INDEXES)
        .load(&mut lite)
        .expect("SQLite indexes")
        .into_iter()
        .collect();
    let pg_indexes: BTreeSet<IndexRow> = diesel::sql_query(POSTGRES_INDEXES)
        .load(&mut pg)
        .expect("PostgreSQL indexes")
        .into_iter()
        .collect();
    assert!(
        lite_indexes
            .iter()
            .any(|i| i.index_name == "webhook_events_gateway_event_id" && i.is_unique),
        "the exactly-once index must exist: {lite_indexes:?}"
    );
    assert_eq!(lite_indexes, pg_indexes);
}

/// Migration 7: the events table is vacuumed once 2 % of it is dead, not
/// a fifth (every row gets two new versions: its outcome, then its emptied
/// body), without the cost delay that throttles it. It applies to a database at migration 6, and its `down.sql`
/// gives the table the server's default back.
#[test]
fn postgres_vacuums_the_events_table_once_two_percent_is_dead() {
    let Some(postgres) = postgres_db() else {
        say_loudly("events table autovacuum SKIPPED: it needs PostgreSQL");
        return;
    };
    let store = postgres.open(&StoreOptions::default());
    store
        .migrate_to("20261204000006")
        .expect("migrate to migration 6");
    let mut pg = PgConnection::establish(&postgres.url).expect("connect to PostgreSQL");
    let options = |pg: &mut PgConnection| -> Option<String> {
        diesel::sql_query(
            "SELECT array_to_string(reloptions, ',') AS options FROM pg_class \
             WHERE relname = 'webhook_events' AND relkind = 'r'",
        )
        .get_result::<OptionsRow>(pg)
        .expect("the events table's options")
        .options
    };
    assert_eq!(options(&mut pg), None, "at migration 6");
    assert_eq!(
        store
            .migrate_to("20261205000007")
            .expect("migrate to migration 7"),
        ["20261205000007"]
    );
    assert_eq!(
        options(&mut pg).as_deref(),
        Some("autovacuum_vacuum_scale_factor=0.02,autovacuum_vacuum_cost_delay=0")
    );
    pg.batch_execute(include_str!(
        "../../../../migrations/postgres/2026-12-05-000007_events_vacuum/down.sql"
    ))
    .expect("migration 7's down.sql");
    assert_eq!(options(&mut pg), None, "after down.sql");
}
