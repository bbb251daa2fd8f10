//! The load generator's integration tests, one binary: `--preload` into
//! real databases, small mixed loads (every kind of `--mix`) and a short
//! soak against a payhook server started in this process. SQLite always; PostgreSQL when
//! `PAYHOOK_TEST_POSTGRES_URL` names a server (`PAYHOOK_REQUIRE_POSTGRES`
//! makes its absence a failure, as in the other crates' tests).

mod every_kind;
mod mixed_load;
mod preload;
mod soak;
mod support;
