//! The Orders v2 `order` object, read for reconciliation, on fixtures
//! shaped like PayPal's documented answers of `GET /v2/checkout/orders/{id}`.

use payhook_adapters_paypal::api::order_state;
use payhook_domain::{Currency, EventKind, GatewayApiError, Money};
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

const ORDER: &str = "5O190127TN364715T";
const CAPTURE: &str = "2GG279541U471931P";

fn usd_150() -> Money {
    Money::from_minor(15000, Currency::parse("USD").unwrap())
}

/// One row of the mapping table: file, state, kind, amount, gateway
/// reference.
type Row = (
    &'static str,
    &'static str,
    Option<EventKind>,
    Option<Money>,
    Option<&'static str>,
);

#[test]
fn each_documented_order_maps_as_the_table_says() {
    let rows: [Row; 8] = [
        ("order-created.json", "CREATED", None, None, None),
        (
            "order-payer-action-required.json",
            "PAYER_ACTION_REQUIRED",
            Some(EventKind::Pending),
            None,
            None,
        ),
        (
            "order-approved.json",
            "APPROVED",
            Some(EventKind::Pending),
            None,
            None,
        ),
        (
            "order-voided.json",
            "VOIDED",
            Some(EventKind::Canceled),
            None,
            None,
        ),
        (
            "order-completed.json",
            "COMPLETED.COMPLETED",
            Some(EventKind::Succeeded),
            Some(usd_150()),
            Some(CAPTURE),
        ),
        (
            "order-completed-capture-pending.json",
            "COMPLETED.PENDING",
            Some(EventKind::Pending),
            Some(usd_150()),
            Some(CAPTURE),
        ),
        (
            "order-completed-capture-declined.json",
            "COMPLETED.DECLINED",
            Some(EventKind::Failed),
            Some(usd_150()),
            Some(CAPTURE),
        ),
        (
            "order-completed-partially-refunded.json",
            "COMPLETED.PARTIALLY_REFUNDED",
            Some(EventKind::Succeeded),
            Some(usd_150()),
            Some(CAPTURE),
        ),
    ];
    for (file, state, kind, amount, reference) in rows {
        let body = fixture(file);
        let read = order_state(body.clone()).unwrap_or_else(|error| panic!("{file}: {error}"));
        assert_eq!(read.object_id, ORDER, "{file}");
        assert_eq!(read.object_type, "order", "{file}");
        assert_eq!(read.state, state, "{file}");
        assert_eq!(read.kind, kind, "{file}");
        assert_eq!(read.amount, amount, "{file}");
        assert_eq!(read.gateway_reference.as_deref(), reference, "{file}");
        assert_eq!(read.body, body, "{file}: the body is kept for the audit");
        assert_eq!(read.event_id(), format!("reconcile:{ORDER}:{state}"));
        assert_eq!(read.event_type(), format!("order.{state}"));
    }
}

/// The capture id recorded by reconciliation is the one the webhook of the
/// same capture records, so that later refunds find the payment either way.
#[test]
fn the_reference_is_the_one_the_capture_webhook_records() {
    use payhook_adapters_paypal::PaypalAdapter;
    use payhook_domain::ports::{GatewayAdapter, WebhookRequest};

    let webhook = fixture("../PAYMENT.CAPTURE.COMPLETED.json");
    let cert = fixture("../test-only-cert.pem");
    let adapter = PaypalAdapter::new("1JE4291016473214C".into(), &cert).unwrap();
    let headers: Vec<(String, String)> = Vec::new();
    let event = adapter
        .parse(&WebhookRequest {
            headers: &headers,
            body: &webhook,
        })
        .unwrap();
    let state = order_state(fixture("order-completed.json")).unwrap();
    assert_eq!(state.gateway_reference, event.references.gateway_reference);
    assert_eq!(state.amount, event.amount);
    assert_eq!(Some(state.object_id), event.references.external_id);
}

#[test]
fn a_completed_order_without_its_capture_amount_is_malformed() {
    let mut order: serde_json::Value =
        serde_json::from_slice(&fixture("order-completed.json")).unwrap();
    order["purchase_units"][0]["payments"]["captures"][0]
        .as_object_mut()
        .unwrap()
        .remove("amount");
    let error = order_state(serde_json::to_vec(&order).unwrap()).unwrap_err();
    assert_eq!(
        error,
        GatewayApiError::Malformed(
            "missing field purchase_units[].payments.captures[].amount".into()
        )
    );
}

/// Values that look like an order's fields, with odd ones mixed in.
fn order_like() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "[A-Za-z0-9_. -]{0,12}".prop_map(|s| format!("\"{s}\"")),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        Just("\"COMPLETED\"".to_owned()),
        Just("\"5O190127TN364715T\"".to_owned()),
        Just(r#"[{"payments":{"captures":[{"id":"C1","status":"COMPLETED","amount":{"currency_code":"USD","value":"1.00"}}]}}]"#.to_owned()),
        Just(r#"[{"payments":{"captures":[{"status":"COMPLETED","amount":{"currency_code":"USD","value":1}}]}}]"#.to_owned()),
        Just(r#"[{"payments":{"captures":[{"id":"C1","status":"PENDING"},null]}}]"#.to_owned()),
        Just(r#"[null,{"payments":[]}]"#.to_owned()),
    ];
    (value.clone(), value.clone(), value).prop_map(|(id, status, units)| {
        format!(r#"{{"id":{id},"status":{status},"purchase_units":{units}}}"#).into_bytes()
    })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = order_state(body);
    }

    #[test]
    fn never_panics_on_order_like_bodies(body in order_like()) {
        if let Ok(state) = order_state(body.clone()) {
            prop_assert_eq!(state.body, body);
            prop_assert!(!state.state.is_empty());
            if state.kind == Some(EventKind::Succeeded) {
                prop_assert!(state.amount.is_some() && state.gateway_reference.is_some());
            }
        }
    }
}
