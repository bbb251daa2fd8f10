//! Reconciliation's state: which payments are due for a check, the claim
//! that gives each to one process at a time, and each payment's last check.
//!
//! The state lives in `reconciliations`, one row per payment that was ever
//! claimed or checked, not in `payments`: a claim or a check never writes
//! the row every webhook locks.
//!
//! The claim is a conditional write, not a read lock. On PostgreSQL under
//! READ COMMITTED a lock taken by the candidates' `SELECT ... FOR UPDATE`
//! ends with the first claimer's commit, and the payments row it locked did
//! not change: a second process whose candidates were read before that
//! commit would get the lock next and claim the same payments again. So the
//! claim inserts the missing `reconciliations` rows (`ON CONFLICT DO
//! NOTHING`, which waits for a concurrent insert of the same row) and then
//! runs `UPDATE ... SET due_at = <end of claim> WHERE payment_id IN
//! (<candidates>) AND (due_at IS NULL OR due_at <= <now>) RETURNING
//! payment_id`: PostgreSQL re-checks that condition on the latest version
//! of each row it had to wait for, so a payment another process claimed in
//! the meantime is not returned. Both writes go in ascending payment id, so
//! two claimers never wait on each other in a cycle. The candidates' `FOR
//! UPDATE OF payments SKIP LOCKED` is only there to spread concurrent
//! claimers over different payments while both are in flight; correctness
//! does not rest on it. On SQLite the store's immediate write transaction
//! serialises claims.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use payhook_domain::ports::StoreError;
use payhook_domain::reconcile::{DueQuery, ReconcileCheck};
use payhook_domain::{Payment, PaymentId};

use super::{store_error, with_retry, TxError};
use crate::conn::{DbConn, StoreConn};
use crate::models::{naive, CheckRow, PaymentRow, ReconcileRow};
use crate::schema::{payments, reconciliations};

/// The payments a pass may pick, as SQL over `payments`. A literal, not a
/// bound value: it must match the partial index
/// `payments_pending_external`'s condition for either planner to use it
/// (SQLite plans without looking at bound values).
pub(super) const PENDING_CONDITION: &str = "payments.status = 'pending_external'";

/// The due payments of `query`, in the order of the due scan. With `claim`,
/// they are claimed until `now + claim` in the same transaction.
pub(crate) fn due_payments(
    conn: &mut StoreConn,
    query: &DueQuery,
    claim: Option<Duration>,
) -> Result<Vec<Payment>, StoreError> {
    if query.gateways.is_empty() || query.limit == 0 {
        return Ok(Vec::new());
    }
    let Some(claim) = claim else {
        // A dry run: one read, nothing written.
        let rows = due_rows(&mut conn.db, query, false).map_err(store_error)?;
        return to_payments(rows);
    };
    let until = naive(query.now + TimeDelta::from_std(claim).unwrap_or(TimeDelta::MAX));
    let now = naive(query.now);
    with_retry(conn, |conn| {
        let candidates = due_rows(conn, query, true)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<i64> = candidates.iter().map(|row| row.id).collect();
        ids.sort_unstable();
        insert_missing(conn, &ids)?;
        let claimed: Vec<i64> = diesel::update(
            reconciliations::table
                .filter(reconciliations::payment_id.eq_any(&ids))
                .filter(
                    reconciliations::due_at
                        .is_null()
                        .or(reconciliations::due_at.le(now)),
                ),
        )
        .set(reconciliations::due_at.eq(until))
        .returning(reconciliations::payment_id)
        .get_results(conn)?;
        let claimed: std::collections::HashSet<i64> = claimed.into_iter().collect();
        let payments = candidates
            .into_iter()
            .filter(|row| claimed.contains(&row.id))
            .map(Payment::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(payments)
    })
}

/// The due payments' rows, oldest change first; on PostgreSQL, when
/// `lock`, locked, skipping those another transaction holds.
fn due_rows(conn: &mut DbConn, query: &DueQuery, lock: bool) -> QueryResult<Vec<PaymentRow>> {
    let now = naive(query.now);
    // Due: no reconciliation row, or one whose next check is not after now.
    let not_yet_due = reconciliations::table
        .filter(reconciliations::payment_id.eq(payments::id))
        .filter(reconciliations::due_at.gt(now));
    let due = payments::table
        .filter(diesel::dsl::sql::<Bool>(PENDING_CONDITION))
        .filter(payments::payment_method.eq_any(&query.gateways))
        .filter(payments::updated_at.le(naive(query.unchanged_since)))
        .filter(diesel::dsl::not(diesel::dsl::exists(not_yet_due)))
        .order((payments::updated_at, payments::id))
        .limit(i64::from(query.limit));
    // The selection names the backend, so it is added per arm.
    match conn {
        DbConn::Pg(pg) if lock => due
            .select(PaymentRow::as_select())
            .for_update()
            .skip_locked()
            .load(pg),
        _ => due.select(PaymentRow::as_select()).load(conn),
    }
}

/// Inserts a `reconciliations` row, due now, for each of `ids` that has
/// none, in ascending id.
fn insert_missing(conn: &mut DbConn, ids: &[i64]) -> QueryResult<()> {
    let rows: Vec<_> = ids
        .iter()
        .map(|id| reconciliations::payment_id.eq(*id))
        .collect();
    // A macro because MultiConnection has no upsert of its own (see
    // `events::record_event`).
    macro_rules! insert {
        ($conn:expr, $rows:expr) => {
            diesel::insert_into(reconciliations::table)
                .values($rows)
                .on_conflict(reconciliations::payment_id)
                .do_nothing()
                .execute($conn)
        };
    }
    match conn {
        DbConn::Pg(pg) => insert!(pg, &rows).map(drop),
        // Row by row: a batch insert with a conflict clause is not one
        // statement diesel builds for SQLite. Under the single writer
        // it costs nothing but the calls.
        DbConn::Sqlite(sqlite) => rows
            .iter()
            .try_for_each(|row| insert!(&mut *sqlite, row).map(drop)),
    }
}

fn to_payments(rows: Vec<PaymentRow>) -> Result<Vec<Payment>, StoreError> {
    rows.into_iter()
        .map(|row| Payment::try_from(row).map_err(|e| StoreError::Backend(Box::new(e))))
        .collect()
}

/// Records the check of payment `id` and its next due time: an upsert.
pub(crate) fn record_check(
    conn: &mut StoreConn,
    id: PaymentId,
    check: &ReconcileCheck,
    next_due: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = CheckRow {
        payment_id: id.0,
        due_at: Some(naive(next_due)),
        failures: i32::try_from(check.failures).unwrap_or(i32::MAX),
        checked_at: Some(naive(check.checked_at)),
        gateway_state: check.gateway_state.as_deref(),
        result: Some(&check.result),
    };
    with_retry(conn, |conn| {
        // Payments are never deleted, so the answer cannot change before
        // the upsert; asking first keeps a foreign key violation (which
        // would abort a PostgreSQL transaction) out of the normal path.
        let exists: bool =
            diesel::select(diesel::dsl::exists(payments::table.find(id.0))).get_result(conn)?;
        if !exists {
            return Err(TxError::Store(StoreError::PaymentNotFound(id)));
        }
        macro_rules! upsert {
            ($conn:expr) => {
                diesel::insert_into(reconciliations::table)
                    .values(&row)
                    .on_conflict(reconciliations::payment_id)
                    .do_update()
                    .set(&row)
                    .execute($conn)
            };
        }
        match conn {
            DbConn::Pg(pg) => upsert!(pg)?,
            DbConn::Sqlite(sqlite) => upsert!(sqlite)?,
        };
        Ok(())
    })
}

/// The last check of payment `id`, if it was ever checked.
pub(crate) fn last_check(
    conn: &mut StoreConn,
    id: PaymentId,
) -> Result<Option<ReconcileCheck>, StoreError> {
    let row: Option<ReconcileRow> = reconciliations::table
        .find(id.0)
        .select(ReconcileRow::as_select())
        .get_result(&mut conn.db)
        .optional()
        .map_err(store_error)?;
    match row {
        Some(row) => row
            .last_check()
            .map_err(|e| StoreError::Backend(Box::new(e))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use payhook_domain::PaymentStatus;

    use super::*;

    #[test]
    fn the_pending_condition_names_the_domains_status() {
        assert_eq!(
            PENDING_CONDITION,
            format!(
                "payments.status = '{}'",
                PaymentStatus::PendingExternal.as_str()
            )
        );
    }

    #[test]
    fn the_pending_index_has_the_condition_the_due_scan_uses() {
        let migrations = [
            include_str!("../../../../migrations/sqlite/2026-12-04-000005_reconcile/up.sql"),
            include_str!("../../../../migrations/postgres/2026-12-04-000005_reconcile/up.sql"),
        ];
        let condition = PENDING_CONDITION.trim_start_matches("payments.");
        for up in migrations {
            assert!(up.contains(&format!("WHERE {condition};")), "{up}");
        }
    }
}
