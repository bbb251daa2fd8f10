//! Micro-benchmarks of the generic adapter: both signature schemes and
//! payload parsing, on the fixture of `tests/fixtures` and on the same
//! payload with a realistic ~1.5 KB `metadata` (cart lines, customer),
//! the size custom gateways send in practice.
//!
//! `cargo bench -p payhook-adapters-generic` measures; under
//! `cargo test --benches` divan runs each benchmark once, as a smoke test.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use divan::{black_box, Bencher};
use payhook_adapters_generic::GenericAdapter;
use payhook_domain::ports::{GatewayAdapter, WebhookRequest};
use payhook_domain::Secret;
use ring::hmac;

fn main() {
    divan::main();
}

/// The Standard Webhooks secret (the scheme's published test vector's).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The message id of the Standard Webhooks calls.
const MESSAGE_ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";

/// The signed timestamp, and the `now` every verification runs at.
const SIGNED_AT: i64 = 1_700_000_000;

/// The payloads measured: the fixture as is, and with a larger metadata.
const PAYLOADS: &[&str] = &["fixture", "metadata-1.5k"];

/// The fixture `payment.completed.json`, as is or with `metadata` grown to
/// about 1.5 KB of cart lines and customer details.
fn payload(kind: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/payment.completed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let body = std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    if kind == "fixture" {
        return body;
    }
    let mut value: serde_json::Value = serde_json::from_slice(&body).expect("fixture is JSON");
    let lines: Vec<serde_json::Value> = (1..=10)
        .map(|line| {
            serde_json::json!({
                "sku": format!("SKU-{line:05}-BLK-M"),
                "name": format!("Merino crew neck sweater, colour black, size M (line {line})"),
                "quantity": line,
                "unit_price": "18.75",
            })
        })
        .collect();
    value["metadata"] = serde_json::json!({
        "gateway_customer": "cus_8812",
        "attempt": 1,
        "tags": ["web", "card"],
        "customer": {"email": "customer@example.com", "country": "DE", "ip": "203.0.113.7"},
        "lines": lines,
    });
    let grown = serde_json::to_vec(&value).expect("serialisable");
    assert!(
        (1000..=3000).contains(&grown.len()),
        "{} bytes",
        grown.len()
    );
    grown
}

/// Headers for the Standard Webhooks scheme, signed here with ring alone.
fn standard_headers(body: &[u8]) -> Vec<(String, String)> {
    let key_bytes = BASE64
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("a base64 secret");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut content = format!("{MESSAGE_ID}.{SIGNED_AT}.").into_bytes();
    content.extend_from_slice(body);
    let signature = BASE64.encode(hmac::sign(&key, &content).as_ref());
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("webhook-id".to_owned(), MESSAGE_ID.to_owned()),
        ("webhook-timestamp".to_owned(), SIGNED_AT.to_string()),
        ("webhook-signature".to_owned(), format!("v1,{signature}")),
    ]
}

/// Headers for the simple `X-Webhook-Signature: sha256=<hex>` scheme.
fn simple_headers(body: &[u8]) -> Vec<(String, String)> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let signature = hex::encode(hmac::sign(&key, body).as_ref());
    vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        (
            "idempotency-key".to_owned(),
            "9f8e7d6c5b4a39281706".to_owned(),
        ),
        (
            "x-webhook-signature".to_owned(),
            format!("sha256={signature}"),
        ),
    ]
}

fn adapter() -> GenericAdapter {
    GenericAdapter::signed(vec![Secret::new(SECRET)]).expect("a valid secret")
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(SIGNED_AT, 0).expect("a representable time")
}

/// Standard Webhooks verification: three headers, base64 HMAC-SHA256.
#[divan::bench(args = PAYLOADS)]
fn verify_standard(bencher: Bencher, kind: &str) {
    let adapter = adapter();
    let body = payload(kind);
    let headers = standard_headers(&body);
    let request = WebhookRequest {
        headers: &headers,
        body: &body,
    };
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench_local(|| {
            adapter
                .verify(black_box(&request), now())
                .expect("a valid signature")
        });
}

/// `X-Webhook-Signature` verification: hex HMAC-SHA256 of the body.
#[divan::bench(args = PAYLOADS)]
fn verify_simple(bencher: Bencher, kind: &str) {
    let adapter = adapter();
    let body = payload(kind);
    let headers = simple_headers(&body);
    let request = WebhookRequest {
        headers: &headers,
        body: &body,
    };
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench_local(|| {
            adapter
                .verify(black_box(&request), now())
                .expect("a valid signature")
        });
}

/// Payload parsing, exact amount included.
#[divan::bench(args = PAYLOADS)]
fn parse(bencher: Bencher, kind: &str) {
    let adapter = adapter();
    let body = payload(kind);
    let headers = standard_headers(&body);
    let request = WebhookRequest {
        headers: &headers,
        body: &body,
    };
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench_local(|| adapter.parse(black_box(&request)).expect("a valid payload"));
}

/// What the server does per Standard Webhooks call before the store.
#[divan::bench(args = PAYLOADS)]
fn verify_and_parse(bencher: Bencher, kind: &str) {
    let adapter = adapter();
    let body = payload(kind);
    let headers = standard_headers(&body);
    let request = WebhookRequest {
        headers: &headers,
        body: &body,
    };
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench_local(|| {
            let request = black_box(&request);
            adapter.verify(request, now()).expect("a valid signature");
            adapter.parse(request).expect("a valid payload")
        });
}
