//! Event parsing through `GatewayAdapter::parse`, on the fixtures and on
//! fixtures with one thing changed.

use payhook_domain::ports::{GatewayAdapter, ParseError};
use payhook_domain::{Currency, EventKind, GatewayEvent, Money, MoneyError, References};
use serde_json::Value;

use crate::support::{adapter, fixture, request, TestHeaders, SECRET};

fn parse(body: &[u8]) -> Result<GatewayEvent, ParseError> {
    let headers = TestHeaders::default();
    adapter(&[SECRET]).parse(&request(&headers, body))
}

fn parse_fixture(name: &str) -> GatewayEvent {
    parse(&fixture(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The fixture `name` with `change` applied to its JSON.
fn parse_changed(name: &str, change: impl FnOnce(&mut Value)) -> Result<GatewayEvent, ParseError> {
    let mut event: Value = serde_json::from_slice(&fixture(name)).unwrap();
    change(&mut event);
    parse(&serde_json::to_vec(&event).unwrap())
}

fn object(event: &mut Value) -> &mut serde_json::Map<String, Value> {
    event["data"]["object"].as_object_mut().unwrap()
}

fn money(minor: i64, code: &str) -> Option<Money> {
    Some(Money::from_minor(minor, Currency::parse(code).unwrap()))
}

#[test]
fn payment_intent_succeeded() {
    assert_eq!(
        parse_fixture("payment_intent.succeeded"),
        GatewayEvent {
            gateway: "stripe".into(),
            event_id: "evt_3PqR8sLkdIwHu7ix1aB2cD3e".into(),
            event_type: "payment_intent.succeeded".into(),
            kind: EventKind::Succeeded,
            references: References {
                transaction_id: Some("TXN-8F3A2C91D4".into()),
                external_id: Some("pi_3PqR8sLkdIwHu7ix1Fg4Hj5K".into()),
                gateway_reference: Some("pi_3PqR8sLkdIwHu7ix1Fg4Hj5K".into()),
            },
            amount: money(15000, "USD"),
            report: None,
        }
    );
}

#[test]
fn payment_intent_payment_failed() {
    assert_eq!(
        parse_fixture("payment_intent.payment_failed"),
        GatewayEvent {
            gateway: "stripe".into(),
            event_id: "evt_3PqS1tLkdIwHu7ix0De4Fg5H".into(),
            event_type: "payment_intent.payment_failed".into(),
            kind: EventKind::Failed,
            references: References {
                transaction_id: Some("TXN-1B2C3D4E5F".into()),
                external_id: Some("pi_3PqS1tLkdIwHu7ix0Jk6Lm7N".into()),
                gateway_reference: Some("pi_3PqS1tLkdIwHu7ix0Jk6Lm7N".into()),
            },
            amount: money(4999, "EUR"),
            report: None,
        }
    );
}

#[test]
fn charge_succeeded() {
    assert_eq!(
        parse_fixture("charge.succeeded"),
        GatewayEvent {
            gateway: "stripe".into(),
            event_id: "evt_3PqR8sLkdIwHu7ix1Uv2Wx3Y".into(),
            event_type: "charge.succeeded".into(),
            kind: EventKind::Succeeded,
            references: References {
                transaction_id: Some("TXN-8F3A2C91D4".into()),
                external_id: Some("pi_3PqR8sLkdIwHu7ix1Fg4Hj5K".into()),
                // The PaymentIntent, which a Checkout Session records on
                // the payment, not the charge's own id.
                gateway_reference: Some("pi_3PqR8sLkdIwHu7ix1Fg4Hj5K".into()),
            },
            amount: money(15000, "USD"),
            report: None,
        }
    );
}

#[test]
fn charge_failed() {
    assert_eq!(
        parse_fixture("charge.failed"),
        GatewayEvent {
            gateway: "stripe".into(),
            event_id: "evt_3PqT5uLkdIwHu7ix2Ab3Cd4E".into(),
            event_type: "charge.failed".into(),
            kind: EventKind::Failed,
            references: References {
                transaction_id: None,
                external_id: Some("pi_3PqT5uLkdIwHu7ix2Kl7Mn8O".into()),
                gateway_reference: Some("pi_3PqT5uLkdIwHu7ix2Kl7Mn8O".into()),
            },
            amount: money(2500, "GBP"),
            report: None,
        }
    );
}

#[test]
fn an_unhandled_type_is_not_handled_and_carries_no_references() {
    assert_eq!(
        parse_fixture("customer.created"),
        GatewayEvent {
            gateway: "stripe".into(),
            event_id: "evt_1PqR7zLkdIwHu7ixMn2Op3Qr".into(),
            event_type: "customer.created".into(),
            kind: EventKind::NotHandled,
            references: References::default(),
            amount: None,
            report: None,
        }
    );
}

#[test]
fn an_unhandled_type_needs_only_id_and_type() {
    for body in [
        r#"{"id":"evt_1","type":"invoice.paid"}"#,
        r#"{"id":"evt_1","type":"invoice.paid","data":null}"#,
        r#"{"id":"evt_1","type":"invoice.paid","data":7}"#,
        r#"{"id":"evt_1","type":"invoice.paid","data":{"object":{"amount":-1.5,"currency":"???"}}}"#,
        r#"{"id":"evt_1","type":"payment_intent.created","data":{"object":{"id":"pi_1"}}}"#,
    ] {
        let event = parse(body.as_bytes()).unwrap_or_else(|error| panic!("{body}: {error}"));
        assert_eq!(event.kind, EventKind::NotHandled, "{body}");
        assert_eq!(event.event_id, "evt_1");
        assert_eq!(event.amount, None);
    }
}

#[test]
fn type_names_match_exactly() {
    let result = parse_changed("charge.succeeded", |event| {
        event["type"] = "Charge.Succeeded".into();
    });
    assert_eq!(result.unwrap().kind, EventKind::NotHandled);
}

#[test]
fn malformed_json_is_malformed() {
    for body in [
        &b""[..],
        b"{",
        b"not json",
        b"{\"id\":\"evt_1\",}",
        b"\xff\xfe{}",
        b"[\"evt_1\"]",
        b"\"evt_1\"",
        b"null",
        br#"{"id":"evt_1","type":"charge.succeeded"} trailing"#,
        br#"{"id":"evt_1","id":"evt_2","type":"charge.succeeded"}"#,
    ] {
        assert!(
            matches!(parse(body), Err(ParseError::Malformed(_))),
            "{:?} gave {:?}",
            String::from_utf8_lossy(body),
            parse(body)
        );
    }
}

#[test]
fn deeply_nested_json_is_refused_not_a_stack_overflow() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let body =
        format!(r#"{{"id":"evt_1","type":"charge.succeeded","data":{{"object":{nested}}}}}"#);
    assert!(matches!(
        parse(body.as_bytes()),
        Err(ParseError::InvalidField {
            field: "data.object",
            ..
        })
    ));
    let body = format!(
        r#"{{"id":"evt_1","type":"charge.succeeded","data":{{"object":{}"#,
        r#"{"a":"#.repeat(depth)
    );
    assert!(matches!(
        parse(body.as_bytes()),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        parse(nested.as_bytes()),
        Err(ParseError::Malformed(_))
    ));
}

#[test]
fn the_envelope_needs_a_non_empty_id_and_a_type() {
    let result = parse_changed("customer.created", |event| {
        event.as_object_mut().unwrap().remove("id");
    });
    assert_eq!(result, Err(ParseError::MissingField("id")));

    let result = parse_changed("customer.created", |event| event["id"] = Value::Null);
    assert_eq!(result, Err(ParseError::MissingField("id")));

    let result = parse_changed("customer.created", |event| event["id"] = "".into());
    assert!(matches!(
        result,
        Err(ParseError::InvalidField { field: "id", .. })
    ));

    let result = parse_changed("customer.created", |event| event["id"] = 42.into());
    assert!(matches!(
        result,
        Err(ParseError::InvalidField { field: "id", .. })
    ));

    let result = parse_changed("customer.created", |event| {
        event.as_object_mut().unwrap().remove("type");
    });
    assert_eq!(result, Err(ParseError::MissingField("type")));

    let result = parse_changed("customer.created", |event| event["type"] = "".into());
    assert!(matches!(
        result,
        Err(ParseError::InvalidField { field: "type", .. })
    ));
}

#[test]
fn a_handled_type_needs_its_object() {
    for name in ["payment_intent.succeeded", "charge.failed"] {
        let result = parse_changed(name, |event| {
            event.as_object_mut().unwrap().remove("data");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object")),
            "{name}"
        );

        let result = parse_changed(name, |event| event["data"]["object"] = Value::Null);
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object")),
            "{name}"
        );

        let result = parse_changed(name, |event| event["data"] = "pi_1".into());
        assert!(
            matches!(result, Err(ParseError::InvalidField { field: "data", .. })),
            "{name}"
        );
    }
}

#[test]
fn a_handled_type_needs_amount_and_currency() {
    for name in [
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "charge.failed",
    ] {
        let result = parse_changed(name, |event| {
            object(event).remove("amount");
            object(event).remove("amount_received");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object.amount")),
            "{name}"
        );

        let result = parse_changed(name, |event| {
            object(event).insert("amount".into(), Value::Null);
            object(event).remove("amount_received");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object.amount")),
            "{name}"
        );

        let result = parse_changed(name, |event| {
            object(event).remove("currency");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("data.object.currency")),
            "{name}"
        );
    }
}

#[test]
fn a_succeeded_payment_intent_can_go_by_amount_received_alone() {
    let result = parse_changed("payment_intent.succeeded", |event| {
        object(event).remove("amount");
    });
    assert_eq!(result.unwrap().amount, money(15000, "USD"));
}

#[test]
fn a_partial_capture_reports_the_amount_received() {
    let result = parse_changed("payment_intent.succeeded", |event| {
        object(event).insert("amount_received".into(), 12000.into());
    });
    assert_eq!(result.unwrap().amount, money(12000, "USD"));
}

#[test]
fn an_unknown_currency_is_a_money_error_on_the_currency() {
    for name in ["payment_intent.succeeded", "charge.failed"] {
        let result = parse_changed(name, |event| {
            object(event).insert("currency".into(), "xyz".into());
        });
        assert_eq!(
            result,
            Err(ParseError::Money {
                field: "data.object.currency",
                source: MoneyError::UnknownCurrency("xyz".into()),
            }),
            "{name}"
        );
    }
}

#[test]
fn amounts_must_be_non_negative_integers() {
    for amount in [
        Value::from(150.5),
        Value::from(-100),
        Value::from("15000"),
        Value::from(1e20),
    ] {
        let result = parse_changed("charge.succeeded", |event| {
            object(event).insert("amount".into(), amount.clone());
        });
        assert!(
            matches!(
                result,
                Err(ParseError::InvalidField {
                    field: "data.object.amount",
                    ..
                })
            ),
            "{amount} gave {result:?}"
        );
    }
    let result = parse_changed("payment_intent.succeeded", |event| {
        object(event).insert("amount_received".into(), Value::from(-1));
    });
    assert!(matches!(
        result,
        Err(ParseError::InvalidField {
            field: "data.object.amount_received",
            ..
        })
    ));
}

#[test]
fn the_currency_exponent_follows_iso_with_stripes_special_cases() {
    let with = |amount: i64, currency: &str| {
        parse_changed("charge.succeeded", |event| {
            object(event).insert("amount".into(), amount.into());
            object(event).insert("currency".into(), currency.into());
        })
        .unwrap()
        .amount
    };
    assert_eq!(with(1500, "jpy"), money(1500, "JPY"));
    assert_eq!(with(5120, "kwd"), money(5120, "KWD"));
    // Stripe writes ISK with two decimals although it has none.
    assert_eq!(with(50000, "isk"), money(500, "ISK"));
    // Stripe writes MGA with none although ISO gives it two.
    assert_eq!(with(5000, "mga"), money(500_000, "MGA"));
}

#[test]
fn a_charge_without_a_payment_intent_still_has_its_own_reference() {
    let result = parse_changed("charge.succeeded", |event| {
        object(event).insert("payment_intent".into(), Value::Null);
    });
    let references = result.unwrap().references;
    assert_eq!(references.external_id, None);
    assert_eq!(
        references.gateway_reference.as_deref(),
        Some("ch_3PqR8sLkdIwHu7ix1Lm6Np7Q")
    );
}

#[test]
fn empty_or_absent_metadata_gives_no_transaction_id() {
    let cleared = parse_changed("payment_intent.succeeded", |event| {
        object(event)["metadata"]["transaction_id"] = "".into();
    });
    assert_eq!(cleared.unwrap().references.transaction_id, None);

    let removed = parse_changed("payment_intent.succeeded", |event| {
        object(event).remove("metadata");
    });
    assert_eq!(removed.unwrap().references.transaction_id, None);
}

#[test]
fn unknown_fields_are_ignored() {
    let result = parse_changed("charge.succeeded", |event| {
        event["brand_new_field"] = serde_json::json!({"nested": [1, 2, {"x": null}]});
        object(event).insert("another_new_field".into(), Value::Bool(true));
    });
    assert_eq!(result.unwrap(), parse_fixture("charge.succeeded"));
}
