//! The adapter conformance suite of `payhook-adapter-testkit`, run on the
//! PayPal adapter with the independent signer of `support`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_adapter_testkit::{Conformance, HeaderList};
use payhook_adapters_paypal::{PaypalAdapter, DEFAULT_TOLERANCE};

use crate::support::{adapter, event, sign, TestKey, CERT_URL, WEBHOOK_ID};

/// The suite with a correctly signed call of the event type `valid_type`
/// (a fixture), so that refunds and disputes are held to it too.
struct Paypal {
    valid_type: &'static str,
}

const PAYPAL: Paypal = Paypal {
    valid_type: "PAYMENT.CAPTURE.COMPLETED",
};

impl Conformance for Paypal {
    type Adapter = PaypalAdapter;

    fn adapter(&self) -> PaypalAdapter {
        adapter(&[TestKey::First])
    }

    fn adapter_with_other_key(&self) -> PaypalAdapter {
        // A one-byte change would make the certificate unreadable, which
        // the constructor refuses: another pinned certificate instead.
        adapter(&[TestKey::Second])
    }

    fn sign(&self, body: &[u8], at: DateTime<Utc>, delivery: u32) -> HeaderList {
        // PayPal gives every delivery attempt its own transmission id; the
        // event id (`WH-...`) is in the body.
        let transmission_id = format!("b2d5a4e0-cb7f-11f0-9a3b-{delivery:012x}");
        let time = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let signature = sign(TestKey::First, &transmission_id, &time, WEBHOOK_ID, body);
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("PAYPAL-TRANSMISSION-ID".into(), transmission_id),
            ("PAYPAL-TRANSMISSION-TIME".into(), time),
            ("PAYPAL-TRANSMISSION-SIG".into(), signature),
            ("PAYPAL-CERT-URL".into(), CERT_URL.into()),
            ("PAYPAL-AUTH-ALGO".into(), "SHA256withRSA".into()),
        ]
    }

    fn signature_headers(&self) -> Vec<&'static str> {
        // Not PAYPAL-CERT-URL: it is not signed, and only its host is
        // checked (the key comes from the pinned certificate), so a change
        // in its path is rightly accepted.
        vec![
            "PAYPAL-TRANSMISSION-ID",
            "PAYPAL-TRANSMISSION-TIME",
            "PAYPAL-TRANSMISSION-SIG",
            "PAYPAL-AUTH-ALGO",
        ]
    }

    fn valid_body(&self) -> Vec<u8> {
        event(self.valid_type)
    }

    fn unhandled_body(&self) -> Option<Vec<u8>> {
        Some(event("PAYMENT.AUTHORIZATION.CREATED"))
    }

    fn timestamp_tolerance(&self) -> Option<Duration> {
        Some(DEFAULT_TOLERANCE)
    }
}

#[test]
fn the_paypal_adapter_passes_the_conformance_suite() {
    payhook_adapter_testkit::run(&PAYPAL);
}

#[test]
fn the_paypal_adapter_passes_it_with_a_refund_and_with_a_dispute() {
    for valid_type in ["PAYMENT.CAPTURE.REFUNDED", "CUSTOMER.DISPUTE.RESOLVED"] {
        payhook_adapter_testkit::run(&Paypal { valid_type });
    }
}
