//! PayPal's webhook event envelope
//! (`{"id":"WH-...","event_type":"...","resource":{...}}`) read into a
//! [`GatewayEvent`].
//!
//! The handled types carry one of four resources:
//!
//! - `PAYMENT.CAPTURE.*` carry a v2 capture: its `id` is the capture id,
//!   `custom_id` (or else `invoice_id`) carries payhook's transaction id when
//!   the shop passed it to PayPal, `supplementary_data.related_ids.order_id`
//!   is the PayPal order id the shop recorded as the external id, and
//!   `amount` is `{"currency_code", "value"}` with the value as a decimal
//!   string. The amount is required: PayPal sends it on every capture.
//! - `CHECKOUT.ORDER.APPROVED` carries a v2 checkout order: its `id` is the
//!   PayPal order id (the external id), and its first purchase unit's
//!   `custom_id` (or else `invoice_id`) the transaction id. An approved
//!   order has no capture yet, so there is no gateway reference. The amount
//!   is the first purchase unit's when it has one; the event is a pending
//!   one, which moves no money, so it is optional.
//!
//! Only those fields are deserialised, each as a borrowed raw JSON value
//! that is then read on its own, so that an error can name the exact field
//! and never quotes the body. `resource` is not looked into at all for event
//! types payhook does not handle: PayPal sends many resource shapes, and an
//! ignored event must not fail because of one of them.

use payhook_domain::ports::ParseError;
use payhook_domain::{Currency, EventKind, GatewayEvent, Money, References, Report};
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
    /// When PayPal created the event; read only for refunds, whose reports
    /// are ordered by it.
    #[serde(borrow)]
    create_time: Option<&'a RawValue>,
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

/// The fields payhook reads from a v2 checkout order.
#[derive(Deserialize)]
struct CheckoutOrder<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    purchase_units: Option<&'a RawValue>,
}

/// The fields payhook reads from a purchase unit of a checkout order.
#[derive(Deserialize)]
struct PurchaseUnit<'a> {
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    custom_id: Option<&'a RawValue>,
    #[serde(borrow)]
    invoice_id: Option<&'a RawValue>,
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

/// The resource a handled event type carries, and how it is read.
#[derive(Clone, Copy)]
enum Resource {
    /// A v2 capture (`resource_type` `capture`).
    Capture,
    /// A v2 checkout order (`resource_type` `checkout-order`).
    CheckoutOrder,
    /// A v2 refund (`resource_type` `refund`), read as a refund report.
    Refund,
    /// A v2 refund that PayPal made by reversing the capture, read as a
    /// lost dispute.
    Reversal,
    /// A v1 dispute (`resource_type` `dispute`); `resolved` for
    /// `CUSTOMER.DISPUTE.RESOLVED`, whose outcome decides the status.
    Dispute {
        /// The event says the dispute is over.
        resolved: bool,
    },
}

/// The handled event types; `None` for all others. Names match exactly, as
/// PayPal sends them.
fn classify(event_type: &str) -> Option<(EventKind, Resource)> {
    Some(match event_type {
        "PAYMENT.CAPTURE.COMPLETED" => (EventKind::Succeeded, Resource::Capture),
        // PayPal documents both: DENIED when it refuses the capture (risk,
        // compliance), DECLINED when the funding source does. Either way no
        // money moved.
        "PAYMENT.CAPTURE.DENIED" | "PAYMENT.CAPTURE.DECLINED" => {
            (EventKind::Failed, Resource::Capture)
        }
        "PAYMENT.CAPTURE.PENDING" => (EventKind::Pending, Resource::Capture),
        "CHECKOUT.ORDER.APPROVED" => (EventKind::Pending, Resource::CheckoutOrder),
        "PAYMENT.CAPTURE.REFUNDED" => (EventKind::Refund, Resource::Refund),
        // PayPal took the money back itself (a chargeback it settled, a
        // bank return): for the shop that is a dispute already lost.
        "PAYMENT.CAPTURE.REVERSED" => (EventKind::Dispute, Resource::Reversal),
        "CUSTOMER.DISPUTE.CREATED" | "CUSTOMER.DISPUTE.UPDATED" => {
            (EventKind::Dispute, Resource::Dispute { resolved: false })
        }
        "CUSTOMER.DISPUTE.RESOLVED" => (EventKind::Dispute, Resource::Dispute { resolved: true }),
        _ => return None,
    })
}

/// The names of an amount's fields in error messages, by where the amount
/// sits in the event.
pub(crate) struct AmountFields {
    pub(crate) amount: &'static str,
    pub(crate) currency_code: &'static str,
    pub(crate) value: &'static str,
}

const CAPTURE_AMOUNT: AmountFields = AmountFields {
    amount: "resource.amount",
    currency_code: "resource.amount.currency_code",
    value: "resource.amount.value",
};

const PURCHASE_UNIT_AMOUNT: AmountFields = AmountFields {
    amount: "resource.purchase_units[0].amount",
    currency_code: "resource.purchase_units[0].amount.currency_code",
    value: "resource.purchase_units[0].amount.value",
};

/// What a resource tells about the payment.
pub(crate) struct Read {
    pub(crate) references: References,
    pub(crate) amount: Option<Money>,
    /// The refunds or the dispute, for those resources.
    pub(crate) report: Option<Report>,
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

    let Some((kind, resource)) = classify(&event_type) else {
        return Ok(GatewayEvent {
            gateway: crate::NAME.to_owned(),
            event_id: event_id.into_owned(),
            event_type: event_type.into_owned(),
            kind: EventKind::NotHandled,
            references: References::default(),
            amount: None,
            report: None,
        });
    };

    let raw = present(envelope.resource).ok_or(ParseError::MissingField("resource"))?;
    let read = match resource {
        Resource::Capture => read_capture(raw)?,
        Resource::CheckoutOrder => read_checkout_order(raw)?,
        Resource::Refund => crate::refund::read_refund(raw, envelope.create_time)?,
        Resource::Reversal => crate::refund::read_reversal(raw)?,
        Resource::Dispute { resolved } => crate::dispute::read_dispute(raw, resolved)?,
    };

    Ok(GatewayEvent {
        gateway: crate::NAME.to_owned(),
        event_id: event_id.into_owned(),
        event_type: event_type.into_owned(),
        kind,
        references: read.references,
        amount: read.amount,
        report: read.report,
    })
}

/// A capture: references in lookup order, and its amount (required).
fn read_capture(raw: &RawValue) -> Result<Read, ParseError> {
    let capture: Capture<'_> = nested(raw, "resource")?;

    let capture_id = non_empty(text(capture.id, "resource.id")?);
    // `custom_id` is the field meant for the merchant's own reference;
    // `invoice_id` is the fallback for shops that put it there instead.
    let transaction_id = non_empty(text(capture.custom_id, "resource.custom_id")?)
        .or(non_empty(text(capture.invoice_id, "resource.invoice_id")?));
    let order_id = read_order_id(capture.supplementary_data)?;
    let amount = read_amount(
        present(capture.amount).ok_or(ParseError::MissingField(CAPTURE_AMOUNT.amount))?,
        &CAPTURE_AMOUNT,
    )?;

    Ok(Read {
        references: References {
            transaction_id,
            external_id: order_id,
            gateway_reference: capture_id,
        },
        amount: Some(amount),
        report: None,
    })
}

/// A checkout order: the transaction id of its first purchase unit, its own
/// id as the external id, and the first purchase unit's amount if it has one.
fn read_checkout_order(raw: &RawValue) -> Result<Read, ParseError> {
    let order: CheckoutOrder<'_> = nested(raw, "resource")?;

    let order_id = non_empty(text(order.id, "resource.id")?);
    // payhook makes one payment per PayPal order, with one purchase unit;
    // the first unit is the one the shop filled in.
    let (transaction_id, amount) = match first_purchase_unit(order.purchase_units)? {
        Some(unit) => {
            // The same fallback as on a capture, whose `custom_id` and
            // `invoice_id` PayPal copies from this purchase unit, so that
            // both events name the same payment.
            let transaction_id = non_empty(text(
                unit.custom_id,
                "resource.purchase_units[0].custom_id",
            )?)
            .or(non_empty(text(
                unit.invoice_id,
                "resource.purchase_units[0].invoice_id",
            )?));
            let amount = present(unit.amount)
                .map(|raw| read_amount(raw, &PURCHASE_UNIT_AMOUNT))
                .transpose()?;
            (transaction_id, amount)
        }
        None => (None, None),
    };

    Ok(Read {
        references: References {
            transaction_id,
            external_id: order_id,
            gateway_reference: None,
        },
        amount,
        report: None,
    })
}

/// `resource.purchase_units[0]`, if the array is present and not empty.
fn first_purchase_unit(raw: Option<&RawValue>) -> Result<Option<PurchaseUnit<'_>>, ParseError> {
    let Some(raw) = present(raw) else {
        return Ok(None);
    };
    let field = "resource.purchase_units";
    if raw.get().trim_start().as_bytes().first() != Some(&b'[') {
        return Err(invalid(field, "expected an array"));
    }
    // Every element stays raw (unparsed) text; only the first is read.
    let units: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|_| invalid(field, "expected an array"))?;
    match units.first() {
        Some(unit) => nested(unit, "resource.purchase_units[0]").map(Some),
        None => Ok(None),
    }
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

/// An amount object (`raw`, present and not `null`): a currency code and a
/// decimal string, read exactly in that currency's minor units. Errors name
/// the fields as `fields` says.
pub(crate) fn read_amount(raw: &RawValue, fields: &AmountFields) -> Result<Money, ParseError> {
    let amount: Amount<'_> = nested(raw, fields.amount)?;

    let code = text(amount.currency_code, fields.currency_code)?
        .ok_or(ParseError::MissingField(fields.currency_code))?;
    let currency = Currency::parse(&code).map_err(|source| ParseError::Money {
        field: fields.currency_code,
        source,
    })?;

    // PayPal always sends the value as a string; a JSON number is not what
    // PayPal sent, so it is refused rather than read through a float.
    let value = text(amount.value, fields.value)?.ok_or(ParseError::MissingField(fields.value))?;
    if value.starts_with('-') {
        return Err(invalid(fields.value, "must not be negative"));
    }
    Money::parse(&value, currency).map_err(|source| ParseError::Money {
        field: fields.value,
        source,
    })
}

/// The raw value unless it is absent or `null`.
pub(crate) fn present(raw: Option<&RawValue>) -> Option<&RawValue> {
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
        // One element per envelope field, in order: serde would fill the
        // envelope from it.
        assert_eq!(
            parse(br#"["WH-1", "PAYMENT.CAPTURE.COMPLETED", null, null]"#),
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
