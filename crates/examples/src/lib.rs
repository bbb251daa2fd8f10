//! Runnable examples of embedding payhook's library crates in a service of
//! your own, without the payhook server.
//!
//! The code is in `examples/`:
//! `cargo run -p payhook-examples --example embedded_shop` receives a signed
//! Stripe webhook on a tiny HTTP endpoint, verifies and applies it with
//! `payhook-domain`'s services and `payhook-adapters-stripe`, and stores it
//! with `payhook-store-diesel` on SQLite.
//!
//! The examples live in a crate of their own so that the store and the
//! adapters keep depending only on `payhook-domain`, in their dev-dependencies
//! too. For the same reason it holds the test of that direction
//! (`tests/dependency_direction.rs`), which fails when a crate gains a
//! dependency docs/architecture.md forbids. This library is deliberately
//! empty: nothing depends on it.
