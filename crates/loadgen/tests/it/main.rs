//! The load generator's integration tests, one binary: `--preload` into
//! real databases, and a small mixed load against a payhook server started
//! in this process. SQLite always; PostgreSQL when
//! `PAYHOOK_TEST_POSTGRES_URL` names a server (`PAYHOOK_REQUIRE_POSTGRES`
//! makes its absence a failure, as in the other crates' tests).

mod mixed_load;
mod preload;
mod support;
