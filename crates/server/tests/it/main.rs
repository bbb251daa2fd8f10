//! HTTP integration tests of the `payhook` server: each test starts the real
//! application on `127.0.0.1:0` over a fresh SQLite file and talks to it with
//! an HTTP client, as a shop and as Stripe, PayPal or a custom gateway would.
//!
//! Stripe, PayPal and generic gateway signatures are computed in [`helpers`]
//! with `ring` directly, never with the adapters under test, so a bug in
//! their signing cannot hide itself.

mod audit;
mod console;
mod console_browser;
mod errors;
mod gateway_binding;
mod generic_flow;
mod generic_lifecycle;
mod generic_refunds;
mod generic_replay;
mod health;
mod helpers;
mod malformed_requests;
mod management_api;
mod metrics;
mod notifications;
mod nul_text;
mod openapi;
mod operations;
mod paypal_flow;
mod paypal_lifecycle;
mod paypal_refunds;
mod processes;
mod reconcile;
mod reconcile_processes;
mod reconcile_standin;
mod refund_answers;
mod response_headers;
mod retention;
mod slow_uploads;
mod stripe_flow;
mod stripe_lifecycle;
mod stripe_refunds;
mod token_first;
