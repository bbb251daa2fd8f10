//! PayPal's v1 dispute resource, carried by `CUSTOMER.DISPUTE.CREATED`,
//! `.UPDATED` and `.RESOLVED`, read as a dispute report.
//!
//! The dispute is `dispute_id`, `dispute_amount` and `reason`. Its status
//! comes from the event type, not from the resource's own `status` (PayPal's
//! `OPEN`, `WAITING_FOR_SELLER_RESPONSE`, `UNDER_REVIEW`, ... all mean it is
//! still open): `RESOLVED` is decided by `dispute_outcome.outcome_code`
//! (`RESOLVED_SELLER_FAVOUR` won, `RESOLVED_BUYER_FAVOUR` lost, anything
//! else, such as `CANCELED_BY_BUYER` or no outcome at all, closed), and the
//! other two types are open.
//!
//! The payment is found through the first disputed transaction:
//! `seller_transaction_id` is the capture id that `PAYMENT.CAPTURE.COMPLETED`
//! recorded as the gateway reference. PayPal's transaction info also has
//! `custom`, "a free-text field entered by the merchant during checkout",
//! which is where the capture's `custom_id` (payhook's `TXN-...`) shows up,
//! and `invoice_number`, the capture's `invoice_id`; they are read as the
//! transaction id in the same order as on a capture, so that a dispute names
//! its payment the same way the capture did. PayPal's own samples leave
//! them out, and then the capture id alone finds the payment.

use payhook_domain::json::{invalid, nested, non_empty, text};
use payhook_domain::ports::ParseError;
use payhook_domain::{Dispute, DisputeStatus, References, Report};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::payload::{present, read_amount, AmountFields, Read};

/// The fields payhook reads from a v1 dispute.
#[derive(Deserialize)]
struct DisputeResource<'a> {
    #[serde(borrow)]
    dispute_id: Option<&'a RawValue>,
    #[serde(borrow)]
    dispute_amount: Option<&'a RawValue>,
    #[serde(borrow)]
    reason: Option<&'a RawValue>,
    #[serde(borrow)]
    dispute_outcome: Option<&'a RawValue>,
    #[serde(borrow)]
    disputed_transactions: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DisputeOutcome<'a> {
    #[serde(borrow)]
    outcome_code: Option<&'a RawValue>,
}

/// The fields payhook reads from a disputed transaction.
#[derive(Deserialize)]
struct TransactionInfo<'a> {
    #[serde(borrow)]
    seller_transaction_id: Option<&'a RawValue>,
    #[serde(borrow)]
    custom: Option<&'a RawValue>,
    #[serde(borrow)]
    invoice_number: Option<&'a RawValue>,
}

const DISPUTE_AMOUNT: AmountFields = AmountFields {
    amount: "resource.dispute_amount",
    currency_code: "resource.dispute_amount.currency_code",
    value: "resource.dispute_amount.value",
};

/// A dispute resource; `resolved` for `CUSTOMER.DISPUTE.RESOLVED`.
///
/// Errors: `MissingField` for an absent `resource.dispute_id` or
/// `resource.dispute_amount` (a dispute is stored with its amount);
/// `InvalidField` for an empty dispute id or a wrongly typed field.
pub(crate) fn read_dispute(raw: &RawValue, resolved: bool) -> Result<Read, ParseError> {
    let resource: DisputeResource<'_> = nested(raw, "resource")?;

    let dispute_id = text(resource.dispute_id, "resource.dispute_id")?
        .ok_or(ParseError::MissingField("resource.dispute_id"))?;
    if dispute_id.is_empty() {
        return Err(invalid("resource.dispute_id", "must not be empty"));
    }
    let amount = read_amount(
        present(resource.dispute_amount).ok_or(ParseError::MissingField(DISPUTE_AMOUNT.amount))?,
        &DISPUTE_AMOUNT,
    )?;
    let reason = non_empty(text(resource.reason, "resource.reason")?);
    let status = if resolved {
        resolved_status(resource.dispute_outcome)?
    } else {
        DisputeStatus::Open
    };
    let references = read_references(resource.disputed_transactions)?;

    Ok(Read {
        references,
        amount: Some(amount),
        report: Some(Report::Dispute(Dispute {
            dispute_id: dispute_id.into_owned(),
            status,
            amount,
            reason,
        })),
    })
}

/// The final status of a resolved dispute, from its outcome code.
fn resolved_status(outcome: Option<&RawValue>) -> Result<DisputeStatus, ParseError> {
    let code = match present(outcome) {
        Some(raw) => {
            let outcome: DisputeOutcome<'_> = nested(raw, "resource.dispute_outcome")?;
            text(
                outcome.outcome_code,
                "resource.dispute_outcome.outcome_code",
            )?
        }
        None => None,
    };
    Ok(match code.as_deref() {
        Some("RESOLVED_SELLER_FAVOUR") => DisputeStatus::Won,
        Some("RESOLVED_BUYER_FAVOUR") => DisputeStatus::Lost,
        // Canceled by the buyer, accepted, denied, paid out, or no outcome
        // given: over, and decided for neither side.
        _ => DisputeStatus::Closed,
    })
}

/// The references of the first disputed transaction, if there is one.
fn read_references(transactions: Option<&RawValue>) -> Result<References, ParseError> {
    let Some(raw) = present(transactions) else {
        return Ok(References::default());
    };
    let field = "resource.disputed_transactions";
    if raw.get().trim_start().as_bytes().first() != Some(&b'[') {
        return Err(invalid(field, "expected an array"));
    }
    // Every element stays raw (unparsed) text; only the first is read, as
    // the design says: a payhook payment is one capture, and the lookup
    // can follow one set of references only.
    let transactions: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|_| invalid(field, "expected an array"))?;
    let Some(first) = transactions.first() else {
        return Ok(References::default());
    };
    let transaction: TransactionInfo<'_> = nested(first, "resource.disputed_transactions[0]")?;
    let transaction_id = non_empty(text(
        transaction.custom,
        "resource.disputed_transactions[0].custom",
    )?)
    .or(non_empty(text(
        transaction.invoice_number,
        "resource.disputed_transactions[0].invoice_number",
    )?));
    Ok(References {
        transaction_id,
        external_id: None,
        gateway_reference: non_empty(text(
            transaction.seller_transaction_id,
            "resource.disputed_transactions[0].seller_transaction_id",
        )?),
    })
}
