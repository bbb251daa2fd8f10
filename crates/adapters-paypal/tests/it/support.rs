//! Shared helpers: fixtures, an independent PayPal signer, and requests.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use payhook_adapters_paypal::PaypalAdapter;
use payhook_domain::ports::{Headers, WebhookRequest};
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

/// The webhook id most tests configure and sign with.
pub const WEBHOOK_ID: &str = "1JE4291016473214C";

/// A transmission id shaped like PayPal's (a UUID).
pub const TRANSMISSION_ID: &str = "b2d5a4e0-cb7f-11f0-9a3b-4d6f3c2a1e90";

/// The transmission time most tests sign, and the `now` they verify at.
pub const SENT_AT: &str = "2026-11-27T01:02:05Z";

/// Where PayPal's live certificates are served from.
pub const CERT_URL: &str =
    "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270";

/// Every event fixture, named by the type it carries.
pub const EVENTS: [&str; 11] = [
    "PAYMENT.CAPTURE.COMPLETED",
    "PAYMENT.CAPTURE.DENIED",
    "PAYMENT.CAPTURE.DECLINED",
    "PAYMENT.CAPTURE.PENDING",
    "CHECKOUT.ORDER.APPROVED",
    "PAYMENT.AUTHORIZATION.CREATED",
    "PAYMENT.CAPTURE.REFUNDED",
    "PAYMENT.CAPTURE.REVERSED",
    "CUSTOMER.DISPUTE.CREATED",
    "CUSTOMER.DISPUTE.UPDATED",
    "CUSTOMER.DISPUTE.RESOLVED",
];

/// The test-only key pairs in `tests/fixtures`: the certificate PEM and
/// the PKCS#8 private key PEM of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestKey {
    First,
    Second,
}

impl TestKey {
    pub fn certificate_pem(self) -> Vec<u8> {
        match self {
            Self::First => fixture_file("test-only-cert.pem"),
            Self::Second => fixture_file("test-only-second-cert.pem"),
        }
    }

    fn private_key_pem(self) -> Vec<u8> {
        match self {
            Self::First => fixture_file("test-only-signing-key.pk8.pem"),
            Self::Second => fixture_file("test-only-second-signing-key.pk8.pem"),
        }
    }

    /// The key pair, read from its PEM with base64 alone so that nothing
    /// of the adapter's certificate handling is involved.
    pub fn key_pair(self) -> RsaKeyPair {
        let pem = String::from_utf8(self.private_key_pem()).unwrap();
        let base64: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let pkcs8 = STANDARD.decode(base64).expect("base64 PEM body");
        RsaKeyPair::from_pkcs8(&pkcs8).expect("a PKCS#8 RSA key")
    }
}

/// The raw bytes of `tests/fixtures/<name>`.
pub fn fixture_file(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The raw bytes of the event fixture `tests/fixtures/<event type>.json`.
pub fn event(event_type: &str) -> Vec<u8> {
    fixture_file(&format!("{event_type}.json"))
}

/// PayPal's transmission signature, computed the way PayPal documents it:
/// RSA PKCS#1 v1.5 with SHA-256 over
/// `<transmission id>|<time>|<webhook id>|<CRC32 of the body, decimal>`,
/// base64-encoded.
pub fn sign(
    key: TestKey,
    transmission_id: &str,
    time: &str,
    webhook_id: &str,
    body: &[u8],
) -> String {
    let crc = crc32fast::hash(body);
    let message = format!("{transmission_id}|{time}|{webhook_id}|{crc}");
    let key_pair = key.key_pair();
    let mut signature = vec![0; key_pair.public().modulus_len()];
    key_pair
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .expect("signing");
    STANDARD.encode(signature)
}

/// The five `PAYPAL-*` headers of one call, as PayPal sends them.
#[derive(Clone, Debug)]
pub struct Call {
    pub transmission_id: String,
    pub time: String,
    pub signature: String,
    pub cert_url: String,
    pub auth_algo: String,
}

impl Call {
    /// A call signed with `key` for the test webhook id, sent at `time`.
    pub fn signed_at(key: TestKey, time: &str, body: &[u8]) -> Self {
        Self {
            transmission_id: TRANSMISSION_ID.to_owned(),
            time: time.to_owned(),
            signature: sign(key, TRANSMISSION_ID, time, WEBHOOK_ID, body),
            cert_url: CERT_URL.to_owned(),
            auth_algo: "SHA256withRSA".to_owned(),
        }
    }

    /// A call signed with `key` for the test webhook id, sent at [`SENT_AT`].
    pub fn signed(key: TestKey, body: &[u8]) -> Self {
        Self::signed_at(key, SENT_AT, body)
    }

    /// The headers, with the names PayPal uses, after a content type.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        headers.extend(
            [
                ("PAYPAL-TRANSMISSION-ID", &self.transmission_id),
                ("PAYPAL-TRANSMISSION-TIME", &self.time),
                ("PAYPAL-TRANSMISSION-SIG", &self.signature),
                ("PAYPAL-CERT-URL", &self.cert_url),
                ("PAYPAL-AUTH-ALGO", &self.auth_algo),
            ]
            .map(|(name, value)| (name.to_owned(), value.clone())),
        );
        headers
    }
}

/// An RFC 3339 time as a point in time.
pub fn at(time: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(time)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// [`SENT_AT`] moved by `seconds`, written the way PayPal writes times.
pub fn sent_at_plus(seconds: i64) -> String {
    (at(SENT_AT) + chrono::TimeDelta::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// An adapter for [`WEBHOOK_ID`] pinning these keys' certificates, in order.
pub fn adapter(keys: &[TestKey]) -> PaypalAdapter {
    let pem: Vec<u8> = keys.iter().flat_map(|key| key.certificate_pem()).collect();
    PaypalAdapter::new(WEBHOOK_ID.to_owned(), &pem).expect("valid test configuration")
}

/// A request with these headers and body.
pub fn request<'a>(headers: &'a (dyn Headers + Sync), body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest { headers, body }
}
