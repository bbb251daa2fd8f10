//! Opening a store: URLs that name no backend, and databases that cannot be reached.

use std::time::Duration;

use payhook_store_diesel::{DieselStore, OpenError, StoreOptions, Target, UnsupportedUrl};

#[test]
fn urls_of_other_databases_are_refused_before_connecting() {
    for url in [
        "mysql://x",
        "",
        "payhook.db",
        "sqlite://",
        "sqlite::memory:",
        "sqlite://:memory:",
        "SQLITE://upper.db",
        "postgre://h/db",
    ] {
        let opened = DieselStore::open(url, &StoreOptions::default());
        assert!(
            matches!(opened, Err(OpenError::Url(UnsupportedUrl))),
            "{url:?}: {opened:?}"
        );
        assert_eq!(Target::parse(url), Err(UnsupportedUrl), "{url:?}");
    }
}

#[test]
fn urls_choose_the_backend() {
    assert_eq!(
        Target::parse("sqlite:///tmp/x/t.db"),
        Ok(Target::Sqlite("/tmp/x/t.db".into()))
    );
    assert_eq!(
        Target::parse("postgres://u@h:5432/db"),
        Ok(Target::Postgres("postgres://u@h:5432/db".into()))
    );
    assert_eq!(
        Target::parse("postgresql://u@h/db"),
        Ok(Target::Postgres("postgresql://u@h/db".into()))
    );
}

#[test]
fn an_unreachable_postgres_server_is_a_connect_error() {
    let options = StoreOptions {
        pool_size: 1,
        connect_timeout: Duration::from_millis(500),
        ..StoreOptions::default()
    };
    // Port 1 on the loopback refuses connections.
    let opened = DieselStore::open("postgres://postgres@127.0.0.1:1/none", &options);
    assert!(matches!(opened, Err(OpenError::Connect(_))), "{opened:?}");
}

#[test]
fn a_sqlite_file_in_a_missing_directory_is_a_connect_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/no/such/dir/t.db", dir.path().display());
    let options = StoreOptions {
        connect_timeout: Duration::from_millis(500),
        ..StoreOptions::default()
    };
    let opened = DieselStore::open(&url, &options);
    assert!(matches!(opened, Err(OpenError::Connect(_))), "{opened:?}");
}
