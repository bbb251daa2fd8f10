//! The adapter conformance suite of `payhook-adapter-testkit`, run on the
//! generic adapter once per signature scheme, with the independent signers
//! of `support`; and on the unsigned adapter, which must fail it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_adapter_testkit::{check, Check, Conformance, HeaderList};
use payhook_adapters_generic::{GenericAdapter, DEFAULT_TOLERANCE};

use crate::support::{adapter, fixture, sign_simple, signed_standard, ID, SECRET};

/// `SECRET` with one byte of its base64 key changed.
const OTHER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx";

/// The Standard Webhooks scheme: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`; `valid_body` is the fixture of that name.
struct StandardWebhooks {
    valid_body: &'static str,
}

const STANDARD_WEBHOOKS: StandardWebhooks = StandardWebhooks {
    valid_body: "payment.completed",
};

impl Conformance for StandardWebhooks {
    type Adapter = GenericAdapter;

    fn adapter(&self) -> GenericAdapter {
        adapter(&[SECRET])
    }

    fn adapter_with_other_key(&self) -> GenericAdapter {
        adapter(&[OTHER_SECRET])
    }

    fn sign(&self, body: &[u8], at: DateTime<Utc>, _delivery: u32) -> HeaderList {
        // A Standard Webhooks sender keeps the message id across retries
        // and signs each one with its own timestamp.
        signed_standard(SECRET, ID, at.timestamp(), body)
    }

    fn signature_headers(&self) -> Vec<&'static str> {
        vec!["webhook-id", "webhook-timestamp", "webhook-signature"]
    }

    fn valid_body(&self) -> Vec<u8> {
        fixture(self.valid_body)
    }

    fn unhandled_body(&self) -> Option<Vec<u8>> {
        // The generic payload has no event types to ignore: any status but
        // `completed`, `failed`, `pending`, `canceled` and `refunded` is an
        // error.
        None
    }

    fn timestamp_tolerance(&self) -> Option<Duration> {
        Some(DEFAULT_TOLERANCE)
    }
}

/// The simple scheme: `X-Webhook-Signature: sha256=<hex>` over the body,
/// no timestamp. Its `Idempotency-Key` is what senders commonly add; the
/// adapter ignores it (it is not signed), and the suite's re-deliveries
/// repeat the body, whose digest is the event id.
struct Simple;

impl Conformance for Simple {
    type Adapter = GenericAdapter;

    fn adapter(&self) -> GenericAdapter {
        adapter(&[SECRET])
    }

    fn adapter_with_other_key(&self) -> GenericAdapter {
        adapter(&[OTHER_SECRET])
    }

    fn sign(&self, body: &[u8], _at: DateTime<Utc>, _delivery: u32) -> HeaderList {
        vec![
            ("content-type".into(), "application/json".into()),
            (
                "Idempotency-Key".into(),
                "4f9c2a7e-5d1b-4c83-9e60-2b7d8f1a3c55".into(),
            ),
            (
                "X-Webhook-Signature".into(),
                format!("sha256={}", sign_simple(SECRET, body)),
            ),
        ]
    }

    fn signature_headers(&self) -> Vec<&'static str> {
        // Not Idempotency-Key: this scheme does not sign it.
        vec!["X-Webhook-Signature"]
    }

    fn valid_body(&self) -> Vec<u8> {
        fixture("payment.failed")
    }

    fn unhandled_body(&self) -> Option<Vec<u8>> {
        None
    }

    fn timestamp_tolerance(&self) -> Option<Duration> {
        None
    }
}

/// The adapter of `PAYHOOK_ALLOW_UNSIGNED_GENERIC`, described as if it were
/// meant to check Standard Webhooks signatures.
struct Unsigned;

impl Conformance for Unsigned {
    type Adapter = GenericAdapter;

    fn adapter(&self) -> GenericAdapter {
        GenericAdapter::unsigned()
    }

    fn adapter_with_other_key(&self) -> GenericAdapter {
        GenericAdapter::unsigned()
    }

    fn sign(&self, body: &[u8], at: DateTime<Utc>, delivery: u32) -> HeaderList {
        STANDARD_WEBHOOKS.sign(body, at, delivery)
    }

    fn signature_headers(&self) -> Vec<&'static str> {
        STANDARD_WEBHOOKS.signature_headers()
    }

    fn valid_body(&self) -> Vec<u8> {
        STANDARD_WEBHOOKS.valid_body()
    }

    fn unhandled_body(&self) -> Option<Vec<u8>> {
        None
    }

    fn timestamp_tolerance(&self) -> Option<Duration> {
        STANDARD_WEBHOOKS.timestamp_tolerance()
    }
}

#[test]
fn the_standard_webhooks_scheme_passes_the_conformance_suite() {
    payhook_adapter_testkit::run(&STANDARD_WEBHOOKS);
}

#[test]
fn the_standard_webhooks_scheme_passes_it_with_a_refund() {
    payhook_adapter_testkit::run(&StandardWebhooks {
        valid_body: "payment.refunded",
    });
}

#[test]
fn the_simple_scheme_passes_the_conformance_suite() {
    payhook_adapter_testkit::run(&Simple);
}

#[test]
fn the_unsigned_adapter_fails_every_signature_check() {
    // What the suite is for: an adapter that checks no signature must not
    // pass it. (The unsigned adapter is deliberate and local-only.)
    let report = check(&Unsigned).unwrap_err();
    assert_eq!(
        report.failed_checks(),
        [
            Check::BodyChangeRefused,
            Check::HeaderChangeRefused,
            Check::MissingHeaderRefused,
            Check::OtherKeyRefused,
            Check::StaleTimestampRefused,
        ]
    );
}
