//! Fuzzes `GenericAdapter`: `verify` in both schemes (Standard Webhooks
//! `webhook-signature` and `X-Webhook-Signature: sha256=`, then the event
//! id header check) and `parse` (the flat payload, decimal amounts as JSON
//! numbers or strings, currencies, the event id from headers or body).
//!
//! Input: headers, a blank line, the body (see `payhook_fuzz::split`).
//! Property: no panic, no unbounded allocation, no timeout, whatever the
//! input. `parse` is called whether or not `verify` accepted the call: in
//! production it only sees verified bodies, but the parser itself is what
//! is being fuzzed. An unsigned adapter's `verify` accepts everything
//! without looking, and its `parse` is the same code, so only the signed
//! adapter is fuzzed.
#![no_main]

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use payhook_adapters_generic::GenericAdapter;
use payhook_domain::ports::{GatewayAdapter, WebhookRequest};
use payhook_domain::Secret;

/// The two secrets of the adapter's tests, one of each kind: a
/// `whsec_<base64>` secret (keyed decoded for Standard Webhooks) and a raw
/// one. The seeds are signed with them.
static ADAPTER: LazyLock<GenericAdapter> = LazyLock::new(|| {
    GenericAdapter::signed(vec![
        Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        Secret::new("a-shared-secret-for-the-generic-gateway"),
    ])
    .expect("valid secrets")
});

/// The `webhook-timestamp` of the seeds, so that their signatures verify
/// within tolerance.
static NOW: LazyLock<DateTime<Utc>> =
    LazyLock::new(|| DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time"));

fuzz_target!(|data: &[u8]| {
    let input = payhook_fuzz::split(data);
    let request = WebhookRequest {
        headers: &input.headers,
        body: input.body,
    };
    let _ = ADAPTER.verify(&request, *NOW);
    let _ = ADAPTER.parse(&request);
});
