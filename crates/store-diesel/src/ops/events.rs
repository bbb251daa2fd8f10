//! Gateway events: recording a delivery (or finding its earlier record),
//! the unmatched events a mark-pending picks up, the events that wait for
//! their payment to complete, and the audit reads. What an event does to a
//! payment is `apply`'s business.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::Bool;
use payhook_domain::ports::{
    EventDetail, EventFilter, EventOutcome, EventToApply, StoreError, StoredEvent,
};
use payhook_domain::{GatewayEvent, Payment};

use super::{store_error, TxError};
use crate::conn::{DbConn, StoreConn};
use crate::models::{
    naive, CorruptRow, EventRow, EventStatusRow, NewEventBody, NewEventRow, PaymentRow,
};
use crate::report;
use crate::schema::{payments, webhook_bodies_pruned, webhook_event_bodies, webhook_events};

/// The stored outcome of an event that matched no payment yet.
const UNMATCHED: &str = "unmatched";

/// The events kept until their payment completes (a refund or dispute that
/// came first), as SQL over `webhook_events`. A literal, not a bound
/// value: it must match the partial index `webhook_events_awaiting`'s
/// condition for either planner to use the index, and SQLite (built to
/// plan without looking at bound values) cannot see through a parameter.
pub(super) const AWAITING_CONDITION: &str = "outcome = 'awaiting_completion'";

/// What recording a delivery found.
pub(super) enum Recorded {
    /// The first delivery of this event: its new row.
    New(i64),
    /// An earlier delivery whose outcome is not final (`unmatched`, an
    /// amount or refund refused, or waiting for its payment to complete):
    /// its row, to evaluate the event again.
    Again(i64),
    /// An earlier delivery with a final outcome: nothing else must happen.
    /// The payment it matched, if any, as it is now (boxed: the common
    /// answers are the two ids above).
    Final { payment: Option<Box<Payment>> },
}

/// The row of a first delivery of `to_apply`, `report` its report as
/// stored: `unmatched` until a decision says otherwise.
pub(super) fn new_event_row<'a>(
    to_apply: &'a EventToApply,
    report: Option<&'a str>,
) -> NewEventRow<'a> {
    let event = &to_apply.event;
    let at = naive(to_apply.received_at);
    let refs = &event.references;
    NewEventRow {
        gateway: &event.gateway,
        event_id: &event.event_id,
        event_type: &event.event_type,
        kind: event.kind.as_str(),
        outcome: UNMATCHED,
        ref_transaction_id: refs.transaction_id.as_deref(),
        ref_external_id: refs.external_id.as_deref(),
        ref_gateway_reference: refs.gateway_reference.as_deref(),
        amount_minor: event.amount.map(|m| m.minor()),
        currency: event.amount.map(|m| m.currency().code()),
        attempts: 1,
        received_at: at,
        processed_at: at,
        report,
        source: to_apply.source.as_str(),
    }
}

/// Records the event, or finds its earlier record.
pub(super) fn record_event(
    conn: &mut DbConn,
    to_apply: &EventToApply,
) -> Result<Recorded, TxError> {
    let event = &to_apply.event;
    let at = naive(to_apply.received_at);
    let report = event.report.as_ref().map(report::to_json);
    let row = new_event_row(to_apply, report.as_deref());
    // `ON CONFLICT DO NOTHING` rather than catching the unique violation:
    // on PostgreSQL a failed statement aborts the transaction, so catching
    // it would need a savepoint (two more round trips). A conflict with a
    // transaction in flight waits for it, as the violation did, and then
    // returns no row. On PostgreSQL the batch's recording statement, for a
    // batch of one, writes the row and its body in one round trip.
    let inserted = match conn {
        DbConn::Pg(pg) => super::batch::record_one(pg, &row, &to_apply.payload)?,
        DbConn::Sqlite(sqlite) => {
            let inserted = diesel::insert_into(webhook_events::table)
                .values(&row)
                .on_conflict((webhook_events::gateway, webhook_events::event_id))
                .do_nothing()
                .returning(webhook_events::id)
                .get_result::<i64>(sqlite)
                .optional()?;
            if let Some(id) = inserted {
                diesel::insert_into(webhook_event_bodies::table)
                    .values(NewEventBody {
                        event_row: id,
                        received_at: at,
                        payload: &to_apply.payload,
                    })
                    .execute(sqlite)?;
            }
            inserted
        }
    };
    match inserted {
        Some(id) => Ok(Recorded::New(id)),
        None => earlier_delivery(conn, event, at),
    }
}

/// The record of an earlier delivery of `event` ([`read_earlier`]: locked
/// on PostgreSQL unless its outcome is final): a final outcome ends the
/// delivery, any other is counted as an attempt and evaluated again.
pub(super) fn earlier_delivery(
    conn: &mut DbConn,
    event: &GatewayEvent,
    at: NaiveDateTime,
) -> Result<Recorded, TxError> {
    let earlier = read_earlier(conn, event)?;
    again(conn, earlier, at)
}

/// [`earlier_delivery`]'s second half, on the record [`read_earlier`]
/// read: a final outcome ends the delivery, any other is counted as an
/// attempt at `at`.
pub(super) fn again(
    conn: &mut DbConn,
    earlier: Earlier,
    at: NaiveDateTime,
) -> Result<Recorded, TxError> {
    let existing = match earlier {
        Earlier::Final { payment } => return Ok(Recorded::Final { payment }),
        Earlier::Open(existing) => existing,
    };
    diesel::update(webhook_events::table.find(existing.id))
        .set((
            webhook_events::attempts.eq(existing.attempts.saturating_add(1)),
            webhook_events::processed_at.eq(at),
        ))
        .execute(conn)?;
    Ok(Recorded::Again(existing.id))
}

/// An earlier delivery's record as read, before anything is written.
pub(super) enum Earlier {
    /// Its outcome is final: the payment it matched, if any, as it is now.
    Final { payment: Option<Box<Payment>> },
    /// Its outcome is not final: the event is to be evaluated again.
    Open(EventStatusRow),
}

/// Reads the record of an earlier delivery of `event` (locked on
/// PostgreSQL when its outcome is not final), writing nothing:
/// [`earlier_delivery`]'s first half, which a batch also uses on its own to
/// answer a re-delivery without writing the decisions it holds first
/// (`super::batch`).
///
/// It is read first without a lock, with the payment it matched, in one
/// statement: a final outcome never changes, so the committed record is
/// the answer, and a re-delivery of a final event (nearly all of them)
/// costs one statement instead of two. An outcome not final may be
/// evaluated again, so the record is read again, locked, which waits for a
/// transaction applying it right now.
pub(super) fn read_earlier(conn: &mut DbConn, event: &GatewayEvent) -> Result<Earlier, TxError> {
    let earlier = webhook_events::table
        .filter(webhook_events::gateway.eq(&event.gateway))
        .filter(webhook_events::event_id.eq(&event.event_id));
    let (existing, payment): (EventStatusRow, Option<PaymentRow>) = earlier
        .left_join(payments::table.on(webhook_events::payment_id.eq(payments::id.nullable())))
        .select((
            EventStatusRow::as_select(),
            Option::<PaymentRow>::as_select(),
        ))
        .get_result(conn)?;
    if is_final(&existing)? {
        return final_with(payment);
    }
    // The selection names the backend, so it is added per arm.
    let existing: EventStatusRow = match conn {
        DbConn::Pg(pg) => earlier
            .select(EventStatusRow::as_select())
            .for_update()
            .get_result(pg)?,
        // One writer at a time: what was read is current.
        DbConn::Sqlite(_) => return Ok(Earlier::Open(existing)),
    };
    if !is_final(&existing)? {
        return Ok(Earlier::Open(existing));
    }
    // Applied between the two reads: its payment as it is now.
    let payment = match existing.payment_id {
        Some(id) => Some(
            payments::table
                .find(id)
                .select(PaymentRow::as_select())
                .get_result(conn)?,
        ),
        None => None,
    };
    final_with(payment)
}

/// Whether the record's outcome is final; an unknown one is corrupt.
fn is_final(existing: &EventStatusRow) -> Result<bool, TxError> {
    let outcome = EventOutcome::parse(&existing.outcome).ok_or_else(|| {
        CorruptRow::new(
            "webhook_events",
            existing.id,
            format!("unknown outcome {:?}", existing.outcome),
        )
    })?;
    Ok(outcome.is_final())
}

/// A final record's answer, with the payment it matched.
fn final_with(payment: Option<PaymentRow>) -> Result<Earlier, TxError> {
    let payment = payment.map(Payment::try_from).transpose()?.map(Box::new);
    Ok(Earlier::Final { payment })
}

/// The unmatched events of `gateway` whose external id or gateway
/// reference is `external_id`, oldest first; on PostgreSQL locked, skipping
/// those a delivery in flight holds (it will find the payment itself).
/// Another gateway's events are not read: they can never find a payment of
/// this one.
pub(super) fn unmatched_events_naming(
    conn: &mut DbConn,
    gateway: &str,
    external_id: &str,
) -> QueryResult<Vec<EventRow>> {
    // The selection names the backend, so it is added per arm.
    let naming = webhook_events::table
        .filter(webhook_events::outcome.eq(UNMATCHED))
        .filter(webhook_events::gateway.eq(gateway))
        .filter(
            webhook_events::ref_external_id
                .eq(external_id)
                .or(webhook_events::ref_gateway_reference.eq(external_id)),
        )
        .order(webhook_events::id);
    match conn {
        DbConn::Pg(pg) => naming
            .select(EventRow::as_select())
            .for_update()
            .skip_locked()
            .load(pg),
        DbConn::Sqlite(_) => naming.select(EventRow::as_select()).load(conn),
    }
}

/// The events of payment `payment_id` recorded `awaiting_completion`,
/// oldest first: refunds and disputes that came before it completed. On
/// PostgreSQL they are locked, skipping those a re-delivery in flight holds:
/// that delivery waits for the payment this transaction holds and then
/// applies its event to the completed payment itself.
pub(super) fn awaiting_events(conn: &mut DbConn, payment_id: i64) -> QueryResult<Vec<EventRow>> {
    // The selection names the backend, so it is added per arm.
    let awaiting = webhook_events::table
        .filter(webhook_events::payment_id.eq(payment_id))
        .filter(diesel::dsl::sql::<Bool>(AWAITING_CONDITION))
        .order(webhook_events::id);
    match conn {
        DbConn::Pg(pg) => awaiting
            .select(EventRow::as_select())
            .for_update()
            .skip_locked()
            .load(pg),
        DbConn::Sqlite(_) => awaiting.select(EventRow::as_select()).load(conn),
    }
}

/// The recorded events that pass `filter`, by ascending id.
pub(crate) fn webhook_events(
    conn: &mut StoreConn,
    filter: &EventFilter,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut query = webhook_events::table
        .select(EventRow::as_select())
        .order(webhook_events::id)
        .limit(i64::from(filter.limit))
        .into_boxed();
    if let Some(after_id) = filter.after_id {
        query = query.filter(webhook_events::id.gt(after_id));
    }
    if let Some(gateway) = &filter.gateway {
        query = query.filter(webhook_events::gateway.eq(gateway));
    }
    if let Some(outcome) = filter.outcome {
        query = query.filter(webhook_events::outcome.eq(outcome.as_str()));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(webhook_events::kind.eq(kind.as_str()));
    }
    if let Some(payment_id) = filter.payment_id {
        query = query.filter(webhook_events::payment_id.eq(payment_id.0));
    }
    if let Some(source) = filter.source {
        query = query.filter(webhook_events::source.eq(source.as_str()));
    }
    if let Some(after) = filter.received_after {
        query = query.filter(webhook_events::received_at.ge(naive(after)));
    }
    if let Some(before) = filter.received_before {
        query = query.filter(webhook_events::received_at.lt(naive(before)));
    }
    let rows: Vec<EventRow> = query.load(&mut conn.db).map_err(store_error)?;
    rows.into_iter()
        .map(|row| StoredEvent::try_from(row).map_err(|e| StoreError::Backend(Box::new(e))))
        .collect()
}

/// The recorded event with this id and its payload, if any. Its body is
/// either kept or was pruned, never both nor neither: the pruner deletes
/// it and records when in one transaction, and this is one statement.
pub(crate) fn webhook_event(
    conn: &mut StoreConn,
    id: i64,
) -> Result<Option<EventDetail>, StoreError> {
    type Found = (EventRow, Option<Vec<u8>>, Option<NaiveDateTime>);
    let found: Option<Found> = webhook_events::table
        .left_join(webhook_event_bodies::table)
        .left_join(webhook_bodies_pruned::table)
        .filter(webhook_events::id.eq(id))
        .select((
            EventRow::as_select(),
            webhook_event_bodies::payload.nullable(),
            webhook_bodies_pruned::pruned_at.nullable(),
        ))
        .get_result(&mut conn.db)
        .optional()
        .map_err(store_error)?;
    let corrupt = |reason: &str| {
        StoreError::Backend(Box::new(CorruptRow::new(
            "webhook_events",
            id,
            reason.into(),
        )))
    };
    found
        .map(|(row, payload, pruned_at)| {
            let (payload, pruned_at) = match (payload, pruned_at) {
                (Some(payload), None) => (payload, None),
                (None, Some(at)) => (Vec::new(), Some(at.and_utc())),
                (Some(_), Some(_)) => return Err(corrupt("a body kept and pruned")),
                (None, None) => return Err(corrupt("neither a body nor its pruning")),
            };
            Ok(EventDetail {
                record: StoredEvent::try_from(row).map_err(|e| StoreError::Backend(Box::new(e)))?,
                payload,
                pruned_at,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use payhook_domain::ports::EventOutcome;
    use payhook_domain::Outcome;

    use super::*;

    #[test]
    fn the_stored_names_written_as_sql_are_the_domains() {
        assert_eq!(
            AWAITING_CONDITION,
            format!("outcome = '{}'", Outcome::AwaitingCompletion.as_str())
        );
        assert_eq!(UNMATCHED, EventOutcome::Unmatched.as_str());
    }

    #[test]
    fn the_awaiting_index_has_the_condition_the_queries_use() {
        let migrations = [
            include_str!("../../../../migrations/sqlite/2026-12-04-000004_refunds/up.sql"),
            include_str!("../../../../migrations/postgres/2026-12-04-000004_refunds/up.sql"),
        ];
        for up in migrations {
            assert!(up.contains(&format!("WHERE {AWAITING_CONDITION};")), "{up}");
        }
    }
}
