//! PayPal's webhook event envelope
//! (`{"id":"WH-...","event_type":"...","resource":{...}}`) read into a
//! [`GatewayEvent`].
//!
//! For the two handled types the resource is a v2 capture: its `id` is the
//! capture id, `custom_id` (or else `invoice_id`) carries payhook's
//! transaction id when the shop passed it to PayPal,
//! `supplementary_data.related_ids.order_id` is the PayPal order id the shop
//! recorded as the external id, and `amount` is `{"currency_code", "value"}`
//! with the value as a decimal string.
//!
//! Only those fields are deserialised, each as a borrowed raw JSON value
//! that is then read on its own, so that an error can name the exact field
//! and never quotes the body. `resource` is not looked into at all for event
//! types payhook does not handle: PayPal sends many resource shapes, and an
//! ignored event must not fail because of one of them.

use payhook_domain::ports::ParseError;
use payhook_domain::{Currency, EventKind, GatewayEvent, Money, References};
use serde::Deserialize;
use serde_json::value::RawValue;

use payhook_domain::json::{describe, invalid, nested, non_empty, starts_an_object, text};

/// The top level of every PayPal webhook event.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
}

/// The fields payhook reads from a capture.
#[derive(Deserialize)]
struct Capture<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    custom_id: Option<&'a RawValue>,
    #[serde(borrow)]
    invoice_id: Option<&'a RawValue>,
    #[serde(borrow)]
    supplementary_data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Amount<'a> {
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    #[serde(borrow)]
    currency_code: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SupplementaryData<'a> {
    #[serde(borrow)]
    related_ids: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RelatedIds<'a> {
    #[serde(borrow)]
    order_id: Option<&'a RawValue>,
}

/// The handled event types; `None` for all others. Names match exactly, as
/// PayPal sends them.
fn classify(event_type: &str) -> Option<EventKind> {
    match event_type {
        "PAYMENT.CAPTURE.COMPLETED" => Some(EventKind::Succeeded),
        "PAYMENT.CAPTURE.DENIED" => Some(EventKind::Failed),
        _ => None,
    }
}

/// Reads a PayPal event body. See the module documentation for what is read.
pub(crate) fn parse(body: &[u8]) -> Result<GatewayEvent, ParseError> {
    let envelope: Envelope<'_> = serde_json::from_slice(body)
        .map_err(|error| ParseError::Malformed(describe(&error, "an event object")))?;
    if !starts_an_object(body) {
        return Err(ParseError::Malformed("expected a JSON object".to_owned()));
    }
    let event_id = text(envelope.id, "id")?.ok_or(ParseError::MissingField("id"))?;
    if event_id.is_empty() {
        return Err(invalid("id", "must not be empty"));
    }
    let event_type =
        text(envelope.event_type, "event_type")?.ok_or(ParseError::MissingField("event_type"))?;
    if event_type.is_empty() {
        return Err(invalid("event_type", "must not be empty"));
    }

    let Some(kind) = classify(&event_type) else {
        return Ok(GatewayEvent {
            gateway: crate::NAME.to_owned(),
            event_id: event_id.into_owned(),
            event_type: event_type.into_owned(),
            kind: EventKind::NotHandled,
            references: References::default(),
            amount: None,
        });
    };

    let capture: Capture<'_> = match envelope.resource {
        Some(raw) if raw.get() != "null" => nested(raw, "resource")?,
        _ => return Err(ParseError::MissingField("resource")),
    };

    let capture_id = non_empty(text(capture.id, "resource.id")?);
    // `custom_id` is the field meant for the merchant's own reference;
    // `invoice_id` is the fallback for shops that put it there instead.
    let transaction_id = non_empty(text(capture.custom_id, "resource.custom_id")?)
        .or(non_empty(text(capture.invoice_id, "resource.invoice_id")?));
    let order_id = read_order_id(capture.supplementary_data)?;
    let amount = read_amount(capture.amount)?;

    Ok(GatewayEvent {
        gateway: crate::NAME.to_owned(),
        event_id: event_id.into_owned(),
        event_type: event_type.into_owned(),
        kind,
        references: References {
            transaction_id,
            external_id: order_id,
            gateway_reference: capture_id,
        },
        amount: Some(amount),
    })
}

/// `resource.supplementary_data.related_ids.order_id`, if present at every
/// level.
fn read_order_id(supplementary_data: Option<&RawValue>) -> Result<Option<String>, ParseError> {
    let Some(raw) = present(supplementary_data) else {
        return Ok(None);
    };
    let data: SupplementaryData<'_> = nested(raw, "resource.supplementary_data")?;
    let Some(raw) = present(data.related_ids) else {
        return Ok(None);
    };
    let related: RelatedIds<'_> = nested(raw, "resource.supplementary_data.related_ids")?;
    Ok(non_empty(text(
        related.order_id,
        "resource.supplementary_data.related_ids.order_id",
    )?))
}

/// `resource.amount`: a currency code and a decimal string, read exactly
/// in that currency's minor units.
fn read_amount(amount: Option<&RawValue>) -> Result<Money, ParseError> {
    let raw = present(amount).ok_or(ParseError::MissingField("resource.amount"))?;
    let amount: Amount<'_> = nested(raw, "resource.amount")?;

    let code = text(amount.currency_code, "resource.amount.currency_code")?
        .ok_or(ParseError::MissingField("resource.amount.currency_code"))?;
    let currency = Currency::parse(&code).map_err(|source| ParseError::Money {
        field: "resource.amount.currency_code",
        source,
    })?;

    // PayPal always sends the value as a string; a JSON number is not what
    // PayPal sent, so it is refused rather than read through a float.
    let value = text(amount.value, "resource.amount.value")?
        .ok_or(ParseError::MissingField("resource.amount.value"))?;
    if value.starts_with('-') {
        return Err(invalid("resource.amount.value", "must not be negative"));
    }
    Money::parse(&value, currency).map_err(|source| ParseError::Money {
        field: "resource.amount.value",
        source,
    })
}

/// The raw value unless it is absent or `null`.
fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|raw| raw.get() != "null")
}

#[cfg(test)]
mod tests {
    use super::*;
    use payhook_domain::MoneyError;

    fn parse_resource(resource: &str) -> Result<GatewayEvent, ParseError> {
        parse(
            format!(
                r#"{{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{resource}}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn reads_a_minimal_capture() {
        let event = parse_resource(
            r#"{"id":"CAP1","amount":{"currency_code":"JPY","value":"1500"},"custom_id":"TXN-1",
               "supplementary_data":{"related_ids":{"order_id":"ORD1"}}}"#,
        )
        .unwrap();
        assert_eq!(event.kind, EventKind::Succeeded);
        assert_eq!(
            event.references,
            References {
                transaction_id: Some("TXN-1".into()),
                external_id: Some("ORD1".into()),
                gateway_reference: Some("CAP1".into()),
            }
        );
        assert_eq!(
            event.amount,
            Some(Money::from_minor(1500, Currency::parse("JPY").unwrap()))
        );
    }

    #[test]
    fn custom_id_wins_over_invoice_id_unless_empty() {
        let with = |ids: &str| {
            parse_resource(&format!(
                r#"{{"amount":{{"currency_code":"USD","value":"1.00"}}{ids}}}"#
            ))
            .unwrap()
            .references
            .transaction_id
        };
        assert_eq!(
            with(r#","custom_id":"TXN-C","invoice_id":"TXN-I""#).as_deref(),
            Some("TXN-C")
        );
        assert_eq!(
            with(r#","custom_id":"","invoice_id":"TXN-I""#).as_deref(),
            Some("TXN-I")
        );
        assert_eq!(
            with(r#","custom_id":null,"invoice_id":"TXN-I""#).as_deref(),
            Some("TXN-I")
        );
        assert_eq!(with(r#","invoice_id":"""#), None);
        assert_eq!(with(""), None);
    }

    #[test]
    fn missing_supplementary_levels_give_no_order_id() {
        for extra in [
            "",
            r#","supplementary_data":null"#,
            r#","supplementary_data":{}"#,
            r#","supplementary_data":{"related_ids":null}"#,
            r#","supplementary_data":{"related_ids":{}}"#,
            r#","supplementary_data":{"related_ids":{"order_id":""}}"#,
        ] {
            let event = parse_resource(&format!(
                r#"{{"id":"CAP1","amount":{{"currency_code":"USD","value":"1.00"}}{extra}}}"#
            ))
            .unwrap();
            assert_eq!(event.references.external_id, None, "{extra}");
        }
    }

    #[test]
    fn amounts_are_decimal_strings_read_exactly() {
        let amount = |value: &str, code: &str| {
            parse_resource(&format!(
                r#"{{"amount":{{"currency_code":"{code}","value":{value}}}}}"#
            ))
            .map(|event| event.amount.unwrap().minor())
        };
        assert_eq!(amount(r#""150.00""#, "USD"), Ok(15000));
        assert_eq!(amount(r#""0.10""#, "USD"), Ok(10));
        assert_eq!(amount(r#""1.234""#, "KWD"), Ok(1234));
        assert!(matches!(
            amount(r#""150.001""#, "USD"),
            Err(ParseError::Money {
                field: "resource.amount.value",
                source: MoneyError::TooPrecise { .. }
            })
        ));
        assert!(matches!(
            amount(r#""1e2""#, "USD"),
            Err(ParseError::Money {
                field: "resource.amount.value",
                source: MoneyError::InvalidAmount(_)
            })
        ));
        for refused in ["150.00", "150", r#""-1.00""#, "true", "{}"] {
            assert!(
                matches!(
                    amount(refused, "USD"),
                    Err(ParseError::InvalidField {
                        field: "resource.amount.value",
                        ..
                    })
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn wrongly_typed_fields_are_named() {
        let amount = r#""amount":{"currency_code":"USD","value":"1.00"}"#;
        let cases = [
            (format!(r#"{{"id":5,{amount}}}"#), "resource.id"),
            (
                format!(r#"{{"custom_id":[],{amount}}}"#),
                "resource.custom_id",
            ),
            (
                format!(r#"{{"invoice_id":1,{amount}}}"#),
                "resource.invoice_id",
            ),
            (
                format!(r#"{{"supplementary_data":"x",{amount}}}"#),
                "resource.supplementary_data",
            ),
            (
                format!(r#"{{"supplementary_data":{{"related_ids":[]}},{amount}}}"#),
                "resource.supplementary_data.related_ids",
            ),
            (
                format!(r#"{{"supplementary_data":{{"related_ids":{{"order_id":7}}}},{amount}}}"#),
                "resource.supplementary_data.related_ids.order_id",
            ),
            (r#"{"amount":"1.00"}"#.to_owned(), "resource.amount"),
            (
                r#"{"amount":{"currency_code":840,"value":"1.00"}}"#.to_owned(),
                "resource.amount.currency_code",
            ),
            (
                r#"{"amount":{"currency_code":"USD","currency_code":"EUR","value":"1.00"}}"#
                    .to_owned(),
                "resource.amount",
            ),
            (r#""CAP1""#.to_owned(), "resource"),
            (r#"["CAP1"]"#.to_owned(), "resource"),
            (
                format!(r#"{{"id":"CAP1","id":"CAP2",{amount}}}"#),
                "resource",
            ),
        ];
        for (resource, field) in cases {
            match parse_resource(&resource) {
                Err(ParseError::InvalidField { field: got, .. }) => {
                    assert_eq!(got, field, "{resource}")
                }
                other => panic!("{resource}: {other:?}"),
            }
        }
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let event = parse_resource(
            r#"{"id":"CAP\u0031","custom_id":"TXN-\"A\"","amount":{"currency_code":"USD","value":"1.00"}}"#,
        )
        .unwrap();
        assert_eq!(event.references.gateway_reference.as_deref(), Some("CAP1"));
        assert_eq!(
            event.references.transaction_id.as_deref(),
            Some("TXN-\"A\"")
        );
    }

    #[test]
    fn arrays_do_not_stand_in_for_objects() {
        assert_eq!(
            parse(br#"["WH-1", "PAYMENT.CAPTURE.COMPLETED", null]"#),
            Err(ParseError::Malformed("expected a JSON object".into()))
        );
    }

    #[test]
    fn malformed_messages_do_not_quote_the_body() {
        let body = br#"{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"secret_value_xyz"#;
        let message = parse(body).unwrap_err().to_string();
        assert!(!message.contains("secret_value_xyz"), "{message}");
        let body = br#"["secret_value_xyz"]"#;
        let message = parse(body).unwrap_err().to_string();
        assert!(!message.contains("secret_value_xyz"), "{message}");
        let body = br#"{"id":"WH-1","secret_value_xyz"}"#;
        let message = parse(body).unwrap_err().to_string();
        assert!(!message.contains("secret_value_xyz"), "{message}");
    }
}
