//! Payload parsing through `GatewayAdapter::parse`, on the fixtures, on the
//! spec's example and on payloads with one thing changed.

use payhook_adapters_generic::GenericAdapter;
use payhook_domain::ports::{GatewayAdapter, ParseError};
use payhook_domain::{Currency, EventKind, GatewayEvent, Money, MoneyError, References};
use ring::digest;
use serde_json::{json, Value};

use crate::support::{adapter, fixture, request, with, TestHeaders, RAW_SECRET};

/// The example payload of the design brief, byte for byte.
const SPEC_EXAMPLE: &str = r#"{"payment_id": "ext_123", "transaction_id": "TXN-123456", "status": "completed", "amount": 150.00, "currency": "USD", "metadata": {}}"#;

fn parse_with(headers: &TestHeaders, body: &[u8]) -> Result<GatewayEvent, ParseError> {
    adapter(&[RAW_SECRET]).parse(&request(headers, body))
}

fn parse(body: &[u8]) -> Result<GatewayEvent, ParseError> {
    parse_with(&TestHeaders::new(), body)
}

/// The spec example with `change` applied to its JSON.
fn parse_changed(
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Result<GatewayEvent, ParseError> {
    let mut payload: Value = serde_json::from_str(SPEC_EXAMPLE).unwrap();
    change(payload.as_object_mut().unwrap());
    parse(&serde_json::to_vec(&payload).unwrap())
}

/// The spec example with its `amount` written as `amount` (raw JSON text)
/// and its currency as `currency`.
fn parse_amount(amount: &str, currency: &str) -> Result<GatewayEvent, ParseError> {
    let body = format!(
        r#"{{"payment_id":"ext_123","status":"completed","amount":{amount},"currency":"{currency}"}}"#
    );
    parse(body.as_bytes())
}

fn money(minor: i64, code: &str) -> Option<Money> {
    Some(Money::from_minor(minor, Currency::parse(code).unwrap()))
}

fn body_digest(body: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(digest::digest(&digest::SHA256, body).as_ref())
    )
}

/// The id headers of a Standard Webhooks call named `id`. Parsing does not
/// check the signature, only that the call is of that scheme.
fn standard(id: &str) -> TestHeaders {
    vec![
        (
            "webhook-signature".to_owned(),
            "v1,not-checked-by-parse".to_owned(),
        ),
        ("webhook-id".to_owned(), id.to_owned()),
    ]
}

/// `body` (a JSON object) with the member `"event_id": <id>` first, `id`
/// being raw JSON.
fn with_event_id(body: &[u8], id: &str) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    let rest = text.trim_start().strip_prefix('{').unwrap();
    format!(r#"{{"event_id": {id},{rest}"#).into_bytes()
}

#[test]
fn the_spec_example() {
    assert_eq!(
        parse(SPEC_EXAMPLE.as_bytes()).unwrap(),
        GatewayEvent {
            gateway: "generic".into(),
            event_id: body_digest(SPEC_EXAMPLE.as_bytes()),
            event_type: "payment.completed".into(),
            kind: EventKind::Succeeded,
            references: References {
                transaction_id: Some("TXN-123456".into()),
                external_id: Some("ext_123".into()),
                gateway_reference: None,
            },
            amount: money(15000, "USD"),
            report: None,
        }
    );
}

#[test]
fn a_completed_payment() {
    let headers = standard("msg_completed_1");
    assert_eq!(
        parse_with(&headers, &fixture("payment.completed")).unwrap(),
        GatewayEvent {
            gateway: "generic".into(),
            event_id: "msg_completed_1".into(),
            event_type: "payment.completed".into(),
            kind: EventKind::Succeeded,
            references: References {
                transaction_id: Some("TXN-123456".into()),
                external_id: Some("ext_123".into()),
                gateway_reference: None,
            },
            amount: money(15000, "USD"),
            report: None,
        }
    );
}

#[test]
fn a_failed_payment() {
    // The simple scheme's id is inside the signed body.
    let body = with_event_id(&fixture("payment.failed"), r#""key-failed-1""#);
    assert_eq!(
        parse(&body).unwrap(),
        GatewayEvent {
            gateway: "generic".into(),
            event_id: "key-failed-1".into(),
            event_type: "payment.failed".into(),
            kind: EventKind::Failed,
            references: References {
                transaction_id: Some("TXN-654321".into()),
                external_id: Some("ext_456".into()),
                gateway_reference: None,
            },
            amount: money(4999, "EUR"),
            report: None,
        }
    );
}

#[test]
fn a_pending_payment() {
    let headers = standard("msg_pending_1");
    assert_eq!(
        parse_with(&headers, &fixture("payment.pending")).unwrap(),
        GatewayEvent {
            gateway: "generic".into(),
            event_id: "msg_pending_1".into(),
            event_type: "payment.pending".into(),
            kind: EventKind::Pending,
            references: References {
                transaction_id: Some("TXN-789012".into()),
                external_id: Some("ext_789".into()),
                gateway_reference: None,
            },
            amount: money(12000, "JPY"),
            report: None,
        }
    );
}

#[test]
fn a_canceled_payment() {
    let body = with_event_id(&fixture("payment.canceled"), r#""evt_canceled_1""#);
    assert_eq!(
        parse(&body).unwrap(),
        GatewayEvent {
            gateway: "generic".into(),
            event_id: "evt_canceled_1".into(),
            event_type: "payment.canceled".into(),
            kind: EventKind::Canceled,
            references: References {
                transaction_id: Some("TXN-210987".into()),
                external_id: Some("ext_321".into()),
                gateway_reference: None,
            },
            amount: money(2050, "GBP"),
            report: None,
        }
    );
}

#[test]
fn each_status_has_its_kind_and_event_type() {
    for (status, kind) in [
        ("completed", EventKind::Succeeded),
        ("failed", EventKind::Failed),
        ("pending", EventKind::Pending),
        ("canceled", EventKind::Canceled),
    ] {
        let event = parse_changed(|payload| {
            payload.insert("status".into(), status.into());
        })
        .unwrap();
        assert_eq!(event.kind, kind, "{status}");
        assert_eq!(event.event_type, format!("payment.{status}"));
        // Everything else is read as for a completed payment.
        assert_eq!(event.amount, money(15000, "USD"), "{status}");
        assert_eq!(
            event.references,
            References {
                transaction_id: Some("TXN-123456".into()),
                external_id: Some("ext_123".into()),
                gateway_reference: None,
            },
            "{status}"
        );
    }
}

#[test]
fn pending_and_canceled_need_what_completed_needs() {
    for status in ["pending", "canceled"] {
        let result = parse_changed(|payload| {
            payload.insert("status".into(), status.into());
            payload.remove("amount");
        });
        assert_eq!(result, Err(ParseError::MissingField("amount")), "{status}");
        let result = parse_changed(|payload| {
            payload.insert("status".into(), status.into());
            payload.remove("currency");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("currency")),
            "{status}"
        );
        let result = parse_changed(|payload| {
            payload.insert("status".into(), status.into());
            payload.remove("payment_id");
            payload.remove("transaction_id");
        });
        assert_eq!(
            result,
            Err(ParseError::MissingField("payment_id or transaction_id")),
            "{status}"
        );
    }
}

#[test]
fn the_unsigned_adapter_parses_the_same_way() {
    let headers = TestHeaders::new();
    let body = fixture("payment.completed");
    assert_eq!(
        GenericAdapter::unsigned().parse(&request(&headers, &body)),
        parse(&body)
    );
}

#[test]
fn standard_webhooks_is_named_by_webhook_id_and_nothing_else() {
    let body = with_event_id(&fixture("payment.completed"), r#""evt_in_body""#);
    let headers = with(standard("msg_1"), "Idempotency-Key", "key-1");
    assert_eq!(parse_with(&headers, &body).unwrap().event_id, "msg_1");
    // The body's event_id is not read under Standard Webhooks at all.
    let odd = with_event_id(&fixture("payment.completed"), "42");
    assert_eq!(
        parse_with(&standard("msg_1"), &odd).unwrap().event_id,
        "msg_1"
    );
}

#[test]
fn otherwise_the_body_event_id_then_the_body_digest_and_never_a_header() {
    let body = fixture("payment.completed");
    let named = with_event_id(&body, r#""evt_gw_1""#);
    // Headers the simple scheme does not sign, which a replay can change.
    let unsigned_ids: TestHeaders = vec![
        ("Idempotency-Key".into(), "key-1".into()),
        ("webhook-id".into(), "msg_1".into()),
    ];
    for headers in [TestHeaders::new(), unsigned_ids] {
        assert_eq!(parse_with(&headers, &named).unwrap().event_id, "evt_gw_1");
        assert_eq!(
            parse_with(&headers, &body).unwrap().event_id,
            body_digest(&body)
        );
        assert_eq!(
            parse_with(&headers, &body).unwrap().event_id,
            "sha256:".to_owned() + &hex::encode(digest::digest(&digest::SHA256, &body).as_ref())
        );
    }
    let null = with_event_id(&body, "null");
    assert_eq!(parse(&null).unwrap().event_id, body_digest(&null));
}

#[test]
fn event_ids_are_stable_across_re_deliveries() {
    let body = fixture("payment.completed");
    for headers in [
        TestHeaders::new(),
        vec![("Idempotency-Key".into(), "key-1".into())],
        standard("msg_1"),
    ] {
        let first = parse_with(&headers, &body).unwrap();
        // A re-delivery: the same bytes, the same id headers, others changed.
        let again = with(headers.clone(), "user-agent", "retry/2");
        assert_eq!(parse_with(&again, &body).unwrap(), first);
    }
    // Without a signed id, another body is another event...
    let mut other = body.clone();
    other.push(b'\n');
    assert_ne!(
        parse(&other).unwrap().event_id,
        parse(&body).unwrap().event_id
    );
    // ...and with one, the id alone decides.
    assert_eq!(
        parse_with(&standard("msg_1"), &other).unwrap().event_id,
        "msg_1"
    );
    let named = with_event_id(&body, r#""evt_gw_1""#);
    let named_again = with_event_id(&other, r#""evt_gw_1""#);
    assert_eq!(
        parse(&named_again).unwrap().event_id,
        parse(&named).unwrap().event_id
    );
}

#[test]
fn an_unusable_event_id_is_an_invalid_field_named_after_its_source() {
    let body = fixture("payment.completed");
    let long = "k".repeat(256);
    for value in [long.as_str(), "", "two words"] {
        assert!(
            matches!(
                parse_with(&standard(value), &body),
                Err(ParseError::InvalidField {
                    field: "webhook-id",
                    ..
                })
            ),
            "webhook-id: {value:?}"
        );
        let named = with_event_id(&body, &serde_json::to_string(value).unwrap());
        assert!(
            matches!(
                parse(&named),
                Err(ParseError::InvalidField {
                    field: "event_id",
                    ..
                })
            ),
            "event_id: {value:?}"
        );
    }
    for value in ["42", "{}", "[\"evt_1\"]", "true"] {
        assert!(
            matches!(
                parse(&with_event_id(&body, value)),
                Err(ParseError::InvalidField {
                    field: "event_id",
                    ..
                })
            ),
            "event_id: {value}"
        );
    }
    // Only an unsigned adapter lets a Standard Webhooks call without its id
    // reach the parser.
    let headers = vec![("webhook-signature".to_owned(), "v1,x".to_owned())];
    assert_eq!(
        parse_with(&headers, &body),
        Err(ParseError::MissingField("webhook-id"))
    );
}

#[test]
fn amounts_as_numbers_or_strings_are_read_exactly() {
    for amount in ["150", "150.00", "\"150.00\"", "\"150\"", "150.0", "150.000"] {
        assert_eq!(
            parse_amount(amount, "USD").unwrap().amount,
            money(15000, "USD"),
            "{amount}"
        );
    }
    assert_eq!(
        parse_amount("149.99", "USD").unwrap().amount,
        money(14999, "USD")
    );
    assert_eq!(
        parse_amount("\"149.99\"", "USD").unwrap().amount,
        money(14999, "USD")
    );
    // 0.1 + 0.2 style amounts that floats get wrong.
    assert_eq!(
        parse_amount("0.30", "USD").unwrap().amount,
        money(30, "USD")
    );
    assert_eq!(
        parse_amount("92233720368547758.07", "USD").unwrap().amount,
        money(i64::MAX, "USD")
    );
}

#[test]
fn more_decimals_than_the_currency_has_is_a_money_error() {
    for amount in ["\"150.001\"", "150.001", "149.999"] {
        assert!(
            matches!(
                parse_amount(amount, "USD"),
                Err(ParseError::Money {
                    field: "amount",
                    source: MoneyError::TooPrecise { exponent: 2, .. }
                })
            ),
            "{amount}"
        );
    }
    assert!(matches!(
        parse_amount("1500.5", "JPY"),
        Err(ParseError::Money {
            field: "amount",
            source: MoneyError::TooPrecise { exponent: 0, .. }
        })
    ));
    assert_eq!(
        parse_amount("1.505", "KWD").unwrap().amount,
        money(1505, "KWD")
    );
}

#[test]
fn unreadable_amounts_are_errors_naming_the_amount() {
    for amount in ["1e2", "\"1,50\"", "\"abc\"", "92233720368547758.08"] {
        assert!(
            matches!(
                parse_amount(amount, "USD"),
                Err(ParseError::Money {
                    field: "amount",
                    ..
                })
            ),
            "{amount}"
        );
    }
    for amount in ["true", "[150]", "{\"value\":150}"] {
        assert!(
            matches!(
                parse_amount(amount, "USD"),
                Err(ParseError::InvalidField {
                    field: "amount",
                    ..
                })
            ),
            "{amount}"
        );
    }
    assert!(matches!(
        parse_amount("-150.00", "USD"),
        Err(ParseError::InvalidField {
            field: "amount",
            ..
        })
    ));
}

#[test]
fn amount_and_currency_are_required() {
    let result = parse_changed(|payload| {
        payload.remove("amount");
    });
    assert_eq!(result, Err(ParseError::MissingField("amount")));
    let result = parse_changed(|payload| {
        payload.insert("amount".into(), Value::Null);
    });
    assert_eq!(result, Err(ParseError::MissingField("amount")));
    let result = parse_changed(|payload| {
        payload.remove("currency");
    });
    assert_eq!(result, Err(ParseError::MissingField("currency")));
    let result = parse_changed(|payload| {
        payload.insert("currency".into(), 840.into());
    });
    assert!(matches!(
        result,
        Err(ParseError::InvalidField {
            field: "currency",
            ..
        })
    ));
}

#[test]
fn an_unknown_currency_is_a_money_error_on_the_currency() {
    let result = parse_changed(|payload| {
        payload.insert("currency".into(), "XYZ".into());
    });
    assert_eq!(
        result,
        Err(ParseError::Money {
            field: "currency",
            source: MoneyError::UnknownCurrency("XYZ".into()),
        })
    );
    let result = parse_changed(|payload| {
        payload.insert("currency".into(), "XAU".into());
    });
    assert!(matches!(
        result,
        Err(ParseError::Money {
            field: "currency",
            source: MoneyError::UnsupportedCurrency("XAU"),
        })
    ));
}

#[test]
fn the_currency_decides_the_exponent_in_any_case() {
    assert_eq!(
        parse_amount("1500", "jpy").unwrap().amount,
        money(1500, "JPY")
    );
    assert_eq!(
        parse_amount("\"1.5\"", "kwd").unwrap().amount,
        money(1500, "KWD")
    );
    assert_eq!(
        parse_amount("150", "eur").unwrap().amount,
        money(15000, "EUR")
    );
}

#[test]
fn any_other_status_is_an_invalid_status() {
    for status in [
        "Completed",
        "COMPLETED",
        "success",
        "succeeded",
        "",
        "completed ",
        "Pending",
        "PENDING",
        "processing",
        "cancelled",
        "CANCELED",
        "canceled ",
        "Refunded",
        "REFUNDED",
        "refund",
        "partially_refunded",
    ] {
        let result = parse_changed(|payload| {
            payload.insert("status".into(), status.into());
        });
        assert!(
            matches!(
                result,
                Err(ParseError::InvalidField {
                    field: "status",
                    ..
                })
            ),
            "{status:?} gave {result:?}"
        );
    }
    let result = parse_changed(|payload| {
        payload.insert("status".into(), 1.into());
    });
    assert!(matches!(
        result,
        Err(ParseError::InvalidField {
            field: "status",
            ..
        })
    ));
    let result = parse_changed(|payload| {
        payload.remove("status");
    });
    assert_eq!(result, Err(ParseError::MissingField("status")));
}

#[test]
fn either_reference_alone_is_enough() {
    let result = parse_changed(|payload| {
        payload.remove("transaction_id");
    });
    assert_eq!(
        result.unwrap().references,
        References {
            transaction_id: None,
            external_id: Some("ext_123".into()),
            gateway_reference: None,
        }
    );
    let result = parse_changed(|payload| {
        payload.insert("payment_id".into(), Value::Null);
    });
    assert_eq!(
        result.unwrap().references,
        References {
            transaction_id: Some("TXN-123456".into()),
            external_id: None,
            gateway_reference: None,
        }
    );
}

#[test]
fn at_least_one_non_empty_reference_is_required() {
    let missing = Err(ParseError::MissingField("payment_id or transaction_id"));
    assert_eq!(
        parse_changed(|payload| {
            payload.remove("payment_id");
            payload.remove("transaction_id");
        }),
        missing
    );
    assert_eq!(
        parse_changed(|payload| {
            payload.insert("payment_id".into(), "".into());
            payload.insert("transaction_id".into(), Value::Null);
        }),
        missing
    );
}

#[test]
fn references_must_be_strings() {
    for field in ["payment_id", "transaction_id"] {
        let result = parse_changed(|payload| {
            payload.insert(field.into(), 123.into());
        });
        assert!(
            matches!(result, Err(ParseError::InvalidField { field: got, .. }) if got == field),
            "{field}: {result:?}"
        );
    }
}

#[test]
fn metadata_of_any_shape_and_unknown_fields_are_ignored() {
    let expected = parse(SPEC_EXAMPLE.as_bytes()).unwrap().amount;
    for metadata in [
        json!({"order": {"lines": [1, 2, {"x": null}]}}),
        json!(null),
        json!("a string"),
        json!([1, 2]),
    ] {
        let result = parse_changed(|payload| {
            payload.insert("metadata".into(), metadata.clone());
            payload.insert("brand_new_field".into(), json!({"nested": true}));
        });
        assert_eq!(result.unwrap().amount, expected, "{metadata}");
    }
    let result = parse_changed(|payload| {
        payload.remove("metadata");
    });
    assert_eq!(result.unwrap().kind, EventKind::Succeeded);
}

#[test]
fn malformed_json_is_malformed() {
    for body in [
        &b""[..],
        b"{",
        b"not json",
        b"{\"status\":\"completed\",}",
        b"\xff\xfe{}",
        b"[\"ext_123\", \"TXN-1\", \"completed\", 150, \"USD\"]",
        b"\"completed\"",
        b"null",
        b"150.00",
        br#"{"payment_id":"ext_1","status":"completed","amount":1,"currency":"USD"} trailing"#,
        br#"{"payment_id":"ext_1","status":"completed","status":"failed","amount":1,"currency":"USD"}"#,
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
fn malformed_messages_do_not_quote_the_body() {
    let body = br#"{"payment_id":"ext_1","status":"completed","secret_value_xyz"#;
    let message = parse(body).unwrap_err().to_string();
    assert!(!message.contains("secret_value_xyz"), "{message}");
}

#[test]
fn deeply_nested_json_is_no_stack_overflow() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // Ignored fields are skipped without recursion, so even absurd metadata
    // is simply not read.
    let body = format!(
        r#"{{"payment_id":"ext_1","status":"completed","amount":1,"currency":"USD","metadata":{nested}}}"#
    );
    assert_eq!(parse(body.as_bytes()).unwrap().amount, money(100, "USD"));
    // Read fields go through the parser's recursion limit.
    let body =
        format!(r#"{{"payment_id":{nested},"status":"completed","amount":1,"currency":"USD"}}"#);
    assert!(matches!(
        parse(body.as_bytes()),
        Err(ParseError::InvalidField {
            field: "payment_id",
            ..
        })
    ));
    let body = format!(r#"{{"payment_id":{}"#, r#"{"a":"#.repeat(depth));
    assert!(matches!(
        parse(body.as_bytes()),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        parse(nested.as_bytes()),
        Err(ParseError::Malformed(_))
    ));
}
