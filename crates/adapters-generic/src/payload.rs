//! The generic payload (`{"payment_id","transaction_id","status","amount",
//! "currency","metadata"}`, and optionally `"event_id"`; `"refund_id"` for a
//! refund) read into a [`GatewayEvent`].
//!
//! Only the fields payhook uses are deserialised, each as a borrowed raw
//! JSON value that is then read on its own, so that an error names the exact
//! field and never quotes the body. `metadata` and any other field are not
//! looked at: a verified confirmation must not fail over data payhook does
//! not use.

use chrono::{DateTime, Utc};
use payhook_domain::ports::{Headers, ParseError};
use payhook_domain::{
    AmountText, Currency, EventKind, GatewayEvent, Money, References, Refund, RefundReport,
    RefundStatus, Report,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use payhook_domain::json::{describe, invalid, non_empty, starts_an_object, text};

use crate::event_id;

/// The fields payhook reads.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    payment_id: Option<&'a RawValue>,
    #[serde(borrow)]
    transaction_id: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    currency: Option<&'a RawValue>,
    /// The sender's own id of the event, inside the signed body; read
    /// only by `event_id`, and only when the call is not Standard Webhooks.
    #[serde(borrow)]
    event_id: Option<&'a RawValue>,
    /// The gateway's id of the refund; read only when `status` is
    /// `refunded`.
    #[serde(borrow)]
    refund_id: Option<&'a RawValue>,
}

/// What `status` means. Exact, lower-case names only: a gateway that sends
/// something else is misconfigured, and a 400 naming the field says so
/// sooner than a silently ignored event would.
fn classify(status: &str) -> Option<EventKind> {
    match status {
        "completed" => Some(EventKind::Succeeded),
        "failed" => Some(EventKind::Failed),
        "pending" => Some(EventKind::Pending),
        "canceled" => Some(EventKind::Canceled),
        "refunded" => Some(EventKind::Refund),
        _ => None,
    }
}

/// Reads a generic call. See [`crate::GenericAdapter`]'s `parse` for the
/// errors.
pub(crate) fn parse<H: Headers + ?Sized>(
    headers: &H,
    body: &[u8],
) -> Result<GatewayEvent, ParseError> {
    let payload: Payload<'_> = serde_json::from_slice(body)
        .map_err(|error| ParseError::Malformed(describe(&error, "a payment object")))?;
    if !starts_an_object(body) {
        return Err(ParseError::Malformed("expected a JSON object".to_owned()));
    }

    let status = text(payload.status, "status")?.ok_or(ParseError::MissingField("status"))?;
    let kind = classify(&status).ok_or_else(|| {
        invalid(
            "status",
            "expected completed, failed, pending, canceled or refunded",
        )
    })?;

    let references = References {
        transaction_id: non_empty(text(payload.transaction_id, "transaction_id")?),
        external_id: non_empty(text(payload.payment_id, "payment_id")?),
        gateway_reference: None,
    };
    if references.is_empty() {
        return Err(ParseError::MissingField("payment_id or transaction_id"));
    }

    let code = text(payload.currency, "currency")?.ok_or(ParseError::MissingField("currency"))?;
    let currency = Currency::parse(&code).map_err(|source| ParseError::Money {
        field: "currency",
        source,
    })?;
    let amount = payload
        .amount
        .ok_or(ParseError::MissingField("amount"))
        .and_then(|raw| {
            serde_json::from_str::<AmountText>(raw.get())
                .map_err(|_| invalid("amount", "expected a number or a decimal string"))
        })?
        .to_money(currency)
        .map_err(|source| ParseError::Money {
            field: "amount",
            source,
        })?;
    if amount.minor() < 0 {
        return Err(invalid("amount", "must not be negative"));
    }

    let report = match kind {
        EventKind::Refund => Some(refund_report(payload.refund_id, amount)?),
        _ => None,
    };

    let event_id = event_id::event_id(headers, payload.event_id, body)?;

    Ok(GatewayEvent {
        gateway: crate::NAME.to_owned(),
        event_id,
        event_type: format!("payment.{status}"),
        kind,
        references,
        amount: Some(amount),
        report,
    })
}

/// A `refunded` call: the one refund `refund_id` of `amount`, succeeded.
///
/// The generic gateway reports refunds one by one and only once they are
/// done: there is no running total and no later failure. The ledger counts
/// a refund id once however often it comes, under whatever event id.
fn refund_report(refund_id: Option<&RawValue>, amount: Money) -> Result<Report, ParseError> {
    let refund_id = text(refund_id, "refund_id")?.ok_or(ParseError::MissingField("refund_id"))?;
    if refund_id.is_empty() {
        return Err(invalid("refund_id", "must not be empty"));
    }
    Ok(Report::Refund(RefundReport {
        refunds: vec![Refund {
            refund_id: refund_id.into_owned(),
            amount,
            status: RefundStatus::Succeeded,
        }],
        running_total: None,
        reported_at: REFUNDS_REPORTED_AT,
    }))
}

/// When a generic refund is reported: always the Unix epoch.
///
/// The time barely matters here. The ledger uses it to order the reports of
/// one refund id (the latest status wins) and running totals; a generic
/// refund is only ever reported as succeeded and never as a total, so the
/// order of its reports changes nothing. The payload carries no time, and
/// the Standard Webhooks `webhook-timestamp` dates the delivery attempt, not
/// the refund: every retry is signed again with a new one, so reading it
/// would make two deliveries of one event parse differently, which the
/// adapter conformance suite forbids. The clock is not read either: the
/// adapter is a pure function of the request.
const REFUNDS_REPORTED_AT: DateTime<Utc> = DateTime::UNIX_EPOCH;

#[cfg(test)]
mod tests {
    use payhook_domain::{Money, MoneyError};

    use super::*;

    const NO_HEADERS: [(&str, &str); 0] = [];

    fn parse_body(body: &str) -> Result<GatewayEvent, ParseError> {
        parse(&NO_HEADERS, body.as_bytes())
    }

    fn with_amount(amount: &str, currency: &str) -> Result<GatewayEvent, ParseError> {
        parse_body(&format!(
            r#"{{"payment_id":"ext_1","status":"completed","amount":{amount},"currency":"{currency}"}}"#
        ))
    }

    #[test]
    fn amounts_are_read_exactly_in_the_currency() {
        let money = |minor, code| Money::from_minor(minor, Currency::parse(code).unwrap());
        let cases = [
            ("150", "USD", money(15000, "USD")),
            ("150.00", "USD", money(15000, "USD")),
            ("\"150.00\"", "USD", money(15000, "USD")),
            ("149.99", "USD", money(14999, "USD")),
            ("0.1", "USD", money(10, "USD")),
            ("1500", "JPY", money(1500, "JPY")),
            ("\"1.5\"", "KWD", money(1500, "KWD")),
            ("0", "usd", money(0, "USD")),
        ];
        for (amount, currency, expected) in cases {
            let event = with_amount(amount, currency).unwrap();
            assert_eq!(event.amount, Some(expected), "{amount} {currency}");
        }
    }

    #[test]
    fn inexact_or_unreadable_amounts_are_money_errors() {
        for amount in ["150.001", "\"150.001\"", "1.5e2", "\"\"", "\" 150\"", "1E2"] {
            assert!(
                matches!(
                    with_amount(amount, "USD"),
                    Err(ParseError::Money {
                        field: "amount",
                        ..
                    })
                ),
                "{amount}"
            );
        }
        assert!(matches!(
            with_amount("1500.5", "JPY"),
            Err(ParseError::Money {
                field: "amount",
                source: MoneyError::TooPrecise { exponent: 0, .. }
            })
        ));
    }

    #[test]
    fn amounts_of_other_json_types_are_invalid() {
        for amount in ["true", "[]", "{}", "\"1\\u0030\""] {
            assert!(
                matches!(
                    with_amount(amount, "USD"),
                    Err(ParseError::InvalidField {
                        field: "amount",
                        ..
                    })
                ),
                "{amount}"
            );
        }
        assert_eq!(
            with_amount("null", "USD"),
            Err(ParseError::MissingField("amount"))
        );
    }

    #[test]
    fn negative_amounts_are_refused() {
        for amount in ["-1", "\"-150.00\""] {
            assert_eq!(
                with_amount(amount, "USD"),
                Err(invalid("amount", "must not be negative")),
                "{amount}"
            );
        }
    }

    #[test]
    fn the_status_reason_does_not_quote_the_value() {
        let body = r#"{"payment_id":"ext_1","status":"<script>","amount":1,"currency":"USD"}"#;
        let message = parse_body(body).unwrap_err().to_string();
        assert!(!message.contains("script"), "{message}");
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let body = r#"{"payment_id":"ext_\u0031","transaction_id":"TXN-\"A\"","status":"complet\u0065d","amount":1,"currency":"USD"}"#;
        let event = parse_body(body).unwrap();
        assert_eq!(event.references.external_id.as_deref(), Some("ext_1"));
        assert_eq!(
            event.references.transaction_id.as_deref(),
            Some("TXN-\"A\"")
        );
        assert_eq!(event.event_type, "payment.completed");
    }

    #[test]
    fn malformed_messages_do_not_quote_the_body() {
        for body in [
            r#"{"payment_id":"secret_value_xyz"#,
            r#"["secret_value_xyz"]"#,
            r#"{"secret_value_xyz": 1,}"#,
        ] {
            let message = parse_body(body).unwrap_err().to_string();
            assert!(!message.contains("secret_value_xyz"), "{message}");
        }
    }
}
