//! PayPal's Orders v2 `order` object, as `GET /v2/checkout/orders/{id}`
//! answers it, read into a [`GatewayState`] for reconciliation.
//!
//! Pure: it reads a body it is given. Fetching the order (OAuth2, HTTP) is
//! `payhook-paypal-api`'s job, so that this crate stays free of an HTTP
//! client.
//!
//! | order `status` | capture (`purchase_units[].payments.captures[]`) | [`EventKind`] | `state` | amount, gateway reference |
//! |---|---|---|---|---|
//! | `COMPLETED` | one with `status` `COMPLETED`, `PARTIALLY_REFUNDED` or `REFUNDED` (the money was received) | `Succeeded` | `COMPLETED.<capture status>` | the capture's `amount` (required), its `id` |
//! | `COMPLETED` | else one `PENDING` | `Pending` | `COMPLETED.PENDING` | the capture's `amount` when present, its `id` |
//! | `COMPLETED` | else one `DECLINED` or `FAILED` (or the webhooks' `DENIED`) | `Failed` | `COMPLETED.<capture status>` | as for `PENDING` |
//! | `COMPLETED` | none of the above (an authorization only: intent `AUTHORIZE`, not captured yet) | `Pending` | `COMPLETED` | none |
//! | `VOIDED` | | `Canceled` | `VOIDED` | none |
//! | `APPROVED`, `PAYER_ACTION_REQUIRED` | | `Pending` | the status | none |
//! | `CREATED`, `SAVED`, any other | | none (nothing to act on) | the status | none |
//!
//! The object type is always `order` and the object id the order's `id`.
//! The capture id is the gateway reference because the webhook adapter
//! records the capture id of `PAYMENT.CAPTURE.COMPLETED` as the payment's
//! gateway reference; refunds and disputes made later find the payment by
//! it. Amounts are read as the webhooks' are (a decimal string in the
//! currency's minor units, never through a float). When several captures
//! qualify, the first in document order (purchase unit by purchase unit)
//! decides: payhook makes one capture per order.
//!
//! The order status and a deciding capture status must be PayPal's
//! documented form (`^[0-9A-Z_]+$`, at most 255 characters), and the order
//! id PayPal's ([`is_order_id`]): both become part of the derived event id.
//! Errors name the field and never quote the body.

use std::borrow::Cow;

use payhook_domain::json::{describe, invalid, nested, non_empty, starts_an_object, text};
use payhook_domain::ports::ParseError;
use payhook_domain::{EventKind, GatewayApiError, GatewayState, Money};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::payload::{present, read_amount, AmountFields};

/// The object type of every state read here.
pub const OBJECT_TYPE: &str = "order";

/// Longest order id accepted. PayPal's are 17 characters; the bound only
/// keeps an absurd id out of URLs and event ids.
pub const MAX_ORDER_ID_LEN: usize = 64;

/// True when `id` looks like a PayPal order id: 1 to [`MAX_ORDER_ID_LEN`]
/// ASCII letters, digits or `-`. Anything else is never sent in a URL path
/// nor accepted as the id of an answer.
pub fn is_order_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ORDER_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The fields read from the order.
#[derive(Deserialize)]
struct Order<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    purchase_units: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PurchaseUnit<'a> {
    #[serde(borrow)]
    payments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Payments<'a> {
    #[serde(borrow)]
    captures: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Capture<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
}

const CAPTURE_AMOUNT: AmountFields = AmountFields {
    amount: "purchase_units[].payments.captures[].amount",
    currency_code: "purchase_units[].payments.captures[].amount.currency_code",
    value: "purchase_units[].payments.captures[].amount.value",
};

/// What a capture's status says, strongest first: a received capture
/// decides over a pending one, which decides over a failed one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CaptureOutcome {
    Failed,
    Pending,
    Received,
}

fn capture_outcome(status: &str) -> Option<CaptureOutcome> {
    Some(match status {
        // A refunded capture was received first: the refund is its own
        // event, the payment itself went through.
        "COMPLETED" | "PARTIALLY_REFUNDED" | "REFUNDED" => CaptureOutcome::Received,
        "PENDING" => CaptureOutcome::Pending,
        // The Orders API documents DECLINED and FAILED; DENIED is what the
        // webhooks call a refused capture, accepted here alike.
        "DECLINED" | "FAILED" | "DENIED" => CaptureOutcome::Failed,
        _ => return None,
    })
}

/// The capture that decides a completed order.
struct Deciding<'a> {
    outcome: CaptureOutcome,
    status: Cow<'a, str>,
    capture: Capture<'a>,
}

/// Reads the body of `GET /v2/checkout/orders/{id}` (kept as the state's
/// `body`). See the module documentation for the mapping.
///
/// Returns [`GatewayApiError::Malformed`] when the body is not an order
/// object, its `id` or `status` is absent or not in PayPal's form, a field
/// read has the wrong JSON type, or the deciding capture of a succeeded
/// order has no `id` or no readable `amount`.
pub fn order_state(body: Vec<u8>) -> Result<GatewayState, GatewayApiError> {
    let read = read_order(&body).map_err(malformed)?;
    Ok(GatewayState {
        object_id: read.object_id,
        object_type: OBJECT_TYPE.to_owned(),
        state: read.state,
        kind: read.kind,
        amount: read.amount,
        gateway_reference: read.gateway_reference,
        body,
    })
}

/// Everything of the state but the body, which stays with the caller.
struct Read {
    object_id: String,
    state: String,
    kind: Option<EventKind>,
    amount: Option<Money>,
    gateway_reference: Option<String>,
}

fn read_order(body: &[u8]) -> Result<Read, ParseError> {
    let order: Order<'_> = serde_json::from_slice(body)
        .map_err(|error| ParseError::Malformed(describe(&error, "an order object")))?;
    if !starts_an_object(body) {
        return Err(ParseError::Malformed("expected a JSON object".to_owned()));
    }
    let object_id = text(order.id, "id")?.ok_or(ParseError::MissingField("id"))?;
    if !is_order_id(&object_id) {
        return Err(invalid("id", "not a PayPal order id"));
    }
    let status = text(order.status, "status")?.ok_or(ParseError::MissingField("status"))?;
    if !is_status(&status) {
        return Err(invalid("status", "not a PayPal status"));
    }

    let (kind, state, amount, gateway_reference) = match status.as_ref() {
        "COMPLETED" => match deciding_capture(order.purchase_units)? {
            Some(deciding) => {
                let state = format!("COMPLETED.{}", deciding.status);
                let reference = non_empty(text(
                    deciding.capture.id,
                    "purchase_units[].payments.captures[].id",
                )?);
                let amount = present(deciding.capture.amount)
                    .map(|raw| read_amount(raw, &CAPTURE_AMOUNT))
                    .transpose()?;
                let kind = match deciding.outcome {
                    CaptureOutcome::Received => {
                        // Confirming a payment needs both: the amount is
                        // checked against the order, the id finds the
                        // payment again for refunds and disputes.
                        if reference.is_none() {
                            return Err(ParseError::MissingField(
                                "purchase_units[].payments.captures[].id",
                            ));
                        }
                        if amount.is_none() {
                            return Err(ParseError::MissingField(CAPTURE_AMOUNT.amount));
                        }
                        EventKind::Succeeded
                    }
                    CaptureOutcome::Pending => EventKind::Pending,
                    CaptureOutcome::Failed => EventKind::Failed,
                };
                (Some(kind), state, amount, reference)
            }
            None => (Some(EventKind::Pending), status.into_owned(), None, None),
        },
        "VOIDED" => (Some(EventKind::Canceled), status.into_owned(), None, None),
        "APPROVED" | "PAYER_ACTION_REQUIRED" => {
            (Some(EventKind::Pending), status.into_owned(), None, None)
        }
        // CREATED, SAVED and statuses PayPal may add: nothing to act on.
        _ => (None, status.into_owned(), None, None),
    };

    Ok(Read {
        object_id: object_id.into_owned(),
        state,
        kind,
        amount,
        gateway_reference,
    })
}

/// PayPal's status form: `^[0-9A-Z_]+$`, at most 255 characters.
fn is_status(status: &str) -> bool {
    !status.is_empty()
        && status.len() <= 255
        && status
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// The strongest capture of all purchase units (the first of equals), if
/// any has a status that says something. Captures with another status are
/// skipped; their fields are not read.
fn deciding_capture(purchase_units: Option<&RawValue>) -> Result<Option<Deciding<'_>>, ParseError> {
    let mut best: Option<Deciding<'_>> = None;
    for unit in array(purchase_units, "purchase_units")? {
        let unit: PurchaseUnit<'_> = nested(unit, "purchase_units[]")?;
        let Some(payments) = present(unit.payments) else {
            continue;
        };
        let payments: Payments<'_> = nested(payments, "purchase_units[].payments")?;
        for capture in array(payments.captures, "purchase_units[].payments.captures")? {
            let capture: Capture<'_> = nested(capture, "purchase_units[].payments.captures[]")?;
            let Some(status) = text(
                capture.status,
                "purchase_units[].payments.captures[].status",
            )?
            else {
                continue;
            };
            let Some(outcome) = capture_outcome(&status) else {
                continue;
            };
            if best.as_ref().is_none_or(|best| outcome > best.outcome) {
                best = Some(Deciding {
                    outcome,
                    status,
                    capture,
                });
            }
        }
    }
    Ok(best)
}

/// The elements of a JSON array, unparsed; none for an absent or `null`
/// field, `InvalidField` for anything but an array.
fn array<'a>(
    raw: Option<&'a RawValue>,
    field: &'static str,
) -> Result<Vec<&'a RawValue>, ParseError> {
    let Some(raw) = present(raw) else {
        return Ok(Vec::new());
    };
    if raw.get().trim_start().as_bytes().first() != Some(&b'[') {
        return Err(invalid(field, "expected an array"));
    }
    serde_json::from_str(raw.get()).map_err(|_| invalid(field, "expected an array"))
}

/// The parse error as the API's: the field and what is wrong, never a
/// value from the body (an amount error names the field only, as its
/// source would quote the text).
fn malformed(error: ParseError) -> GatewayApiError {
    let text = match error {
        ParseError::Money { field, .. } => {
            format!("invalid {field}: not an exact amount in a known currency")
        }
        other => other.to_string(),
    };
    GatewayApiError::Malformed(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use payhook_domain::Currency;

    fn order(status: &str, captures: &str) -> Vec<u8> {
        format!(
            r#"{{"id":"5O190127TN364715T","status":"{status}","purchase_units":[{{"reference_id":"default","payments":{{"captures":{captures}}}}}]}}"#
        )
        .into_bytes()
    }

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::parse("USD").unwrap())
    }

    #[test]
    fn a_completed_capture_succeeds_with_its_amount_and_id() {
        let state = order_state(order(
            "COMPLETED",
            r#"[{"id":"CAP1","status":"COMPLETED","amount":{"currency_code":"USD","value":"150.00"}}]"#,
        ))
        .unwrap();
        assert_eq!(state.object_id, "5O190127TN364715T");
        assert_eq!(state.object_type, "order");
        assert_eq!(state.state, "COMPLETED.COMPLETED");
        assert_eq!(state.kind, Some(EventKind::Succeeded));
        assert_eq!(state.amount, Some(usd(15000)));
        assert_eq!(state.gateway_reference.as_deref(), Some("CAP1"));
        assert_eq!(
            state.event_id(),
            "reconcile:5O190127TN364715T:COMPLETED.COMPLETED"
        );
    }

    #[test]
    fn a_received_capture_decides_over_pending_and_failed_ones() {
        let state = order_state(order(
            "COMPLETED",
            r#"[{"id":"CAP0","status":"DECLINED"},{"id":"CAP1","status":"PENDING"},
                {"id":"CAP2","status":"PARTIALLY_REFUNDED","amount":{"currency_code":"USD","value":"1.50"}},
                {"id":"CAP3","status":"COMPLETED","amount":{"currency_code":"USD","value":"9.00"}}]"#,
        ))
        .unwrap();
        assert_eq!(state.kind, Some(EventKind::Succeeded));
        assert_eq!(state.state, "COMPLETED.PARTIALLY_REFUNDED");
        assert_eq!(state.gateway_reference.as_deref(), Some("CAP2"));
        assert_eq!(state.amount, Some(usd(150)));
    }

    #[test]
    fn captures_of_later_purchase_units_count() {
        let body = br#"{"id":"O-1","status":"COMPLETED","purchase_units":[{"payments":null},{},
            {"payments":{"captures":[{"id":"CAP9","status":"PENDING"}]}}]}"#;
        let state = order_state(body.to_vec()).unwrap();
        assert_eq!(state.kind, Some(EventKind::Pending));
        assert_eq!(state.state, "COMPLETED.PENDING");
        assert_eq!(state.gateway_reference.as_deref(), Some("CAP9"));
        assert_eq!(state.amount, None);
    }

    #[test]
    fn a_pending_capture_is_pending_and_a_refused_one_failed() {
        for (capture_status, kind) in [
            ("PENDING", EventKind::Pending),
            ("DECLINED", EventKind::Failed),
            ("FAILED", EventKind::Failed),
            ("DENIED", EventKind::Failed),
        ] {
            let state = order_state(order(
                "COMPLETED",
                &format!(
                    r#"[{{"id":"CAP1","status":"{capture_status}","amount":{{"currency_code":"JPY","value":"1500"}}}}]"#
                ),
            ))
            .unwrap();
            assert_eq!(state.kind, Some(kind), "{capture_status}");
            assert_eq!(state.state, format!("COMPLETED.{capture_status}"));
            assert_eq!(state.gateway_reference.as_deref(), Some("CAP1"));
            assert_eq!(
                state.amount,
                Some(Money::from_minor(1500, Currency::parse("JPY").unwrap()))
            );
        }
    }

    #[test]
    fn order_statuses_without_a_deciding_capture() {
        for (status, kind) in [
            ("VOIDED", Some(EventKind::Canceled)),
            ("APPROVED", Some(EventKind::Pending)),
            ("PAYER_ACTION_REQUIRED", Some(EventKind::Pending)),
            ("COMPLETED", Some(EventKind::Pending)),
            ("CREATED", None),
            ("SAVED", None),
            ("SOMETHING_NEW_2", None),
        ] {
            let state = order_state(order(status, "[]")).unwrap();
            assert_eq!(state.kind, kind, "{status}");
            assert_eq!(state.state, status);
            assert_eq!(state.amount, None);
            assert_eq!(state.gateway_reference, None);
        }
    }

    #[test]
    fn captures_of_an_order_not_completed_do_not_decide() {
        let state = order_state(order(
            "VOIDED",
            r#"[{"id":"CAP1","status":"COMPLETED","amount":{"currency_code":"USD","value":"1.00"}}]"#,
        ))
        .unwrap();
        assert_eq!(state.kind, Some(EventKind::Canceled));
        assert_eq!(state.gateway_reference, None);
    }

    #[test]
    fn captures_with_unknown_statuses_are_skipped_unread() {
        let state = order_state(order(
            "COMPLETED",
            r#"[{"id":7,"status":"SOMETHING_ELSE","amount":"x"},{"amount":{}}]"#,
        ))
        .unwrap();
        assert_eq!(state.kind, Some(EventKind::Pending));
        assert_eq!(state.state, "COMPLETED");
    }

    #[test]
    fn a_succeeded_capture_needs_its_id_and_amount() {
        let no_amount = order_state(order(
            "COMPLETED",
            r#"[{"id":"CAP1","status":"COMPLETED"}]"#,
        ));
        assert_eq!(
            no_amount.unwrap_err(),
            GatewayApiError::Malformed(
                "missing field purchase_units[].payments.captures[].amount".into()
            )
        );
        let no_id = order_state(order(
            "COMPLETED",
            r#"[{"id":"","status":"COMPLETED","amount":{"currency_code":"USD","value":"1.00"}}]"#,
        ));
        assert_eq!(
            no_id.unwrap_err(),
            GatewayApiError::Malformed(
                "missing field purchase_units[].payments.captures[].id".into()
            )
        );
    }

    #[test]
    fn amounts_are_exact_strings_and_errors_do_not_quote_them() {
        for amount in [
            r#"{"currency_code":"USD","value":1.0}"#,
            r#"{"currency_code":"USD","value":"-1.00"}"#,
            r#"{"currency_code":"USD","value":"1.001"}"#,
            r#"{"currency_code":"QQQ-SECRET","value":"1.00"}"#,
            r#"{"currency_code":"USD","value":"12abc-SECRET"}"#,
            r#"{"value":"1.00"}"#,
        ] {
            let error = order_state(order(
                "COMPLETED",
                &format!(r#"[{{"id":"CAP1","status":"COMPLETED","amount":{amount}}}]"#),
            ))
            .unwrap_err();
            let GatewayApiError::Malformed(text) = &error else {
                panic!("{amount}: {error:?}");
            };
            assert!(
                text.contains("purchase_units[].payments.captures[].amount"),
                "{text}"
            );
            assert!(!text.contains("SECRET"), "{text}");
        }
    }

    #[test]
    fn the_id_and_status_must_be_paypals() {
        for (body, text) in [
            (r#"{"status":"COMPLETED"}"#, "missing field id"),
            (
                r#"{"id":"A B","status":"COMPLETED"}"#,
                "invalid field id: not a PayPal order id",
            ),
            (
                r#"{"id":"","status":"COMPLETED"}"#,
                "invalid field id: not a PayPal order id",
            ),
            (
                r#"{"id":5,"status":"COMPLETED"}"#,
                "invalid field id: expected a string",
            ),
            (r#"{"id":"O1"}"#, "missing field status"),
            (
                r#"{"id":"O1","status":"completed"}"#,
                "invalid field status: not a PayPal status",
            ),
            (
                r#"{"id":"O1","status":"A:B"}"#,
                "invalid field status: not a PayPal status",
            ),
            (
                r#"{"id":"O1","status":""}"#,
                "invalid field status: not a PayPal status",
            ),
            (
                r#"{"id":"O1","status":"COMPLETED","purchase_units":{}}"#,
                "invalid field purchase_units: expected an array",
            ),
            (
                r#"{"id":"O1","status":"COMPLETED","purchase_units":[{"payments":{"captures":[5]}}]}"#,
                "invalid field purchase_units[].payments.captures[]: expected an object",
            ),
        ] {
            assert_eq!(
                order_state(body.as_bytes().to_vec()).unwrap_err(),
                GatewayApiError::Malformed(text.into()),
                "{body}"
            );
        }
        assert!(is_order_id(&"A".repeat(MAX_ORDER_ID_LEN)));
        assert!(!is_order_id(&"A".repeat(MAX_ORDER_ID_LEN + 1)));
        assert!(!is_order_id("../x"));
    }

    #[test]
    fn not_an_object_is_malformed_without_quoting() {
        for body in [&b"[1,2]"[..], b"", b"{\"id\":\"SECRET", b"null"] {
            let error = order_state(body.to_vec()).unwrap_err();
            assert!(matches!(&error, GatewayApiError::Malformed(text) if !text.contains("SECRET")));
        }
    }

    #[test]
    fn the_body_is_kept_as_received() {
        let body = order("APPROVED", "[]");
        assert_eq!(order_state(body.clone()).unwrap().body, body);
    }
}
