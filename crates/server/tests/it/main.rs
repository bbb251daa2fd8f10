//! HTTP integration tests of the `payhook` server: each test starts the real
//! application on `127.0.0.1:0` over a fresh SQLite file and talks to it with
//! an HTTP client, as a shop and as Stripe would.
//!
//! Stripe signatures are computed in [`helpers`] with `ring` directly, never
//! with the adapter under test, so a bug in its signing cannot hide itself.

mod errors;
mod health;
mod helpers;
mod management_api;
mod stripe_flow;
