//! The retention pruner's units of work: one short transaction per batch.
//!
//! An event's raw body is emptied (and `pruned_at` set) once its outcome
//! is final and it was last processed before the cut-off; its row stays,
//! so a late re-delivery still hits the unique index and is answered as a
//! duplicate. An event whose outcome is not final (unmatched, an amount or
//! refund refused, waiting for its payment) keeps its body: it can still
//! be applied. Delivered outbox rows delivered before the cut-off are
//! deleted; nothing refers to them.
//!
//! Each batch walks on from where the previous one stopped (keyset on the
//! scan's order), so rows left alone (locked by a delivery in flight on
//! PostgreSQL, skipped with `SKIP LOCKED`; an event that is not final; a
//! notification not delivered; or a dry run, which writes nothing) are not
//! read again in the same run. Every scan is an index range in the index's
//! own order, so a batch costs its own rows whatever the table's size.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use payhook_domain::ports::StoreError;
use payhook_domain::{OutboxStatus, Outcome};

use super::{store_error, with_retry};
use crate::conn::{DbConn, StoreConn};
use crate::models::naive;
use crate::schema::{outbox, webhook_events};

/// Where the event scan stands: the last `(processed_at, id)` it passed.
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

/// One batch of events: reads the next `batch` unpruned events last
/// processed before `before`, after `cursor`, in the order of the partial
/// index `webhook_events_unpruned`, and empties those whose outcome is
/// final unless `dry_run`.
///
/// The outcome is judged here, not in the query: with `outcome IN (...)` in
/// its `WHERE`, SQLite's planner took the index on `outcome` and sorted
/// every final event of the table for each batch (2.5 s a batch at 1.5
/// million events, inside the write lock: webhooks stalled for minutes).
/// Read in index order, a batch costs its own rows. On SQLite the read is
/// done before the write transaction (WAL readers take no lock) and the
/// transaction only rewrites the chosen rows; on PostgreSQL it is done in
/// the transaction, locking the rows with `SKIP LOCKED` so that a delivery
/// holding one (a re-delivery reading its final outcome) never waits.
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
    let (after_at, after_id) = cursor.unwrap_or((scan_start(), 0));
    let scan = |conn: &mut DbConn, lock: bool| -> QueryResult<Vec<(NaiveDateTime, i64, String)>> {
        let due = webhook_events::table
            .filter(webhook_events::pruned_at.is_null())
            .filter(webhook_events::processed_at.lt(before))
            .filter(
                webhook_events::processed_at
                    .gt(after_at)
                    .or(webhook_events::processed_at
                        .eq(after_at)
                        .and(webhook_events::id.gt(after_id))),
            )
            .order((webhook_events::processed_at, webhook_events::id))
            .limit(i64::from(batch))
            .select((
                webhook_events::processed_at,
                webhook_events::id,
                webhook_events::outcome,
            ));
        match conn {
            DbConn::Pg(pg) if lock => due.for_update().skip_locked().load(pg),
            _ => due.load(conn),
        }
    };
    let judged = |rows: &[(NaiveDateTime, i64, String)]| {
        let ids: Vec<i64> = rows
            .iter()
            .filter(|(_, _, outcome)| finals.contains(&outcome.as_str()))
            .map(|(_, id, _)| *id)
            .collect();
        let cursor = rows.last().map(|(at, id, _)| (*at, *id));
        let more = rows.len() == usize::try_from(batch).unwrap_or(usize::MAX);
        (ids, cursor, more)
    };
    let count = |ids: &[i64]| u64::try_from(ids.len()).unwrap_or(u64::MAX);
    if dry_run {
        // A read: no transaction, no lock.
        let rows = scan(&mut conn.db, false).map_err(store_error)?;
        let (ids, cursor, more) = judged(&rows);
        return Ok(Batch {
            pruned: count(&ids),
            cursor,
            more,
        });
    }
    if matches!(conn.db, DbConn::Sqlite(_)) {
        let rows = scan(&mut conn.db, false).map_err(store_error)?;
        let (ids, cursor, more) = judged(&rows);
        let mut pruned = 0;
        if !ids.is_empty() {
            let started = std::time::Instant::now();
            pruned = with_retry(conn, |conn| match conn {
                DbConn::Sqlite(sqlite) => Ok(reinsert_emptied(sqlite, &ids, now)?),
                DbConn::Pg(_) => Ok(0),
            })?;
            rest_after(&conn.db, started.elapsed());
        }
        return Ok(Batch {
            pruned,
            cursor,
            more,
        });
    }
    with_retry(conn, |conn| {
        let rows = scan(conn, true)?;
        let (ids, cursor, more) = judged(&rows);
        let mut pruned = 0;
        if !ids.is_empty() {
            let emptied = diesel::update(
                webhook_events::table
                    .filter(webhook_events::id.eq_any(&ids))
                    .filter(webhook_events::pruned_at.is_null()),
            )
            .set((
                webhook_events::payload.eq(Vec::<u8>::new()),
                webhook_events::pruned_at.eq(now),
            ))
            .execute(conn)?;
            pruned = u64::try_from(emptied).unwrap_or(u64::MAX);
        }
        Ok(Batch {
            pruned,
            cursor,
            more,
        })
    })
}

/// Empties the bodies of the events `ids` on SQLite by deleting the rows
/// and inserting them again, emptied, with their ids: all inside the
/// batch's transaction, so nothing else sees them missing.
///
/// An `UPDATE` that shrinks a row leaves its page mostly empty, and SQLite
/// never reuses that space: new events have higher ids and go at the end of
/// the table. Measured on 20 000 events of 1.5 KB: emptying them in place
/// freed 72 of 10 273 pages and 20 000 more events grew the file by 10 210
/// pages; deleting and re-inserting them freed 9 769 pages, and the next
/// 20 000 events grew it by 514. PostgreSQL's vacuum reuses the space of an
/// update, so it keeps the plain `UPDATE`.
fn reinsert_emptied(
    conn: &mut SqliteConnection,
    ids: &[i64],
    now: NaiveDateTime,
) -> QueryResult<u64> {
    use diesel::sql_types::Timestamp;
    // Integers only: the list cannot carry anything but numbers.
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    diesel::sql_query("DROP TABLE IF EXISTS temp.prune_batch").execute(conn)?;
    diesel::sql_query(format!(
        "CREATE TEMP TABLE prune_batch AS SELECT * FROM webhook_events \
         WHERE id IN ({list}) AND pruned_at IS NULL"
    ))
    .execute(conn)?;
    diesel::sql_query("UPDATE temp.prune_batch SET payload = X'', pruned_at = ?")
        .bind::<Timestamp, _>(now)
        .execute(conn)?;
    diesel::sql_query("DELETE FROM webhook_events WHERE id IN (SELECT id FROM temp.prune_batch)")
        .execute(conn)?;
    // The temporary table was made from `SELECT *`: same columns, same order.
    let emptied = diesel::sql_query("INSERT INTO webhook_events SELECT * FROM temp.prune_batch")
        .execute(conn)?;
    diesel::sql_query("DROP TABLE temp.prune_batch").execute(conn)?;
    Ok(u64::try_from(emptied).unwrap_or(u64::MAX))
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
        let pruned = if dry_run || ids.is_empty() {
            u64::try_from(ids.len()).unwrap_or(u64::MAX)
        } else {
            let started = std::time::Instant::now();
            let deleted = with_retry(conn, |conn| Ok(delete(conn, &ids)?))?;
            rest_after(&conn.db, started.elapsed());
            deleted
        };
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
