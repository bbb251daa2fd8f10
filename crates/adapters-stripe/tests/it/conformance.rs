//! The adapter conformance suite of `payhook-adapter-testkit`, run on the
//! Stripe adapter with the independent signer of `support`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_adapter_testkit::{Conformance, HeaderList};
use payhook_adapters_stripe::{StripeAdapter, DEFAULT_TOLERANCE};

use crate::support::{adapter, fixture, signature_header, SECRET};

struct Stripe;

impl Conformance for Stripe {
    type Adapter = StripeAdapter;

    fn adapter(&self) -> StripeAdapter {
        adapter(&[SECRET])
    }

    fn adapter_with_other_key(&self) -> StripeAdapter {
        // SECRET with its last byte changed.
        adapter(&["whsec_test_secreu"])
    }

    fn sign(&self, body: &[u8], at: DateTime<Utc>, _delivery: u32) -> HeaderList {
        // Stripe signs every retry afresh; the event id is in the body.
        vec![
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
            (
                "Stripe-Signature".into(),
                signature_header(SECRET, at.timestamp(), body),
            ),
        ]
    }

    fn signature_headers(&self) -> Vec<&'static str> {
        vec!["Stripe-Signature"]
    }

    fn valid_body(&self) -> Vec<u8> {
        fixture("payment_intent.succeeded")
    }

    fn unhandled_body(&self) -> Option<Vec<u8>> {
        Some(fixture("customer.created"))
    }

    fn timestamp_tolerance(&self) -> Option<Duration> {
        Some(DEFAULT_TOLERANCE)
    }
}

#[test]
fn the_stripe_adapter_passes_the_conformance_suite() {
    payhook_adapter_testkit::run(&Stripe);
}
