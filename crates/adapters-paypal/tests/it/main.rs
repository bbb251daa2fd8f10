//! Integration tests of the PayPal adapter through the domain's
//! `GatewayAdapter` port, on fixture events shaped like PayPal's own and
//! test-only keys and certificates made with the openssl CLI.
//!
//! Signatures are computed here with `ring` directly (and one with the
//! openssl CLI, kept as a known vector), never with the code under test, so
//! a bug in the adapter's message building cannot hide itself.

mod api;
mod conformance;
mod money_back;
mod parse;
mod properties;
mod support;
mod verify;
