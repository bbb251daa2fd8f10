//! Integration tests of the generic adapter through the domain's
//! `GatewayAdapter` port, on fixture payloads shaped like the generic
//! gateway's.
//!
//! Signatures are computed here with `ring` and `base64` directly, never
//! with the code under test, so a bug in the adapter's signing cannot hide
//! itself; the Standard Webhooks published vectors pin the test signer too.

mod conformance;
mod parse;
mod properties;
mod refunds;
mod support;
mod verify;
