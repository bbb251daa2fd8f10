//! A group-commit batch on PostgreSQL in a few statements instead of three
//! per event.
//!
//! Applied one by one, each event of a batch costs PostgreSQL three
//! statements (record it, find and lock its payment, write the decision):
//! a round trip, an executor start and the end-of-statement work each,
//! which is where its CPU went under load. Here the batch is applied in
//! phases, each one statement for the whole batch:
//!
//! 1. every event is recorded by one `INSERT ... SELECT FROM unnest(...)
//!    ON CONFLICT DO NOTHING`, in `(gateway, event_id)` order, so two
//!    batches wait on each other's event rows in one order (no deadlock);
//! 2. the payments the new events name by their first lookup are found
//!    and locked with their orders, in id order
//!    ([`super::lookup::find_and_lock_first`]);
//! 3. each event is decided in batch order by the domain, and the
//!    decisions are written together ([`GroupWrites`]); what one
//!    statement's row cannot hold (a second notification, a refund
//!    report's ledger) follows it, decision by decision in batch order.
//!
//! The result must be what applying the events one after the other gives.
//! So an event takes the phases only while nothing earlier in the batch
//! can have changed what it reads: it is new, its payment was found in
//! phase 2, and no earlier event of the batch touched that payment or its
//! order. A re-delivery is answered from its first delivery's record,
//! without writing the group first, when nothing the group holds can
//! change that record (see [`redelivery`]). Every other event (a
//! re-delivery the group may affect, a lookup that found nothing or found
//! a touched row) is applied as a lone event is, after the writes
//! decided before it are flushed. Decisions written together are on
//! distinct payments and orders, and nothing decided after them reads what
//! they wrote. Their rows' ids (outbox, refunds) are not in batch order
//! across payments: a decision's second notification comes after the
//! group's first ones. Within an order, and so for the shop, whose
//! notifications of one order are delivered in id order, the order is the
//! one-by-one order; the first version of this module flushed the group
//! before each such decision instead, and in a mixed stream on PostgreSQL
//! that cut batches into several array statements of a few rows, each
//! planned anew (perf: planning 5 -> 32 us of CPU per delivery).

use std::collections::HashSet;

use chrono::NaiveDateTime;
use diesel::pg::{Pg, PgConnection};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Binary, Integer, Nullable, Text, Timestamp};
use diesel::{Column, QueryResult, RunQueryDsl};
use payhook_domain::ports::{Applied, EventToApply};

use super::apply::{
    apply_event_body, apply_recorded, as_decided, decide_locked, finish_decided, Decided,
};
use super::decision::GroupWrites;
use super::events::{again, earlier_delivery, new_event_row, read_earlier, Earlier, Recorded};
use super::lookup::find_and_lock_first;
use super::TxError;
use crate::conn::DbConn;
use crate::models::{naive, stored_precision, NewEventRow};
use crate::report;
use crate::schema::webhook_events;

/// Applies `batch` inside the caller's write transaction, in batch order;
/// on SQLite, or for a single event, one event after the other.
pub(super) fn apply_batch(
    conn: &mut DbConn,
    batch: &[EventToApply],
) -> Result<Vec<Applied>, TxError> {
    if batch.len() < 2 || !matches!(conn, DbConn::Pg(_)) {
        return batch
            .iter()
            .map(|to_apply| apply_event_body(conn, to_apply))
            .collect();
    }
    let recorded = record_all(conn, batch)?;
    let decided_events: Vec<_> = batch.iter().map(as_decided).collect();
    let wanted: Vec<_> = recorded
        .iter()
        .enumerate()
        .filter(|(_, row)| row.is_some())
        .map(|(index, _)| (index, decided_events[index].as_ref()))
        .collect();
    let mut found = match conn {
        DbConn::Pg(pg) => find_and_lock_first(pg, &wanted)?,
        DbConn::Sqlite(_) => Default::default(),
    };

    let mut touched = Touched::default();
    let mut results: Vec<Option<Applied>> = batch.iter().map(|_| None).collect();
    let mut group = Vec::new();
    let mut delivered = HashSet::new();
    for (index, to_apply) in batch.iter().enumerate() {
        let event = decided_events[index].as_ref();
        let first_in_batch = delivered.insert((&to_apply.event.gateway, &to_apply.event.event_id));
        let now = stored_precision(to_apply.received_at);
        let fresh = found
            .remove(&index)
            .filter(|found| !touched.either(found.payment_id(), found.order_id()));
        if let (Some(event_row), Some(found)) = (recorded[index], fresh) {
            touched.add(found.payment_id(), found.order_id());
            let locked = found.into_locked(conn, event.kind)?;
            let decided = decide_locked(conn, event, locked, to_apply.policy, now)?;
            group.push(Pending {
                index,
                event_row,
                decided,
                to_apply,
            });
            continue;
        }
        let applied = match recorded[index] {
            Some(event_row) => {
                flush(conn, &mut group, &mut results)?;
                apply_recorded(conn, to_apply, event_row)?
            }
            None => redelivery(
                conn,
                to_apply,
                first_in_batch,
                &touched,
                &mut group,
                &mut results,
            )?,
        };
        if let Applied::Decided { payment, .. } = &applied {
            touched.add(payment.id.0, payment.order_id.0);
        }
        results[index] = Some(applied);
    }
    flush(conn, &mut group, &mut results)?;
    results
        .into_iter()
        .map(|applied| applied.ok_or_else(|| internal("an event of the batch was not applied")))
        .collect()
}

/// A delivery of an event recorded before it (`first_in_batch`: by an
/// earlier transaction, not earlier in this batch). Its record is read
/// before the group is written, and it is current unless a decision the
/// group holds can change it: one that confirms a payment may apply an
/// event waiting for it (an outcome not final yet), one on the payment
/// the record names changes that payment. So a final outcome whose payment
/// the batch did not touch, or any record read while the group is empty,
/// is used as read, and the group stays open; otherwise the group is
/// written first and the record read again. Re-deliveries are a tenth of
/// the load generator's deliveries; writing the group before each cut a
/// batch's decisions into several array statements.
fn redelivery(
    conn: &mut DbConn,
    to_apply: &EventToApply,
    first_in_batch: bool,
    touched: &Touched,
    group: &mut Vec<Pending<'_>>,
    results: &mut [Option<Applied>],
) -> Result<Applied, TxError> {
    let at = naive(to_apply.received_at);
    let earlier = if first_in_batch {
        Some(read_earlier(conn, &to_apply.event)?)
    } else {
        None
    };
    let earlier = match earlier {
        Some(Earlier::Final { payment })
            if payment
                .as_ref()
                .is_none_or(|payment| !touched.payments.contains(&payment.id.0)) =>
        {
            return Ok(Applied::Duplicate {
                payment: payment.map(|payment| *payment),
            });
        }
        Some(earlier) if group.is_empty() => again(conn, earlier, at)?,
        _ => {
            flush(conn, group, results)?;
            earlier_delivery(conn, &to_apply.event, at)?
        }
    };
    Ok(match earlier {
        Recorded::New(event_row) | Recorded::Again(event_row) => {
            apply_recorded(conn, to_apply, event_row)?
        }
        Recorded::Final { payment } => Applied::Duplicate {
            payment: payment.map(|payment| *payment),
        },
    })
}

/// The payments and orders an earlier event of the batch read or wrote.
#[derive(Default)]
struct Touched {
    payments: HashSet<i64>,
    orders: HashSet<i64>,
}

impl Touched {
    fn add(&mut self, payment: i64, order: i64) {
        self.payments.insert(payment);
        self.orders.insert(order);
    }

    fn either(&self, payment: i64, order: i64) -> bool {
        self.payments.contains(&payment) || self.orders.contains(&order)
    }
}

/// A decision taken and not yet written.
struct Pending<'b> {
    index: usize,
    event_row: i64,
    decided: Decided,
    to_apply: &'b EventToApply,
}

/// Writes the decisions of `group` (one statement for two or more, then
/// each decision's further notifications and ledger writes in the group's
/// order), then applies the events that waited for the payments they
/// confirm, and stores each result at its index.
fn flush(
    conn: &mut DbConn,
    group: &mut Vec<Pending<'_>>,
    results: &mut [Option<Applied>],
) -> Result<(), TxError> {
    if group.is_empty() {
        return Ok(());
    }
    let pending = std::mem::take(group);
    let waiting: Vec<bool> = {
        let writes: Vec<_> = pending
            .iter()
            .map(|p| {
                p.decided
                    .writes(p.event_row, stored_precision(p.to_apply.received_at))
            })
            .collect();
        let together = (writes.len() > 1)
            .then(|| GroupWrites::new(&writes))
            .flatten();
        match (&mut *conn, together) {
            (DbConn::Pg(pg), Some(together)) => {
                let rows: Vec<(i64, bool)> = together.load(pg)?;
                for writes in &writes {
                    writes.execute_rest(pg)?;
                }
                let mut waiting = vec![None; writes.len()];
                for (position, waits) in rows {
                    let slot = usize::try_from(position)
                        .ok()
                        .and_then(|position| waiting.get_mut(position.checked_sub(1)?));
                    match slot {
                        Some(slot @ None) => *slot = Some(waits),
                        _ => return Err(internal("the group's writes answered a row twice")),
                    }
                }
                waiting
                    .into_iter()
                    .map(|waits| waits.ok_or_else(|| internal("an event row was not written")))
                    .collect::<Result<_, _>>()?
            }
            _ => writes
                .iter()
                .map(|writes| writes.execute(conn))
                .collect::<QueryResult<_>>()?,
        }
    };
    for (pending, waiting) in pending.into_iter().zip(waiting) {
        let to_apply = pending.to_apply;
        results[pending.index] = Some(finish_decided(
            conn,
            pending.decided.decision,
            waiting,
            to_apply.policy,
            stored_precision(to_apply.received_at),
        )?);
    }
    Ok(())
}

/// A broken promise of this module, reported as a database error so that
/// the transaction is rolled back and the batch applied event by event.
fn internal(what: &'static str) -> TxError {
    TxError::Db(diesel::result::Error::QueryBuilderError(what.into()))
}

/// Records every event of `batch` in one statement. For each event, the
/// id of the row this statement inserted for it, or `None` when its
/// `(gateway, event_id)` was recorded before (by an earlier delivery, or
/// earlier in this batch: the first in batch order gets the row).
fn record_all(conn: &mut DbConn, batch: &[EventToApply]) -> Result<Vec<Option<i64>>, TxError> {
    let DbConn::Pg(pg) = conn else {
        return Err(internal("record_all is PostgreSQL's"));
    };
    let reports: Vec<Option<String>> = batch
        .iter()
        .map(|to_apply| to_apply.event.report.as_ref().map(report::to_json))
        .collect();
    let rows: Vec<NewEventRow<'_>> = batch
        .iter()
        .zip(&reports)
        .map(|(to_apply, report)| new_event_row(to_apply, report.as_deref()))
        .collect();
    let payloads: Vec<&[u8]> = batch.iter().map(|to_apply| &to_apply.payload[..]).collect();
    let inserted: Vec<(i64, String, String)> = RecordAll::new(&rows, payloads).load(pg)?;
    let mut by_key: std::collections::HashMap<(String, String), i64> = inserted
        .into_iter()
        .map(|(id, gateway, event_id)| ((gateway, event_id), id))
        .collect();
    Ok(batch
        .iter()
        .map(|to_apply| {
            // `remove`: a second delivery of the same event in the batch
            // finds the row taken by the first.
            by_key.remove(&(
                to_apply.event.gateway.clone(),
                to_apply.event.event_id.clone(),
            ))
        })
        .collect())
}

/// Records one event and its body in one statement ([`RecordAll`] for a
/// batch of one): the new row's id, or `None` when the event was recorded
/// before.
pub(super) fn record_one(
    pg: &mut PgConnection,
    row: &NewEventRow<'_>,
    payload: &[u8],
) -> QueryResult<Option<i64>> {
    let inserted: Vec<(i64, String, String)> =
        RecordAll::new(std::slice::from_ref(row), vec![payload]).load(pg)?;
    Ok(inserted.first().map(|(id, ..)| *id))
}

/// The columns [`RecordAll`] writes to `webhook_events`, as `NewEventRow`
/// has them.
const RECORDED_COLUMNS: [&str; 15] = [
    webhook_events::gateway::NAME,
    webhook_events::event_id::NAME,
    webhook_events::event_type::NAME,
    webhook_events::kind::NAME,
    webhook_events::outcome::NAME,
    webhook_events::ref_transaction_id::NAME,
    webhook_events::ref_external_id::NAME,
    webhook_events::ref_gateway_reference::NAME,
    webhook_events::amount_minor::NAME,
    webhook_events::currency::NAME,
    webhook_events::attempts::NAME,
    webhook_events::received_at::NAME,
    webhook_events::processed_at::NAME,
    webhook_events::report::NAME,
    webhook_events::source::NAME,
];

/// `INSERT INTO webhook_events (...) SELECT ... FROM unnest(...) ORDER BY
/// gateway, event_id ON CONFLICT DO NOTHING RETURNING id, gateway,
/// event_id`, one array per column in [`RECORDED_COLUMNS`] order, with the
/// bodies of the rows it inserted put in `webhook_event_bodies` by the same
/// statement (a second `WITH` part), so recording a batch stays one round
/// trip.
struct RecordAll<'a> {
    gateway: Vec<&'a str>,
    event_id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    kind: Vec<&'a str>,
    outcome: Vec<&'a str>,
    ref_transaction_id: Vec<Option<&'a str>>,
    ref_external_id: Vec<Option<&'a str>>,
    ref_gateway_reference: Vec<Option<&'a str>>,
    amount_minor: Vec<Option<i64>>,
    currency: Vec<Option<&'a str>>,
    attempts: Vec<i32>,
    received_at: Vec<NaiveDateTime>,
    processed_at: Vec<NaiveDateTime>,
    report: Vec<Option<&'a str>>,
    source: Vec<&'a str>,
    /// The raw bodies, in the rows' order.
    payload: Vec<&'a [u8]>,
}

impl<'a> RecordAll<'a> {
    fn new(rows: &[NewEventRow<'a>], payload: Vec<&'a [u8]>) -> Self {
        macro_rules! column {
            ($field:ident) => {
                rows.iter().map(|row| row.$field).collect()
            };
        }
        Self {
            gateway: column!(gateway),
            event_id: column!(event_id),
            event_type: column!(event_type),
            kind: column!(kind),
            outcome: column!(outcome),
            ref_transaction_id: column!(ref_transaction_id),
            ref_external_id: column!(ref_external_id),
            ref_gateway_reference: column!(ref_gateway_reference),
            amount_minor: column!(amount_minor),
            currency: column!(currency),
            attempts: column!(attempts),
            received_at: column!(received_at),
            processed_at: column!(processed_at),
            report: column!(report),
            source: column!(source),
            payload,
        }
    }
}

impl QueryFragment<Pg> for RecordAll<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let columns = RECORDED_COLUMNS.join(", ");
        out.push_sql("WITH e AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<Text>, _>(&self.gateway)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.event_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.event_type)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.kind)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.outcome)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.ref_transaction_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.ref_external_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.ref_gateway_reference)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.amount_minor)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.currency)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Integer>, _>(&self.attempts)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.received_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamp>, _>(&self.processed_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.report)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.source)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Binary>, _>(&self.payload)?;
        out.push_sql(") WITH ORDINALITY AS e(");
        out.push_sql(&columns);
        out.push_sql(", payload, ord)), inserted AS (INSERT INTO webhook_events (");
        out.push_sql(&columns);
        out.push_sql(") SELECT ");
        out.push_sql(&columns);
        // The ordinality breaks ties: of two deliveries of one event in the
        // batch, the first is inserted and the second conflicts with it.
        out.push_sql(" FROM e ORDER BY gateway, event_id, ord ON CONFLICT (gateway, event_id) ");
        out.push_sql("DO NOTHING RETURNING id, gateway, event_id, received_at), ");
        // So the body of an inserted row is its first delivery's too.
        out.push_sql(
            "bodies AS (INSERT INTO webhook_event_bodies (event_row, received_at, payload) \
             SELECT i.id, i.received_at, f.payload FROM inserted i \
             JOIN (SELECT DISTINCT ON (gateway, event_id) gateway, event_id, payload \
             FROM e ORDER BY gateway, event_id, ord) f \
             ON f.gateway = i.gateway AND f.event_id = i.event_id) ",
        );
        // A data-modifying `WITH` part runs whether or not it is read.
        out.push_sql("SELECT id, gateway, event_id FROM inserted");
        Ok(())
    }
}

impl Query for RecordAll<'_> {
    type SqlType = (BigInt, Text, Text);
}

impl<C> RunQueryDsl<C> for RecordAll<'_> {}

impl QueryId for RecordAll<'_> {
    type QueryId = RecordAll<'static>;
    // The text never varies, so it stays prepared.
    const HAS_STATIC_QUERY_ID: bool = true;
}
