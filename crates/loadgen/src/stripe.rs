//! Stripe's side of a delivery: the `Stripe-Signature` header and an event
//! body shaped like a real `payment_intent.succeeded`.
//!
//! The signer is written here from Stripe's documentation, not borrowed
//! from the adapter, so that the benchmark also checks the two agree.

use ring::hmac;

/// Signs bodies the way Stripe does: `v1` is the lower-case hex
/// HMAC-SHA256 of `"<t>.<raw body>"`, keyed with the whole endpoint secret
/// string (`whsec_` prefix included, not base64-decoded).
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

impl Signer {
    /// A signer for the endpoint secret `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    /// The `v1` signature of `body` sent at unix time `timestamp`.
    pub fn v1(&self, timestamp: i64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        hex::encode(context.sign().as_ref())
    }

    /// The whole header value: `t=<timestamp>,v1=<hex>`.
    pub fn header(&self, timestamp: i64, body: &[u8]) -> String {
        format!("t={timestamp},v1={}", self.v1(timestamp, body))
    }
}

/// What one synthetic event says.
#[derive(Debug, Clone, Copy)]
pub struct EventSpec<'a> {
    /// `evt_...`: the id that makes a re-delivery recognisable.
    pub event_id: &'a str,
    /// `pi_...`: the PaymentIntent, i.e. the payment's external id.
    pub payment_intent: &'a str,
    /// Amount in minor units (cents: the currency is USD).
    pub amount_minor: i64,
    /// The shop's order id, as a shop puts it in the metadata.
    pub order_id: i64,
    /// Unix time of the event's creation.
    pub created: i64,
}

/// A compact `payment_intent.succeeded` event of about 1.5 KB, with the
/// fields and nesting of a real one (taken from the adapter's fixture).
/// `metadata` carries the order id only: the payment is found by its
/// external id, the PaymentIntent id, as the design's lookup rules say.
pub fn payment_intent_succeeded(spec: &EventSpec<'_>) -> Vec<u8> {
    let EventSpec {
        event_id,
        payment_intent,
        amount_minor,
        order_id,
        created,
    } = *spec;
    // Two literals: one would pass serde_json's macro recursion limit.
    let object = serde_json::json!({
            "id": payment_intent,
            "object": "payment_intent",
            "amount": amount_minor,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": amount_minor,
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": {"allow_redirects": "always", "enabled": true},
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "automatic_async",
            "client_secret": format!("{payment_intent}_secret_loadgen000000000000000"),
            "confirmation_method": "automatic",
            "created": created - 15,
            "currency": "usd",
            "customer": "cus_QhT2vWx9YzAb1C",
            "description": format!("Order {order_id}"),
            "invoice": null,
            "last_payment_error": null,
            "latest_charge": "ch_3PqR8sLkdIwHu7ix1Lm6Np7Q",
            "livemode": false,
            "metadata": {"order_id": order_id.to_string()},
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": "pm_1PqR8rLkdIwHu7ixRs8Tu9Vw",
            "payment_method_configuration_details": {"id": "pmc_1PqQ2aLkdIwHu7ixXy0Za1Bc", "parent": null},
            "payment_method_options": {
                "card": {"installments": null, "mandate_options": null, "network": null,
                         "request_three_d_secure": "automatic"},
                "link": {"persistent_token": null}
            },
            "payment_method_types": ["card", "link"],
            "processing": null,
            "receipt_email": "customer@example.com",
            "review": null,
            "setup_future_usage": null,
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": "succeeded",
            "transfer_data": null,
            "transfer_group": null
    });
    let event = serde_json::json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": "req_Kd7Lm2Np4Qr6St", "idempotency_key": format!("idem-{event_id}")},
        "type": "payment_intent.succeeded"
    });
    serde_json::to_vec(&event).expect("a JSON value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_known_stripe_vector() {
        let signer = Signer::new("whsec_test_secret");
        let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
        assert_eq!(
            signer.v1(1_700_000_000, body),
            "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
        );
        assert_eq!(
            signer.header(1_700_000_000, body),
            "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
        );
        assert!(!format!("{signer:?}").contains("whsec"));
    }

    #[test]
    fn event_body_is_realistic_in_shape_and_size() {
        let body = payment_intent_succeeded(&EventSpec {
            event_id: "evt_load_abc_17",
            payment_intent: "pi_load_abc_17",
            amount_minor: 15_000,
            order_id: 42,
            created: 1_700_000_000,
        });
        assert!((1200..=2000).contains(&body.len()), "{} bytes", body.len());
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["type"], "payment_intent.succeeded");
        assert_eq!(event["id"], "evt_load_abc_17");
        assert_eq!(event["data"]["object"]["id"], "pi_load_abc_17");
        assert_eq!(event["data"]["object"]["amount_received"], 15_000);
        assert_eq!(event["data"]["object"]["currency"], "usd");
    }
}
