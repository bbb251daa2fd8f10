//! Rows as diesel reads and writes them, and their conversion to domain
//! values. A row that does not convert (unknown currency or status) means the
//! database was changed behind payhook's back: it is an error, not a default.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use payhook_domain::ports::{EventOutcome, EventSource, StoredEvent};
use payhook_domain::reconcile::ReconcileCheck;
use payhook_domain::{
    AmountMismatch, Currency, Dispute, DisputeStatus, EventKind, GatewayEvent, LedgerEntry, Money,
    NotificationKind, Order, OrderId, OutboxMessage, OutboxStatus, Payment, PaymentId, References,
    Refund, RefundStatus, RunningTotal,
};

use crate::report;
use crate::schema::{
    orders, outbox, payments, reconciliations, refunds, webhook_event_bodies, webhook_events,
};

/// A stored row that does not describe a valid domain value.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {table} row {id}: {reason}")]
pub struct CorruptRow {
    table: &'static str,
    id: i64,
    reason: String,
}

impl CorruptRow {
    pub(crate) fn new(table: &'static str, id: i64, reason: String) -> Self {
        Self { table, id, reason }
    }
}

/// PostgreSQL keeps microseconds, SQLite whatever text it is given: times
/// are cut to microseconds before they are stored or returned, so both
/// backends store the same value and a returned payment equals a re-read one.
pub(crate) fn stored_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

pub(crate) fn naive(at: DateTime<Utc>) -> NaiveDateTime {
    stored_precision(at).naive_utc()
}

fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(at, Utc)
}

pub(crate) fn money(
    table: &'static str,
    id: i64,
    minor: i64,
    code: &str,
) -> Result<Money, CorruptRow> {
    let currency = Currency::parse(code).map_err(|e| CorruptRow {
        table,
        id,
        reason: e.to_string(),
    })?;
    Ok(Money::from_minor(minor, currency))
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = orders)]
pub(crate) struct OrderRow {
    pub id: i64,
    pub client_id: String,
    pub total_minor: i64,
    pub currency: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub paid_minor: i64,
}

impl TryFrom<OrderRow> for Order {
    type Error = CorruptRow;
    fn try_from(row: OrderRow) -> Result<Self, CorruptRow> {
        Ok(Order {
            id: OrderId(row.id),
            total: money("orders", row.id, row.total_minor, &row.currency)?,
            paid_amount: money("orders", row.id, row.paid_minor, &row.currency)?,
            status: row
                .status
                .parse()
                .map_err(|e: payhook_domain::UnknownStatus| CorruptRow {
                    table: "orders",
                    id: row.id,
                    reason: e.to_string(),
                })?,
            client_id: row.client_id,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = orders)]
pub(crate) struct NewOrderRow<'a> {
    pub client_id: &'a str,
    pub total_minor: i64,
    pub currency: &'a str,
    pub status: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = payments)]
pub(crate) struct PaymentRow {
    pub id: i64,
    pub order_id: i64,
    pub transaction_id: String,
    pub payment_method: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub external_id: Option<String>,
    pub gateway_reference: Option<String>,
    pub mismatch_expected_minor: Option<i64>,
    pub mismatch_expected_currency: Option<String>,
    pub mismatch_received_minor: Option<i64>,
    pub mismatch_received_currency: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub refunded_minor: i64,
    pub refund_total_minor: Option<i64>,
    pub refund_total_at: Option<NaiveDateTime>,
    pub dispute_id: Option<String>,
    pub dispute_status: Option<String>,
    pub dispute_amount_minor: Option<i64>,
    pub dispute_currency: Option<String>,
    pub dispute_reason: Option<String>,
}

impl PaymentRow {
    /// The latest running total of refunds the gateway reported for this
    /// payment: the half of its refund ledger that lives in its row.
    pub(crate) fn running_total(&self) -> Result<Option<RunningTotal>, CorruptRow> {
        match (self.refund_total_minor, self.refund_total_at) {
            (Some(minor), Some(at)) => Ok(Some(RunningTotal {
                amount: money("payments", self.id, minor, &self.currency)?,
                reported_at: utc(at),
            })),
            (None, None) => Ok(None),
            _ => Err(CorruptRow::new(
                "payments",
                self.id,
                "a refund total without its time or back".into(),
            )),
        }
    }

    /// The payment's current dispute, from its `dispute_*` columns.
    fn dispute(&mut self) -> Result<Option<Dispute>, CorruptRow> {
        let id = self.id;
        let corrupt = |reason: String| CorruptRow::new("payments", id, reason);
        match (
            self.dispute_id.take(),
            self.dispute_status.as_deref(),
            self.dispute_amount_minor,
            self.dispute_currency.as_deref(),
        ) {
            (Some(dispute_id), Some(status), Some(minor), Some(code)) => Ok(Some(Dispute {
                dispute_id,
                status: DisputeStatus::parse(status)
                    .ok_or_else(|| corrupt(format!("unknown dispute status {status:?}")))?,
                amount: money("payments", id, minor, code)?,
                reason: self.dispute_reason.take(),
            })),
            (None, None, None, None) => Ok(None),
            _ => Err(corrupt("a dispute with some of its columns missing".into())),
        }
    }
}

impl TryFrom<PaymentRow> for Payment {
    type Error = CorruptRow;
    fn try_from(mut row: PaymentRow) -> Result<Self, CorruptRow> {
        let id = row.id;
        let dispute = row.dispute()?;
        let amount_mismatch = match (
            row.mismatch_expected_minor,
            row.mismatch_expected_currency.as_deref(),
            row.mismatch_received_minor,
            row.mismatch_received_currency.as_deref(),
        ) {
            (Some(em), Some(ec), Some(rm), Some(rc)) => Some(AmountMismatch {
                expected: money("payments", id, em, ec)?,
                received: money("payments", id, rm, rc)?,
            }),
            _ => None,
        };
        Ok(Payment {
            id: PaymentId(id),
            order_id: OrderId(row.order_id),
            amount: money("payments", id, row.amount_minor, &row.currency)?,
            status: row
                .status
                .parse()
                .map_err(|e: payhook_domain::UnknownStatus| CorruptRow {
                    table: "payments",
                    id,
                    reason: e.to_string(),
                })?,
            transaction_id: row.transaction_id,
            payment_method: row.payment_method,
            external_id: row.external_id,
            gateway_reference: row.gateway_reference,
            amount_mismatch,
            refunded_amount: money("payments", id, row.refunded_minor, &row.currency)?,
            dispute,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = payments)]
pub(crate) struct NewPaymentRow<'a> {
    pub order_id: i64,
    pub transaction_id: &'a str,
    pub payment_method: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub status: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub(crate) struct EventStatusRow {
    pub id: i64,
    pub outcome: String,
    pub payment_id: Option<i64>,
    pub attempts: i32,
}

/// A recorded event without its payload: what listings and replays read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub(crate) struct EventRow {
    pub id: i64,
    pub gateway: String,
    pub event_id: String,
    pub event_type: String,
    pub kind: String,
    pub outcome: String,
    pub payment_id: Option<i64>,
    pub ref_transaction_id: Option<String>,
    pub ref_external_id: Option<String>,
    pub ref_gateway_reference: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub attempts: i32,
    pub received_at: NaiveDateTime,
    pub processed_at: NaiveDateTime,
    pub report: Option<String>,
    pub source: String,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = CorruptRow;
    fn try_from(row: EventRow) -> Result<Self, CorruptRow> {
        let id = row.id;
        let corrupt = |reason: String| CorruptRow {
            table: "webhook_events",
            id,
            reason,
        };
        let kind = EventKind::parse(&row.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", row.kind)))?;
        let outcome = EventOutcome::parse(&row.outcome)
            .ok_or_else(|| corrupt(format!("unknown outcome {:?}", row.outcome)))?;
        let amount = match (row.amount_minor, row.currency.as_deref()) {
            (Some(minor), Some(code)) => Some(money("webhook_events", id, minor, code)?),
            (None, None) => None,
            _ => return Err(corrupt("an amount without a currency or back".into())),
        };
        let attempts = u32::try_from(row.attempts)
            .map_err(|_| corrupt(format!("negative attempts {}", row.attempts)))?;
        let source = EventSource::parse(&row.source)
            .ok_or_else(|| corrupt(format!("unknown source {:?}", row.source)))?;
        let report = row
            .report
            .as_deref()
            .map(report::from_json)
            .transpose()
            .map_err(|reason| corrupt(format!("unreadable report: {reason}")))?;
        Ok(StoredEvent {
            id,
            event: GatewayEvent {
                gateway: row.gateway,
                event_id: row.event_id,
                event_type: row.event_type,
                kind,
                references: References {
                    transaction_id: row.ref_transaction_id,
                    external_id: row.ref_external_id,
                    gateway_reference: row.ref_gateway_reference,
                },
                amount,
                report,
            },
            outcome,
            payment_id: row.payment_id.map(PaymentId),
            attempts,
            received_at: utc(row.received_at),
            processed_at: utc(row.processed_at),
            source,
        })
    }
}

/// `None` is written as NULL (the columns have no default), which keeps the
/// SQL the same for every event so that SQLite's statement cache holds it.
#[derive(Insertable)]
#[diesel(table_name = webhook_events, treat_none_as_default_value = false)]
pub(crate) struct NewEventRow<'a> {
    pub gateway: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub kind: &'a str,
    pub outcome: &'a str,
    pub ref_transaction_id: Option<&'a str>,
    pub ref_external_id: Option<&'a str>,
    pub ref_gateway_reference: Option<&'a str>,
    pub amount_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub attempts: i32,
    pub received_at: NaiveDateTime,
    pub processed_at: NaiveDateTime,
    pub report: Option<&'a str>,
    pub source: &'a str,
}

/// An event's raw body, inserted with its row (by the first delivery) and
/// deleted by the retention pruner: kept apart so that neither the
/// outcome's write nor the pruner ever rewrites the body.
#[derive(Insertable)]
#[diesel(table_name = webhook_event_bodies)]
pub(crate) struct NewEventBody<'a> {
    pub event_row: i64,
    pub received_at: NaiveDateTime,
    pub payload: &'a [u8],
}

/// One refund of a payment's ledger, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = refunds)]
pub(crate) struct RefundRow {
    pub id: i64,
    pub refund_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub status_at: NaiveDateTime,
    pub succeeded_at: Option<NaiveDateTime>,
}

impl TryFrom<RefundRow> for LedgerEntry {
    type Error = CorruptRow;
    fn try_from(row: RefundRow) -> Result<Self, CorruptRow> {
        let status = RefundStatus::parse(&row.status).ok_or_else(|| {
            CorruptRow::new(
                "refunds",
                row.id,
                format!("unknown status {:?}", row.status),
            )
        })?;
        Ok(LedgerEntry {
            refund: Refund {
                amount: money("refunds", row.id, row.amount_minor, &row.currency)?,
                refund_id: row.refund_id,
                status,
            },
            status_at: utc(row.status_at),
            succeeded_at: row.succeeded_at.map(utc),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = outbox)]
pub(crate) struct NewOutboxRow<'a> {
    pub kind: &'a str,
    pub order_id: i64,
    pub payment_id: i64,
    pub payload: &'a str,
    pub status: &'a str,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

/// An outbox row as the dispatcher reads it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub(crate) struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub order_id: i64,
    pub payment_id: i64,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

impl TryFrom<OutboxRow> for OutboxMessage {
    type Error = CorruptRow;

    fn try_from(row: OutboxRow) -> Result<Self, CorruptRow> {
        let corrupt = |reason: String| CorruptRow::new("outbox", row.id, reason);
        let kind = NotificationKind::parse(&row.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", row.kind)))?;
        let status = OutboxStatus::parse(&row.status)
            .ok_or_else(|| corrupt(format!("unknown status {:?}", row.status)))?;
        let attempts =
            u32::try_from(row.attempts).map_err(|_| corrupt("negative attempts".into()))?;
        Ok(Self {
            id: row.id,
            kind,
            order_id: OrderId(row.order_id),
            payment_id: PaymentId(row.payment_id),
            payload: row.payload,
            status,
            attempts,
            last_error: row.last_error,
            next_attempt_at: utc(row.next_attempt_at),
            created_at: utc(row.created_at),
            delivered_at: row.delivered_at.map(utc),
        })
    }
}

/// A payment's reconciliation state, as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = reconciliations)]
pub(crate) struct ReconcileRow {
    pub payment_id: i64,
    pub failures: i32,
    pub checked_at: Option<NaiveDateTime>,
    pub gateway_state: Option<String>,
    pub result: Option<String>,
}

impl ReconcileRow {
    /// The last check, `None` when the payment was claimed but never
    /// checked.
    pub(crate) fn last_check(self) -> Result<Option<ReconcileCheck>, CorruptRow> {
        let corrupt = |reason: String| CorruptRow::new("reconciliations", self.payment_id, reason);
        let failures = u32::try_from(self.failures)
            .map_err(|_| corrupt(format!("negative failures {}", self.failures)))?;
        match (self.checked_at, self.result) {
            (Some(checked_at), Some(result)) => Ok(Some(ReconcileCheck {
                checked_at: utc(checked_at),
                gateway_state: self.gateway_state,
                result,
                failures,
            })),
            (None, None) => Ok(None),
            _ => Err(corrupt("a check time without its result or back".into())),
        }
    }
}

/// A check as written: every column, `due_at` included.
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = reconciliations, primary_key(payment_id), treat_none_as_null = true)]
pub(crate) struct CheckRow<'a> {
    pub payment_id: i64,
    pub due_at: Option<NaiveDateTime>,
    pub failures: i32,
    pub checked_at: Option<NaiveDateTime>,
    pub gateway_state: Option<&'a str>,
    pub result: Option<&'a str>,
}
