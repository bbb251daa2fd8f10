//! Micro-benchmarks of the PayPal adapter: transmission-signature
//! verification (CRC32 of the body, RSA-2048 PKCS#1 v1.5 SHA-256 against the
//! pinned test-only certificate) and event parsing, on the 1.8–2.2 KB
//! fixtures of `tests/fixtures`.
//!
//! `cargo bench -p payhook-adapters-paypal` measures; under
//! `cargo test --benches` divan runs each benchmark once, as a smoke test.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use divan::{black_box, Bencher};
use payhook_adapters_paypal::PaypalAdapter;
use payhook_domain::ports::{GatewayAdapter, WebhookRequest};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

fn main() {
    divan::main();
}

/// The webhook id configured and signed into every message.
const WEBHOOK_ID: &str = "1JE4291016473214C";

/// A transmission id shaped like PayPal's.
const TRANSMISSION_ID: &str = "b2d5a4e0-cb7f-11f0-9a3b-4d6f3c2a1e90";

/// The transmission time, and the `now` every verification runs at.
const SENT_AT: &str = "2026-11-27T01:02:05Z";

/// The event fixtures measured.
const EVENTS: &[&str] = &["PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.DENIED"];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// One event with PayPal's five headers, signed with the test-only key.
struct Signed {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Signed {
    fn new(event: &str) -> Self {
        let body = fixture(&format!("{event}.json"));
        let pem = String::from_utf8(fixture("test-only-signing-key.pk8.pem")).expect("PEM text");
        let der: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let key_pair = RsaKeyPair::from_pkcs8(&BASE64.decode(der).expect("base64 PEM body"))
            .expect("a PKCS#8 RSA key");
        let message = format!(
            "{TRANSMISSION_ID}|{SENT_AT}|{WEBHOOK_ID}|{}",
            crc32fast::hash(&body)
        );
        let mut signature = vec![0; key_pair.public().modulus_len()];
        key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("signing");
        let headers = [
            ("Content-Type", "application/json"),
            ("PAYPAL-TRANSMISSION-ID", TRANSMISSION_ID),
            ("PAYPAL-TRANSMISSION-TIME", SENT_AT),
            ("PAYPAL-TRANSMISSION-SIG", &BASE64.encode(signature)),
            (
                "PAYPAL-CERT-URL",
                "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
            ),
            ("PAYPAL-AUTH-ALGO", "SHA256withRSA"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .to_vec();
        Self { body, headers }
    }

    fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn adapter() -> PaypalAdapter {
    PaypalAdapter::new(WEBHOOK_ID.to_owned(), &fixture("test-only-cert.pem"))
        .expect("a valid test configuration")
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(SENT_AT)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// Transmission-signature check alone: CRC32 of the body and one RSA-2048
/// verification.
#[divan::bench(args = EVENTS)]
fn verify(bencher: Bencher, event: &str) {
    let adapter = adapter();
    let signed = Signed::new(event);
    bencher
        .counter(divan::counter::BytesCount::new(signed.body.len()))
        .bench_local(|| {
            adapter
                .verify(black_box(&signed.request()), now())
                .expect("a valid signature")
        });
}

/// Event parsing alone.
#[divan::bench(args = EVENTS)]
fn parse(bencher: Bencher, event: &str) {
    let adapter = adapter();
    let signed = Signed::new(event);
    bencher
        .counter(divan::counter::BytesCount::new(signed.body.len()))
        .bench_local(|| {
            adapter
                .parse(black_box(&signed.request()))
                .expect("a handled event")
        });
}

/// What the server does per call before touching the store.
#[divan::bench(args = EVENTS)]
fn verify_and_parse(bencher: Bencher, event: &str) {
    let adapter = adapter();
    let signed = Signed::new(event);
    bencher
        .counter(divan::counter::BytesCount::new(signed.body.len()))
        .bench_local(|| {
            let request = black_box(signed.request());
            adapter.verify(&request, now()).expect("a valid signature");
            adapter.parse(&request).expect("a handled event")
        });
}
