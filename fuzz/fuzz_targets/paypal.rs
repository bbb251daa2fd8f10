//! Fuzzes `PaypalAdapter`: `verify` (the five `PAYPAL-*` headers, the
//! certificate URL check, RFC 3339 times, base64, CRC32 and the RSA check
//! against the pinned test-only certificates) and `parse` (the event
//! envelope, the capture resource, amounts, currencies).
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
use payhook_adapters_paypal::PaypalAdapter;
use payhook_domain::ports::{GatewayAdapter, WebhookRequest};

/// The webhook id of the adapter's tests; the seeds are signed for it.
const WEBHOOK_ID: &str = "1JE4291016473214C";

/// The test-only certificates of the adapter's tests (never PayPal's):
/// the first signed the seeds; the second makes every call try a rotation.
const CERTIFICATES: [&[u8]; 2] = [
    include_bytes!("../../crates/adapters-paypal/tests/fixtures/test-only-cert.pem"),
    include_bytes!("../../crates/adapters-paypal/tests/fixtures/test-only-second-cert.pem"),
];

static ADAPTER: LazyLock<PaypalAdapter> = LazyLock::new(|| {
    PaypalAdapter::new(WEBHOOK_ID.to_owned(), &CERTIFICATES.concat())
        .expect("valid test configuration")
});

/// The transmission time of the seeds, so that their signatures verify
/// within tolerance.
static NOW: LazyLock<DateTime<Utc>> = LazyLock::new(|| {
    DateTime::parse_from_rfc3339("2026-11-27T01:02:05Z")
        .expect("a valid time")
        .with_timezone(&Utc)
});

fuzz_target!(|data: &[u8]| {
    let input = payhook_fuzz::split(data);
    let request = WebhookRequest {
        headers: &input.headers,
        body: input.body,
    };
    let _ = ADAPTER.verify(&request, *NOW);
    let _ = ADAPTER.parse(&request);
});
