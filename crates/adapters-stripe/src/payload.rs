//! Stripe's event envelope (`{"id":"evt_...","type":"...","data":{"object":{...}}}`)
//! read into a [`GatewayEvent`].
//!
//! Read the way the other adapters read their payloads: derived structs
//! whose fields are borrowed raw JSON values, each field then read on its
//! own, so that an error names the exact field and never quotes the body.
//!
//! Stripe sends `type` after `data`, so while `data` is read it is not yet
//! known whether the event is handled, and an event type payhook does not
//! handle must never fail because of its `data` (Stripe sends dozens of
//! object shapes). The levels `data`, `data.object` and its `metadata` are
//! therefore read in one of two ways by the same [`read`]:
//!
//! - first in one pass, each level an [`ObjectOnly`] of its derived struct,
//!   which succeeds for every body Stripe sends;
//! - when that fails, again with each level kept as a borrowed [`RawValue`]
//!   and opened (with [`nested`]) only once the type says it is needed,
//!   which names the field at fault, or finds the event not handled.
//!
//! Reading the levels from raw values alone scans the object three times
//! and doubled the parse time (2.6 -> 5.3 µs for the 2.2 KB
//! `payment_intent.succeeded` fixture), past the 5 µs budget of verify and
//! parse in docs/performance.md; the one pass keeps a single scan on the
//! path every real delivery takes.
//!
//! A body that is not UTF-8 anywhere is malformed, even in a member nobody
//! reads: it is checked whole before anything is parsed.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use payhook_domain::json::{describe, invalid, nested, non_empty, starts_an_object, text};
use payhook_domain::ports::ParseError;
use payhook_domain::{
    Currency, Dispute, DisputeStatus, EventKind, GatewayEvent, Money, MoneyError, References,
    Refund, RefundReport, RefundStatus, Report,
};
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The top level of every Stripe event, with `data` as `D`: an
/// [`ObjectOnly`] in the one pass, a [`RawValue`] otherwise. A repeated
/// `id`, `type` or `data` is refused as malformed, as serde refuses any
/// repeated field.
#[derive(Deserialize)]
struct Envelope<'a, D> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    event_type: Option<&'a RawValue>,
    data: Option<D>,
    /// When Stripe created the event (unix seconds): the time a refund
    /// report was true, which orders running totals. Last and defaulted,
    /// so that a JSON array is still read as the three members before it
    /// and refused as not an object, not as too short.
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
}

/// `data`, with its `object` as `O`.
#[derive(Deserialize)]
struct Data<O> {
    object: Option<O>,
}

/// The members payhook reads from a PaymentIntent, a Charge, a Checkout
/// Session, a Refund or a Dispute, with `metadata` as `M`. One struct for
/// them all, because the one pass reads `data.object` before it knows the
/// type; each object simply lacks the members of the others.
#[derive(Deserialize)]
struct StripeObject<'a, M> {
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
    metadata: Option<M>,
    #[serde(borrow)]
    captured: Option<&'a RawValue>,
    #[serde(borrow)]
    amount_total: Option<&'a RawValue>,
    #[serde(borrow)]
    payment_status: Option<&'a RawValue>,
    #[serde(borrow)]
    client_reference_id: Option<&'a RawValue>,
    #[serde(borrow)]
    amount_refunded: Option<&'a RawValue>,
    /// A Refund's or a Dispute's charge: their reference when there is no
    /// PaymentIntent (a charge of the legacy Charges API).
    #[serde(borrow)]
    charge: Option<&'a RawValue>,
    /// A Charge's list of refunds, kept raw in both ways of reading: only
    /// `charge.refunded` opens it, and every other charge event (which
    /// carries the list too, mostly empty) then pays for no allocation.
    #[serde(borrow)]
    refunds: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    reason: Option<&'a RawValue>,
}

/// A Charge's `refunds` list object (`{"object":"list","data":[...]}`).
#[derive(Deserialize)]
struct RefundList<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// The members payhook reads from one Refund of a Charge's `refunds.data`.
#[derive(Deserialize)]
struct ListedRefund<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    currency: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
}

/// An expanded object in place of its id: only the id is read.
#[derive(Deserialize)]
struct Expanded<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    transaction_id: Option<&'a RawValue>,
}

/// The event read in one pass, every level opened.
type OnePass<'a> =
    Envelope<'a, ObjectOnly<Data<ObjectOnly<StripeObject<'a, ObjectOnly<Metadata<'a>>>>>>>;

/// The event with every level kept raw until [`read`] opens it.
type Raw<'a> = Envelope<'a, &'a RawValue>;

/// A JSON object read into `T`. Unlike `T` itself, never a JSON array:
/// serde would fill a struct from one field by field, which no gateway
/// means (see [`starts_an_object`]).
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = ObjectOnly<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ObjectOnly<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// One level of the event as [`read`] meets it: already open, or raw.
trait Level<'a, T> {
    /// The level's members; `None` for `null`, `InvalidField` naming
    /// `field` when it is not an object or repeats a member payhook reads.
    fn open(self, field: &'static str) -> Result<Option<T>, ParseError>;
}

impl<'a, T> Level<'a, T> for ObjectOnly<T> {
    fn open(self, _: &'static str) -> Result<Option<T>, ParseError> {
        Ok(Some(self.0))
    }
}

impl<'a, T: Deserialize<'a>> Level<'a, T> for &'a RawValue {
    fn open(self, field: &'static str) -> Result<Option<T>, ParseError> {
        // Stripe writes `null` for an object it has not got.
        if self.get() == "null" {
            return Ok(None);
        }
        nested(self, field).map(Some)
    }
}

/// The members of an optional level; `None` when it is absent or `null`.
fn open<'a, T, L: Level<'a, T>>(
    level: Option<L>,
    field: &'static str,
) -> Result<Option<T>, ParseError> {
    Ok(match level {
        Some(level) => level.open(field)?,
        None => None,
    })
}

/// What a handled event type says happened, and which object it carries.
#[derive(Clone, Copy)]
enum Handled {
    /// A PaymentIntent or Charge event; the type says what happened.
    Payment(EventKind, PaymentObject),
    /// A Checkout Session event.
    Session(SessionKind),
    /// `charge.refunded`: a Charge with its running total and, in the API
    /// versions that embed it, its list of refunds.
    RefundedCharge,
    /// `refund.*` and `charge.refund.updated`: one Refund object.
    Refund,
    /// `charge.dispute.*`: one Dispute object.
    Dispute,
}

/// The object of a [`Handled::Payment`] event.
#[derive(Clone, Copy)]
enum PaymentObject {
    PaymentIntent,
    Charge,
}

/// What a Checkout Session event says happened.
#[derive(Clone, Copy)]
enum SessionKind {
    /// The type alone says it.
    Is(EventKind),
    /// `checkout.session.completed`: the customer finished the checkout,
    /// but whether money moved is the session's `payment_status` (a bank
    /// debit completes the checkout `unpaid` and settles days later, with
    /// `async_payment_succeeded` or `_failed`).
    ByPaymentStatus,
}

/// The handled event types; `None` for all others.
fn classify(event_type: &str) -> Option<Handled> {
    use EventKind::{Canceled, Failed, Pending, Succeeded};
    use Handled::{Payment, Session};
    use PaymentObject::{Charge, PaymentIntent};
    Some(match event_type {
        "payment_intent.succeeded" => Payment(Succeeded, PaymentIntent),
        "payment_intent.payment_failed" => Payment(Failed, PaymentIntent),
        "payment_intent.canceled" => Payment(Canceled, PaymentIntent),
        "payment_intent.processing" | "payment_intent.requires_action" => {
            Payment(Pending, PaymentIntent)
        }
        "charge.succeeded" => Payment(Succeeded, Charge),
        "charge.failed" => Payment(Failed, Charge),
        "checkout.session.completed" => Session(SessionKind::ByPaymentStatus),
        "checkout.session.async_payment_succeeded" => Session(SessionKind::Is(Succeeded)),
        "checkout.session.async_payment_failed" => Session(SessionKind::Is(Failed)),
        "checkout.session.expired" => Session(SessionKind::Is(Canceled)),
        "charge.refunded" => Handled::RefundedCharge,
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            Handled::Refund
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.closed"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated" => Handled::Dispute,
        _ => return None,
    })
}

/// What a handled object says, once read.
struct Reading {
    kind: EventKind,
    references: References,
    amount: Option<Money>,
    report: Option<Report>,
}

/// Reads a Stripe event body. See the module documentation for what is read.
pub(crate) fn parse(body: &[u8]) -> Result<GatewayEvent, ParseError> {
    // serde_json checks the UTF-8 only of the strings it hands over, not of
    // the members skipped unread; checking the whole body first makes a
    // body that is not UTF-8 malformed wherever the bad byte is, and lets
    // serde_json skip its own per-string check.
    let json = std::str::from_utf8(body)
        .map_err(|error| ParseError::Malformed(describe_not_utf8(body, error.valid_up_to())))?;
    // Checked after the parse so that invalid JSON is reported as such; the
    // derived `Envelope` would also accept `[id, type, data]`.
    let object = || {
        if starts_an_object(body) {
            Ok(())
        } else {
            Err(ParseError::Malformed("expected a JSON object".to_owned()))
        }
    };
    if let Ok(envelope) = serde_json::from_str::<OnePass<'_>>(json) {
        object()?;
        return read(envelope);
    }
    // The one pass failed: the body is not JSON, or a level is not what a
    // handled event needs. Whether that matters depends on the type.
    let envelope: Raw<'_> = serde_json::from_str(json)
        .map_err(|error| ParseError::Malformed(describe(&error, "an event object")))?;
    object()?;
    read::<&RawValue, &RawValue, &RawValue>(envelope)
}

/// The event from its envelope, opening `data`, `data.object` and
/// `metadata` only as far as the event type needs them. The same checks in
/// the same order whatever the levels are, so both ways of reading them
/// give the same answer for a body both can read.
fn read<'a, D, O, M>(envelope: Envelope<'a, D>) -> Result<GatewayEvent, ParseError>
where
    D: Level<'a, Data<O>>,
    O: Level<'a, StripeObject<'a, M>>,
    M: Level<'a, Metadata<'a>>,
{
    let event_id = text(envelope.id, "id")?.ok_or(ParseError::MissingField("id"))?;
    if event_id.is_empty() {
        return Err(invalid("id", "must not be empty"));
    }
    let event_type = text(envelope.event_type, "type")?.ok_or(ParseError::MissingField("type"))?;
    if event_type.is_empty() {
        return Err(invalid("type", "must not be empty"));
    }

    let Some(handled) = classify(&event_type) else {
        return Ok(not_handled(event_id, event_type));
    };

    let object = match open(envelope.data, "data")? {
        Some(data) => open(data.object, "data.object")?,
        None => None,
    };
    let object = object.ok_or(ParseError::MissingField("data.object"))?;
    let reading = match handled {
        Handled::Payment(kind, payment_object) => {
            match read_payment(kind, payment_object, &event_type, object)? {
                Some(reading) => reading,
                None => return Ok(not_handled(event_id, event_type)),
            }
        }
        Handled::Session(session_kind) => read_session(session_kind, object)?,
        Handled::RefundedCharge => read_refunded_charge(envelope.created, object)?,
        Handled::Refund => read_refund(envelope.created, object)?,
        Handled::Dispute => read_dispute(object)?,
    };

    Ok(GatewayEvent {
        gateway: crate::NAME.to_owned(),
        event_id: event_id.into_owned(),
        event_type: event_type.into_owned(),
        kind: reading.kind,
        references: reading.references,
        amount: reading.amount,
        report: reading.report,
    })
}

/// A PaymentIntent or Charge event; `None` when it turns out not to be
/// one payhook acts on (an uncaptured charge).
fn read_payment<'a, M: Level<'a, Metadata<'a>>>(
    kind: EventKind,
    payment_object: PaymentObject,
    event_type: &str,
    object: StripeObject<'a, M>,
) -> Result<Option<Reading>, ParseError> {
    let StripeObject {
        id,
        amount,
        amount_received,
        currency,
        payment_intent,
        metadata,
        captured,
        ..
    } = object;

    // A charge made with manual capture reports `charge.succeeded` when it is
    // only authorised (`captured: false`): no money has moved yet, so it
    // must not confirm the order. `payment_intent.succeeded` (or a later
    // capture) does.
    if matches!(payment_object, PaymentObject::Charge)
        && kind == EventKind::Succeeded
        && captured.map(RawValue::get) == Some("false")
    {
        return Ok(None);
    }

    let own_id = non_empty(text(id, "data.object.id")?);
    let payment_intent_id = match payment_object {
        PaymentObject::PaymentIntent => own_id.clone(),
        PaymentObject::Charge => non_empty(text(payment_intent, "data.object.payment_intent")?),
    };
    let transaction_id = metadata_transaction_id(metadata)?;

    let received = if event_type == "payment_intent.succeeded" {
        amount_received
    } else {
        None
    };
    let amount = read_amount(received, amount, currency)?;

    // The PaymentIntent id is the reference every later event of the
    // payment carries (charges, refunds, disputes), and the one a
    // Checkout Session event records on the payment; a charge made
    // without one (the legacy Charges API) is known by its own id.
    let gateway_reference = payment_intent_id.clone().or(own_id);
    Ok(Some(Reading {
        kind,
        references: References {
            transaction_id,
            external_id: payment_intent_id,
            gateway_reference,
        },
        amount: Some(amount),
        report: None,
    }))
}

/// A Checkout Session event: the shop's id from the session's metadata or
/// its `client_reference_id`, the session id as the external id (a shop
/// marks its payment pending with it before any PaymentIntent exists), and
/// the session's PaymentIntent as the gateway reference, so that the
/// store learns it and later events naming only `pi_...` find the payment.
fn read_session<'a, M: Level<'a, Metadata<'a>>>(
    session_kind: SessionKind,
    object: StripeObject<'a, M>,
) -> Result<Reading, ParseError> {
    let StripeObject {
        id,
        currency,
        payment_intent,
        metadata,
        amount_total,
        payment_status,
        client_reference_id,
        ..
    } = object;

    let kind = match session_kind {
        SessionKind::Is(kind) => kind,
        SessionKind::ByPaymentStatus => completed_kind(payment_status)?,
    };
    let session_id = non_empty(text(id, "data.object.id")?);
    // Both are read, so a wrongly typed one is refused whichever is set.
    // The metadata wins: it is where the PaymentIntent events carry the
    // shop's id too, and a shop may use `client_reference_id` for its own
    // cart or customer reference.
    let from_metadata = metadata_transaction_id(metadata)?;
    let client_reference = non_empty(text(
        client_reference_id,
        "data.object.client_reference_id",
    )?);
    // Null until the customer confirms a payment, so an expired or
    // unpaid session may have none.
    let payment_intent_id = expandable_id(
        payment_intent,
        "data.object.payment_intent",
        "data.object.payment_intent.id",
    )?;
    // Null when the session has no total (no line items priced yet), which
    // is no amount to compare, not a malformed event.
    let amount = match minor_units(amount_total, "data.object.amount_total")? {
        Some(minor) => Some(to_money(
            minor,
            "data.object.amount_total",
            currency,
            "data.object.currency",
        )?),
        None => None,
    };

    Ok(Reading {
        kind,
        references: References {
            transaction_id: from_metadata.or(client_reference),
            external_id: session_id,
            gateway_reference: payment_intent_id,
        },
        amount,
        report: None,
    })
}

/// Where the members of one refund sit in the event, so that an error names
/// the member at fault: the object of a Refund event, or an entry of a
/// Charge's `refunds.data`.
struct RefundFields {
    id: &'static str,
    amount: &'static str,
    currency: &'static str,
    status: &'static str,
}

/// The Refund of `refund.*` and `charge.refund.updated`.
const OWN_REFUND: RefundFields = RefundFields {
    id: "data.object.id",
    amount: "data.object.amount",
    currency: "data.object.currency",
    status: "data.object.status",
};

/// An entry of `charge.refunded`'s `data.object.refunds.data`.
const LISTED_REFUND: RefundFields = RefundFields {
    id: "data.object.refunds.data[].id",
    amount: "data.object.refunds.data[].amount",
    currency: "data.object.refunds.data[].currency",
    status: "data.object.refunds.data[].status",
};

/// `charge.refunded`: the Charge's `amount_refunded` as the running total
/// (everything refunded so far, in the charge's currency), plus each
/// refund of `refunds.data` when the event embeds the list (API versions
/// before 2022-11-15 always do; later ones only when it is expanded). Both
/// go into one report, which
/// the domain's ledger counts once per refund id, so a refund also
/// reported by `refund.created` is not counted twice.
///
/// A charge names the shop's id in its metadata and its PaymentIntent,
/// which is both the external id a shop records and the reference the
/// PaymentIntent events taught the store.
fn read_refunded_charge<'a, M: Level<'a, Metadata<'a>>>(
    created: Option<&RawValue>,
    object: StripeObject<'a, M>,
) -> Result<Reading, ParseError> {
    let StripeObject {
        id,
        currency,
        payment_intent,
        metadata,
        amount_refunded,
        refunds,
        ..
    } = object;

    let transaction_id = metadata_transaction_id(metadata)?;
    let payment_intent_id = non_empty(text(payment_intent, "data.object.payment_intent")?);
    // A charge without a PaymentIntent (the legacy Charges API) is known by
    // its own id, as for `charge.succeeded`.
    let reference = payment_intent_id
        .clone()
        .or(non_empty(text(id, "data.object.id")?));
    const TOTAL: &str = "data.object.amount_refunded";
    let total = minor_units(amount_refunded, TOTAL)?.ok_or(ParseError::MissingField(TOTAL))?;
    let running_total = to_money(total, TOTAL, currency, "data.object.currency")?;
    let refunds = listed_refunds(refunds)?;
    let reported_at = event_time(created)?;

    Ok(Reading {
        kind: EventKind::Refund,
        references: References {
            transaction_id,
            external_id: payment_intent_id,
            gateway_reference: reference,
        },
        amount: Some(running_total),
        report: Some(Report::Refund(RefundReport {
            refunds,
            running_total: Some(running_total),
            reported_at,
        })),
    })
}

/// The refunds of a Charge's `refunds` list; none when the list is absent
/// or `null` (the API versions that no longer embed it), or empty.
///
/// A list holds at most ten refunds (`has_more` says when there were
/// more); those left out still count through `amount_refunded`.
fn listed_refunds(list: Option<&RawValue>) -> Result<Vec<Refund>, ParseError> {
    const LIST: &str = "data.object.refunds";
    const DATA: &str = "data.object.refunds.data";
    let Some(list) = list.filter(|list| list.get() != "null") else {
        return Ok(Vec::new());
    };
    let list: RefundList<'_> = nested(list, LIST)?;
    let Some(data) = list.data.filter(|data| data.get() != "null") else {
        return Ok(Vec::new());
    };
    let entries: Vec<&RawValue> =
        serde_json::from_str(data.get()).map_err(|_| invalid(DATA, "expected an array"))?;
    entries
        .into_iter()
        .map(|entry| {
            let ListedRefund {
                id,
                amount,
                currency,
                status,
            } = nested(entry, "data.object.refunds.data[]")?;
            refund(id, amount, currency, status, &LISTED_REFUND)
        })
        .collect()
}

/// `refund.created`, `refund.updated`, `refund.failed` and
/// `charge.refund.updated`: one refund, as its `status` says it stands
/// (the type only says that something changed). The shop's id is looked
/// for in the refund's own metadata, where a shop that creates refunds
/// through the API may put it; a refund made in the dashboard has none,
/// and its PaymentIntent finds the payment.
fn read_refund<'a, M: Level<'a, Metadata<'a>>>(
    created: Option<&RawValue>,
    object: StripeObject<'a, M>,
) -> Result<Reading, ParseError> {
    let StripeObject {
        id,
        amount,
        currency,
        payment_intent,
        metadata,
        status,
        charge,
        ..
    } = object;

    let transaction_id = metadata_transaction_id(metadata)?;
    let payment_intent_id = non_empty(text(payment_intent, "data.object.payment_intent")?);
    let reference = payment_intent_id.clone().or(expandable_id(
        charge,
        "data.object.charge",
        "data.object.charge.id",
    )?);
    let refund = refund(id, amount, currency, status, &OWN_REFUND)?;
    let reported_at = event_time(created)?;

    Ok(Reading {
        kind: EventKind::Refund,
        references: References {
            transaction_id,
            external_id: payment_intent_id,
            gateway_reference: reference,
        },
        amount: Some(refund.amount),
        report: Some(Report::Refund(RefundReport {
            refunds: vec![refund],
            running_total: None,
            reported_at,
        })),
    })
}

/// One refund: its id, amount, currency and status are all required,
/// since a refund the ledger cannot tell apart or count is no report.
fn refund(
    id: Option<&RawValue>,
    amount: Option<&RawValue>,
    currency: Option<&RawValue>,
    status: Option<&RawValue>,
    fields: &RefundFields,
) -> Result<Refund, ParseError> {
    let refund_id = non_empty(text(id, fields.id)?).ok_or(ParseError::MissingField(fields.id))?;
    let minor =
        minor_units(amount, fields.amount)?.ok_or(ParseError::MissingField(fields.amount))?;
    let amount = to_money(minor, fields.amount, currency, fields.currency)?;
    let status = refund_status(status, fields.status)?;
    Ok(Refund {
        refund_id,
        amount,
        status,
    })
}

/// A Refund's `status`. Stripe documents five values; any other is
/// refused rather than guessed at, since counting a refund that did not
/// happen (or not counting one that did) misstates the shop's books.
fn refund_status(
    status: Option<&RawValue>,
    field: &'static str,
) -> Result<RefundStatus, ParseError> {
    let status = text(status, field)?.ok_or(ParseError::MissingField(field))?;
    match &*status {
        // `requires_action`: the customer must give details (a bank
        // account) before the money can go back; nothing went back yet.
        "pending" | "requires_action" => Ok(RefundStatus::Pending),
        "succeeded" => Ok(RefundStatus::Succeeded),
        "failed" => Ok(RefundStatus::Failed),
        "canceled" => Ok(RefundStatus::Canceled),
        _ => Err(invalid(
            field,
            "expected pending, requires_action, succeeded, failed or canceled",
        )),
    }
}

/// `charge.dispute.*`: the Dispute as its `status` says it stands. A
/// dispute carries no shop id (its metadata is the dispute's own), so its
/// PaymentIntent finds the payment.
fn read_dispute<M>(object: StripeObject<'_, M>) -> Result<Reading, ParseError> {
    let StripeObject {
        id,
        amount,
        currency,
        payment_intent,
        status,
        reason,
        charge,
        ..
    } = object;

    let payment_intent_id = non_empty(text(payment_intent, "data.object.payment_intent")?);
    let reference = payment_intent_id.clone().or(expandable_id(
        charge,
        "data.object.charge",
        "data.object.charge.id",
    )?);
    let dispute_id =
        non_empty(text(id, "data.object.id")?).ok_or(ParseError::MissingField("data.object.id"))?;
    let minor = minor_units(amount, "data.object.amount")?
        .ok_or(ParseError::MissingField("data.object.amount"))?;
    let amount = to_money(
        minor,
        "data.object.amount",
        currency,
        "data.object.currency",
    )?;
    let status = dispute_status(status)?;
    let reason = non_empty(text(reason, "data.object.reason")?);

    Ok(Reading {
        kind: EventKind::Dispute,
        references: References {
            transaction_id: None,
            external_id: payment_intent_id,
            gateway_reference: reference,
        },
        amount: Some(amount),
        report: Some(Report::Dispute(Dispute {
            dispute_id,
            status,
            amount,
            reason,
        })),
    })
}

/// A Dispute's `status`. The `warning_` statuses are an inquiry before any
/// chargeback; one that ends without becoming a chargeback is
/// `warning_closed`. Any other value is refused rather than guessed at:
/// taking an unknown status for final would hide a dispute still open.
fn dispute_status(status: Option<&RawValue>) -> Result<DisputeStatus, ParseError> {
    const FIELD: &str = "data.object.status";
    let status = text(status, FIELD)?.ok_or(ParseError::MissingField(FIELD))?;
    match &*status {
        "warning_needs_response" | "warning_under_review" | "needs_response" | "under_review" => {
            Ok(DisputeStatus::Open)
        }
        "won" => Ok(DisputeStatus::Won),
        "lost" => Ok(DisputeStatus::Lost),
        "warning_closed" => Ok(DisputeStatus::Closed),
        _ => Err(invalid(
            FIELD,
            "expected warning_needs_response, warning_under_review, warning_closed, \
             needs_response, under_review, won or lost",
        )),
    }
}

/// The event's `created`, when Stripe says the report was true: unix
/// seconds, as Stripe writes every time.
fn event_time(created: Option<&RawValue>) -> Result<DateTime<Utc>, ParseError> {
    const FIELD: &str = "created";
    let seconds = match created {
        Some(raw) => serde_json::from_str::<Option<i64>>(raw.get())
            .map_err(|_| invalid(FIELD, "expected unix seconds"))?,
        None => None,
    };
    let seconds = seconds.ok_or(ParseError::MissingField(FIELD))?;
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| invalid(FIELD, "out of range"))
}

/// The kind of a `checkout.session.completed` by its `payment_status`.
/// Stripe documents exactly three values; any other is refused rather
/// than guessed at, since guessing wrong would confirm an unpaid order.
fn completed_kind(payment_status: Option<&RawValue>) -> Result<EventKind, ParseError> {
    const FIELD: &str = "data.object.payment_status";
    let status = text(payment_status, FIELD)?.ok_or(ParseError::MissingField(FIELD))?;
    match &*status {
        "paid" | "no_payment_required" => Ok(EventKind::Succeeded),
        "unpaid" => Ok(EventKind::Pending),
        _ => Err(invalid(
            FIELD,
            "expected paid, unpaid or no_payment_required",
        )),
    }
}

/// `metadata.transaction_id`, payhook's `TXN-...` as the shop passed it.
fn metadata_transaction_id<'a, M: Level<'a, Metadata<'a>>>(
    metadata: Option<M>,
) -> Result<Option<String>, ParseError> {
    Ok(match open(metadata, "data.object.metadata")? {
        Some(metadata) => non_empty(text(
            metadata.transaction_id,
            "data.object.metadata.transaction_id",
        )?),
        None => None,
    })
}

/// The id in an expandable member: Stripe writes the id, or, when asked to
/// expand it, the object itself, whose `id` it is.
pub(crate) fn expandable_id(
    raw: Option<&RawValue>,
    field: &'static str,
    id_field: &'static str,
) -> Result<Option<String>, ParseError> {
    match raw {
        Some(raw) if starts_an_object(raw.get().as_bytes()) => {
            let expanded: Expanded<'_> = nested(raw, field)?;
            Ok(non_empty(text(expanded.id, id_field)?))
        }
        _ => Ok(non_empty(text(raw, field)?)),
    }
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
        report: None,
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
    to_money(stripe_minor, amount_field, currency, "data.object.currency")
}

/// `stripe_minor` of `currency` (read from `currency_field`) in Stripe's
/// minor unit, read from `amount_field`, as payhook's money.
pub(crate) fn to_money(
    stripe_minor: i64,
    amount_field: &'static str,
    currency: Option<&RawValue>,
    currency_field: &'static str,
) -> Result<Money, ParseError> {
    let code = text(currency, currency_field)?.ok_or(ParseError::MissingField(currency_field))?;
    let currency = Currency::parse(&code).map_err(|source| ParseError::Money {
        field: currency_field,
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
pub(crate) fn minor_units(
    raw: Option<&RawValue>,
    field: &'static str,
) -> Result<Option<i64>, ParseError> {
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

/// `Malformed`'s text for a body that is not UTF-8 at byte `index`, placed
/// the way serde_json places its errors (1-based line, column counted in
/// bytes), and like them never quoting the body.
pub(crate) fn describe_not_utf8(body: &[u8], index: usize) -> String {
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

    /// Every fixture, each shaped like a real Stripe event.
    const FIXTURES: [&str; 22] = [
        include_str!("../tests/fixtures/payment_intent.succeeded.json"),
        include_str!("../tests/fixtures/payment_intent.payment_failed.json"),
        include_str!("../tests/fixtures/payment_intent.canceled.json"),
        include_str!("../tests/fixtures/payment_intent.processing.json"),
        include_str!("../tests/fixtures/payment_intent.requires_action.json"),
        include_str!("../tests/fixtures/charge.succeeded.json"),
        include_str!("../tests/fixtures/charge.failed.json"),
        include_str!("../tests/fixtures/checkout.session.completed.json"),
        include_str!("../tests/fixtures/checkout.session.async_payment_succeeded.json"),
        include_str!("../tests/fixtures/checkout.session.async_payment_failed.json"),
        include_str!("../tests/fixtures/checkout.session.expired.json"),
        include_str!("../tests/fixtures/customer.created.json"),
        include_str!("../tests/fixtures/charge.refunded.json"),
        include_str!("../tests/fixtures/refund.created.json"),
        include_str!("../tests/fixtures/refund.updated.json"),
        include_str!("../tests/fixtures/refund.failed.json"),
        include_str!("../tests/fixtures/charge.refund.updated.json"),
        include_str!("../tests/fixtures/charge.dispute.created.json"),
        include_str!("../tests/fixtures/charge.dispute.updated.json"),
        include_str!("../tests/fixtures/charge.dispute.closed.json"),
        include_str!("../tests/fixtures/charge.dispute.funds_withdrawn.json"),
        include_str!("../tests/fixtures/charge.dispute.funds_reinstated.json"),
    ];

    #[test]
    fn real_events_are_read_in_one_pass() {
        for fixture in FIXTURES {
            assert!(serde_json::from_str::<OnePass<'_>>(fixture).is_ok());
        }
    }

    #[test]
    fn both_ways_of_reading_the_levels_agree_where_both_can() {
        let objects = [
            r#"{"id":"ch_1","payment_intent":"pi_1","amount":100,"currency":"usd","captured":false}"#,
            r#"{"id":"pi_1","amount":15000,"amount_received":9000,"currency":"isk","metadata":{"transaction_id":"TXN-1"}}"#,
            r#"{"id":"pi_1","amount":-1,"currency":"usd","metadata":null}"#,
            r#"{"id":5,"amount":1,"currency":"usd","metadata":{"transaction_id":""}}"#,
            r#"{"amount":1,"currency":"xyz"}"#,
            r#"null"#,
            r#"{"id":"cs_1","amount_total":1500,"currency":"usd","payment_status":"paid","payment_intent":"pi_1","client_reference_id":"TXN-1"}"#,
            r#"{"id":"cs_1","amount_total":null,"currency":null,"payment_status":"unpaid","payment_intent":{"id":"pi_1"},"metadata":{"transaction_id":"TXN-1"}}"#,
            r#"{"id":"cs_1","amount_total":1,"currency":"usd","payment_status":"later","payment_intent":[],"client_reference_id":7}"#,
            r#"{"id":"ch_1","amount":100,"amount_refunded":40,"currency":"usd","payment_intent":"pi_1","refunds":{"object":"list","data":[{"id":"re_1","amount":40,"currency":"usd","status":"succeeded"}]}}"#,
            r#"{"id":"ch_1","amount_refunded":40,"currency":"usd","refunds":{"data":[{"id":"re_1","id":"re_2"}]}}"#,
            r#"{"id":"ch_1","amount_refunded":40,"currency":"usd","refunds":{"data":{"id":"re_1"}}}"#,
            r#"{"id":"re_1","amount":40,"currency":"usd","status":"requires_action","payment_intent":"pi_1","metadata":{"transaction_id":"TXN-1"}}"#,
            r#"{"id":"re_1","amount":40,"currency":"jpy","status":"refunded"}"#,
            r#"{"id":"dp_1","amount":100,"currency":"usd","status":"warning_closed","reason":"general","payment_intent":"pi_1","metadata":{"transaction_id":7}}"#,
            r#"{"id":"dp_1","amount":100,"currency":"usd","status":"charge_refunded","reason":5}"#,
        ];
        let mut bodies: Vec<String> = FIXTURES.iter().map(|&fixture| fixture.to_owned()).collect();
        for object in objects {
            for event_type in [
                "charge.succeeded",
                "payment_intent.succeeded",
                "payment_intent.canceled",
                "checkout.session.completed",
                "checkout.session.expired",
                "charge.refunded",
                "refund.updated",
                "charge.dispute.closed",
                "invoice.paid",
            ] {
                bodies.push(format!(
                    r#"{{"id":"evt_1","data":{{"object":{object}}},"type":"{event_type}"}}"#
                ));
                bodies.push(format!(
                    r#"{{"id":"evt_1","created":1700000000,"data":{{"object":{object}}},"type":"{event_type}"}}"#
                ));
            }
        }
        for body in &bodies {
            let one_pass: OnePass<'_> = serde_json::from_str(body).unwrap();
            let raw: Raw<'_> = serde_json::from_str(body).unwrap();
            assert_eq!(
                read(one_pass),
                read::<&RawValue, &RawValue, &RawValue>(raw),
                "{body}"
            );
        }
    }

    #[test]
    fn undecodable_values_on_the_way_to_them_are_judged_by_the_event_type() {
        // `data` is kept raw until the type is known, so an unhandled event
        // never fails on it, as PayPal's never fails on its `resource`.
        for (data, field) in [
            (r#""\ud800""#, "data"),
            ("1e400", "data"),
            (r#"{"object":"\udc00"}"#, "data.object"),
            (r#"{"\ud800":1}"#, "data"),
            (r#"{"object":{"metadata":-1e400}}"#, "data.object.metadata"),
        ] {
            let ignored = format!(r#"{{"id":"evt_1","type":"invoice.paid","data":{data}}}"#);
            assert_eq!(
                parse(ignored.as_bytes()).unwrap().kind,
                EventKind::NotHandled,
                "{data}"
            );
            let handled = ignored.replace("invoice.paid", "charge.succeeded");
            match parse(handled.as_bytes()) {
                Err(ParseError::InvalidField { field: got, .. }) => {
                    assert_eq!(got, field, "{data}")
                }
                other => panic!("{data}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_completed_session_is_decided_by_its_payment_status() {
        let session = |status: &str| {
            parse_object(
                &format!(
                    r#"{{"id":"cs_1","amount_total":100,"currency":"usd","payment_status":{status}}}"#
                ),
                "checkout.session.completed",
            )
        };
        assert_eq!(session(r#""paid""#).unwrap().kind, EventKind::Succeeded);
        assert_eq!(
            session(r#""no_payment_required""#).unwrap().kind,
            EventKind::Succeeded
        );
        assert_eq!(session(r#""unpaid""#).unwrap().kind, EventKind::Pending);
        for unknown in [r#""Paid""#, r#""""#, r#""refunded""#] {
            assert_eq!(
                session(unknown),
                Err(invalid(
                    "data.object.payment_status",
                    "expected paid, unpaid or no_payment_required"
                )),
                "{unknown}"
            );
        }
        assert_eq!(
            session("null"),
            Err(ParseError::MissingField("data.object.payment_status"))
        );
        assert_eq!(
            session("true"),
            Err(invalid("data.object.payment_status", "expected a string"))
        );
    }

    #[test]
    fn only_the_completed_session_reads_its_payment_status() {
        // The other session types say what happened by their type alone.
        let object = r#"{"id":"cs_1","payment_status":"anything"}"#;
        for (event_type, kind) in [
            (
                "checkout.session.async_payment_succeeded",
                EventKind::Succeeded,
            ),
            ("checkout.session.async_payment_failed", EventKind::Failed),
            ("checkout.session.expired", EventKind::Canceled),
        ] {
            assert_eq!(parse_object(object, event_type).unwrap().kind, kind);
        }
    }

    #[test]
    fn a_session_payment_intent_may_be_an_id_or_an_expanded_object() {
        let with = |payment_intent: &str| {
            parse_object(
                &format!(
                    r#"{{"id":"cs_1","payment_status":"paid","payment_intent":{payment_intent}}}"#
                ),
                "checkout.session.completed",
            )
            .map(|event| event.references.gateway_reference)
        };
        assert_eq!(with(r#""pi_1""#), Ok(Some("pi_1".into())));
        assert_eq!(
            with(r#"{"id":"pi_1","object":"payment_intent","amount":100}"#),
            Ok(Some("pi_1".into()))
        );
        assert_eq!(with("null"), Ok(None));
        assert_eq!(with(r#"{"object":"payment_intent"}"#), Ok(None));
        assert_eq!(
            with(r#"{"id":5}"#),
            Err(invalid(
                "data.object.payment_intent.id",
                "expected a string"
            ))
        );
        assert_eq!(
            with(r#"{"id":"pi_1","id":"pi_2"}"#),
            Err(invalid("data.object.payment_intent", "has a duplicate key"))
        );
        assert_eq!(
            with("[]"),
            Err(invalid("data.object.payment_intent", "expected a string"))
        );
    }

    #[test]
    fn a_session_amount_is_its_total_in_stripes_minor_unit() {
        let with = |members: &str| {
            parse_object(
                &format!(r#"{{"id":"cs_1","payment_status":"paid",{members}}}"#),
                "checkout.session.completed",
            )
        };
        assert_eq!(
            with(r#""amount_total":50000,"currency":"isk""#)
                .unwrap()
                .amount,
            Some(Money::from_minor(500, currency("ISK")))
        );
        assert_eq!(
            with(r#""amount_total":null,"currency":"usd""#)
                .unwrap()
                .amount,
            None
        );
        assert_eq!(with(r#""currency":null"#).unwrap().amount, None);
        assert_eq!(
            with(r#""amount_total":100,"currency":null"#),
            Err(ParseError::MissingField("data.object.currency"))
        );
        assert!(matches!(
            with(r#""amount_total":-1,"currency":"usd""#),
            Err(ParseError::InvalidField {
                field: "data.object.amount_total",
                ..
            })
        ));
        assert!(matches!(
            with(r#""amount_total":12345,"currency":"isk""#),
            Err(ParseError::Money {
                field: "data.object.amount_total",
                source: MoneyError::TooPrecise { .. }
            })
        ));
    }

    #[test]
    fn a_charges_refund_list_may_be_absent_null_or_empty() {
        let with = |refunds: &str| {
            let object = format!(
                r#"{{"id":"ch_1","amount_refunded":40,"currency":"usd","payment_intent":"pi_1"{refunds}}}"#
            );
            let body = format!(
                r#"{{"id":"evt_1","created":1700000000,"type":"charge.refunded","data":{{"object":{object}}}}}"#
            );
            match parse(body.as_bytes())?.report {
                Some(Report::Refund(report)) => Ok(report.refunds),
                other => panic!("{refunds}: {other:?}"),
            }
        };
        for none in [
            "",
            r#","refunds":null"#,
            r#","refunds":{"object":"list"}"#,
            r#","refunds":{"data":null}"#,
            r#","refunds":{"object":"list","data":[],"has_more":false}"#,
        ] {
            assert_eq!(with(none), Ok(Vec::new()), "{none}");
        }
        for (refunds, field) in [
            (r#","refunds":[]"#, "data.object.refunds"),
            (r#","refunds":{"data":{}}"#, "data.object.refunds.data"),
            (r#","refunds":{"data":"re_1"}"#, "data.object.refunds.data"),
            (
                r#","refunds":{"data":["re_1"]}"#,
                "data.object.refunds.data[]",
            ),
            (
                r#","refunds":{"data":[{"id":"re_1","amount":1,"currency":"usd","status":"succeeded","status":"failed"}]}"#,
                "data.object.refunds.data[]",
            ),
        ] {
            match with(refunds) {
                Err(ParseError::InvalidField { field: got, .. }) => {
                    assert_eq!(got, field, "{refunds}")
                }
                other => panic!("{refunds}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_refund_report_is_dated_by_the_events_created() {
        let with = |created: &str| {
            let body = format!(
                r#"{{"id":"evt_1"{created},"type":"refund.created","data":{{"object":{{"id":"re_1","amount":40,"currency":"usd","status":"succeeded"}}}}}}"#
            );
            parse(body.as_bytes()).map(|event| match event.report {
                Some(Report::Refund(report)) => report.reported_at,
                other => panic!("{created}: {other:?}"),
            })
        };
        assert_eq!(
            with(r#","created":1700000000"#),
            Ok(DateTime::from_timestamp(1_700_000_000, 0).unwrap())
        );
        assert_eq!(with(""), Err(ParseError::MissingField("created")));
        assert_eq!(
            with(r#","created":null"#),
            Err(ParseError::MissingField("created"))
        );
        for wrong in ["1.5", "\"1700000000\"", "1e9", "{}"] {
            assert_eq!(
                with(&format!(r#","created":{wrong}"#)),
                Err(invalid("created", "expected unix seconds")),
                "{wrong}"
            );
        }
        assert_eq!(
            with(r#","created":9223372036854775807"#),
            Err(invalid("created", "out of range"))
        );
    }

    #[test]
    fn only_refunds_need_the_events_created() {
        // A dispute carries no time of its own, and a payment event never did.
        let dispute = r#"{"id":"dp_1","amount":100,"currency":"usd","status":"won"}"#;
        assert_eq!(
            parse_object(dispute, "charge.dispute.closed").unwrap().kind,
            EventKind::Dispute
        );
        let body = r#"{"id":"evt_1","created":"soon","type":"charge.failed","data":{"object":{"id":"ch_1","amount":1,"currency":"usd"}}}"#;
        assert_eq!(parse(body.as_bytes()).unwrap().kind, EventKind::Failed);
    }
}
