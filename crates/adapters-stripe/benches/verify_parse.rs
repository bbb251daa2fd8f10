//! Micro-benchmarks of the Stripe adapter: signature verification and event
//! parsing on the real-shaped fixtures of `tests/fixtures` (2.2–3 KB).
//!
//! `cargo bench -p payhook-adapters-stripe` measures; under
//! `cargo test --benches` divan runs each benchmark once, as a smoke test.
//! Nothing here touches the network, the clock or the environment.

use chrono::{DateTime, Utc};
use divan::{black_box, Bencher};
use payhook_adapters_stripe::StripeAdapter;
use payhook_domain::ports::{GatewayAdapter, WebhookRequest};
use payhook_domain::Secret;
use ring::hmac;

fn main() {
    divan::main();
}

/// The endpoint secret the fixtures are signed with.
const SECRET: &str = "whsec_bench_secret";

/// The signed timestamp, and the `now` every verification runs at.
const SIGNED_AT: i64 = 1_700_000_000;

/// The fixtures measured: the success events of a PaymentIntent, a Charge
/// and a Checkout Session, the common case.
const FIXTURES: &[&str] = &[
    "payment_intent.succeeded",
    "charge.succeeded",
    "checkout.session.completed",
];

/// One fixture with its headers, signed the way Stripe signs it.
struct Signed {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Signed {
    fn new(name: &str) -> Self {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let body = std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
        // Computed here with ring directly, independently of the adapter.
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
        let mut signed = format!("{SIGNED_AT}.").into_bytes();
        signed.extend_from_slice(&body);
        let v1 = hex::encode(hmac::sign(&key, &signed).as_ref());
        let headers = vec![
            (
                "content-type".to_owned(),
                "application/json; charset=utf-8".to_owned(),
            ),
            (
                "stripe-signature".to_owned(),
                format!("t={SIGNED_AT},v1={v1}"),
            ),
        ];
        Self { body, headers }
    }

    fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn adapter() -> StripeAdapter {
    StripeAdapter::new(vec![Secret::new(SECRET)]).expect("a valid secret")
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(SIGNED_AT, 0).expect("a representable time")
}

/// `Stripe-Signature` check alone: header parsing, one HMAC-SHA256 over the
/// body, constant-time compare.
#[divan::bench(args = FIXTURES)]
fn verify(bencher: Bencher, fixture: &str) {
    let adapter = adapter();
    let signed = Signed::new(fixture);
    bencher
        .counter(divan::counter::BytesCount::new(signed.body.len()))
        .bench_local(|| {
            adapter
                .verify(black_box(&signed.request()), now())
                .expect("a valid signature")
        });
}

/// Event parsing alone: the envelope and the few fields payhook reads.
#[divan::bench(args = FIXTURES)]
fn parse(bencher: Bencher, fixture: &str) {
    let adapter = adapter();
    let signed = Signed::new(fixture);
    bencher
        .counter(divan::counter::BytesCount::new(signed.body.len()))
        .bench_local(|| {
            adapter
                .parse(black_box(&signed.request()))
                .expect("a handled event")
        });
}

/// What the server does per call before touching the store.
#[divan::bench(args = FIXTURES)]
fn verify_and_parse(bencher: Bencher, fixture: &str) {
    let adapter = adapter();
    let signed = Signed::new(fixture);
    bencher
        .counter(divan::counter::BytesCount::new(signed.body.len()))
        .bench_local(|| {
            let request = black_box(signed.request());
            adapter.verify(&request, now()).expect("a valid signature");
            adapter.parse(&request).expect("a handled event")
        });
}
