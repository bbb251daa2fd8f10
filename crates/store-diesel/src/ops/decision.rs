//! One decision's writes, described once and rendered for each backend.
//!
//! A decision writes the payment's columns (when it changes), the order's
//! status and paid sum (when a payment of it completes), one outbox row per
//! notification, the event's outcome and, for a refund report that changed
//! the payment's ledger, the refunds it changed and the running total.
//! [`DecisionWrites`] lists those writes: table, columns
//! (named by `schema`), bound values, and whether the decision makes each
//! one. Nothing else in the crate spells them out; two renderings read the
//! list:
//!
//! - on PostgreSQL, one statement of data-modifying CTEs (payment, order,
//!   first outbox row, event), where a write the decision does not make is
//!   a false condition, not a missing CTE: the text never varies, so the
//!   statement stays prepared ([`Combined`], static query id). Under load
//!   each statement costs PostgreSQL a round trip, a parse and a plan; perf
//!   showed that work, not the commits, bounding the rate. Further outbox
//!   rows follow as single statements, which keeps the decision's order,
//!   and so do the ledger's writes (refund reports only);
//! - on SQLite, one plain statement per write made ([`Single`]), which
//!   SQLite's statement cache keeps by its text.
//!
//! The event's write also answers, on both backends, whether any event of
//! the payment is waiting for it to complete (`RETURNING EXISTS (...)`), so
//! that a confirmation, the common path, learns there is nothing to apply
//! after it without a statement of its own. On PostgreSQL that statement's
//! snapshot is taken after the payment was locked, so it sees every such
//! event committed before.
//!
//! It decides nothing (that is `domain::decide`) and locks nothing (the
//! caller holds the rows).

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, HasSqlType, Integer, Nullable, Text, Timestamp};
use diesel::{Column, QueryResult, RunQueryDsl};
use payhook_domain::{
    Decision, LedgerEntry, Notification, OrderStatus, OrderUpdate, OutboxStatus, Payment,
    PaymentId, RefundLedger, RunningTotal,
};

use super::events::AWAITING_CONDITION;
use crate::conn::DbConn;
use crate::models::naive;
use crate::schema::{orders, outbox, payments, refunds, webhook_events};

/// A value bound into a write; `None` is NULL. A column always takes the
/// same variant, so a statement's parameter types never vary.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Text(Option<&'a str>),
    BigInt(Option<i64>),
    Integer(Option<i32>),
    Timestamp(Option<NaiveDateTime>),
}

/// `column = value`, the column's name taken from the schema.
type Assignment<'a> = (&'static str, Value<'a>);

fn text<'a, C: Column>(_column: C, value: impl Into<Option<&'a str>>) -> Assignment<'a> {
    (C::NAME, Value::Text(value.into()))
}

fn big_int<'a, C: Column>(_column: C, value: impl Into<Option<i64>>) -> Assignment<'a> {
    (C::NAME, Value::BigInt(value.into()))
}

fn integer<'a, C: Column>(_column: C, value: i32) -> Assignment<'a> {
    (C::NAME, Value::Integer(Some(value)))
}

fn timestamp<'a, C: Column>(_column: C, value: impl Into<Option<NaiveDateTime>>) -> Assignment<'a> {
    (C::NAME, Value::Timestamp(value.into()))
}

/// One write: `UPDATE table SET values WHERE filter` or, with an empty
/// filter, `INSERT INTO table (columns) VALUES (values)`, which `upsert`
/// turns into an upsert.
#[derive(Debug)]
pub(crate) struct Write<'a> {
    table: &'static str,
    values: Vec<Assignment<'a>>,
    /// Equalities joined by AND; empty for an insert.
    filter: Vec<Assignment<'a>>,
    /// Whether the decision makes this write.
    made: bool,
    /// For an insert: the unique key that identifies the row, and the
    /// columns an existing row takes from `values` (`ON CONFLICT (key) DO
    /// UPDATE SET column = excluded.column`); the others keep their value.
    upsert: Option<Upsert>,
}

/// The conflict clause of an upsert.
#[derive(Debug)]
struct Upsert {
    key: &'static [&'static str],
    updated: Vec<&'static str>,
}

impl Write<'_> {
    fn is_insert(&self) -> bool {
        self.filter.is_empty()
    }
}

/// The payment as the decision leaves it, written over its row.
pub(crate) fn payment_write(payment: &Payment, made: bool) -> Write<'_> {
    let mismatch = payment.amount_mismatch.as_ref();
    let dispute = payment.dispute.as_ref();
    Write {
        table: "payments",
        values: vec![
            text(payments::status, payment.status.as_str()),
            text(payments::external_id, payment.external_id.as_deref()),
            text(
                payments::gateway_reference,
                payment.gateway_reference.as_deref(),
            ),
            big_int(
                payments::mismatch_expected_minor,
                mismatch.map(|m| m.expected.minor()),
            ),
            text(
                payments::mismatch_expected_currency,
                mismatch.map(|m| m.expected.currency().code()),
            ),
            big_int(
                payments::mismatch_received_minor,
                mismatch.map(|m| m.received.minor()),
            ),
            text(
                payments::mismatch_received_currency,
                mismatch.map(|m| m.received.currency().code()),
            ),
            timestamp(payments::updated_at, naive(payment.updated_at)),
            big_int(payments::refunded_minor, payment.refunded_amount.minor()),
            text(payments::dispute_id, dispute.map(|d| d.dispute_id.as_str())),
            text(payments::dispute_status, dispute.map(|d| d.status.as_str())),
            big_int(
                payments::dispute_amount_minor,
                dispute.map(|d| d.amount.minor()),
            ),
            text(
                payments::dispute_currency,
                dispute.map(|d| d.amount.currency().code()),
            ),
            text(
                payments::dispute_reason,
                dispute.and_then(|d| d.reason.as_deref()),
            ),
        ],
        filter: vec![big_int(payments::id, payment.id.0)],
        made,
        upsert: None,
    }
}

/// The payment as a decision leaves it, with the running total of its
/// refunds as the decision leaves it too, written over its row when
/// either changed. The total is the half of the refund ledger that lives
/// in the payment's row; written here rather than by an `UPDATE` of its
/// own after the refunds, it costs a refund report neither a statement (a
/// round trip on PostgreSQL) nor a second version of the row.
fn decided_payment_write(
    payment: &Payment,
    running_total: Option<RunningTotal>,
    made: bool,
) -> Write<'_> {
    let mut write = payment_write(payment, made);
    write.values.extend([
        big_int(
            payments::refund_total_minor,
            running_total.map(|t| t.amount.minor()),
        ),
        timestamp(
            payments::refund_total_at,
            running_total.map(|t| naive(t.reported_at)),
        ),
    ]);
    write
}

/// The refund ledger's writes for a decision that changed it from
/// `before` to `after`: an upsert on `(payment_id, refund_id)` for each
/// refund that is new or changed, in the ledger's order (so a new refund's
/// row id follows the earlier ones'). The running total goes with the
/// payment's write ([`decided_payment_write`]).
fn ledger_writes<'a>(
    payment_id: PaymentId,
    before: &RefundLedger,
    after: &'a RefundLedger,
    now: NaiveDateTime,
) -> Vec<Write<'a>> {
    let changed = |entry: &&LedgerEntry| before.entry(&entry.refund.refund_id) != Some(*entry);
    after
        .entries
        .iter()
        .filter(changed)
        .map(|entry| refund_write(payment_id, entry, now))
        .collect()
}

/// One refund of the ledger, inserted or brought up to date.
fn refund_write(payment_id: PaymentId, entry: &LedgerEntry, now: NaiveDateTime) -> Write<'_> {
    let refund = &entry.refund;
    Write {
        table: "refunds",
        values: vec![
            big_int(refunds::payment_id, payment_id.0),
            text(refunds::refund_id, refund.refund_id.as_str()),
            big_int(refunds::amount_minor, refund.amount.minor()),
            text(refunds::currency, refund.amount.currency().code()),
            text(refunds::status, refund.status.as_str()),
            timestamp(refunds::status_at, naive(entry.status_at)),
            timestamp(refunds::succeeded_at, entry.succeeded_at.map(naive)),
            timestamp(refunds::created_at, now),
            timestamp(refunds::updated_at, now),
        ],
        filter: Vec::new(),
        made: true,
        upsert: Some(Upsert {
            key: &[refunds::payment_id::NAME, refunds::refund_id::NAME],
            updated: vec![
                refunds::amount_minor::NAME,
                refunds::currency::NAME,
                refunds::status::NAME,
                refunds::status_at::NAME,
                refunds::succeeded_at::NAME,
                refunds::updated_at::NAME,
            ],
        }),
    }
}

/// The order's status and paid sum as the decision leaves them. The order
/// row is locked with the payment, so the values are absolute; without an
/// update the same columns are bound (and not written) so that
/// PostgreSQL's statement keeps its shape.
fn order_write<'a>(order_id: i64, update: Option<&OrderUpdate>, now: NaiveDateTime) -> Write<'a> {
    Write {
        table: "orders",
        values: vec![
            text(
                orders::status,
                update.map_or(OrderStatus::Pending, |u| u.status).as_str(),
            ),
            big_int(
                orders::paid_minor,
                update.map_or(0, |u| u.paid_amount.minor()),
            ),
            timestamp(orders::updated_at, now),
        ],
        filter: vec![big_int(orders::id, order_id)],
        made: update.is_some(),
        upsert: None,
    }
}

/// One outbox row for `notification`; with `None`, the same columns bound
/// to NULL and not written (PostgreSQL's statement keeps its slot).
fn outbox_write<'a>(
    payment: &Payment,
    notification: Option<&'a Notification>,
    now: NaiveDateTime,
) -> Write<'a> {
    Write {
        table: "outbox",
        values: vec![
            text(outbox::kind, notification.map(|n| n.kind.as_str())),
            big_int(outbox::order_id, payment.order_id.0),
            big_int(outbox::payment_id, payment.id.0),
            text(outbox::payload, notification.map(|n| n.payload.as_str())),
            text(outbox::status, OutboxStatus::Pending.as_str()),
            integer(outbox::attempts, 0),
            timestamp(outbox::next_attempt_at, now),
            timestamp(outbox::created_at, now),
        ],
        filter: Vec::new(),
        made: notification.is_some(),
        upsert: None,
    }
}

/// The event's outcome and the payment it matched.
fn event_write<'a>(
    event_row: i64,
    outcome: &'a str,
    payment_id: i64,
    now: NaiveDateTime,
) -> Write<'a> {
    Write {
        table: "webhook_events",
        values: vec![
            text(webhook_events::outcome, outcome),
            big_int(webhook_events::payment_id, payment_id),
            timestamp(webhook_events::processed_at, now),
        ],
        filter: vec![big_int(webhook_events::id, event_row)],
        made: true,
        upsert: None,
    }
}

/// Everything one decision writes, in the order it is written.
#[derive(Debug)]
pub(crate) struct DecisionWrites<'a> {
    payment: Write<'a>,
    order: Write<'a>,
    /// The first notification's row (or its unmade slot).
    first_notification: Write<'a>,
    event: Write<'a>,
    /// The notifications after the first, in the decision's order.
    further_notifications: Vec<Write<'a>>,
    /// The refunds a refund report changed (its running total is written
    /// with the payment).
    ledger: Vec<Write<'a>>,
    /// The payment, named in PostgreSQL's question about waiting events.
    payment_id: Value<'a>,
}

impl<'a> DecisionWrites<'a> {
    /// The writes of `decision`, taken on `before` (the payment as read)
    /// and `ledger_before` (its refund ledger as read, which may lack the
    /// refunds rows when the event is no refund report: `decision.refunds`
    /// is `None` then) for the event row `event_row`.
    pub(crate) fn new(
        before: &Payment,
        ledger_before: &RefundLedger,
        decision: &'a Decision,
        event_row: i64,
        now: NaiveDateTime,
    ) -> Self {
        let after = &decision.payment;
        let mut notifications = decision.notifications.iter();
        let ledger = decision
            .refunds
            .as_ref()
            .map(|ledger| ledger_writes(after.id, ledger_before, ledger, now))
            .unwrap_or_default();
        let running_total = decision
            .refunds
            .as_ref()
            .map_or(ledger_before.running_total, |ledger| ledger.running_total);
        let made = decision.changes_payment(before) || running_total != ledger_before.running_total;
        Self {
            payment: decided_payment_write(after, running_total, made),
            order: order_write(after.order_id.0, decision.order.as_ref(), now),
            first_notification: outbox_write(after, notifications.next(), now),
            event: event_write(event_row, decision.outcome.as_str(), after.id.0, now),
            further_notifications: notifications
                .map(|notification| outbox_write(after, Some(notification), now))
                .collect(),
            ledger,
            payment_id: Value::BigInt(Some(after.id.0)),
        }
    }

    /// Runs the writes: one statement on PostgreSQL (plus one per further
    /// notification and ledger write), one per write made on SQLite.
    ///
    /// Returns whether any event of the payment waits for it to complete
    /// (recorded `awaiting_completion`), as the event's write answered it.
    pub(crate) fn execute(&self, conn: &mut DbConn) -> QueryResult<bool> {
        let waiting = match conn {
            DbConn::Pg(pg) => {
                let waiting = Combined(self).get_result::<bool>(pg)?;
                self.execute_rest(pg)?;
                waiting
            }
            DbConn::Sqlite(sqlite) => {
                let before = [&self.payment, &self.order, &self.first_notification];
                for write in before.into_iter().filter(|write| write.made) {
                    Single(write).execute(sqlite)?;
                }
                let waiting = EventWrite(self).get_result::<bool>(sqlite)?;
                let after = self.further_notifications.iter().chain(&self.ledger);
                for write in after.filter(|write| write.made) {
                    Single(write).execute(sqlite)?;
                }
                waiting
            }
        };
        Ok(waiting)
    }
}

/// Runs one write on its own if it is made (the payment of a mark-pending).
pub(crate) fn execute_write(write: &Write<'_>, conn: &mut DbConn) -> QueryResult<usize> {
    if !write.made {
        return Ok(0);
    }
    match conn {
        DbConn::Pg(pg) => Single(write).execute(pg),
        DbConn::Sqlite(sqlite) => Single(write).execute(sqlite),
    }
}

/// What a backend must bind for [`Single`] and [`Combined`]: both of
/// payhook's backends have it; the bounds are stated once here.
trait BindsWrites: Backend + Sized {
    fn push_value<'b>(out: &mut AstPass<'_, 'b, Self>, value: &'b Value<'_>) -> QueryResult<()>;
    fn push_flag<'b>(out: &mut AstPass<'_, 'b, Self>, flag: &'b bool) -> QueryResult<()>;
}

impl<DB> BindsWrites for DB
where
    DB: Backend
        + HasSqlType<Bool>
        + HasSqlType<Text>
        + HasSqlType<BigInt>
        + HasSqlType<Integer>
        + HasSqlType<Timestamp>,
    for<'x> Option<&'x str>: ToSql<Nullable<Text>, DB>,
    Option<i64>: ToSql<Nullable<BigInt>, DB>,
    Option<i32>: ToSql<Nullable<Integer>, DB>,
    Option<NaiveDateTime>: ToSql<Nullable<Timestamp>, DB>,
    bool: ToSql<Bool, DB>,
{
    fn push_value<'b>(out: &mut AstPass<'_, 'b, Self>, value: &'b Value<'_>) -> QueryResult<()> {
        match value {
            Value::Text(text) => out.push_bind_param::<Nullable<Text>, _>(text),
            Value::BigInt(number) => out.push_bind_param::<Nullable<BigInt>, _>(number),
            Value::Integer(number) => out.push_bind_param::<Nullable<Integer>, _>(number),
            Value::Timestamp(at) => out.push_bind_param::<Nullable<Timestamp>, _>(at),
        }
    }

    fn push_flag<'b>(out: &mut AstPass<'_, 'b, Self>, flag: &'b bool) -> QueryResult<()> {
        out.push_bind_param::<Bool, _>(flag)
    }
}

/// `a = $1, b = $2` or `a = $1 AND b = $2`.
fn push_assignments<'b, DB: BindsWrites>(
    out: &mut AstPass<'_, 'b, DB>,
    assignments: &'b [Assignment<'_>],
    separator: &str,
) -> QueryResult<()> {
    for (index, (column, value)) in assignments.iter().enumerate() {
        if index > 0 {
            out.push_sql(separator);
        }
        out.push_sql(column);
        out.push_sql(" = ");
        DB::push_value(out, value)?;
    }
    Ok(())
}

/// Renders one write. `guarded` adds its `made` flag as a bound condition
/// (an update gains `AND $made`, an insert becomes `INSERT ... SELECT ...
/// WHERE $made`), for a statement whose text must not depend on it.
fn push_write<'b, DB: BindsWrites>(
    out: &mut AstPass<'_, 'b, DB>,
    write: &'b Write<'_>,
    guarded: bool,
) -> QueryResult<()> {
    if write.is_insert() {
        out.push_sql("INSERT INTO ");
        out.push_sql(write.table);
        out.push_sql(" (");
        for (index, (column, _)) in write.values.iter().enumerate() {
            if index > 0 {
                out.push_sql(", ");
            }
            out.push_sql(column);
        }
        out.push_sql(if guarded { ") SELECT " } else { ") VALUES (" });
        for (index, (_, value)) in write.values.iter().enumerate() {
            if index > 0 {
                out.push_sql(", ");
            }
            DB::push_value(out, value)?;
        }
        if guarded {
            out.push_sql(" WHERE ");
            DB::push_flag(out, &write.made)?;
        } else {
            out.push_sql(")");
        }
        if let Some(upsert) = &write.upsert {
            out.push_sql(" ON CONFLICT (");
            out.push_sql(&upsert.key.join(", "));
            out.push_sql(") DO UPDATE SET ");
            for (index, column) in upsert.updated.iter().enumerate() {
                if index > 0 {
                    out.push_sql(", ");
                }
                out.push_sql(column);
                out.push_sql(" = excluded.");
                out.push_sql(column);
            }
        }
    } else {
        out.push_sql("UPDATE ");
        out.push_sql(write.table);
        out.push_sql(" SET ");
        push_assignments(out, &write.values, ", ")?;
        out.push_sql(" WHERE ");
        push_assignments(out, &write.filter, " AND ")?;
        if guarded {
            out.push_sql(" AND ");
            DB::push_flag(out, &write.made)?;
        }
    }
    Ok(())
}

/// ` RETURNING EXISTS (...)` after the event's write: whether any event of
/// the payment waits for it to complete. The subquery reads the table as
/// the statement found it; the event being written is never one that
/// waits when the answer is used (it confirms the payment).
fn push_waiting_question<'b, DB: BindsWrites>(
    out: &mut AstPass<'_, 'b, DB>,
    payment_id: &'b Value<'_>,
) -> QueryResult<()> {
    out.push_sql(" RETURNING EXISTS (SELECT 1 FROM webhook_events WHERE ");
    out.push_sql(webhook_events::payment_id::NAME);
    out.push_sql(" = ");
    DB::push_value(out, payment_id)?;
    out.push_sql(" AND ");
    out.push_sql(AWAITING_CONDITION);
    out.push_sql(")");
    Ok(())
}

/// SQLite: the event's write on its own, returning whether any event of
/// the payment waits for it to complete.
struct EventWrite<'d, 'a>(&'d DecisionWrites<'a>);

impl<DB: BindsWrites> QueryFragment<DB> for EventWrite<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        push_write(&mut out, &self.0.event, false)?;
        push_waiting_question(&mut out, &self.0.payment_id)
    }
}

impl Query for EventWrite<'_, '_> {
    type SqlType = Bool;
}

impl<C> RunQueryDsl<C> for EventWrite<'_, '_> {}

impl QueryId for EventWrite<'_, '_> {
    type QueryId = ();
    // Its text never varies, but it is keyed by text like `Single`.
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// The write as a statement of its own. A write not made is not run, so
/// no condition on `made` is rendered.
struct Single<'w, 'a>(&'w Write<'a>);

impl<DB: BindsWrites> QueryFragment<DB> for Single<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        push_write(&mut out, self.0, false)
    }
}

impl<C> RunQueryDsl<C> for Single<'_, '_> {}

impl QueryId for Single<'_, '_> {
    type QueryId = ();
    // The text depends on the write; the statement cache keys it by text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// PostgreSQL: the payment, order, first outbox row and event writes as
/// one statement, each guarded by its `made` flag, returning whether any
/// event of the payment waits for it to complete.
struct Combined<'d, 'a>(&'d DecisionWrites<'a>);

impl QueryFragment<Pg> for Combined<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let writes = self.0;
        let ctes = [
            ("WITH w_payment AS (", &writes.payment),
            ("), w_order AS (", &writes.order),
            ("), w_outbox AS (", &writes.first_notification),
        ];
        for (opening, write) in ctes {
            out.push_sql(opening);
            push_write(&mut out, write, true)?;
        }
        out.push_sql(") ");
        // The event row exists (recorded or locked by this transaction)
        // and its write is always made, so exactly one row comes back.
        push_write(&mut out, &writes.event, true)?;
        push_waiting_question(&mut out, &writes.payment_id)
    }
}

impl Query for Combined<'_, '_> {
    type SqlType = Bool;
}

impl RunQueryDsl<PgConnection> for Combined<'_, '_> {}

impl QueryId for Combined<'_, '_> {
    type QueryId = Combined<'static, 'static>;
    // The text never varies, so diesel keeps it prepared.
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl DecisionWrites<'_> {
    /// PostgreSQL: the writes that follow [`Combined`]'s (or the
    /// decision's share of [`GroupWrites`]): the notifications after the
    /// first, then the ledger's, one statement each.
    pub(crate) fn execute_rest(&self, pg: &mut PgConnection) -> QueryResult<()> {
        for write in self.further_notifications.iter().chain(&self.ledger) {
            Single(write).execute(pg)?;
        }
        Ok(())
    }
}

/// The bound values of one column of [`GroupWrites`], one per decision.
#[derive(Debug)]
enum ValueArray<'a> {
    Text(Vec<Option<&'a str>>),
    BigInt(Vec<Option<i64>>),
    Integer(Vec<Option<i32>>),
    Timestamp(Vec<Option<NaiveDateTime>>),
    Bool(Vec<bool>),
}

impl<'a> ValueArray<'a> {
    /// An empty array of `value`'s type.
    fn like(value: &Value<'_>, capacity: usize) -> Self {
        match value {
            Value::Text(_) => Self::Text(Vec::with_capacity(capacity)),
            Value::BigInt(_) => Self::BigInt(Vec::with_capacity(capacity)),
            Value::Integer(_) => Self::Integer(Vec::with_capacity(capacity)),
            Value::Timestamp(_) => Self::Timestamp(Vec::with_capacity(capacity)),
        }
    }

    /// Appends `value`; false when it is not of this array's type.
    fn push(&mut self, value: &Value<'a>) -> bool {
        match (self, value) {
            (Self::Text(values), Value::Text(value)) => values.push(*value),
            (Self::BigInt(values), Value::BigInt(value)) => values.push(*value),
            (Self::Integer(values), Value::Integer(value)) => values.push(*value),
            (Self::Timestamp(values), Value::Timestamp(value)) => values.push(*value),
            _ => return false,
        }
        true
    }

    fn push_bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::Array;
        match self {
            Self::Text(values) => out.push_bind_param::<Array<Nullable<Text>>, _>(values),
            Self::BigInt(values) => out.push_bind_param::<Array<Nullable<BigInt>>, _>(values),
            Self::Integer(values) => out.push_bind_param::<Array<Nullable<Integer>>, _>(values),
            Self::Timestamp(values) => out.push_bind_param::<Array<Nullable<Timestamp>>, _>(values),
            Self::Bool(values) => out.push_bind_param::<Array<Bool>, _>(values),
        }
    }
}

/// Which write of a decision a column of [`GroupWrites`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Payment,
    Order,
    Outbox,
    Event,
}

/// One column of [`GroupWrites`]: the write it serves, the table column it
/// sets or filters on (`None` for the `made` flag and the payment id of the
/// waiting question), whether it is a filter, and its values.
#[derive(Debug)]
struct GroupColumn<'a> {
    part: Option<Part>,
    name: &'static str,
    filter: bool,
    values: ValueArray<'a>,
}

/// PostgreSQL: the [`Combined`] writes of several decisions as one
/// statement; each decision's further notifications and ledger writes
/// follow it ([`DecisionWrites::execute_rest`]). Each column of the writes
/// is bound as an array with one element per decision, `unnest` turns the
/// arrays back into rows (`d`),
/// and each write becomes a set-based `UPDATE ... FROM d` or `INSERT ...
/// SELECT ... FROM d`, guarded per row by its `made` flag; the outbox rows
/// are inserted in the decisions' order. It returns, per decision (by its
/// 1-based position), whether any event of its payment waits for it to
/// complete, as [`Combined`] does.
///
/// Only decisions on distinct payments and distinct orders may be written
/// together: an `UPDATE ... FROM` that meets one row twice writes it once.
/// The caller ([`super::batch`]) guarantees it. The text depends on the
/// writes' columns only, never on the number of decisions, so one prepared
/// statement serves every group.
pub(crate) struct GroupWrites<'a> {
    columns: Vec<GroupColumn<'a>>,
}

impl<'a> GroupWrites<'a> {
    /// The group of `decisions`' [`Combined`] writes, or `None` when it is
    /// empty or when their writes do not have the same columns (then each
    /// is written on its own).
    pub(crate) fn new(decisions: &[DecisionWrites<'a>]) -> Option<Self> {
        let first = decisions.first()?;
        fn parts<'d, 'a>(writes: &'d DecisionWrites<'a>) -> [(Part, &'d Write<'a>); 4] {
            [
                (Part::Payment, &writes.payment),
                (Part::Order, &writes.order),
                (Part::Outbox, &writes.first_notification),
                (Part::Event, &writes.event),
            ]
        }
        let count = decisions.len();
        let mut columns = Vec::new();
        for (part, write) in parts(first) {
            for (name, value) in &write.values {
                columns.push(GroupColumn {
                    part: Some(part),
                    name,
                    filter: false,
                    values: ValueArray::like(value, count),
                });
            }
            for (name, value) in &write.filter {
                columns.push(GroupColumn {
                    part: Some(part),
                    name,
                    filter: true,
                    values: ValueArray::like(value, count),
                });
            }
            if part != Part::Event {
                columns.push(GroupColumn {
                    part: Some(part),
                    name: "made",
                    filter: false,
                    values: ValueArray::Bool(Vec::with_capacity(count)),
                });
            }
        }
        columns.push(GroupColumn {
            part: None,
            name: webhook_events::payment_id::NAME,
            filter: false,
            values: ValueArray::like(&first.payment_id, count),
        });
        for writes in decisions {
            let mut column = columns.iter_mut();
            for (part, write) in parts(writes) {
                let mut assignments = write.values.iter().chain(&write.filter);
                for (name, value) in assignments.by_ref() {
                    let target = column.next()?;
                    if target.name != *name || !target.values.push(value) {
                        return None;
                    }
                }
                if part != Part::Event {
                    match column.next()? {
                        GroupColumn {
                            values: ValueArray::Bool(made),
                            ..
                        } => made.push(write.made),
                        _ => return None,
                    }
                }
            }
            if !column.next()?.values.push(&writes.payment_id) || column.next().is_some() {
                return None;
            }
        }
        Some(Self { columns })
    }

    /// The alias of column `index` in `d`.
    fn alias(index: usize) -> String {
        format!("c{index}")
    }

    /// The columns of `part`, with their aliases in `d`.
    fn of(&self, part: Part) -> impl Iterator<Item = (String, &GroupColumn<'a>)> {
        self.columns
            .iter()
            .enumerate()
            .filter(move |(_, column)| column.part == Some(part))
            .map(|(index, column)| (Self::alias(index), column))
    }

    /// `AND d.cN` for `part`'s `made` flag.
    fn push_made_guard(&self, out: &mut AstPass<'_, '_, Pg>, part: Part) {
        for (alias, column) in self.of(part) {
            if column.name == "made" && !column.filter {
                out.push_sql(" AND d.");
                out.push_sql(&alias);
            }
        }
    }

    /// `UPDATE table AS t SET a = d.c0, ... FROM d WHERE t.k = d.cN AND
    /// t.k = ANY($n) AND d.made`, `$n` the array `d.cN` was made of.
    ///
    /// The `ANY` says nothing the join does not, but it gives the planner
    /// the rows' keys to probe the index with. On its own it did not stop
    /// a cached plan's sequential scans; what does is that a write
    /// transaction on PostgreSQL plans without them
    /// (`conn::write_transaction`).
    fn push_update<'b>(
        &'b self,
        out: &mut AstPass<'_, 'b, Pg>,
        table: &str,
        part: Part,
    ) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        out.push_sql(table);
        out.push_sql(" AS t SET ");
        let assigned = self
            .of(part)
            .filter(|(_, column)| !column.filter && column.name != "made");
        for (index, (alias, column)) in assigned.enumerate() {
            if index > 0 {
                out.push_sql(", ");
            }
            out.push_sql(column.name);
            out.push_sql(" = d.");
            out.push_sql(&alias);
        }
        out.push_sql(" FROM d WHERE ");
        let filters = self.of(part).filter(|(_, column)| column.filter);
        for (index, (alias, column)) in filters.enumerate() {
            if index > 0 {
                out.push_sql(" AND ");
            }
            out.push_sql("t.");
            out.push_sql(column.name);
            out.push_sql(" = d.");
            out.push_sql(&alias);
            out.push_sql(" AND t.");
            out.push_sql(column.name);
            out.push_sql(" = ANY(");
            column.values.push_bind(out)?;
            out.push_sql(")");
        }
        self.push_made_guard(out, part);
        Ok(())
    }
}

impl QueryFragment<Pg> for GroupWrites<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // Prepared once per connection. Its generic plan is made in a write
        // transaction, which plans without sequential scans (see
        // `conn::write_transaction`): one made while the tables were a few
        // pages scanned `webhook_events` whole as it grew (1 289 times in a
        // run of 20 000 events on a fresh database), and planning each
        // group instead cost about 0.3 ms a group, a tenth of PostgreSQL's
        // time.
        out.push_sql("WITH d AS (SELECT * FROM unnest(");
        for (index, column) in self.columns.iter().enumerate() {
            if index > 0 {
                out.push_sql(", ");
            }
            column.values.push_bind(&mut out)?;
        }
        out.push_sql(") WITH ORDINALITY AS d(");
        for index in 0..self.columns.len() {
            out.push_sql(&Self::alias(index));
            out.push_sql(", ");
        }
        out.push_sql("ord)), w_payment AS (");
        self.push_update(&mut out, "payments", Part::Payment)?;
        out.push_sql("), w_order AS (");
        self.push_update(&mut out, "orders", Part::Order)?;
        out.push_sql("), w_outbox AS (INSERT INTO outbox (");
        let inserted: Vec<(String, &GroupColumn<'_>)> = self
            .of(Part::Outbox)
            .filter(|(_, column)| column.name != "made")
            .collect();
        for (index, (_, column)) in inserted.iter().enumerate() {
            if index > 0 {
                out.push_sql(", ");
            }
            out.push_sql(column.name);
        }
        out.push_sql(") SELECT ");
        for (index, (alias, _)) in inserted.iter().enumerate() {
            if index > 0 {
                out.push_sql(", ");
            }
            out.push_sql("d.");
            out.push_sql(alias);
        }
        out.push_sql(" FROM d WHERE true");
        self.push_made_guard(&mut out, Part::Outbox);
        out.push_sql(" ORDER BY d.ord) ");
        // Every decision writes its event row, which exists (recorded or
        // locked by this transaction): one row back per decision.
        self.push_update(&mut out, "webhook_events", Part::Event)?;
        let waiting_for = Self::alias(self.columns.len() - 1);
        out.push_sql(" RETURNING d.ord, EXISTS (SELECT 1 FROM webhook_events WHERE ");
        out.push_sql(webhook_events::payment_id::NAME);
        out.push_sql(" = d.");
        out.push_sql(&waiting_for);
        out.push_sql(" AND ");
        out.push_sql(AWAITING_CONDITION);
        out.push_sql(")");
        Ok(())
    }
}

impl Query for GroupWrites<'_> {
    type SqlType = (BigInt, Bool);
}

impl RunQueryDsl<PgConnection> for GroupWrites<'_> {}

impl QueryId for GroupWrites<'_> {
    type QueryId = ();
    // The text is the same for every group, but it is built from the
    // writes' columns: keyed by its text, a change of columns can never
    // reuse a statement prepared for other ones.
    const HAS_STATIC_QUERY_ID: bool = false;
}
