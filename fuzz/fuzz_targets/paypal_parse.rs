//! Fuzzes `PaypalAdapter::parse` directly, with no signature check in the
//! way, and carries every event it yields on to the domain's decision.
//!
//! Input: the raw body, byte for byte (PayPal's parser reads no header), so
//! the seeds are the adapter's fixture files as they are.
//! Property: no panic, no unbounded allocation, no timeout; `parse` answers
//! the same twice, names its gateway, and `decide` keeps the rules that
//! `payhook_fuzz::decision` checks.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use payhook_adapters_paypal::PaypalAdapter;
use payhook_domain::ports::{GatewayAdapter, WebhookRequest};

/// `parse` uses neither the webhook id nor the certificate; the
/// constructor needs them (the test-only certificate, never PayPal's).
static ADAPTER: LazyLock<PaypalAdapter> = LazyLock::new(|| {
    PaypalAdapter::new(
        "1JE4291016473214C".to_owned(),
        include_bytes!("../../crates/adapters-paypal/tests/fixtures/test-only-cert.pem"),
    )
    .expect("valid test configuration")
});

/// PayPal's parser reads no header.
const NO_HEADERS: [(&str, &str); 0] = [];

fuzz_target!(|body: &[u8]| {
    let request = WebhookRequest {
        headers: &NO_HEADERS,
        body,
    };
    let parsed = ADAPTER.parse(&request);
    assert_eq!(
        parsed,
        ADAPTER.parse(&request),
        "parse is not deterministic"
    );
    if let Ok(event) = parsed {
        assert_eq!(event.gateway, ADAPTER.name());
        payhook_fuzz::decision::check(&event);
    }
});
