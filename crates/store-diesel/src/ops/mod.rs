//! The units of work, each a synchronous function over one pooled
//! connection, and what they share: the transaction with its retry, the
//! error they return, and PostgreSQL's advisory locks on external ids.
//!
//! - `orders`: orders and payments, including marking a payment pending;
//! - `lookup`: finding (and locking) the payment an event names;
//! - `events`: recording a gateway event, and the audit reads of events;
//! - `apply`: applying one event or a group-commit batch, and the refunds
//!   and disputes that waited for a payment to complete;
//! - `batch`: a batch on PostgreSQL in three set-based statements, with
//!   the events an earlier one may have affected applied one by one;
//! - `refunds`: reading a payment's refund ledger;
//! - `prune`: the retention pruner's batches (event bodies, delivered
//!   outbox rows);
//! - `reconcile`: the payments due for a check against the gateway's API,
//!   their claim, and each payment's last check;
//! - `overview`: the operator's reads (search, counts), which write nothing;
//! - `decision`: the writes of one decision, described once for both
//!   backends.
//!
//! Locking: on SQLite every write transaction holds the database write lock
//! from its first statement (`BEGIN IMMEDIATE`). On PostgreSQL (READ
//! COMMITTED) the unique index on `(gateway, event_id)` decides duplicates,
//! and rows are taken in one order — event, payment, order — with
//! `SELECT ... FOR UPDATE`, so two transactions never wait on each other in
//! a cycle.
//!
//! One-row reads use `get_result`, never `first`: `first` binds `LIMIT ?`,
//! and SQLite re-prepares a statement on every execution when its LIMIT
//! parameter is re-bound (7 % of the writer's time under load). Keys
//! are unique, or an `ORDER BY` puts the wanted row first.
//!
//! Marking a payment pending also applies the unmatched events naming its
//! new external id. On PostgreSQL that would race a delivery of such an
//! event (each transaction blind to the other's uncommitted row), so both
//! take a transaction-scoped advisory lock on the external id first: the
//! mark-pending before anything else, the delivery only when its lookup
//! found nothing, and before looking again. Marking pending skips events
//! locked by a delivery in flight (`SKIP LOCKED`) instead of waiting on
//! them; that delivery's second lookup sees the payment.
//!
//! The outbox's own units of work (claims, delivery results) are in
//! `crate::outbox`; only `overview`'s reads look at it here.

mod apply;
mod batch;
mod decision;
mod events;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod inspect;
mod lookup;
mod orders;
pub(crate) mod overview;
pub(crate) mod prune;
mod reconcile;
mod refunds;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Integer;
use payhook_domain::ports::StoreError;

use crate::conn::{write_transaction, DbConn, StoreConn};
use crate::models::CorruptRow;

pub(crate) use apply::{apply_event, apply_events};
pub(crate) use events::{webhook_event, webhook_events};
pub(crate) use orders::{create_order, create_payment, mark_pending, order, payment};
pub(crate) use reconcile::{due_payments, last_check, record_check};
pub(crate) use refunds::refunds;

/// The first key of the PostgreSQL advisory locks on external ids ("phx1");
/// the second is a hash of the id. Two-key locks never collide with the
/// one-key migration lock.
const EXTERNAL_ID_LOCK: i32 = 0x7068_7831;

/// How many times a transaction that lost a serialization race is retried.
const SERIALIZATION_RETRIES: usize = 3;

/// A transaction body's error: a database failure, or a domain refusal that
/// must roll the transaction back.
enum TxError {
    Db(DieselError),
    Store(StoreError),
}

impl From<DieselError> for TxError {
    fn from(error: DieselError) -> Self {
        Self::Db(error)
    }
}

impl From<StoreError> for TxError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<CorruptRow> for TxError {
    fn from(error: CorruptRow) -> Self {
        Self::Store(StoreError::Backend(Box::new(error)))
    }
}

/// A database failure as the port reports it: a lost connection is
/// `Unavailable` (the caller may try later), anything else `Backend`.
pub(crate) fn store_error(error: DieselError) -> StoreError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
        | DieselError::BrokenTransactionManager => StoreError::Unavailable(Box::new(error)),
        other => StoreError::Backend(Box::new(other)),
    }
}

impl From<TxError> for StoreError {
    fn from(error: TxError) -> Self {
        match error {
            TxError::Db(db) => store_error(db),
            TxError::Store(store) => store,
        }
    }
}

/// A conflict the database resolved by aborting this transaction: a
/// serialization failure (SQLSTATE 40001) or a deadlock (40P01, which diesel
/// reports without a kind of its own, so it is recognised by its message).
fn is_serialization_failure(error: &TxError) -> bool {
    match error {
        TxError::Db(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => true,
        TxError::Db(DieselError::DatabaseError(_, info)) => {
            info.message().contains("deadlock detected")
        }
        _ => false,
    }
}

/// Runs a write transaction, retrying it a bounded number of times when the
/// database reports a serialization failure (the whole unit of work is
/// rolled back first, so a retry starts clean).
fn with_retry<T>(
    conn: &mut StoreConn,
    mut body: impl FnMut(&mut DbConn) -> Result<T, TxError>,
) -> Result<T, StoreError> {
    let mut attempt = 0;
    loop {
        match write_transaction(conn, &mut body) {
            Err(error) if is_serialization_failure(&error) && attempt < SERIALIZATION_RETRIES => {
                attempt += 1;
                tracing::warn!(attempt, "serialization failure, retrying the transaction");
            }
            result => return result.map_err(StoreError::from),
        }
    }
}

/// A 32-bit FNV-1a hash of `text`, the second key of its advisory lock.
/// Two ids with the same hash only share a lock: harmless.
fn lock_key(text: &str) -> i32 {
    let hash = text.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// On PostgreSQL, takes the transaction's advisory locks on these external
/// ids, in one order (by key) so that two transactions cannot deadlock on
/// them. SQLite's single writer needs none.
fn lock_external_ids(conn: &mut DbConn, ids: &[&str]) -> QueryResult<()> {
    let DbConn::Pg(pg) = conn else {
        return Ok(());
    };
    let mut keys: Vec<i32> = ids
        .iter()
        .filter(|id| !id.is_empty())
        .map(|id| lock_key(id))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind::<Integer, _>(EXTERNAL_ID_LOCK)
            .bind::<Integer, _>(key)
            .execute(pg)?;
    }
    Ok(())
}
