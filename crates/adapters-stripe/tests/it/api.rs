//! Stripe's API objects (`tests/fixtures/api/`, from Stripe's OpenAPI
//! fixtures) read into what reconciliation applies, and hostile answers
//! never panicking the mapping.

use payhook_adapters_stripe::api::{checkout_session, payment_intent, ApiObject};
use payhook_domain::{Currency, EventKind, GatewayApiError, Money};
use proptest::prelude::*;
use serde_json::Value;

use crate::support::fixture;

const INTENT_ID: &str = "pi_1PiP1gH8eMwJEsQUrZIqxEjx";
const SESSION_ID: &str = "cs_test_a1dO7xJf6gQAs9Kk9bu14P7sPTKalBYaOBMbXCOXLHh5xdumR9nnVJ7Is9";

/// Every API fixture, as `api/<name>.json`.
const API_FIXTURES: [&str; 14] = [
    "payment_intent",
    "payment_intent.succeeded",
    "payment_intent.canceled",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.requires_payment_method.failed",
    "payment_intent.requires_confirmation",
    "payment_intent.requires_capture",
    "checkout.session",
    "checkout.session.complete.paid",
    "checkout.session.complete.paid.expanded",
    "checkout.session.complete.unpaid",
    "checkout.session.complete.no_payment_required",
    "checkout.session.expired",
];

fn api_fixture(name: &str) -> Vec<u8> {
    fixture(&format!("api/{name}"))
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::parse("USD").unwrap())
}

/// One row of the mapping table: fixture, state, kind, amount, reference.
type Row = (
    &'static str,
    &'static str,
    Option<EventKind>,
    Option<Money>,
    Option<&'static str>,
);

#[test]
fn payment_intents_map_as_the_table_says() {
    use EventKind::{Canceled, Failed, Pending, Succeeded};
    let rows: [Row; 8] = [
        (
            "payment_intent.succeeded",
            "succeeded",
            Some(Succeeded),
            Some(usd(1099)),
            Some(INTENT_ID),
        ),
        (
            "payment_intent.canceled",
            "canceled",
            Some(Canceled),
            None,
            Some(INTENT_ID),
        ),
        (
            "payment_intent.processing",
            "processing",
            Some(Pending),
            None,
            Some(INTENT_ID),
        ),
        (
            "payment_intent.requires_action",
            "requires_action",
            Some(Pending),
            None,
            Some(INTENT_ID),
        ),
        (
            "payment_intent.requires_payment_method.failed",
            "requires_payment_method",
            Some(Failed),
            None,
            Some(INTENT_ID),
        ),
        (
            "payment_intent",
            "requires_payment_method",
            None,
            None,
            Some(INTENT_ID),
        ),
        (
            "payment_intent.requires_confirmation",
            "requires_confirmation",
            None,
            None,
            Some(INTENT_ID),
        ),
        (
            "payment_intent.requires_capture",
            "requires_capture",
            None,
            None,
            Some(INTENT_ID),
        ),
    ];
    for (name, state, kind, amount, reference) in rows {
        let body = api_fixture(name);
        let read = payment_intent(&body).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(read.object_id, INTENT_ID, "{name}");
        assert_eq!(read.object_type, "payment_intent", "{name}");
        assert_eq!(read.state, state, "{name}");
        assert_eq!(read.kind, kind, "{name}");
        assert_eq!(read.amount, amount, "{name}");
        assert_eq!(read.gateway_reference.as_deref(), reference, "{name}");
        assert_eq!(read.body, body, "{name}: the body is kept as received");
        assert_eq!(ApiObject::PaymentIntent.read(&body), Ok(read), "{name}");
    }
}

#[test]
fn checkout_sessions_map_as_the_table_says() {
    use EventKind::{Canceled, Pending, Succeeded};
    let rows: [Row; 6] = [
        (
            "checkout.session.complete.paid",
            "complete.paid",
            Some(Succeeded),
            Some(usd(1099)),
            Some(INTENT_ID),
        ),
        (
            "checkout.session.complete.paid.expanded",
            "complete.paid",
            Some(Succeeded),
            Some(usd(1099)),
            Some(INTENT_ID),
        ),
        (
            "checkout.session.complete.no_payment_required",
            "complete.no_payment_required",
            Some(Succeeded),
            Some(usd(0)),
            None,
        ),
        (
            "checkout.session.complete.unpaid",
            "complete.unpaid",
            Some(Pending),
            None,
            Some(INTENT_ID),
        ),
        (
            "checkout.session.expired",
            "expired.unpaid",
            Some(Canceled),
            None,
            None,
        ),
        (
            "checkout.session",
            "open.unpaid",
            None,
            None,
            Some(INTENT_ID),
        ),
    ];
    for (name, state, kind, amount, reference) in rows {
        let body = api_fixture(name);
        let read = checkout_session(&body).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(read.object_id, SESSION_ID, "{name}");
        assert_eq!(read.object_type, "checkout.session", "{name}");
        assert_eq!(read.state, state, "{name}");
        assert_eq!(read.kind, kind, "{name}");
        assert_eq!(read.amount, amount, "{name}");
        assert_eq!(read.gateway_reference.as_deref(), reference, "{name}");
        assert_eq!(read.body, body, "{name}: the body is kept as received");
        assert_eq!(ApiObject::CheckoutSession.read(&body), Ok(read), "{name}");
    }
}

#[test]
fn each_object_is_read_only_as_itself() {
    for name in API_FIXTURES {
        let body = api_fixture(name);
        let (right, wrong) = if name.starts_with("payment_intent") {
            (ApiObject::PaymentIntent, ApiObject::CheckoutSession)
        } else {
            (ApiObject::CheckoutSession, ApiObject::PaymentIntent)
        };
        assert!(right.read(&body).is_ok(), "{name}");
        assert!(
            matches!(wrong.read(&body), Err(GatewayApiError::Malformed(text)) if text.contains("object")),
            "{name}"
        );
    }
}

/// The fixture `name` with `member` set to `value` (removed for `None`).
fn edited(name: &str, member: &str, value: Option<Value>) -> Vec<u8> {
    let mut object: Value = serde_json::from_slice(&api_fixture(name)).unwrap();
    let map = object.as_object_mut().unwrap();
    match value {
        Some(value) => map.insert(member.to_owned(), value),
        None => map.remove(member),
    };
    serde_json::to_vec(&object).unwrap()
}

#[test]
fn required_members_missing_are_malformed_and_named() {
    let cases = [
        ("payment_intent.succeeded", "id", "missing field id"),
        ("payment_intent.succeeded", "status", "missing field status"),
        ("payment_intent.succeeded", "object", "missing field object"),
        (
            "payment_intent.succeeded",
            "currency",
            "missing field currency",
        ),
        (
            "checkout.session.complete.paid",
            "payment_status",
            "missing field payment_status",
        ),
        (
            "checkout.session.complete.paid",
            "currency",
            "missing field currency",
        ),
    ];
    for (name, member, expected) in cases {
        let body = edited(name, member, None);
        let error = if name.starts_with("payment_intent") {
            payment_intent(&body)
        } else {
            checkout_session(&body)
        }
        .unwrap_err();
        assert_eq!(
            error,
            GatewayApiError::Malformed(expected.to_owned()),
            "{name} without {member}"
        );
    }
    // Neither amount: nothing to say what was received.
    let body = edited("payment_intent.succeeded", "amount_received", None);
    let mut object: Value = serde_json::from_slice(&body).unwrap();
    object.as_object_mut().unwrap().remove("amount");
    assert_eq!(
        payment_intent(&serde_json::to_vec(&object).unwrap()).unwrap_err(),
        GatewayApiError::Malformed("missing field amount".to_owned())
    );
}

#[test]
fn a_succeeded_session_without_a_total_has_no_amount() {
    let body = edited(
        "checkout.session.complete.paid",
        "amount_total",
        Some(Value::Null),
    );
    let read = checkout_session(&body).unwrap();
    assert_eq!(read.kind, Some(EventKind::Succeeded));
    assert_eq!(read.amount, None);
}

#[test]
fn a_last_payment_error_that_is_not_an_object_is_refused() {
    let body = edited(
        "payment_intent",
        "last_payment_error",
        Some(Value::String("declined".into())),
    );
    assert!(matches!(
        payment_intent(&body),
        Err(GatewayApiError::Malformed(text)) if text.contains("last_payment_error")
    ));
}

#[test]
fn amounts_are_read_strictly() {
    for bad in [
        Value::from(-1),
        Value::from(10.5),
        Value::String("1099".into()),
    ] {
        let body = edited(
            "payment_intent.succeeded",
            "amount_received",
            Some(bad.clone()),
        );
        assert!(
            matches!(payment_intent(&body), Err(GatewayApiError::Malformed(text)) if text.contains("amount_received")),
            "{bad}"
        );
    }
    let body = edited(
        "payment_intent.succeeded",
        "currency",
        Some(Value::String("xxx_not_a_currency".into())),
    );
    assert!(matches!(
        payment_intent(&body),
        Err(GatewayApiError::Malformed(text)) if text.contains("currency")
    ));
}

#[test]
fn a_repeated_member_is_refused() {
    let body = br#"{"id":"pi_1","object":"payment_intent","status":"processing","status":"succeeded","amount":1,"currency":"usd"}"#;
    assert!(matches!(
        payment_intent(body),
        Err(GatewayApiError::Malformed(_))
    ));
}

/// Answers that look like Stripe's objects, with arbitrary values in the
/// members the mapping reads.
fn object_like() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "[a-z_.]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "\\PC{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        Just("{\"id\":5}".to_owned()),
        Just("{\"id\":\"pi_1\"}".to_owned()),
        Just("\"usd\"".to_owned()),
        Just("\"isk\"".to_owned()),
        Just("\"payment_intent\"".to_owned()),
        Just("\"checkout.session\"".to_owned()),
        Just("\"succeeded\"".to_owned()),
        Just("\"requires_payment_method\"".to_owned()),
        Just("\"complete\"".to_owned()),
        Just("\"expired\"".to_owned()),
        Just("\"paid\"".to_owned()),
        Just("\"unpaid\"".to_owned()),
    ];
    let member = prop_oneof![
        Just("id"),
        Just("object"),
        Just("status"),
        Just("amount"),
        Just("amount_received"),
        Just("currency"),
        Just("last_payment_error"),
        Just("amount_total"),
        Just("payment_status"),
        Just("payment_intent"),
        Just("metadata"),
    ];
    prop::collection::vec((member, value), 0..12).prop_map(|members| {
        let inner: Vec<String> = members
            .into_iter()
            .map(|(name, value)| format!("\"{name}\":{value}"))
            .collect();
        format!("{{{}}}", inner.join(",")).into_bytes()
    })
}

/// A fixture with some bytes overwritten or cut off.
fn damaged_fixture() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(API_FIXTURES.to_vec()),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(name, edits, cut)| {
            let mut body = api_fixture(name);
            for (at, byte) in edits {
                let position = at.index(body.len());
                body[position] = byte;
            }
            let keep = cut.index(body.len() + 1);
            body.truncate(keep.max(body.len() / 2));
            body
        })
}

fn check_both(body: &[u8]) {
    for object in [ApiObject::PaymentIntent, ApiObject::CheckoutSession] {
        if let Ok(state) = object.read(body) {
            // Whatever it accepts is a complete state of the object asked for.
            assert_eq!(state.object_type, object.object_type());
            assert!(!state.object_id.is_empty());
            assert!(!state.state.is_empty());
            assert_eq!(state.body, body);
            if state.amount.is_some() {
                assert_eq!(state.kind, Some(EventKind::Succeeded));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        check_both(&body);
    }

    #[test]
    fn object_like_answers_never_panic(body in object_like()) {
        check_both(&body);
    }

    #[test]
    fn damaged_fixtures_never_panic(body in damaged_fixture()) {
        check_both(&body);
    }
}
