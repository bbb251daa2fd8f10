//! Stripe's side of a delivery: the `Stripe-Signature` header and event
//! bodies shaped like real `payment_intent.succeeded`, `refund.created`,
//! `charge.refunded`, `checkout.session.completed`, `charge.dispute.created`,
//! `charge.dispute.closed` and `customer.created` events (copied from the
//! Stripe adapter's fixtures, with this run's ids and amounts).
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
            "latest_charge": charge_id(payment_intent),
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

/// The Charge of PaymentIntent `payment_intent`: `ch_` and the rest of the
/// intent's id, so that one run's charges are as unique as its intents and
/// the intent's `latest_charge` names the charge its refunds report.
pub fn charge_id(payment_intent: &str) -> String {
    let rest = payment_intent.strip_prefix("pi_").unwrap_or(payment_intent);
    format!("ch_{rest}")
}

/// What one synthetic refund says: one refund of a payment, reported by
/// [`refund_created`] and again by [`charge_refunded`].
#[derive(Debug, Clone, Copy)]
pub struct RefundSpec<'a> {
    /// `evt_...` of this report (each report is an event of its own).
    pub event_id: &'a str,
    /// `pi_...`: the refunded PaymentIntent, which finds the payment.
    pub payment_intent: &'a str,
    /// `re_...`: the refund, counted once however often it is reported.
    pub refund_id: &'a str,
    /// The charge's (the payment's) amount in cents.
    pub amount_minor: i64,
    /// The refund's amount in cents: at most `amount_minor`.
    pub refund_minor: i64,
    /// The shop's order id, as a shop puts it in the metadata.
    pub order_id: i64,
    /// Unix time of the event's creation, which orders running totals.
    pub created: i64,
}

/// The Refund object of `spec`, as Stripe renders it in `refund.*` events
/// and in a Charge's `refunds.data` (API version 2024-06-20). A refund made
/// in the dashboard has empty metadata: the PaymentIntent finds the payment.
fn refund_object(spec: &RefundSpec<'_>) -> serde_json::Value {
    let rest = spec.refund_id.strip_prefix("re_").unwrap_or(spec.refund_id);
    serde_json::json!({
        "id": spec.refund_id,
        "object": "refund",
        "amount": spec.refund_minor,
        "balance_transaction": format!("txn_{rest}"),
        "charge": charge_id(spec.payment_intent),
        "created": spec.created - 1,
        "currency": "usd",
        "destination_details": {
            "card": {
                "reference": "7437283946215860912345",
                "reference_status": "available",
                "reference_type": "acquirer_reference_number",
                "type": "refund"
            },
            "type": "card"
        },
        "metadata": {},
        "payment_intent": spec.payment_intent,
        "reason": "requested_by_customer",
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null
    })
}

/// The event envelope Stripe wraps every object in.
fn event(event_id: &str, event_type: &str, created: i64, data: serde_json::Value) -> Vec<u8> {
    let event = serde_json::json!({
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": data,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": "req_Rf7Gh2Jk4Lm6Np", "idempotency_key": format!("idem-{event_id}")},
        "type": event_type
    });
    serde_json::to_vec(&event).expect("a JSON value always serialises")
}

/// A `refund.created` event for a refund that succeeded at once (card
/// refunds do), of about 1 KB, shaped like the adapter's fixture.
pub fn refund_created(spec: &RefundSpec<'_>) -> Vec<u8> {
    event(
        spec.event_id,
        "refund.created",
        spec.created,
        serde_json::json!({"object": refund_object(spec)}),
    )
}

/// A `charge.refunded` event after the one refund of `spec`, of about
/// 3 KB, shaped like the adapter's fixture: the running total
/// `amount_refunded` is that refund's amount, `refunds.data` lists it (the
/// same refund [`refund_created`] reports), `refunded` says whether the
/// whole charge went back, and `previous_attributes` says nothing had been
/// refunded before. Stripe sends it for partial refunds too.
pub fn charge_refunded(spec: &RefundSpec<'_>) -> Vec<u8> {
    let charge = charge_id(spec.payment_intent);
    let rest = charge.strip_prefix("ch_").unwrap_or(&charge);
    let refunded_in_full = spec.refund_minor == spec.amount_minor;
    // Several literals: one would pass serde_json's macro recursion limit.
    let billing_details = serde_json::json!({
        "address": {
            "city": "Springfield",
            "country": "US",
            "line1": "742 Evergreen Terrace",
            "line2": null,
            "postal_code": "49007",
            "state": "OR"
        },
        "email": "customer@example.com",
        "name": "Jane Customer",
        "phone": null
    });
    let outcome = serde_json::json!({
        "network_status": "approved_by_network",
        "reason": null,
        "risk_level": "normal",
        "risk_score": 32,
        "seller_message": "Payment complete.",
        "type": "authorized"
    });
    let refunds = serde_json::json!({
        "object": "list",
        "data": [refund_object(spec)],
        "has_more": false,
        "url": format!("/v1/charges/{charge}/refunds")
    });
    let card = serde_json::json!({
        "amount_authorized": spec.amount_minor,
        "brand": "visa",
        "checks": {
            "address_line1_check": "pass",
            "address_postal_code_check": "pass",
            "cvc_check": "pass"
        },
        "country": "US",
        "exp_month": 8,
        "exp_year": 2029,
        "fingerprint": "Ab1Cd2Ef3Gh4Ij5K",
        "funding": "credit",
        "installments": null,
        "last4": "4242",
        "network": "visa",
        "three_d_secure": null,
        "wallet": null
    });
    let mut object = serde_json::json!({
        "id": charge,
        "object": "charge",
        "amount": spec.amount_minor,
        "amount_captured": spec.amount_minor,
        "amount_refunded": spec.refund_minor,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": format!("txn_{rest}"),
        "billing_details": billing_details,
        "calculated_statement_descriptor": "PAYHOOK SHOP",
        "captured": true,
        "created": spec.created - 3_600,
        "currency": "usd",
        "customer": "cus_QhT2vWx9YzAb1C",
        "description": format!("Order {}", spec.order_id),
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "invoice": null,
        "livemode": false
    });
    let rest = serde_json::json!({
        "metadata": {"order_id": spec.order_id.to_string()},
        "on_behalf_of": null,
        "outcome": outcome,
        "paid": true,
        "payment_intent": spec.payment_intent,
        "payment_method": "pm_1PqR8rLkdIwHu7ixRs8Tu9Vw",
        "payment_method_details": {"card": card, "type": "card"},
        "receipt_email": "customer@example.com",
        "receipt_number": null,
        "receipt_url": "https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdF9maXh0dXJl",
        "refunded": refunded_in_full,
        "refunds": refunds,
        "review": null,
        "shipping": null,
        "source": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null
    });
    if let (Some(object), serde_json::Value::Object(rest)) = (object.as_object_mut(), rest) {
        object.extend(rest);
    }
    // Stripe lists what the event changed, as it was before.
    let mut previous = serde_json::json!({"amount_refunded": 0, "refunds": {"data": []}});
    if refunded_in_full {
        previous["refunded"] = false.into();
    }
    event(
        spec.event_id,
        "charge.refunded",
        spec.created,
        serde_json::json!({"object": object, "previous_attributes": previous}),
    )
}

/// What one synthetic Checkout Session says.
#[derive(Debug, Clone, Copy)]
pub struct CheckoutSpec<'a> {
    /// `evt_...`.
    pub event_id: &'a str,
    /// `cs_...`: the session, the external id the payment was marked
    /// pending with.
    pub session_id: &'a str,
    /// `pi_...`: the PaymentIntent the session created when the customer
    /// paid, which payhook learns as the gateway's reference.
    pub payment_intent: &'a str,
    /// payhook's `TXN-...` of the payment, which a shop passes as the
    /// session's `client_reference_id` and in its metadata.
    pub transaction_id: &'a str,
    /// `amount_total` in cents.
    pub amount_minor: i64,
    /// The shop's order id.
    pub order_id: i64,
    /// Unix time of the event's creation.
    pub created: i64,
}

/// A `checkout.session.completed` event of a session paid by card (about
/// 2 KB), shaped like the adapter's fixture: `payment_status` `paid`,
/// `payment_intent` set, the shop's transaction id both in the metadata and
/// as `client_reference_id`.
pub fn checkout_session_completed(spec: &CheckoutSpec<'_>) -> Vec<u8> {
    // Several literals: one would pass serde_json's macro recursion limit.
    let customer_details = serde_json::json!({
        "address": {
            "city": "Springfield",
            "country": "US",
            "line1": "742 Evergreen Terrace",
            "line2": null,
            "postal_code": "49007",
            "state": null
        },
        "email": "customer@example.com",
        "name": "Jane Customer",
        "phone": null,
        "tax_exempt": "none",
        "tax_ids": []
    });
    let custom_text = serde_json::json!({
        "after_submit": null,
        "shipping_address": null,
        "submit": null,
        "terms_of_service_acceptance": null
    });
    let mut object = serde_json::json!({
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": spec.amount_minor,
        "amount_total": spec.amount_minor,
        "automatic_tax": {"enabled": false, "liability": null, "status": null},
        "billing_address_collection": null,
        "cancel_url": "https://shop.example.com/checkout/cancel",
        "client_reference_id": spec.transaction_id,
        "client_secret": null,
        "consent": null,
        "consent_collection": null,
        "created": spec.created - 60,
        "currency": "usd",
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": custom_text,
        "customer": null,
        "customer_creation": "if_required",
        "customer_details": customer_details,
        "customer_email": null,
        "expires_at": spec.created + 86_340,
        "id": spec.session_id,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false,
        "locale": null
    });
    let rest = serde_json::json!({
        "metadata": {
            "order_id": spec.order_id.to_string(),
            "transaction_id": spec.transaction_id
        },
        "mode": "payment",
        "object": "checkout.session",
        "payment_intent": spec.payment_intent,
        "payment_link": null,
        "payment_method_collection": null,
        "payment_method_configuration_details": {"id": "pmc_1PqQ2aLkdIwHu7ixXy0Za1Bc", "parent": null},
        "payment_method_options": {},
        "payment_method_types": ["card", "link"],
        "payment_status": "paid",
        "phone_number_collection": {"enabled": false},
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_details": null,
        "shipping_options": [],
        "status": "complete",
        "submit_type": null,
        "subscription": null,
        "success_url": "https://shop.example.com/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": null
    });
    if let (Some(object), serde_json::Value::Object(rest)) = (object.as_object_mut(), rest) {
        object.extend(rest);
    }
    event(
        spec.event_id,
        "checkout.session.completed",
        spec.created,
        serde_json::json!({"object": object}),
    )
}

/// Where a synthetic dispute stands, as Stripe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisputeState {
    /// `needs_response`: just opened, the shop may answer.
    NeedsResponse,
    /// `won`: closed for the shop.
    Won,
    /// `lost`: closed for the customer.
    Lost,
}

impl DisputeState {
    /// Stripe's `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeedsResponse => "needs_response",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }
}

/// What one synthetic dispute report says.
#[derive(Debug, Clone, Copy)]
pub struct DisputeSpec<'a> {
    /// `evt_...` of this report.
    pub event_id: &'a str,
    /// `dp_...`: the dispute.
    pub dispute_id: &'a str,
    /// `pi_...`: the disputed PaymentIntent, which finds the payment.
    pub payment_intent: &'a str,
    /// The disputed amount in cents: the whole charge.
    pub amount_minor: i64,
    /// Its status in this report.
    pub state: DisputeState,
    /// Unix time of the event's creation.
    pub created: i64,
}

/// A `charge.dispute.created` (status `needs_response`) or
/// `charge.dispute.closed` (`won` or `lost`) event of about 2 KB, shaped
/// like the adapter's fixtures. A closed dispute lists its balance
/// transactions (the chargeback withdrawal) and the evidence submitted, and
/// says in `previous_attributes` that it was under review.
pub fn dispute_event(spec: &DisputeSpec<'_>) -> Vec<u8> {
    let closed = spec.state != DisputeState::NeedsResponse;
    let charge = charge_id(spec.payment_intent);
    let rest = spec
        .dispute_id
        .strip_prefix("dp_")
        .unwrap_or(spec.dispute_id);
    let opened = spec.created - 3_600;
    let evidence_fields = [
        "access_activity_log",
        "billing_address",
        "cancellation_policy",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_communication",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "customer_signature",
        "duplicate_charge_documentation",
        "duplicate_charge_explanation",
        "duplicate_charge_id",
        "product_description",
        "receipt",
        "refund_policy",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "service_date",
        "service_documentation",
        "shipping_address",
        "shipping_carrier",
        "shipping_date",
        "shipping_documentation",
        "shipping_tracking_number",
        "uncategorized_file",
        "uncategorized_text",
    ];
    let mut evidence: serde_json::Map<String, serde_json::Value> = evidence_fields
        .iter()
        .map(|field| ((*field).to_owned(), serde_json::Value::Null))
        .collect();
    if closed {
        evidence.insert(
            "customer_email_address".into(),
            "customer@example.com".into(),
        );
        evidence.insert("customer_name".into(), "Jane Customer".into());
        evidence.insert("shipping_carrier".into(), "USPS".into());
    }
    let balance_transactions = if closed {
        serde_json::json!([{
            "id": format!("txn_{rest}"),
            "object": "balance_transaction",
            "amount": -spec.amount_minor,
            "available_on": opened + 100,
            "created": opened + 100,
            "currency": "usd",
            "description": format!("Chargeback withdrawal for {charge}"),
            "exchange_rate": null,
            "fee": 1500,
            "fee_details": [{"amount": 1500, "application": null, "currency": "usd",
                             "description": "Dispute fee", "type": "stripe_fee"}],
            "net": -spec.amount_minor - 1500,
            "reporting_category": "dispute",
            "source": spec.dispute_id,
            "status": "available",
            "type": "adjustment"
        }])
    } else {
        serde_json::json!([])
    };
    let object = serde_json::json!({
        "id": spec.dispute_id,
        "object": "dispute",
        "amount": spec.amount_minor,
        "balance_transactions": balance_transactions,
        "charge": charge,
        "created": opened,
        "currency": "usd",
        "evidence": evidence,
        "evidence_details": {
            "due_by": opened + 842_400,
            "has_evidence": closed,
            "past_due": false,
            "submission_count": u8::from(closed)
        },
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": spec.payment_intent,
        "payment_method_details": {
            "card": {"brand": "visa", "network_reason_code": "10.4"},
            "type": "card"
        },
        "reason": "fraudulent",
        "status": spec.state.as_str()
    });
    let (event_type, data) = if closed {
        (
            "charge.dispute.closed",
            serde_json::json!({"object": object, "previous_attributes": {"status": "under_review"}}),
        )
    } else {
        (
            "charge.dispute.created",
            serde_json::json!({"object": object}),
        )
    };
    event(spec.event_id, event_type, spec.created, data)
}

/// A `customer.created` event (about 1 KB), shaped like the adapter's
/// fixture: a type payhook does not handle, answered `ignored` and never
/// stored. `customer_id` is the new customer's `cus_...`.
pub fn customer_created(event_id: &str, customer_id: &str, created: i64) -> Vec<u8> {
    let object = serde_json::json!({
        "id": customer_id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": created,
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": "Jane Customer",
        "discount": null,
        "email": "customer@example.com",
        "invoice_prefix": "7D1C2E3F",
        "invoice_settings": {
            "custom_fields": null,
            "default_payment_method": null,
            "footer": null,
            "rendering_options": null
        },
        "livemode": false,
        "metadata": {"shop_customer_id": customer_id},
        "name": "Jane Customer",
        "next_invoice_sequence": 1,
        "phone": null,
        "preferred_locales": ["en"],
        "shipping": null,
        "tax_exempt": "none",
        "test_clock": null
    });
    event(
        event_id,
        "customer.created",
        created,
        serde_json::json!({"object": object}),
    )
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

    fn spec(refund_minor: i64) -> RefundSpec<'static> {
        RefundSpec {
            event_id: "evt_load_abc_17_re",
            payment_intent: "pi_load_abc_17",
            refund_id: "re_load_abc_17",
            amount_minor: 15_000,
            refund_minor,
            order_id: 42,
            created: 1_700_000_100,
        }
    }

    #[test]
    fn charges_are_named_after_their_intent() {
        assert_eq!(charge_id("pi_load_abc_17"), "ch_load_abc_17");
        assert_eq!(charge_id("odd"), "ch_odd");
        let body = payment_intent_succeeded(&EventSpec {
            event_id: "evt_load_abc_17",
            payment_intent: "pi_load_abc_17",
            amount_minor: 15_000,
            order_id: 42,
            created: 1_700_000_000,
        });
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["data"]["object"]["latest_charge"], "ch_load_abc_17");
    }

    #[test]
    fn refund_created_reports_one_succeeded_refund_of_the_intent() {
        let body = refund_created(&spec(4_500));
        assert!((700..=1_500).contains(&body.len()), "{} bytes", body.len());
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["type"], "refund.created");
        assert_eq!(event["id"], "evt_load_abc_17_re");
        assert_eq!(event["object"], "event");
        assert_eq!(event["created"], 1_700_000_100);
        let refund = &event["data"]["object"];
        assert_eq!(refund["object"], "refund");
        assert_eq!(refund["id"], "re_load_abc_17");
        assert_eq!(refund["amount"], 4_500);
        assert_eq!(refund["currency"], "usd");
        assert_eq!(refund["status"], "succeeded");
        assert_eq!(refund["payment_intent"], "pi_load_abc_17");
        assert_eq!(refund["charge"], "ch_load_abc_17");
        assert_eq!(refund["metadata"], serde_json::json!({}));
    }

    #[test]
    fn charge_refunded_reports_the_same_refund_as_a_running_total() {
        let partial: serde_json::Value = serde_json::from_slice(&charge_refunded(&RefundSpec {
            event_id: "evt_load_abc_17_ch",
            ..spec(4_500)
        }))
        .unwrap();
        assert_eq!(partial["type"], "charge.refunded");
        assert_eq!(partial["id"], "evt_load_abc_17_ch");
        let charge = &partial["data"]["object"];
        assert_eq!(charge["object"], "charge");
        assert_eq!(charge["id"], "ch_load_abc_17");
        assert_eq!(charge["payment_intent"], "pi_load_abc_17");
        assert_eq!(charge["amount"], 15_000);
        assert_eq!(charge["amount_refunded"], 4_500);
        assert_eq!(charge["currency"], "usd");
        assert_eq!(charge["refunded"], false);
        assert_eq!(charge["refunds"]["object"], "list");
        assert_eq!(charge["refunds"]["has_more"], false);
        // The very refund refund.created reports, not a look-alike.
        let created: serde_json::Value =
            serde_json::from_slice(&refund_created(&spec(4_500))).unwrap();
        assert_eq!(
            charge["refunds"]["data"],
            serde_json::json!([created["data"]["object"]])
        );
        assert_eq!(
            partial["data"]["previous_attributes"],
            serde_json::json!({"amount_refunded": 0, "refunds": {"data": []}})
        );

        let full_body = charge_refunded(&spec(15_000));
        assert!(
            (2_000..=4_000).contains(&full_body.len()),
            "{} bytes",
            full_body.len()
        );
        let full: serde_json::Value = serde_json::from_slice(&full_body).unwrap();
        assert_eq!(full["data"]["object"]["amount_refunded"], 15_000);
        assert_eq!(full["data"]["object"]["refunded"], true);
        assert_eq!(full["data"]["previous_attributes"]["refunded"], false);
    }

    /// The members of the JSON object `value`, sorted.
    fn members(value: &serde_json::Value) -> Vec<&str> {
        let mut names: Vec<&str> = value
            .as_object()
            .map(|object| object.keys().map(String::as_str).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }

    #[test]
    fn refund_bodies_have_the_members_of_the_adapters_fixtures() {
        // The Stripe adapter's fixtures are the reference for real shapes;
        // the bodies here must not lose or invent a member of them.
        let fixture = |name: &str| -> serde_json::Value {
            let path = format!(
                "{}/../adapters-stripe/tests/fixtures/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            serde_json::from_slice(&text).unwrap()
        };
        for (name, body) in [
            ("refund.created", refund_created(&spec(4_500))),
            ("charge.refunded", charge_refunded(&spec(4_500))),
        ] {
            let ours: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let theirs = fixture(name);
            assert_eq!(members(&ours), members(&theirs), "{name}");
            assert_eq!(
                members(&ours["data"]),
                members(&theirs["data"]),
                "{name}: data"
            );
            let (object, reference) = (&ours["data"]["object"], &theirs["data"]["object"]);
            assert_eq!(members(object), members(reference), "{name}: data.object");
            if name == "charge.refunded" {
                assert_eq!(members(&object["refunds"]), members(&reference["refunds"]));
                assert_eq!(
                    members(&object["refunds"]["data"][0]),
                    members(&reference["refunds"]["data"][0])
                );
                assert_eq!(
                    members(&object["payment_method_details"]["card"]),
                    members(&reference["payment_method_details"]["card"])
                );
            }
        }
        let ours: serde_json::Value =
            serde_json::from_slice(&payment_intent_succeeded(&EventSpec {
                event_id: "evt_load_abc_17",
                payment_intent: "pi_load_abc_17",
                amount_minor: 15_000,
                order_id: 42,
                created: 1_700_000_000,
            }))
            .unwrap();
        let theirs = fixture("payment_intent.succeeded");
        assert_eq!(members(&ours), members(&theirs));
    }

    fn checkout() -> CheckoutSpec<'static> {
        CheckoutSpec {
            event_id: "evt_load_abc_17",
            session_id: "cs_load_abc_17",
            payment_intent: "pi_load_abc_17",
            transaction_id: "TXN-0A1B2C3D4E",
            amount_minor: 15_000,
            order_id: 42,
            created: 1_700_000_000,
        }
    }

    fn dispute(event_id: &'static str, state: DisputeState) -> DisputeSpec<'static> {
        DisputeSpec {
            event_id,
            dispute_id: "dp_load_abc_17",
            payment_intent: "pi_load_abc_17",
            amount_minor: 15_000,
            state,
            created: 1_700_000_200,
        }
    }

    #[test]
    fn a_completed_session_is_paid_and_names_the_payment_three_ways() {
        let body = checkout_session_completed(&checkout());
        assert!(
            (1_500..=3_000).contains(&body.len()),
            "{} bytes",
            body.len()
        );
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["type"], "checkout.session.completed");
        assert_eq!(event["id"], "evt_load_abc_17");
        let session = &event["data"]["object"];
        assert_eq!(session["object"], "checkout.session");
        assert_eq!(session["id"], "cs_load_abc_17");
        assert_eq!(session["payment_status"], "paid");
        assert_eq!(session["payment_intent"], "pi_load_abc_17");
        assert_eq!(session["client_reference_id"], "TXN-0A1B2C3D4E");
        assert_eq!(session["metadata"]["transaction_id"], "TXN-0A1B2C3D4E");
        assert_eq!(session["amount_total"], 15_000);
        assert_eq!(session["currency"], "usd");
    }

    #[test]
    fn disputes_open_then_close_won_or_lost() {
        let created: serde_json::Value = serde_json::from_slice(&dispute_event(&dispute(
            "evt_load_abc_17_dc",
            DisputeState::NeedsResponse,
        )))
        .unwrap();
        assert_eq!(created["type"], "charge.dispute.created");
        assert_eq!(created["id"], "evt_load_abc_17_dc");
        let object = &created["data"]["object"];
        assert_eq!(object["id"], "dp_load_abc_17");
        assert_eq!(object["status"], "needs_response");
        assert_eq!(object["payment_intent"], "pi_load_abc_17");
        assert_eq!(object["charge"], "ch_load_abc_17");
        assert_eq!(object["amount"], 15_000);
        assert_eq!(object["balance_transactions"], serde_json::json!([]));
        assert!(created["data"].get("previous_attributes").is_none());
        for (state, status) in [(DisputeState::Won, "won"), (DisputeState::Lost, "lost")] {
            let body = dispute_event(&dispute("evt_load_abc_17_dx", state));
            assert!(
                (1_500..=3_500).contains(&body.len()),
                "{} bytes",
                body.len()
            );
            let closed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(closed["type"], "charge.dispute.closed");
            assert_eq!(closed["data"]["object"]["status"], status);
            assert_eq!(closed["data"]["object"]["id"], "dp_load_abc_17");
            assert_eq!(
                closed["data"]["object"]["balance_transactions"][0]["amount"],
                -15_000
            );
        }
    }

    #[test]
    fn new_event_bodies_have_the_members_of_the_adapters_fixtures() {
        let fixture = |name: &str| -> serde_json::Value {
            let path = format!(
                "{}/../adapters-stripe/tests/fixtures/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            serde_json::from_slice(&text).unwrap()
        };
        for (name, body) in [
            (
                "checkout.session.completed",
                checkout_session_completed(&checkout()),
            ),
            (
                "charge.dispute.created",
                dispute_event(&dispute("evt_1", DisputeState::NeedsResponse)),
            ),
            (
                "charge.dispute.closed",
                dispute_event(&dispute("evt_2", DisputeState::Won)),
            ),
            (
                "customer.created",
                customer_created("evt_3", "cus_load_abc_17", 1_700_000_000),
            ),
        ] {
            let ours: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let theirs = fixture(name);
            assert_eq!(ours["type"], theirs["type"], "{name}");
            assert_eq!(members(&ours), members(&theirs), "{name}");
            assert_eq!(
                members(&ours["data"]),
                members(&theirs["data"]),
                "{name}: data"
            );
            let (object, reference) = (&ours["data"]["object"], &theirs["data"]["object"]);
            assert_eq!(members(object), members(reference), "{name}: data.object");
            for nested in [
                "evidence",
                "evidence_details",
                "customer_details",
                "metadata",
            ] {
                assert_eq!(
                    members(&object[nested]),
                    members(&reference[nested]),
                    "{name}: data.object.{nested}"
                );
            }
            if name == "charge.dispute.closed" {
                assert_eq!(
                    members(&object["balance_transactions"][0]),
                    members(&reference["balance_transactions"][0])
                );
            }
        }
    }
}
