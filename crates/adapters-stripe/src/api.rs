//! Stripe's API objects, as `GET /v1/payment_intents/{id}` and
//! `GET /v1/checkout/sessions/{id}` answer them, read into a
//! [`GatewayState`]: what Stripe says about a payment now, for
//! reconciliation.
//!
//! Pure, like the webhook half of the crate: it never calls Stripe (the
//! HTTP client is `payhook-stripe-api`, which hands the body it received
//! here) and keeps the body as received, for the audit.
//!
//! | object | Stripe's state | `state` | [`EventKind`] | amount | gateway reference |
//! |---|---|---|---|---|---|
//! | PaymentIntent | `succeeded` | `succeeded` | `Succeeded` | `amount_received` (else `amount`) in `currency` | its `id` |
//! | PaymentIntent | `canceled` | `canceled` | `Canceled` | none | its `id` |
//! | PaymentIntent | `processing`, `requires_action` | the status | `Pending` | none | its `id` |
//! | PaymentIntent | `requires_payment_method` with a `last_payment_error` | `requires_payment_method` | `Failed` | none | its `id` |
//! | PaymentIntent | `requires_payment_method` without one, `requires_confirmation`, `requires_capture` | the status | none | none | its `id` |
//! | Checkout Session | `complete`, `payment_status` `paid` or `no_payment_required` | `complete.paid`, `complete.no_payment_required` | `Succeeded` | `amount_total` in `currency`, none when null | its `payment_intent` (the id, or the expanded object's `id`; none when null) |
//! | Checkout Session | `complete`, `unpaid` | `complete.unpaid` | `Pending` | none | the same |
//! | Checkout Session | `expired` | `expired.<payment_status>` | `Canceled` | none | the same |
//! | Checkout Session | `open` | `open.<payment_status>` | none | none | the same |
//!
//! The PaymentIntent is the reference the webhooks record for every later
//! event of the payment (charges, refunds, disputes), so the state of an
//! intent or of a session carries it too. Amounts are read as the webhook
//! adapter reads them: JSON integers of Stripe's minor unit in the lower
//! case `currency`, rescaled to the ISO exponent where Stripe's differs.
//!
//! A `requires_payment_method` intent with a `last_payment_error` is one
//! whose last attempt failed (Stripe moves a failed intent back to that
//! status, as `payment_intent.payment_failed` reports); without one it has
//! simply not been paid yet, which is nothing to act on.
//!
//! Statuses other than the documented ones, an `object` other than the one
//! asked for, a missing `id`, `status` or (for a session)
//! `payment_status`, and a body that is not a JSON object are
//! [`GatewayApiError::Malformed`], with a text that names the field and
//! never quotes the body.
//!
//! [`EventKind`]: payhook_domain::EventKind

use payhook_domain::json::{describe, invalid, non_empty, starts_an_object, text};
use payhook_domain::ports::ParseError;
use payhook_domain::{EventKind, GatewayApiError, GatewayState, Money};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::payload::{describe_not_utf8, expandable_id, minor_units, to_money};

/// The API version the mapping is written against, and the one the webhook
/// fixtures carry: a client pins it with the `Stripe-Version` header, so
/// that an account's default version cannot change the objects' shape.
pub const API_VERSION: &str = "2024-06-20";

/// The two objects reconciliation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiObject {
    /// A PaymentIntent, `pi_...`: `GET /v1/payment_intents/{id}`.
    PaymentIntent,
    /// A Checkout Session, `cs_...`: `GET /v1/checkout/sessions/{id}`.
    CheckoutSession,
}

impl ApiObject {
    /// The object's `object` member, and [`GatewayState::object_type`]:
    /// `payment_intent` or `checkout.session`.
    pub fn object_type(self) -> &'static str {
        match self {
            Self::PaymentIntent => "payment_intent",
            Self::CheckoutSession => "checkout.session",
        }
    }

    /// The path of the object with id `id`, which the caller has checked
    /// is a bare id (no `/`, no `..`): `/v1/payment_intents/{id}` or
    /// `/v1/checkout/sessions/{id}`.
    pub fn path(self, id: &str) -> String {
        match self {
            Self::PaymentIntent => format!("/v1/payment_intents/{id}"),
            Self::CheckoutSession => format!("/v1/checkout/sessions/{id}"),
        }
    }

    /// Reads the API's answer for this object (see the module table).
    pub fn read(self, body: &[u8]) -> Result<GatewayState, GatewayApiError> {
        match self {
            Self::PaymentIntent => payment_intent(body),
            Self::CheckoutSession => checkout_session(body),
        }
    }
}

/// The members read from either object; each object lacks the other's.
#[derive(Deserialize)]
struct Object<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    object: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    amount_received: Option<&'a RawValue>,
    #[serde(borrow)]
    currency: Option<&'a RawValue>,
    #[serde(borrow)]
    last_payment_error: Option<&'a RawValue>,
    #[serde(borrow)]
    amount_total: Option<&'a RawValue>,
    #[serde(borrow)]
    payment_status: Option<&'a RawValue>,
    #[serde(borrow)]
    payment_intent: Option<&'a RawValue>,
}

/// What an object says, before the body is attached.
struct Reading {
    object_id: String,
    state: String,
    kind: Option<EventKind>,
    amount: Option<Money>,
    gateway_reference: Option<String>,
}

impl Reading {
    fn into_state(self, object: ApiObject, body: &[u8]) -> GatewayState {
        GatewayState {
            object_id: self.object_id,
            object_type: object.object_type().to_owned(),
            state: self.state,
            kind: self.kind,
            amount: self.amount,
            gateway_reference: self.gateway_reference,
            body: body.to_vec(),
        }
    }
}

/// Reads the answer of `GET /v1/payment_intents/{id}` (see the module
/// table); `Malformed` when it is not a PaymentIntent as documented.
pub fn payment_intent(body: &[u8]) -> Result<GatewayState, GatewayApiError> {
    let reading = read(body, ApiObject::PaymentIntent, read_payment_intent)?;
    Ok(reading.into_state(ApiObject::PaymentIntent, body))
}

/// Reads the answer of `GET /v1/checkout/sessions/{id}` (see the module
/// table); `Malformed` when it is not a Checkout Session as documented.
pub fn checkout_session(body: &[u8]) -> Result<GatewayState, GatewayApiError> {
    let reading = read(body, ApiObject::CheckoutSession, read_checkout_session)?;
    Ok(reading.into_state(ApiObject::CheckoutSession, body))
}

/// Parses `body` as a JSON object, checks that it is the `expected`
/// object, and reads it with `reader`.
fn read(
    body: &[u8],
    expected: ApiObject,
    reader: fn(Object<'_>, String, String) -> Result<Reading, ParseError>,
) -> Result<Reading, GatewayApiError> {
    let json = std::str::from_utf8(body).map_err(|error| {
        GatewayApiError::Malformed(describe_not_utf8(body, error.valid_up_to()))
    })?;
    // Checked after the parse, so that invalid JSON is reported as such;
    // the derived struct would also take a JSON array, member by member.
    let not_an_object = || GatewayApiError::Malformed("expected a JSON object".to_owned());
    let object: Object<'_> = serde_json::from_str(json).map_err(|error| {
        if error.classify() == Category::Data && !starts_an_object(body) {
            not_an_object()
        } else {
            GatewayApiError::Malformed(describe(&error, "a Stripe object"))
        }
    })?;
    if !starts_an_object(body) {
        return Err(not_an_object());
    }
    let identify = || -> Result<(String, String), ParseError> {
        let object_type =
            text(object.object, "object")?.ok_or(ParseError::MissingField("object"))?;
        if object_type != expected.object_type() {
            return Err(invalid(
                "object",
                &format!("expected {}", expected.object_type()),
            ));
        }
        let id = non_empty(text(object.id, "id")?).ok_or(ParseError::MissingField("id"))?;
        let status =
            non_empty(text(object.status, "status")?).ok_or(ParseError::MissingField("status"))?;
        Ok((id, status))
    };
    let (id, status) = identify().map_err(malformed)?;
    reader(object, id, status).map_err(malformed)
}

/// A PaymentIntent with its `id` and `status` already read.
fn read_payment_intent(
    object: Object<'_>,
    id: String,
    status: String,
) -> Result<Reading, ParseError> {
    let kind = match status.as_str() {
        "succeeded" => Some(EventKind::Succeeded),
        "canceled" => Some(EventKind::Canceled),
        "processing" | "requires_action" => Some(EventKind::Pending),
        "requires_payment_method" => {
            has_payment_error(object.last_payment_error)?.then_some(EventKind::Failed)
        }
        "requires_confirmation" | "requires_capture" => None,
        _ => {
            return Err(invalid(
                "status",
                "expected requires_payment_method, requires_confirmation, requires_action, \
                 processing, requires_capture, canceled or succeeded",
            ))
        }
    };
    let amount = match kind {
        Some(EventKind::Succeeded) => Some(received_amount(&object)?),
        _ => None,
    };
    Ok(Reading {
        gateway_reference: Some(id.clone()),
        object_id: id,
        state: status,
        kind,
        amount,
    })
}

/// True when the intent's `last_payment_error` is an error object, false
/// when it is absent or `null`; anything else is refused.
fn has_payment_error(raw: Option<&RawValue>) -> Result<bool, ParseError> {
    match raw {
        None => Ok(false),
        Some(raw) if raw.get() == "null" => Ok(false),
        Some(raw) if starts_an_object(raw.get().as_bytes()) => Ok(true),
        Some(_) => Err(invalid("last_payment_error", "expected an object or null")),
    }
}

/// What a succeeded intent received: `amount_received`, or `amount` when
/// that is absent or zero (as the webhook adapter reads
/// `payment_intent.succeeded`).
fn received_amount(object: &Object<'_>) -> Result<Money, ParseError> {
    let received = minor_units(object.amount_received, "amount_received")?.filter(|&v| v > 0);
    let (minor, field) = match received {
        Some(minor) => (minor, "amount_received"),
        None => (
            minor_units(object.amount, "amount")?.ok_or(ParseError::MissingField("amount"))?,
            "amount",
        ),
    };
    to_money(minor, field, object.currency, "currency")
}

/// A Checkout Session with its `id` and `status` already read.
fn read_checkout_session(
    object: Object<'_>,
    id: String,
    status: String,
) -> Result<Reading, ParseError> {
    const PAYMENT_STATUS: &str = "payment_status";
    let payment_status = text(object.payment_status, PAYMENT_STATUS)?
        .ok_or(ParseError::MissingField(PAYMENT_STATUS))?;
    let paid = match &*payment_status {
        "paid" | "no_payment_required" => true,
        "unpaid" => false,
        _ => {
            return Err(invalid(
                PAYMENT_STATUS,
                "expected paid, unpaid or no_payment_required",
            ))
        }
    };
    let kind = match (status.as_str(), paid) {
        ("complete", true) => Some(EventKind::Succeeded),
        // A bank debit completes the checkout unpaid and settles later.
        ("complete", false) => Some(EventKind::Pending),
        ("expired", _) => Some(EventKind::Canceled),
        ("open", _) => None,
        _ => return Err(invalid("status", "expected open, complete or expired")),
    };
    // Null when the session has no total, which is no amount to compare,
    // not a malformed object (as for the webhook).
    let amount = match (kind, minor_units(object.amount_total, "amount_total")?) {
        (Some(EventKind::Succeeded), Some(minor)) => Some(to_money(
            minor,
            "amount_total",
            object.currency,
            "currency",
        )?),
        _ => None,
    };
    // Null until the customer confirms a payment (and for a session that
    // needs none), so an open, expired or free session may have none.
    let gateway_reference =
        expandable_id(object.payment_intent, "payment_intent", "payment_intent.id")?;
    Ok(Reading {
        state: format!("{status}.{payment_status}"),
        object_id: id,
        kind,
        amount,
        gateway_reference,
    })
}

/// The parse error as the API error, its text naming the field only.
fn malformed(error: ParseError) -> GatewayApiError {
    match error {
        ParseError::Malformed(text) => GatewayApiError::Malformed(text),
        other => GatewayApiError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use payhook_domain::Currency;

    fn money(minor: i64, code: &str) -> Money {
        Money::from_minor(minor, Currency::parse(code).unwrap())
    }

    #[test]
    fn a_succeeded_intent_falls_back_to_amount_when_nothing_is_received() {
        let body = br#"{"id":"pi_1","object":"payment_intent","status":"succeeded","amount":500,"amount_received":0,"currency":"eur"}"#;
        let state = payment_intent(body).unwrap();
        assert_eq!(state.amount, Some(money(500, "EUR")));
        assert_eq!(state.kind, Some(EventKind::Succeeded));
        assert_eq!(state.gateway_reference.as_deref(), Some("pi_1"));
    }

    #[test]
    fn stripe_minor_units_are_rescaled_as_for_webhooks() {
        let body = br#"{"id":"pi_1","object":"payment_intent","status":"succeeded","amount_received":50000,"currency":"isk"}"#;
        assert_eq!(
            payment_intent(body).unwrap().amount,
            Some(money(500, "ISK"))
        );
    }

    #[test]
    fn a_wrong_object_or_status_is_refused_by_name() {
        let session = br#"{"id":"cs_1","object":"checkout.session","status":"open","payment_status":"unpaid"}"#;
        assert_eq!(
            payment_intent(session).unwrap_err(),
            GatewayApiError::Malformed("invalid field object: expected payment_intent".to_owned())
        );
        let odd = br#"{"id":"pi_1","object":"payment_intent","status":"requires_source"}"#;
        assert!(matches!(
            payment_intent(odd),
            Err(GatewayApiError::Malformed(text)) if text.starts_with("invalid field status")
        ));
        let odd = br#"{"id":"cs_1","object":"checkout.session","status":"complete","payment_status":"partly"}"#;
        assert!(matches!(
            checkout_session(odd),
            Err(GatewayApiError::Malformed(text)) if text.starts_with("invalid field payment_status")
        ));
    }

    #[test]
    fn errors_never_quote_the_body() {
        let body = br#"{"id":"pi_1","object":"payment_intent","status":"succeeded","amount":"4242424242424242","currency":"usd"}"#;
        let error = payment_intent(body).unwrap_err().to_string();
        assert!(error.contains("amount"), "{error}");
        assert!(!error.contains("4242"), "{error}");
        let truncated = br#"{"id":"pi_4242424242424242"#;
        let error = payment_intent(truncated).unwrap_err().to_string();
        assert!(!error.contains("4242"), "{error}");
    }

    #[test]
    fn an_array_is_not_an_object() {
        let body = br#"["pi_1","payment_intent","succeeded"]"#;
        assert_eq!(
            payment_intent(body).unwrap_err(),
            GatewayApiError::Malformed("expected a JSON object".to_owned())
        );
    }

    #[test]
    fn paths_name_the_object() {
        assert_eq!(
            ApiObject::PaymentIntent.path("pi_1"),
            "/v1/payment_intents/pi_1"
        );
        assert_eq!(
            ApiObject::CheckoutSession.path("cs_1"),
            "/v1/checkout/sessions/cs_1"
        );
    }
}
