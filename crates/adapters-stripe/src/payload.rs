//! Stripe's event envelope (`{"id":"evt_...","type":"...","data":{"object":{...}}}`)
//! read into a [`GatewayEvent`].
//!
//! Only the few fields payhook uses are deserialised, each as a borrowed raw
//! JSON value that is then read on its own, so that an error can name the
//! exact field and never quotes the body. `data` is not looked into at all
//! for event types payhook does not handle: Stripe sends dozens of object
//! shapes, and an ignored event must not fail because of one of them.

use payhook_domain::ports::ParseError;
use payhook_domain::{Currency, EventKind, GatewayEvent, Money, MoneyError, References};
use serde::Deserialize;
use serde_json::value::RawValue;

use payhook_domain::json::{describe, invalid, nested, non_empty, starts_an_object, text};

/// The top level of every Stripe event.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    object: Option<&'a RawValue>,
}

/// The fields payhook reads from a PaymentIntent or a Charge.
#[derive(Deserialize)]
struct StripeObject<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    amount_received: Option<&'a RawValue>,
    #[serde(borrow)]
    currency: Option<&'a RawValue>,
    #[serde(borrow)]
    payment_intent: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    captured: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    transaction_id: Option<&'a RawValue>,
}

/// Which kind of Stripe object a handled event carries.
#[derive(Clone, Copy)]
enum ObjectKind {
    PaymentIntent,
    Charge,
}

/// The handled event types; `None` for all others.
fn classify(event_type: &str) -> Option<(EventKind, ObjectKind)> {
    Some(match event_type {
        "payment_intent.succeeded" => (EventKind::Succeeded, ObjectKind::PaymentIntent),
        "payment_intent.payment_failed" => (EventKind::Failed, ObjectKind::PaymentIntent),
        "charge.succeeded" => (EventKind::Succeeded, ObjectKind::Charge),
        "charge.failed" => (EventKind::Failed, ObjectKind::Charge),
        _ => return None,
    })
}

/// Reads a Stripe event body. See the module documentation for what is read.
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
    let event_type = text(envelope.event_type, "type")?.ok_or(ParseError::MissingField("type"))?;
    if event_type.is_empty() {
        return Err(invalid("type", "must not be empty"));
    }

    let Some((kind, object_kind)) = classify(&event_type) else {
        return Ok(GatewayEvent {
            gateway: crate::NAME.to_owned(),
            event_id: event_id.into_owned(),
            event_type: event_type.into_owned(),
            kind: EventKind::NotHandled,
            references: References::default(),
            amount: None,
        });
    };

    let data: Data<'_> = match envelope.data {
        Some(raw) => nested(raw, "data")?,
        None => return Err(ParseError::MissingField("data.object")),
    };
    let object: StripeObject<'_> = match data.object {
        Some(raw) => nested(raw, "data.object")?,
        None => return Err(ParseError::MissingField("data.object")),
    };

    // A charge made with manual capture reports `charge.succeeded` when it is
    // only authorised (`captured: false`): no money has moved yet, so it
    // must not confirm the order. `payment_intent.succeeded` (or a later
    // capture) does.
    if matches!(object_kind, ObjectKind::Charge)
        && kind == EventKind::Succeeded
        && object.captured.map(RawValue::get) == Some("false")
    {
        return Ok(GatewayEvent {
            gateway: crate::NAME.to_owned(),
            event_id: event_id.into_owned(),
            event_type: event_type.into_owned(),
            kind: EventKind::NotHandled,
            references: References::default(),
            amount: None,
        });
    }

    let own_id = non_empty(text(object.id, "data.object.id")?);
    let payment_intent_id = match object_kind {
        ObjectKind::PaymentIntent => own_id.clone(),
        ObjectKind::Charge => non_empty(text(object.payment_intent, "data.object.payment_intent")?),
    };
    let transaction_id = match object.metadata {
        Some(raw) => {
            let metadata: Metadata<'_> = nested(raw, "data.object.metadata")?;
            non_empty(text(
                metadata.transaction_id,
                "data.object.metadata.transaction_id",
            )?)
        }
        None => None,
    };

    let amount = read_amount(&object, &event_type)?;

    Ok(GatewayEvent {
        gateway: crate::NAME.to_owned(),
        event_id: event_id.into_owned(),
        event_type: event_type.into_owned(),
        kind,
        references: References {
            transaction_id,
            external_id: payment_intent_id,
            gateway_reference: own_id,
        },
        amount: Some(amount),
    })
}

/// The amount the event reports, in payhook's minor units.
///
/// A succeeded PaymentIntent reports what was actually received
/// (`amount_received`, which is less than `amount` after a partial capture);
/// everything else reports `amount`.
fn read_amount(object: &StripeObject<'_>, event_type: &str) -> Result<Money, ParseError> {
    let received = if event_type == "payment_intent.succeeded" {
        minor_units(object.amount_received, "data.object.amount_received")?
            .filter(|&value| value > 0)
    } else {
        None
    };
    let (stripe_minor, amount_field) = match received {
        Some(value) => (value, "data.object.amount_received"),
        None => (
            minor_units(object.amount, "data.object.amount")?
                .ok_or(ParseError::MissingField("data.object.amount"))?,
            "data.object.amount",
        ),
    };
    let code = text(object.currency, "data.object.currency")?
        .ok_or(ParseError::MissingField("data.object.currency"))?;
    let currency = Currency::parse(&code).map_err(|source| ParseError::Money {
        field: "data.object.currency",
        source,
    })?;
    let minor = to_iso_minor(stripe_minor, currency).map_err(|source| ParseError::Money {
        field: amount_field,
        source,
    })?;
    Ok(Money::from_minor(minor, currency))
}

/// Stripe's minor unit differs from ISO 4217's for a few currencies
/// (<https://docs.stripe.com/currencies#special-cases>): ISK is two-decimal in
/// Stripe's API (`100` is 1 króna) but has no minor unit in ISO 4217, and MGA
/// is zero-decimal at Stripe but two-decimal in ISO 4217. payhook's money uses
/// the ISO exponent, so these amounts are rescaled, exactly or not at all.
const STRIPE_EXPONENTS: [(&str, u8); 2] = [("ISK", 2), ("MGA", 0)];

fn to_iso_minor(stripe_minor: i64, currency: Currency) -> Result<i64, MoneyError> {
    let iso = currency.exponent();
    let stripe = STRIPE_EXPONENTS
        .iter()
        .find(|(code, _)| *code == currency.code())
        .map_or(iso, |&(_, exponent)| exponent);
    let out_of_range = || MoneyError::OutOfRange(stripe_minor.to_string());
    if stripe >= iso {
        let factor = 10_i64
            .checked_pow(u32::from(stripe - iso))
            .ok_or_else(out_of_range)?;
        if stripe_minor % factor != 0 {
            return Err(MoneyError::TooPrecise {
                amount: decimal_text(stripe_minor, stripe),
                currency: currency.code(),
                exponent: iso,
            });
        }
        Ok(stripe_minor / factor)
    } else {
        10_i64
            .checked_pow(u32::from(iso - stripe))
            .and_then(|factor| stripe_minor.checked_mul(factor))
            .ok_or_else(out_of_range)
    }
}

/// `minor` units of a currency with `exponent` decimals as decimal text
/// (`12345`, 2 -> `123.45`), so that an error shows the amount Stripe meant.
fn decimal_text(minor: i64, exponent: u8) -> String {
    let exponent = usize::from(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let digits = format!("{:0>width$}", minor.unsigned_abs(), width = exponent + 1);
    let (whole, fraction) = digits.split_at(digits.len() - exponent);
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// An integer count of minor units, or `None` for an absent or `null` field.
/// Stripe always sends amounts as JSON integers; a float, a string or a
/// negative number is refused rather than rounded or guessed at.
fn minor_units(raw: Option<&RawValue>, field: &'static str) -> Result<Option<i64>, ParseError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let number: Option<serde_json::Number> = serde_json::from_str(raw.get())
        .map_err(|_| invalid(field, "expected an integer count of minor units"))?;
    let Some(number) = number else {
        return Ok(None);
    };
    match number.as_i64() {
        Some(value) if value >= 0 => Ok(Some(value)),
        Some(_) => Err(invalid(field, "must not be negative")),
        None if number.is_u64() => Err(invalid(field, "out of range")),
        None => Err(invalid(field, "expected an integer count of minor units")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn parse_object(object: &str, event_type: &str) -> Result<GatewayEvent, ParseError> {
        parse(
            format!(r#"{{"id":"evt_1","type":"{event_type}","data":{{"object":{object}}}}}"#)
                .as_bytes(),
        )
    }

    #[test]
    fn an_uncaptured_charge_does_not_confirm() {
        let object = r#"{"id":"ch_1","payment_intent":"pi_1","amount":100,"currency":"usd","captured":false}"#;
        let authorised = parse_object(object, "charge.succeeded").unwrap();
        assert_eq!(authorised.kind, EventKind::NotHandled);
        let captured = parse_object(&object.replace("false", "true"), "charge.succeeded").unwrap();
        assert_eq!(captured.kind, EventKind::Succeeded);
        let failed = parse_object(object, "charge.failed").unwrap();
        assert_eq!(failed.kind, EventKind::Failed);
    }

    #[test]
    fn most_currencies_use_the_iso_exponent_as_is() {
        assert_eq!(to_iso_minor(15000, currency("USD")), Ok(15000));
        assert_eq!(to_iso_minor(1500, currency("JPY")), Ok(1500));
        assert_eq!(to_iso_minor(5120, currency("KWD")), Ok(5120));
        assert_eq!(to_iso_minor(5000, currency("UGX")), Ok(5000));
    }

    #[test]
    fn stripe_special_cases_are_rescaled_exactly() {
        assert_eq!(to_iso_minor(50000, currency("ISK")), Ok(500));
        assert!(matches!(
            to_iso_minor(50050, currency("ISK")),
            Err(MoneyError::TooPrecise {
                ref amount,
                currency: "ISK",
                exponent: 0,
            }) if amount == "500.50"
        ));
        assert_eq!(to_iso_minor(5000, currency("MGA")), Ok(500_000));
        assert!(matches!(
            to_iso_minor(i64::MAX, currency("MGA")),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn decimal_text_places_the_point() {
        assert_eq!(decimal_text(12345, 2), "123.45");
        assert_eq!(decimal_text(5, 2), "0.05");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(7, 0), "7");
    }

    #[test]
    fn amount_received_wins_over_amount_when_positive() {
        let object = r#"{"id":"pi_1","amount":15000,"amount_received":9000,"currency":"usd"}"#;
        let event = parse_object(object, "payment_intent.succeeded").unwrap();
        assert_eq!(event.amount.unwrap().minor(), 9000);

        let object = r#"{"id":"pi_1","amount":15000,"amount_received":0,"currency":"usd"}"#;
        let event = parse_object(object, "payment_intent.succeeded").unwrap();
        assert_eq!(event.amount.unwrap().minor(), 15000);
    }

    #[test]
    fn amount_received_is_ignored_outside_payment_intent_succeeded() {
        let object = r#"{"id":"pi_1","amount":15000,"amount_received":9000,"currency":"usd"}"#;
        let event = parse_object(object, "payment_intent.payment_failed").unwrap();
        assert_eq!(event.amount.unwrap().minor(), 15000);
    }

    #[test]
    fn amounts_must_be_non_negative_json_integers() {
        for amount in [
            "1.5",
            "1e3",
            "-1",
            "\"15000\"",
            "true",
            "[]",
            "18446744073709551615",
        ] {
            let object = format!(r#"{{"id":"ch_1","amount":{amount},"currency":"usd"}}"#);
            assert!(
                matches!(
                    parse_object(&object, "charge.succeeded"),
                    Err(ParseError::InvalidField {
                        field: "data.object.amount",
                        ..
                    })
                ),
                "{amount}"
            );
        }
    }

    #[test]
    fn a_fractional_isk_amount_names_the_amount_field() {
        let object = r#"{"id":"ch_1","amount":12345,"currency":"isk"}"#;
        assert!(matches!(
            parse_object(object, "charge.succeeded"),
            Err(ParseError::Money {
                field: "data.object.amount",
                source: MoneyError::TooPrecise { .. }
            })
        ));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let object = r#"{"id":"pi_\u0031","amount":1,"currency":"usd","metadata":{"transaction_id":"TXN-\"A\""}}"#;
        let event = parse_object(object, "payment_intent.succeeded").unwrap();
        assert_eq!(event.references.gateway_reference.as_deref(), Some("pi_1"));
        assert_eq!(
            event.references.transaction_id.as_deref(),
            Some("TXN-\"A\"")
        );
    }

    #[test]
    fn wrongly_typed_fields_are_named() {
        let cases = [
            (r#"{"id":5,"amount":1,"currency":"usd"}"#, "data.object.id"),
            (
                r#"{"id":"ch_1","amount":1,"currency":840}"#,
                "data.object.currency",
            ),
            (
                r#"{"id":"ch_1","amount":1,"currency":"usd","payment_intent":{"id":"pi_1"}}"#,
                "data.object.payment_intent",
            ),
            (
                r#"{"id":"ch_1","amount":1,"currency":"usd","metadata":[]}"#,
                "data.object.metadata",
            ),
            (
                r#"{"id":"ch_1","amount":1,"currency":"usd","metadata":{"transaction_id":1}}"#,
                "data.object.metadata.transaction_id",
            ),
            (
                r#"{"id":"ch_1","id":"ch_2","amount":1,"currency":"usd"}"#,
                "data.object",
            ),
            ("\"ch_1\"", "data.object"),
            (r#"["ch_1", 1, null, "usd", null, null]"#, "data.object"),
        ];
        for (object, field) in cases {
            match parse_object(object, "charge.succeeded") {
                Err(ParseError::InvalidField { field: got, .. }) => {
                    assert_eq!(got, field, "{object}")
                }
                other => panic!("{object}: {other:?}"),
            }
        }
    }

    #[test]
    fn arrays_do_not_stand_in_for_objects() {
        assert_eq!(
            parse(br#"["evt_1", "invoice.paid", null]"#),
            Err(ParseError::Malformed("expected a JSON object".into()))
        );
    }

    #[test]
    fn malformed_messages_do_not_quote_the_body() {
        let body =
            br#"{"id":"evt_1","type":"charge.succeeded","data":{"object":{"secret_value_xyz"#;
        let message = parse(body).unwrap_err().to_string();
        assert!(!message.contains("secret_value_xyz"), "{message}");
        let body = br#"["secret_value_xyz"]"#;
        let message = parse(body).unwrap_err().to_string();
        assert!(!message.contains("secret_value_xyz"), "{message}");
    }
}
