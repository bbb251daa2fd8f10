//! Integration tests of the Stripe adapter through the domain's
//! `GatewayAdapter` port, on fixture events shaped like Stripe's own.
//!
//! Signatures are computed here with `ring` directly, never with the code
//! under test, so a bug in the adapter's signing cannot hide itself.

mod api;
mod conformance;
mod lifecycle;
mod parse;
mod properties;
mod refunds;
mod support;
mod verify;
