//! Shared helpers: fixtures, independent signers for both schemes, and
//! requests.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use payhook_adapters_generic::GenericAdapter;
use payhook_domain::ports::WebhookRequest;
use payhook_domain::Secret;
use ring::hmac;

/// The Standard Webhooks secret most tests sign with (the first published
/// test vector's).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A raw (not `whsec_`) secret, as a simple custom gateway would share it.
pub const RAW_SECRET: &str = "a-shared-secret-for-the-generic-gateway";

/// A message id for Standard Webhooks calls.
pub const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";

/// Every fixture, by file name without `.json`.
pub const FIXTURES: [&str; 5] = [
    "payment.completed",
    "payment.failed",
    "payment.pending",
    "payment.canceled",
    "payment.refunded",
];

/// Request headers as an HTTP stack would hand them over.
pub type TestHeaders = Vec<(String, String)>;

/// The raw bytes of `tests/fixtures/<name>.json`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        &format!("{name}.json"),
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The base64 HMAC-SHA256 of `"<id>.<timestamp>.<body>"`, keyed the way the
/// Standard Webhooks libraries key it: the base64-decoded part after
/// `whsec_`, or the text of any other secret.
pub fn sign_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key_bytes = match secret.strip_prefix("whsec_") {
        Some(encoded) => BASE64.decode(encoded).expect("a base64 test secret"),
        None => secret.as_bytes().to_vec(),
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    BASE64.encode(hmac::sign(&key, &content).as_ref())
}

/// The lower-case hex HMAC-SHA256 of the body keyed with the secret's text,
/// as `X-Webhook-Signature` carries it.
pub fn sign_simple(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, body).as_ref())
}

/// The three Standard Webhooks headers with this `webhook-signature` value.
pub fn standard_headers(id: &str, timestamp: impl ToString, signatures: &str) -> TestHeaders {
    vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signatures.into()),
    ]
}

/// Standard Webhooks headers with one `v1` for `secret`.
pub fn signed_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> TestHeaders {
    let signature = format!("v1,{}", sign_standard(secret, id, timestamp, body));
    standard_headers(id, timestamp, &signature)
}

/// An `X-Webhook-Signature: sha256=<hex>` header for `secret`.
pub fn signed_simple(secret: &str, body: &[u8]) -> TestHeaders {
    simple_headers(&format!("sha256={}", sign_simple(secret, body)))
}

/// Headers holding just this `X-Webhook-Signature` value.
pub fn simple_headers(value: &str) -> TestHeaders {
    vec![
        ("content-type".into(), "application/json".into()),
        ("x-webhook-signature".into(), value.into()),
    ]
}

/// `headers` with one more header appended.
pub fn with(mut headers: TestHeaders, name: &str, value: &str) -> TestHeaders {
    headers.push((name.into(), value.into()));
    headers
}

/// `headers` without the header `name` (any case).
pub fn without(headers: TestHeaders, name: &str) -> TestHeaders {
    headers
        .into_iter()
        .filter(|(key, _)| !key.eq_ignore_ascii_case(name))
        .collect()
}

/// A point in time from unix seconds.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).expect("a representable timestamp")
}

/// A signed adapter for these secrets with the default tolerance.
pub fn adapter(secrets: &[&str]) -> GenericAdapter {
    GenericAdapter::signed(secrets.iter().map(|secret| Secret::new(*secret)).collect())
        .expect("valid secrets")
}

/// A request with these headers and body.
pub fn request<'a>(headers: &'a TestHeaders, body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest { headers, body }
}
