//! Fuzzes `GenericAdapter::parse` directly, with no signature check in the
//! way, and carries every event it yields on to the domain's decision.
//!
//! Input: headers, a blank line, the body (see `payhook_fuzz::split`),
//! since the generic parser takes the event id from the signed
//! `webhook-id` header under Standard Webhooks (a `webhook-signature`
//! header present), else from the body. An input starting with `\n` is a
//! bare body.
//! Property: no panic, no unbounded allocation, no timeout; `parse` answers
//! the same twice, names its gateway, and `decide` keeps the rules that
//! `payhook_fuzz::decision` checks. The unsigned adapter is used: its
//! `parse` is the signed adapter's code, and it needs no secret.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use payhook_adapters_generic::GenericAdapter;
use payhook_domain::ports::{GatewayAdapter, WebhookRequest};

static ADAPTER: LazyLock<GenericAdapter> = LazyLock::new(GenericAdapter::unsigned);

fuzz_target!(|data: &[u8]| {
    let input = payhook_fuzz::split(data);
    let request = WebhookRequest {
        headers: &input.headers,
        body: input.body,
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
