//! The retention pruner's units of work: one short transaction per batch.
//!
//! An event's raw body (its row in `webhook_event_bodies`) is deleted, and
//! when recorded in `webhook_bodies_pruned`, once its outcome is final and
//! it was last processed before the cut-off; the event's row is not
//! touched, so a late re-delivery still hits the unique index and is
//! answered as a duplicate. An event whose outcome is not final
//! (unmatched, an amount or refund refused, waiting for its payment) keeps
//! its body: it can still be applied. Delivered outbox rows delivered
//! before the cut-off are deleted; nothing refers to them.
//!
//! Each batch walks on from where the previous one stopped (keyset on the
//! scan's order), so rows left alone (an event that is not final or was
//! processed again after the cut-off; a notification not delivered; or a
//! dry run, which writes nothing) are not read again in the same run.
//! Every scan is an index range in the index's own order, so a batch costs
//! its own rows whatever the table's size.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use payhook_domain::ports::StoreError;
use payhook_domain::{OutboxStatus, Outcome};

use super::{store_error, with_retry};
use crate::conn::{DbConn, StoreConn};
use crate::models::naive;
use crate::schema::{outbox, webhook_event_bodies, webhook_events};

/// Where the event scan stands: the last body's `(received_at, event_row)`
/// it passed.
pub(crate) type EventCursor = Option<(NaiveDateTime, i64)>;

/// Before any event: where the first batch starts. Year 1, not
/// `NaiveDateTime::MIN`, which PostgreSQL's timestamp cannot hold.
fn scan_start() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

/// The stored outcomes after which an event is never evaluated again.
fn final_outcomes() -> Vec<&'static str> {
    Outcome::ALL
        .into_iter()
        .filter(|outcome| outcome.is_final())
        .map(Outcome::as_str)
        .collect()
}

/// What one batch did: how many rows it pruned (or would, in a dry run),
/// where its scan stopped, and whether the scan may have more to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batch<C> {
    pub(crate) pruned: u64,
    pub(crate) cursor: C,
    pub(crate) more: bool,
}

/// On SQLite, how long a batch rests after its write transaction, as a
/// share of how long it held the writer: at most half the writer's time
/// goes to pruning while there is a backlog, so webhooks committing beside
/// a long first run wait for one batch at most and then get the writer.
const SQLITE_REST_PER_HELD: u32 = 1;

/// Rests after a batch that held SQLite's writer for `held`.
fn rest_after(conn: &DbConn, held: std::time::Duration) {
    if matches!(conn, DbConn::Sqlite(_)) {
        std::thread::sleep(held * SQLITE_REST_PER_HELD);
    }
}

/// A kept body as the pruner reads it: the body's first delivery time and
/// event row, the event's last processing time and outcome.
type BodyRow = (NaiveDateTime, i64, NaiveDateTime, String);

/// One batch of events: reads the next `batch` kept bodies first received
/// before `before`, after `cursor`, in the order of the index
/// `webhook_event_bodies_received`, and deletes those whose event's outcome
/// is final and which were last processed before `before`, unless
/// `dry_run`.
///
/// An event is last processed no earlier than it first arrived, so the
/// scan's range holds every event due. The outcome and processing time are
/// judged here, not in the query, so that the scan stays a range of the
/// index whatever the planner thinks of the events' columns (with `outcome
/// IN (...)` in its `WHERE`, SQLite's planner once took the index on
/// `outcome` and sorted every final event of the table for each batch).
/// On SQLite the read is done before the write transaction (WAL readers
/// take no lock) and the transaction only deletes the chosen bodies. No
/// row is locked on PostgreSQL either: a final outcome never changes, and
/// the delete is what decides, so that of two pruners on one body the
/// second deletes nothing and records nothing.
pub(crate) fn prune_events(
    conn: &mut StoreConn,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
    batch: u32,
    dry_run: bool,
    cursor: EventCursor,
) -> Result<Batch<EventCursor>, StoreError> {
    let before = naive(before);
    let now = naive(now);
    let finals = final_outcomes();
    let (after_at, after_row) = cursor.unwrap_or((scan_start(), 0));
    let scan = |conn: &mut DbConn| -> QueryResult<Vec<BodyRow>> {
        webhook_event_bodies::table
            .inner_join(webhook_events::table)
            .filter(webhook_event_bodies::received_at.lt(before))
            .filter(
                webhook_event_bodies::received_at.gt(after_at).or(
                    webhook_event_bodies::received_at
                        .eq(after_at)
                        .and(webhook_event_bodies::event_row.gt(after_row)),
                ),
            )
            .order((
                webhook_event_bodies::received_at,
                webhook_event_bodies::event_row,
            ))
            .limit(i64::from(batch))
            .select((
                webhook_event_bodies::received_at,
                webhook_event_bodies::event_row,
                webhook_events::processed_at,
                webhook_events::outcome,
            ))
            .load(conn)
    };
    let judged = |rows: &[BodyRow]| {
        let ids: Vec<i64> = rows
            .iter()
            .filter(|(_, _, processed_at, outcome)| {
                *processed_at < before && finals.contains(&outcome.as_str())
            })
            .map(|(_, row, ..)| *row)
            .collect();
        let cursor = rows.last().map(|(at, row, ..)| (*at, *row));
        let more = rows.len() == usize::try_from(batch).unwrap_or(usize::MAX);
        (ids, cursor, more)
    };
    // A read outside any transaction: no lock.
    let rows = scan(&mut conn.db).map_err(store_error)?;
    let (ids, cursor, more) = judged(&rows);
    let pruned = delete_chosen(conn, dry_run, &ids, |conn, ids| {
        delete_bodies(conn, ids, now)
    })?;
    Ok(Batch {
        pruned,
        cursor,
        more,
    })
}

/// Deletes the rows `ids` a scan outside any transaction chose, with
/// `delete` in a write transaction of its own, then rests
/// ([`rest_after`]); how many it deleted. A dry run, or nothing chosen,
/// only counts.
fn delete_chosen(
    conn: &mut StoreConn,
    dry_run: bool,
    ids: &[i64],
    delete: impl Fn(&mut DbConn, &[i64]) -> QueryResult<u64>,
) -> Result<u64, StoreError> {
    if dry_run || ids.is_empty() {
        return Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX));
    }
    let started = std::time::Instant::now();
    let deleted = with_retry(conn, |conn| Ok(delete(conn, ids)?))?;
    rest_after(&conn.db, started.elapsed());
    Ok(deleted)
}

/// Deletes the bodies of the events `ids` that are still kept and records
/// them pruned at `now`, in the caller's transaction; how many it deleted.
///
/// The record is written first, skipping events recorded already, then the
/// bodies are deleted: on PostgreSQL a second pruner on the same bodies
/// waits on the first one's new keys, then records nothing and deletes
/// nothing, and the count is the delete's. Integers only go into the
/// lists, so they cannot carry anything but numbers.
fn delete_bodies(conn: &mut DbConn, ids: &[i64], now: NaiveDateTime) -> QueryResult<u64> {
    use diesel::sql_types::Timestamp;
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let placeholder = match conn {
        DbConn::Pg(_) => "$1",
        DbConn::Sqlite(_) => "?",
    };
    diesel::sql_query(format!(
        "INSERT INTO webhook_bodies_pruned (event_row, pruned_at) \
         SELECT event_row, {placeholder} FROM webhook_event_bodies WHERE event_row IN ({list}) \
         ON CONFLICT (event_row) DO NOTHING"
    ))
    .bind::<Timestamp, _>(now)
    .execute(conn)?;
    let deleted = diesel::delete(
        webhook_event_bodies::table.filter(webhook_event_bodies::event_row.eq_any(ids)),
    )
    .execute(conn)?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

/// An outbox row as the pruner reads it: id, status, delivered and
/// created at.
type OutboxRow = (i64, String, Option<NaiveDateTime>, NaiveDateTime);

/// One batch of the outbox: reads the next `batch` rows after `cursor` in
/// id order and deletes those delivered before `before`, unless `dry_run`.
/// The scan stops at the first row created at or after `before`: no row
/// after it can have been delivered before then, give or take the few
/// milliseconds between two inserts (the next run takes those).
///
/// The status and delivery time are judged here, not in the query: with
/// `status = 'delivered'` in its `WHERE`, SQLite's planner took the index
/// then on `(status, next_attempt_at)` and sorted every delivered row by id
/// for each batch. In id order, on the primary key, a batch costs its own
/// rows. As for events, on SQLite the read is done before the write
/// transaction; the delete repeats the conditions, so a row another pruner
/// deleted meanwhile is not counted twice.
pub(crate) fn prune_outbox(
    conn: &mut StoreConn,
    before: DateTime<Utc>,
    batch: u32,
    dry_run: bool,
    cursor: Option<i64>,
) -> Result<Batch<Option<i64>>, StoreError> {
    let before = naive(before);
    let after = cursor.unwrap_or(i64::MIN);
    let delivered = OutboxStatus::Delivered.as_str();
    let scan = |conn: &mut DbConn| -> QueryResult<Vec<OutboxRow>> {
        outbox::table
            .filter(outbox::id.gt(after))
            .order(outbox::id)
            .limit(i64::from(batch))
            .select((
                outbox::id,
                outbox::status,
                outbox::delivered_at,
                outbox::created_at,
            ))
            .load(conn)
    };
    let judged = |rows: &[OutboxRow]| {
        let ids: Vec<i64> = rows
            .iter()
            .filter(|(_, status, at, _)| status == delivered && at.is_some_and(|at| at < before))
            .map(|(id, ..)| *id)
            .collect();
        let newer = rows.iter().any(|(.., created_at)| *created_at >= before);
        let full = rows.len() == usize::try_from(batch).unwrap_or(usize::MAX);
        (ids, rows.last().map(|(id, ..)| *id), full && !newer)
    };
    let delete = |conn: &mut DbConn, ids: &[i64]| -> QueryResult<u64> {
        let deleted = diesel::delete(
            outbox::table
                .filter(outbox::id.eq_any(ids))
                .filter(outbox::status.eq(delivered))
                .filter(outbox::delivered_at.lt(before)),
        )
        .execute(conn)?;
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    };
    if dry_run || matches!(conn.db, DbConn::Sqlite(_)) {
        // A read outside any transaction: no lock.
        let rows = scan(&mut conn.db).map_err(store_error)?;
        let (ids, cursor, more) = judged(&rows);
        let pruned = delete_chosen(conn, dry_run, &ids, delete)?;
        return Ok(Batch {
            pruned,
            cursor,
            more,
        });
    }
    with_retry(conn, |conn| {
        let rows = scan(conn)?;
        let (ids, cursor, more) = judged(&rows);
        let pruned = if ids.is_empty() {
            0
        } else {
            delete(conn, &ids)?
        };
        Ok(Batch {
            pruned,
            cursor,
            more,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outcomes_never_evaluated_again_are_pruned() {
        let finals = final_outcomes();
        for kept in [
            "unmatched",
            "amount_rejected",
            "refund_rejected",
            "awaiting_completion",
        ] {
            assert!(!finals.contains(&kept), "{kept}");
        }
        for pruned in ["confirmed", "failed", "already_completed", "ignored"] {
            assert!(finals.contains(&pruned), "{pruned}");
        }
    }
}
