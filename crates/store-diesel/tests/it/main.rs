//! Integration tests of the diesel store, one binary for the whole crate.
//!
//! Every test runs against a SQLite file in a temporary directory and, when
//! `PAYHOOK_TEST_POSTGRES_URL` names a PostgreSQL server, against a fresh
//! PostgreSQL database too. Without the variable the PostgreSQL half is
//! skipped loudly, never silently.

mod apply;
mod audit;
mod batch;
mod concurrency;
mod crud;
mod lifecycle;
mod migrations;
mod open;
mod outbox;
mod overview;
mod prune;
mod reconcile;
mod reference;
mod refunds;
mod schema;
mod support;
