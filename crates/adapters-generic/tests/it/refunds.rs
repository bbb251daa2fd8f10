//! `status: "refunded"` through `GatewayAdapter::parse`: one succeeded
//! refund of the call's amount, named by `refund_id`, always dated at the
//! Unix epoch.

use chrono::DateTime;
use payhook_domain::ports::{GatewayAdapter, ParseError};
use payhook_domain::{
    Currency, EventKind, GatewayEvent, Money, References, Refund, RefundReport, RefundStatus,
    Report,
};
use serde_json::{json, Value};

use crate::support::{adapter, fixture, request, with, TestHeaders, ID, RAW_SECRET};

fn parse_with(headers: &TestHeaders, body: &[u8]) -> Result<GatewayEvent, ParseError> {
    adapter(&[RAW_SECRET]).parse(&request(headers, body))
}

/// The refund fixture with `change` applied, parsed with no header.
fn parse_changed(
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Result<GatewayEvent, ParseError> {
    let mut payload: Value = serde_json::from_slice(&fixture("payment.refunded")).unwrap();
    change(payload.as_object_mut().unwrap());
    parse_with(&TestHeaders::new(), &serde_json::to_vec(&payload).unwrap())
}

/// The headers of a Standard Webhooks call (parsing does not check the
/// signature, only that the call is of that scheme).
fn standard(timestamp: &str) -> TestHeaders {
    vec![
        ("webhook-id".to_owned(), ID.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_owned()),
        (
            "webhook-signature".to_owned(),
            "v1,not-checked-by-parse".to_owned(),
        ),
    ]
}

fn report(event: &GatewayEvent) -> &RefundReport {
    match &event.report {
        Some(Report::Refund(report)) => report,
        other => panic!("not a refund report: {other:?}"),
    }
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::parse("USD").unwrap())
}

#[test]
fn a_refund_under_standard_webhooks() {
    let headers = standard("1700000000");
    assert_eq!(
        parse_with(&headers, &fixture("payment.refunded")).unwrap(),
        GatewayEvent {
            gateway: "generic".into(),
            event_id: ID.into(),
            event_type: "payment.refunded".into(),
            kind: EventKind::Refund,
            references: References {
                transaction_id: Some("TXN-123456".into()),
                external_id: Some("ext_123".into()),
                gateway_reference: None,
            },
            amount: Some(usd(5000)),
            report: Some(Report::Refund(RefundReport {
                refunds: vec![Refund {
                    refund_id: "rf_5Kq2Zt81".into(),
                    amount: usd(5000),
                    status: RefundStatus::Succeeded,
                }],
                running_total: None,
                reported_at: DateTime::UNIX_EPOCH,
            })),
        }
    );
}

#[test]
fn no_header_dates_a_refund() {
    // `webhook-timestamp` dates a delivery attempt: every retry is signed
    // again with a new one, and a retry must parse into the same event.
    let body = fixture("payment.refunded");
    let first = parse_with(&standard("1700000000"), &body).unwrap();
    for headers in [
        standard("1700259200"),
        TestHeaders::new(),
        vec![("X-Webhook-Signature".to_owned(), "sha256=00".to_owned())],
        with(TestHeaders::new(), "webhook-timestamp", "1700000000"),
    ] {
        let event = parse_with(&headers, &body).unwrap();
        assert_eq!(event.report, first.report, "{headers:?}");
        assert_eq!(report(&event).reported_at, DateTime::UNIX_EPOCH);
    }
}

#[test]
fn a_refund_needs_its_refund_id() {
    let result = parse_changed(|payload| {
        payload.remove("refund_id");
    });
    assert_eq!(result, Err(ParseError::MissingField("refund_id")));
    assert_eq!(
        result.unwrap_err().to_string(),
        "missing field refund_id",
        "the message names what is missing"
    );
    let result = parse_changed(|payload| {
        payload.insert("refund_id".into(), Value::Null);
    });
    assert_eq!(result, Err(ParseError::MissingField("refund_id")));
    for refused in [json!(""), json!(42), json!(["rf_1"]), json!({"id": "rf_1"})] {
        let result = parse_changed(|payload| {
            payload.insert("refund_id".into(), refused.clone());
        });
        assert!(
            matches!(
                result,
                Err(ParseError::InvalidField {
                    field: "refund_id",
                    ..
                })
            ),
            "{refused} gave {result:?}"
        );
    }
}

#[test]
fn a_refund_needs_what_a_payment_needs() {
    let result = parse_changed(|payload| {
        payload.remove("amount");
    });
    assert_eq!(result, Err(ParseError::MissingField("amount")));
    let result = parse_changed(|payload| {
        payload.remove("currency");
    });
    assert_eq!(result, Err(ParseError::MissingField("currency")));
    let result = parse_changed(|payload| {
        payload.remove("payment_id");
        payload.remove("transaction_id");
    });
    assert_eq!(
        result,
        Err(ParseError::MissingField("payment_id or transaction_id"))
    );
    let result = parse_changed(|payload| {
        payload.insert("amount".into(), "-5.00".into());
    });
    assert!(matches!(
        result,
        Err(ParseError::InvalidField {
            field: "amount",
            ..
        })
    ));
}

#[test]
fn the_amount_is_the_refund_read_exactly_in_its_currency() {
    for (amount, currency, minor) in [
        (json!(50), "USD", 5000),
        (json!("0.01"), "USD", 1),
        (json!(1500), "JPY", 1500),
        (json!("1.234"), "KWD", 1234),
    ] {
        let event = parse_changed(|payload| {
            payload.insert("amount".into(), amount.clone());
            payload.insert("currency".into(), currency.into());
        })
        .unwrap();
        let money = Money::from_minor(minor, Currency::parse(currency).unwrap());
        assert_eq!(event.amount, Some(money), "{amount} {currency}");
        assert_eq!(report(&event).refunds[0].amount, money);
    }
}

#[test]
fn two_reports_of_one_refund_name_the_same_refund_under_their_own_event_ids() {
    // A sender that re-sends a refund as a new message: two events, one
    // refund id, which the ledger counts once.
    let body = fixture("payment.refunded");
    let first = parse_with(&standard("1700000000"), &body).unwrap();
    let mut headers = standard("1700000600");
    headers[0].1 = "msg_second_delivery".to_owned();
    let second = parse_with(&headers, &body).unwrap();
    assert_ne!(first.event_id, second.event_id);
    assert_eq!(report(&first).refunds, report(&second).refunds);
}

#[test]
fn refund_id_is_not_read_for_other_statuses() {
    for status in ["completed", "failed", "pending", "canceled"] {
        let event = parse_changed(|payload| {
            payload.insert("status".into(), status.into());
            payload.insert("refund_id".into(), json!(["not read"]));
        })
        .unwrap();
        assert_eq!(event.report, None, "{status}");
        assert_eq!(event.event_type, format!("payment.{status}"));
    }
}
