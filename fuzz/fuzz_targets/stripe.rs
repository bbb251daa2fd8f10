//! Fuzzes `StripeAdapter`: `verify` (the `Stripe-Signature` header reader
//! and HMAC check) and `parse` (the event envelope, amounts, currencies).
//!
//! Input: headers, a blank line, the body (see `payhook_fuzz::split`).
//! Property: no panic, no unbounded allocation, no timeout, whatever the
//! input. `parse` is called whether or not `verify` accepted the call: in
//! production it only sees verified bodies, but the parser itself is what
//! is being fuzzed.
#![no_main]

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use payhook_adapters_stripe::StripeAdapter;
use payhook_domain::ports::{GatewayAdapter, WebhookRequest};
use payhook_domain::Secret;

/// The first is the secret of the adapter's tests (the seeds are signed
/// with it); the second makes every call try a rotation.
static ADAPTER: LazyLock<StripeAdapter> = LazyLock::new(|| {
    StripeAdapter::new(vec![
        Secret::new("whsec_test_secret"),
        Secret::new("whsec_fuzz_second_secret"),
    ])
    .expect("valid secrets")
});

/// The `t=` of the seeds, so that their signatures verify within tolerance.
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
