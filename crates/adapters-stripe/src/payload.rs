//! Stripe's event envelope (`{"id":"evt_...","type":"...","data":{"object":{...}}}`)
//! read into a [`GatewayEvent`].
//!
//! The body is parsed once: the envelope, `data`, `data.object` and its
//! `metadata` are deserialised together, and every member payhook does not
//! use is skipped unread. Stripe sends `type` after `data`, so while `data`
//! is read it is not yet known whether the event is handled, and nothing
//! read there may fail yet: the members payhook uses are kept as borrowed
//! raw JSON (a few bytes each, decoded only if the type needs them) and the
//! objects on the way as [`Nested`], judged once the type is known. That way
//! an event type payhook does not handle never fails because of its `data`
//! (Stripe sends dozens of object shapes), and an error names the exact
//! field and never quotes the body.
//!
//! Two consequences of the single pass, both for bodies Stripe never sends:
//! a body that is not UTF-8 anywhere is malformed, and so is one where
//! serde_json cannot decode a member name of `data`, `data.object` or
//! `metadata`, or a non-object value in place of one of them (a string with
//! an unpaired surrogate escape such as `"\ud800"`, a number beyond `f64`),
//! whatever the event type.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use payhook_domain::json::{describe, invalid, non_empty, starts_an_object, text};
use payhook_domain::ports::ParseError;
use payhook_domain::{Currency, EventKind, GatewayEvent, Money, MoneyError, References};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The top level of every Stripe event.
///
/// Derived, so that a repeated `id`, `type` or `data` is refused as
/// malformed, as serde refuses any repeated field.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    event_type: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<Nested<Data<'a>>>,
}

#[derive(Default)]
struct Data<'a> {
    object: Option<Nested<StripeObject<'a>>>,
}

/// The members payhook reads from a PaymentIntent or a Charge.
#[derive(Default)]
struct StripeObject<'a> {
    id: Option<&'a RawValue>,
    amount: Option<&'a RawValue>,
    amount_received: Option<&'a RawValue>,
    currency: Option<&'a RawValue>,
    payment_intent: Option<&'a RawValue>,
    metadata: Option<Nested<Metadata<'a>>>,
    captured: Option<&'a RawValue>,
}

#[derive(Default)]
struct Metadata<'a> {
    transaction_id: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Members<'de> for Data<'a> {
    const NAMES: &'static [&'static str] = &["object"];

    fn read<A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error> {
        match name {
            "object" => self.object = map.next_value()?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> Members<'de> for StripeObject<'a> {
    const NAMES: &'static [&'static str] = &[
        "id",
        "amount",
        "amount_received",
        "currency",
        "payment_intent",
        "metadata",
        "captured",
    ];

    fn read<A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error> {
        match name {
            "id" => self.id = map.next_value()?,
            "amount" => self.amount = map.next_value()?,
            "amount_received" => self.amount_received = map.next_value()?,
            "currency" => self.currency = map.next_value()?,
            "payment_intent" => self.payment_intent = map.next_value()?,
            "metadata" => self.metadata = map.next_value()?,
            "captured" => self.captured = map.next_value()?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> Members<'de> for Metadata<'a> {
    const NAMES: &'static [&'static str] = &["transaction_id"];

    fn read<A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error> {
        match name {
            "transaction_id" => self.transaction_id = map.next_value()?,
            _ => skip(map)?,
        }
        Ok(())
    }
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
    // serde_json checks the UTF-8 only of the strings it hands over, not of
    // the members skipped unread; checking the whole body first makes a
    // body that is not UTF-8 malformed wherever the bad byte is, and lets
    // serde_json skip its own per-string check.
    let json = std::str::from_utf8(body)
        .map_err(|error| ParseError::Malformed(describe_not_utf8(body, error.valid_up_to())))?;
    let envelope: Envelope<'_> = serde_json::from_str(json)
        .map_err(|error| ParseError::Malformed(describe(&error, "an event object")))?;
    // Checked after the parse so that invalid JSON is reported as such; the
    // derived `Envelope` would also accept `[id, type, data]`.
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
        return Ok(not_handled(event_id, event_type));
    };

    let data = match envelope.data {
        Some(data) => members(data, "data")?,
        None => return Err(ParseError::MissingField("data.object")),
    };
    let StripeObject {
        id,
        amount,
        amount_received,
        currency,
        payment_intent,
        metadata,
        captured,
    } = match data.object {
        Some(object) => members(object, "data.object")?,
        None => return Err(ParseError::MissingField("data.object")),
    };

    // A charge made with manual capture reports `charge.succeeded` when it is
    // only authorised (`captured: false`): no money has moved yet, so it
    // must not confirm the order. `payment_intent.succeeded` (or a later
    // capture) does.
    if matches!(object_kind, ObjectKind::Charge)
        && kind == EventKind::Succeeded
        && captured.map(RawValue::get) == Some("false")
    {
        return Ok(not_handled(event_id, event_type));
    }

    let own_id = non_empty(text(id, "data.object.id")?);
    let payment_intent_id = match object_kind {
        ObjectKind::PaymentIntent => own_id.clone(),
        ObjectKind::Charge => non_empty(text(payment_intent, "data.object.payment_intent")?),
    };
    let transaction_id = match metadata {
        Some(metadata) => non_empty(text(
            members(metadata, "data.object.metadata")?.transaction_id,
            "data.object.metadata.transaction_id",
        )?),
        None => None,
    };

    let received = if event_type == "payment_intent.succeeded" {
        amount_received
    } else {
        None
    };
    let amount = read_amount(received, amount, currency)?;

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

/// An event payhook does not act on: its id and type, nothing else.
fn not_handled(event_id: Cow<'_, str>, event_type: Cow<'_, str>) -> GatewayEvent {
    GatewayEvent {
        gateway: crate::NAME.to_owned(),
        event_id: event_id.into_owned(),
        event_type: event_type.into_owned(),
        kind: EventKind::NotHandled,
        references: References::default(),
        amount: None,
    }
}

/// The amount the event reports, in payhook's minor units.
///
/// `received` is `amount_received` for a succeeded PaymentIntent and `None`
/// otherwise: such an event reports what was actually received (less than
/// `amount` after a partial capture); everything else reports `amount`.
fn read_amount(
    received: Option<&RawValue>,
    amount: Option<&RawValue>,
    currency: Option<&RawValue>,
) -> Result<Money, ParseError> {
    let received = minor_units(received, "data.object.amount_received")?.filter(|&value| value > 0);
    let (stripe_minor, amount_field) = match received {
        Some(value) => (value, "data.object.amount_received"),
        None => (
            minor_units(amount, "data.object.amount")?
                .ok_or(ParseError::MissingField("data.object.amount"))?,
            "data.object.amount",
        ),
    };
    let code = text(currency, "data.object.currency")?
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

/// The members of a nested object; `InvalidField` naming `field` when it is
/// not an object or repeats a member payhook reads.
fn members<T>(nested: Nested<T>, field: &'static str) -> Result<T, ParseError> {
    match nested {
        Nested::Object(members) => Ok(members),
        Nested::RepeatedMember => Err(invalid(field, "has a duplicate key")),
        Nested::NotAnObject => Err(invalid(field, "expected an object")),
    }
}

/// `Malformed`'s text for a body that is not UTF-8 at byte `index`, placed
/// the way serde_json places its errors (1-based line, column counted in
/// bytes), and like them never quoting the body.
fn describe_not_utf8(body: &[u8], index: usize) -> String {
    let before = &body[..index];
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = 1 + before.iter().filter(|&&byte| byte == b'\n').count();
    format!(
        "invalid JSON at line {line} column {}",
        index + 1 - line_start
    )
}

/// A member payhook expects to be an object, kept whatever its JSON type
/// until the event type says whether it matters.
enum Nested<T> {
    /// An object, with the members payhook reads.
    Object(T),
    /// An object that repeats a member payhook reads: which value counts
    /// would be a matter of parser choice, so the whole object is refused,
    /// as serde's derive refuses a repeated field.
    RepeatedMember,
    /// Any other JSON type, skipped unread.
    NotAnObject,
}

/// An object whose members payhook reads, filled one member at a time as
/// the body is parsed.
trait Members<'de>: Default {
    /// The names of the members read; at most 32, one bit each. Other
    /// members are skipped unread.
    const NAMES: &'static [&'static str];

    /// Reads the value of the member `name`, one of [`Members::NAMES`],
    /// met for the first time.
    fn read<A: MapAccess<'de>>(&mut self, name: &str, map: &mut A) -> Result<(), A::Error>;
}

impl<'de, T: Members<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NestedVisitor(PhantomData))
    }
}

struct NestedVisitor<T>(PhantomData<T>);

impl<'de, T: Members<'de>> Visitor<'de> for NestedVisitor<T> {
    type Value = Nested<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Nested<T>, A::Error> {
        let mut members = T::default();
        let mut seen = 0_u32;
        let mut repeated = false;
        while let Some(index) = map.next_key_seed(MemberName(T::NAMES))? {
            match index {
                Some(index) if seen & (1 << index) == 0 => {
                    seen |= 1 << index;
                    members.read(T::NAMES[index], &mut map)?;
                }
                // The rest is still parsed: a syntax error later in the
                // body must be reported as such.
                Some(_) => {
                    repeated = true;
                    skip(&mut map)?;
                }
                None => skip(&mut map)?,
            }
        }
        Ok(if repeated {
            Nested::RepeatedMember
        } else {
            Nested::Object(members)
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Nested<T>, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Nested::NotAnObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Nested<T>, E> {
        Ok(Nested::NotAnObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Nested<T>, E> {
        Ok(Nested::NotAnObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Nested<T>, E> {
        Ok(Nested::NotAnObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Nested<T>, E> {
        Ok(Nested::NotAnObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<Nested<T>, E> {
        Ok(Nested::NotAnObject)
    }
}

/// Reads a member name as its position in a list of names, `None` for a
/// name not in it. Escaped names are compared unescaped, as serde's derive
/// compares them.
struct MemberName(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for MemberName {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|known| *known == name))
    }
}

/// Skips the value of the member just read. `IgnoredAny` makes serde_json
/// check the syntax without building anything, and without recursion, so
/// deep nesting costs no stack.
fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(drop)
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

    #[test]
    fn a_body_that_is_not_utf8_is_malformed_wherever_the_byte_is() {
        // In a member nobody reads, too: JSON between systems must be UTF-8.
        let body = b"{\"id\":\"evt_1\",\n  \"note\":\"\xff\",\"type\":\"invoice.paid\"}";
        assert_eq!(
            parse(body),
            Err(ParseError::Malformed(
                "invalid JSON at line 2 column 11".into()
            ))
        );
        let object = b"{\"id\":\"ch_1\",\"amount\":1,\"currency\":\"usd\",\"x\":\"\xc3\"}";
        let mut body = br#"{"id":"evt_1","type":"charge.succeeded","data":{"object":"#.to_vec();
        body.extend_from_slice(object);
        body.extend_from_slice(b"}}");
        assert!(matches!(parse(&body), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn the_type_may_come_before_or_after_data() {
        let object = r#"{"id":"ch_1","payment_intent":"pi_1","amount":100,"currency":"usd"}"#;
        let first =
            format!(r#"{{"type":"charge.succeeded","id":"evt_1","data":{{"object":{object}}}}}"#);
        let last =
            format!(r#"{{"id":"evt_1","data":{{"object":{object}}},"type":"charge.succeeded"}}"#);
        let event = parse(first.as_bytes()).unwrap();
        assert_eq!(event.kind, EventKind::Succeeded);
        assert_eq!(parse(last.as_bytes()), Ok(event));
    }

    #[test]
    fn escaped_envelope_strings_and_member_names_are_unescaped() {
        let body = br#"{"i\u0064":"evt_\u0031","type":"charge.succ\u0065eded","data":{"obj\u0065ct":{"\u0069d":"ch_1","amount":100,"currency":"usd","metadata":{"transaction_i\u0064":"TXN-1"}}}}"#;
        let event = parse(body).unwrap();
        assert_eq!(event.event_id, "evt_1");
        assert_eq!(event.kind, EventKind::Succeeded);
        assert_eq!(event.references.gateway_reference.as_deref(), Some("ch_1"));
        assert_eq!(event.references.transaction_id.as_deref(), Some("TXN-1"));
    }

    #[test]
    fn a_repeated_member_counts_only_where_payhook_reads_it() {
        let repeated = [
            (r#"{"object":{"id":"ch_1"},"object":{"id":"ch_2"}}"#, "data"),
            (
                r#"{"object":{"id":"ch_1","i\u0064":"ch_2","amount":1,"currency":"usd"}}"#,
                "data.object",
            ),
            (
                r#"{"object":{"id":"ch_1","amount":1,"currency":"usd","metadata":{"transaction_id":"a","transaction_id":"b"}}}"#,
                "data.object.metadata",
            ),
        ];
        for (data, field) in repeated {
            let handled = format!(r#"{{"id":"evt_1","type":"charge.succeeded","data":{data}}}"#);
            assert_eq!(
                parse(handled.as_bytes()),
                Err(invalid(field, "has a duplicate key")),
                "{data}"
            );
            let ignored = handled.replace("charge.succeeded", "invoice.paid");
            assert_eq!(
                parse(ignored.as_bytes()).unwrap().kind,
                EventKind::NotHandled,
                "{data}"
            );
        }
        // Members payhook does not read may repeat.
        let data = r#"{"object":{"id":"ch_1","amount":1,"currency":"usd","x":1,"x":2,"metadata":{"y":1,"y":2}},"z":1,"z":2}"#;
        let body = format!(r#"{{"id":"evt_1","type":"charge.failed","data":{data}}}"#);
        assert_eq!(parse(body.as_bytes()).unwrap().kind, EventKind::Failed);
    }

    #[test]
    fn undecodable_members_payhook_reads_are_judged_by_the_event_type() {
        // Kept raw, so an unhandled event does not fail on them.
        let object = r#"{"id":"\ud800","amount":1e400,"currency":"usd"}"#;
        let body =
            format!(r#"{{"id":"evt_1","type":"invoice.paid","data":{{"object":{object}}}}}"#);
        assert_eq!(parse(body.as_bytes()).unwrap().kind, EventKind::NotHandled);
        assert!(matches!(
            parse_object(object, "charge.succeeded"),
            Err(ParseError::InvalidField {
                field: "data.object.id",
                ..
            })
        ));
    }

    #[test]
    fn undecodable_values_on_the_way_to_them_are_malformed() {
        for data in [
            r#""\ud800""#,
            "1e400",
            r#"{"object":"\udc00"}"#,
            r#"{"\ud800":1}"#,
            r#"{"object":{"metadata":-1e400}}"#,
        ] {
            let body = format!(r#"{{"id":"evt_1","type":"invoice.paid","data":{data}}}"#);
            assert!(
                matches!(parse(body.as_bytes()), Err(ParseError::Malformed(_))),
                "{data}"
            );
        }
    }

    #[test]
    fn every_member_list_fits_the_mask_of_seen_members() {
        assert!(Data::NAMES.len() <= 32);
        assert!(StripeObject::NAMES.len() <= 32);
        assert!(Metadata::NAMES.len() <= 32);
    }
}
