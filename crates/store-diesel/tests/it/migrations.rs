//! Migrations and readiness: `migrate` is idempotent, `ping` tells a migrated
//! database from an empty one.

use payhook_domain::ports::{Store, StoreError};
use payhook_domain::OrderId;
use payhook_store_diesel::StoreOptions;

use crate::support::{databases, order, usd};

/// The versions of the migrations both folders hold.
const VERSIONS: [&str; 4] = [
    "20261127000001",
    "20261127000002",
    "20261204000003",
    "20261204000004",
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
