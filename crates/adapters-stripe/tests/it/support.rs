//! Shared helpers: fixtures, an independent Stripe signer, and requests.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use payhook_adapters_stripe::StripeAdapter;
use payhook_domain::ports::{Headers, WebhookRequest};
use payhook_domain::Secret;
use ring::hmac;

/// The endpoint secret most tests sign with.
pub const SECRET: &str = "whsec_test_secret";

/// Every fixture, with the type it carries.
pub const FIXTURES: [&str; 22] = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "charge.succeeded",
    "charge.failed",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "customer.created",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
];

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

/// The lower-case hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed with
/// `secret`, the way Stripe computes a `v1` signature.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut payload = format!("{timestamp}.").into_bytes();
    payload.extend_from_slice(body);
    hex::encode(hmac::sign(&key, &payload).as_ref())
}

/// A `Stripe-Signature` value with one `v1` for `secret`.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// A point in time from unix seconds.
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).expect("a representable timestamp")
}

/// An adapter for these secrets with the default tolerance.
pub fn adapter(secrets: &[&str]) -> StripeAdapter {
    StripeAdapter::new(secrets.iter().map(|secret| Secret::new(*secret)).collect())
        .expect("valid secrets")
}

/// Request headers as an HTTP stack would hand them over.
#[derive(Debug, Default)]
pub struct TestHeaders(pub Vec<(String, String)>);

impl TestHeaders {
    /// Headers holding just this `Stripe-Signature` value, under the
    /// lower-case name HTTP/2 uses.
    pub fn signature(value: &str) -> Self {
        Self(vec![
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("stripe-signature".into(), value.into()),
        ])
    }
}

// The domain implements `Headers` for `[(String, String)]`, but a slice is
// unsized and cannot become the `&dyn Headers` that `WebhookRequest` holds,
// hence this sized wrapper. The call is spelled out because the slice's own
// `get(index)` would win over the trait method.
impl Headers for TestHeaders {
    fn get(&self, name: &str) -> Option<&str> {
        Headers::get(self.0.as_slice(), name)
    }
}

/// A request with these headers and body.
pub fn request<'a>(headers: &'a TestHeaders, body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest { headers, body }
}
