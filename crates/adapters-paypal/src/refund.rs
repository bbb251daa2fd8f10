//! PayPal's v2 refund resource, which two event types carry:
//!
//! - `PAYMENT.CAPTURE.REFUNDED`, a refund the shop made: read as a refund
//!   report with this one refund (`id`, `amount`, `status`) and, when
//!   PayPal sends it, the running total
//!   `seller_payable_breakdown.total_refunded_amount`;
//! - `PAYMENT.CAPTURE.REVERSED`, money PayPal took back itself: read as a
//!   dispute already lost, named by the refund's `id`.
//!
//! A refund does not carry the capture's `custom_id` or its order id: it has
//! a `custom_id` of its own, which is the capture's only when the shop passed
//! it again when refunding, and it names its capture only through its
//! `links[]` entry with `rel` `up`
//! (`https://api.paypal.com/v2/payments/captures/<capture id>`). That
//! capture id is what `PAYMENT.CAPTURE.COMPLETED` recorded as the payment's
//! gateway reference. The refund's `invoice_id` is not read: PayPal takes it
//! from the refund request, where a shop may put a credit note number.
//!
//! Nothing here fetches the capture from PayPal.

use chrono::{DateTime, Utc};
use payhook_domain::json::{invalid, nested, non_empty, text};
use payhook_domain::ports::ParseError;
use payhook_domain::{
    Dispute, DisputeStatus, Money, References, Refund, RefundReport, RefundStatus, Report,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::payload::{present, read_amount, AmountFields, Read};

/// The fields payhook reads from a v2 refund.
#[derive(Deserialize)]
struct RefundResource<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    status_details: Option<&'a RawValue>,
    #[serde(borrow)]
    custom_id: Option<&'a RawValue>,
    #[serde(borrow)]
    seller_payable_breakdown: Option<&'a RawValue>,
    #[serde(borrow)]
    links: Option<&'a RawValue>,
    #[serde(borrow)]
    create_time: Option<&'a RawValue>,
    #[serde(borrow)]
    update_time: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SellerPayableBreakdown<'a> {
    #[serde(borrow)]
    total_refunded_amount: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StatusDetails<'a> {
    #[serde(borrow)]
    reason: Option<&'a RawValue>,
}

/// One HATEOAS link.
#[derive(Deserialize)]
struct Link<'a> {
    #[serde(borrow)]
    rel: Option<&'a RawValue>,
    #[serde(borrow)]
    href: Option<&'a RawValue>,
}

const REFUND_AMOUNT: AmountFields = AmountFields {
    amount: "resource.amount",
    currency_code: "resource.amount.currency_code",
    value: "resource.amount.value",
};

const TOTAL_REFUNDED: AmountFields = AmountFields {
    amount: "resource.seller_payable_breakdown.total_refunded_amount",
    currency_code: "resource.seller_payable_breakdown.total_refunded_amount.currency_code",
    value: "resource.seller_payable_breakdown.total_refunded_amount.value",
};

/// A `PAYMENT.CAPTURE.REFUNDED` resource: one refund, the running total if
/// present, reported at the event's `create_time` (`event_time`), else the
/// refund's `update_time`, else its `create_time`.
///
/// Errors: `MissingField` for an absent `resource.id`, `resource.amount` or
/// `resource.status`, or when no time is given at all (naming
/// `create_time`); `InvalidField` for an empty id, a status other than
/// `COMPLETED`, `PENDING`, `FAILED` or `CANCELLED`, a time that is not
/// RFC 3339, or a wrongly typed field.
pub(crate) fn read_refund(
    raw: &RawValue,
    event_time: Option<&RawValue>,
) -> Result<Read, ParseError> {
    let resource: RefundResource<'_> = nested(raw, "resource")?;

    let refund_id = required_id(resource.id)?;
    let amount = read_amount(
        present(resource.amount).ok_or(ParseError::MissingField(REFUND_AMOUNT.amount))?,
        &REFUND_AMOUNT,
    )?;
    let status = text(resource.status, "resource.status")?
        .ok_or(ParseError::MissingField("resource.status"))?;
    let status = refund_status(&status).ok_or_else(|| {
        invalid(
            "resource.status",
            "expected COMPLETED, PENDING, FAILED or CANCELLED",
        )
    })?;
    let running_total = read_total_refunded(resource.seller_payable_breakdown)?;
    let reported_at = reported_at(event_time, &resource)?;
    let references = references(&resource)?;

    Ok(Read {
        references,
        amount: Some(amount),
        report: Some(Report::Refund(RefundReport {
            refunds: vec![Refund {
                refund_id,
                amount,
                status,
            }],
            running_total,
            reported_at,
        })),
    })
}

/// A `PAYMENT.CAPTURE.REVERSED` resource: a lost dispute whose id is the
/// refund's, for the refund's amount, with `status_details.reason` as its
/// reason when PayPal gives one.
///
/// The refund's status and running total are not read: the design counts
/// a reversal as a dispute the shop lost, not as a refund it made, and the
/// money is gone whatever they say. Errors: `MissingField` for an absent `resource.id` or
/// `resource.amount`; `InvalidField` for an empty id or a wrongly typed
/// field.
pub(crate) fn read_reversal(raw: &RawValue) -> Result<Read, ParseError> {
    let resource: RefundResource<'_> = nested(raw, "resource")?;

    let dispute_id = required_id(resource.id)?;
    let amount = read_amount(
        present(resource.amount).ok_or(ParseError::MissingField(REFUND_AMOUNT.amount))?,
        &REFUND_AMOUNT,
    )?;
    let reason = match present(resource.status_details) {
        Some(raw) => {
            let details: StatusDetails<'_> = nested(raw, "resource.status_details")?;
            non_empty(text(details.reason, "resource.status_details.reason")?)
        }
        None => None,
    };
    let references = references(&resource)?;

    Ok(Read {
        references,
        amount: Some(amount),
        report: Some(Report::Dispute(Dispute {
            dispute_id,
            status: DisputeStatus::Lost,
            amount,
            reason,
        })),
    })
}

/// `resource.id`, which must be present and not empty: it is the refund's
/// (or reversal's) identity in the ledger, so an event without one cannot
/// be counted exactly once.
fn required_id(raw: Option<&RawValue>) -> Result<String, ParseError> {
    let id = text(raw, "resource.id")?.ok_or(ParseError::MissingField("resource.id"))?;
    if id.is_empty() {
        return Err(invalid("resource.id", "must not be empty"));
    }
    Ok(id.into_owned())
}

/// PayPal's refund statuses. Exact names only, as PayPal sends them; its
/// British `CANCELLED` is the domain's `Canceled`.
fn refund_status(status: &str) -> Option<RefundStatus> {
    Some(match status {
        "COMPLETED" => RefundStatus::Succeeded,
        "PENDING" => RefundStatus::Pending,
        "FAILED" => RefundStatus::Failed,
        "CANCELLED" => RefundStatus::Canceled,
        _ => return None,
    })
}

/// `resource.seller_payable_breakdown.total_refunded_amount`, if present at
/// both levels.
fn read_total_refunded(breakdown: Option<&RawValue>) -> Result<Option<Money>, ParseError> {
    let Some(raw) = present(breakdown) else {
        return Ok(None);
    };
    let breakdown: SellerPayableBreakdown<'_> = nested(raw, "resource.seller_payable_breakdown")?;
    present(breakdown.total_refunded_amount)
        .map(|raw| read_amount(raw, &TOTAL_REFUNDED))
        .transpose()
}

/// The refund's own `custom_id` as the transaction id, and the capture id
/// of its `up` link as the gateway reference.
fn references(resource: &RefundResource<'_>) -> Result<References, ParseError> {
    Ok(References {
        transaction_id: non_empty(text(resource.custom_id, "resource.custom_id")?),
        external_id: None,
        gateway_reference: up_capture_id(resource.links)?,
    })
}

/// The capture id of the first `links[]` entry with `rel` `up` whose `href`
/// path ends in `/captures/<id>`.
///
/// Only the `up` entries' `href` is read; every entry must still be an
/// object with a string `rel`, or the field is named as invalid.
fn up_capture_id(links: Option<&RawValue>) -> Result<Option<String>, ParseError> {
    let Some(raw) = present(links) else {
        return Ok(None);
    };
    let field = "resource.links";
    if raw.get().trim_start().as_bytes().first() != Some(&b'[') {
        return Err(invalid(field, "expected an array"));
    }
    let entries: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|_| invalid(field, "expected an array"))?;
    for entry in entries {
        let link: Link<'_> = nested(entry, "resource.links[]")?;
        if text(link.rel, "resource.links[].rel")?.as_deref() != Some("up") {
            continue;
        }
        let href = text(link.href, "resource.links[].href")?;
        if let Some(capture_id) = href.as_deref().and_then(capture_id_of) {
            return Ok(Some(capture_id));
        }
    }
    Ok(None)
}

/// The capture id in a link to a capture, e.g. `0JF852973C016714D` in
/// `https://api.paypal.com/v2/payments/captures/0JF852973C016714D`.
///
/// The path must end in `captures/<id>`: an `up` link to an authorization
/// or an order names no capture, and the last segment of a longer path
/// (`.../captures/<id>/refund`) is an action, not an id.
fn capture_id_of(href: &str) -> Option<String> {
    let without_query = href.split(['?', '#']).next().unwrap_or_default();
    let path = match without_query.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |start| &rest[start..]),
        None => without_query,
    };
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let id = segments.next().filter(|id| !id.is_empty())?;
    (segments.next() == Some("captures")).then(|| id.to_owned())
}

/// When the refund report was true, by PayPal's clock: the event's
/// `create_time`, else the refund's `update_time`, else its `create_time`.
/// A time that is present but unreadable is an error, never skipped: the
/// same event must always be ordered the same way.
fn reported_at(
    event_time: Option<&RawValue>,
    resource: &RefundResource<'_>,
) -> Result<DateTime<Utc>, ParseError> {
    let candidates = [
        (event_time, "create_time"),
        (resource.update_time, "resource.update_time"),
        (resource.create_time, "resource.create_time"),
    ];
    for (raw, field) in candidates {
        if let Some(time) = text(raw, field)? {
            return read_time(&time, field);
        }
    }
    Err(ParseError::MissingField("create_time"))
}

/// An RFC 3339 time (PayPal writes `2018-08-15T19:14:04.543Z` on events and
/// `2018-08-15T12:13:29-07:00` on refunds), in UTC.
fn read_time(time: &str, field: &'static str) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_rfc3339(time)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| invalid(field, "expected an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_id_is_the_segment_after_captures() {
        let cases = [
            (
                "https://api.paypal.com/v2/payments/captures/0JF852973C016714D",
                Some("0JF852973C016714D"),
            ),
            (
                "https://api.sandbox.paypal.com/v2/payments/captures/9BT885563M275774M/",
                Some("9BT885563M275774M"),
            ),
            (
                "https://api.paypal.com/v2/payments/captures/CAP1?fields=id#top",
                Some("CAP1"),
            ),
            ("/v2/payments/captures/CAP2", Some("CAP2")),
            (
                "https://api.paypal.com/v2/payments/captures/CAP1/refund",
                None,
            ),
            (
                "https://api.paypal.com/v2/payments/authorizations/7W5147081L658180V",
                None,
            ),
            (
                "https://api.paypal.com/v2/checkout/orders/5O190127TN364715T",
                None,
            ),
            ("https://api.paypal.com/v2/payments/captures/", None),
            ("https://captures/CAP1", None),
            ("https://api.paypal.com", None),
            ("", None),
        ];
        for (href, expected) in cases {
            assert_eq!(capture_id_of(href).as_deref(), expected, "{href}");
        }
    }

    #[test]
    fn refund_statuses_are_exact() {
        assert_eq!(refund_status("COMPLETED"), Some(RefundStatus::Succeeded));
        assert_eq!(refund_status("PENDING"), Some(RefundStatus::Pending));
        assert_eq!(refund_status("FAILED"), Some(RefundStatus::Failed));
        assert_eq!(refund_status("CANCELLED"), Some(RefundStatus::Canceled));
        for other in ["completed", "CANCELED", "REFUNDED", ""] {
            assert_eq!(refund_status(other), None, "{other}");
        }
    }

    #[test]
    fn times_are_rfc_3339_with_any_offset() {
        let read = |time: &str| read_time(time, "create_time");
        assert_eq!(
            read("2018-08-15T12:13:29-07:00").unwrap(),
            read("2018-08-15T19:13:29Z").unwrap()
        );
        assert_eq!(
            read("2018-08-15T19:14:04.543Z").unwrap().timestamp_millis(),
            1_534_360_444_543
        );
        for bad in ["", "2018-08-15", "yesterday", "2018-08-15T19:14:04"] {
            assert!(
                matches!(
                    read(bad),
                    Err(ParseError::InvalidField {
                        field: "create_time",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }
}
