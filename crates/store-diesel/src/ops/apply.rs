//! Applying gateway events: one event in its own transaction, or a
//! group-commit batch in one. Each event is recorded, its payment found
//! and locked, its refund ledger read when it reports refunds,
//! `domain::decide` called, and the decision written; a confirmation then
//! applies the refunds and disputes that waited for it. It does not choose
//! the batches (that is `crate::group`).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use payhook_domain::ports::{Applied, EventToApply, StoreError, StoredEvent};
use payhook_domain::{
    decide, AmountPolicy, Decision, EventKind, GatewayEvent, Outcome, Payment, RefundLedger,
};

use super::batch::apply_batch;
use super::decision::DecisionWrites;
use super::events::{awaiting_events, record_event, Recorded};
use super::lookup::{find_and_lock, find_by_id_and_lock, LockedPayment};
use super::refunds::ledger;
use super::{is_serialization_failure, lock_external_ids, with_retry, TxError};
use crate::conn::{write_transaction, DbConn, StoreConn};
use crate::models::{naive, stored_precision};
use crate::report::at_stored_precision;

/// The unit of work for one event, inside a write transaction the caller
/// opened: record it, find and lock the payment, decide, write.
pub(super) fn apply_event_body(
    conn: &mut DbConn,
    to_apply: &EventToApply,
) -> Result<Applied, TxError> {
    let event_row = match record_event(conn, to_apply)? {
        Recorded::New(id) | Recorded::Again(id) => id,
        Recorded::Final { payment } => {
            return Ok(Applied::Duplicate {
                payment: payment.map(|payment| *payment),
            })
        }
    };
    apply_recorded(conn, to_apply, event_row)
}

/// The event as it is decided: as it will read back from the store, should
/// it be applied again (see `at_stored_precision`).
pub(super) fn as_decided(to_apply: &EventToApply) -> Cow<'_, GatewayEvent> {
    match at_stored_precision(&to_apply.event) {
        Some(cut) => Cow::Owned(cut),
        None => Cow::Borrowed(&to_apply.event),
    }
}

/// The rest of [`apply_event_body`] once the event is recorded as
/// `event_row` (new, or an earlier delivery to evaluate again): find and
/// lock the payment, decide, write.
pub(super) fn apply_recorded(
    conn: &mut DbConn,
    to_apply: &EventToApply,
    event_row: i64,
) -> Result<Applied, TxError> {
    let event = as_decided(to_apply);
    let event = event.as_ref();
    let mut found = find_and_lock(conn, event)?;
    if found.is_none() && matches!(conn, DbConn::Pg(_)) {
        // A payment may be being marked pending under one of these ids
        // right now, blind to this uncommitted event: wait for it under
        // the id's lock, then look again (see the `ops` module comment).
        let references = &event.references;
        let ids: Vec<&str> = [&references.external_id, &references.gateway_reference]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !ids.is_empty() {
            lock_external_ids(conn, &ids)?;
            found = find_and_lock(conn, event)?;
        }
    }
    let Some(found) = found else {
        return Ok(Applied::Unmatched);
    };
    let now = stored_precision(to_apply.received_at);
    let locked = found.into_locked(conn, event.kind)?;
    let decided = decide_locked(conn, event, locked, to_apply.policy, now)?;
    write_decided(conn, event_row, decided, to_apply.policy, now)
}

/// Applies one event in a transaction of its own.
pub(crate) fn apply_event(
    conn: &mut StoreConn,
    to_apply: &EventToApply,
) -> Result<Applied, StoreError> {
    with_retry(conn, |conn| apply_event_body(conn, to_apply))
}

/// Group commit: applies `batch` in one write transaction and commits once.
///
/// One commit (one fsync on SQLite, one WAL flush on PostgreSQL) then makes
/// the whole batch durable, which is how the rate gets past one commit per
/// event. Results come back in `batch` order, and none is returned before
/// the commit that made it durable.
///
/// The batch is first applied without savepoints, since nearly every event
/// applies cleanly and a savepoint costs two statements (two round trips on
/// PostgreSQL, a sub-journal on SQLite). If any event fails, that
/// transaction is rolled back, none of it durable, and the batch is applied
/// again with a savepoint per event: an event that fails then rolls back to
/// its savepoint only, and the others are unaffected.
pub(crate) fn apply_events(
    conn: &mut StoreConn,
    batch: &[EventToApply],
) -> Vec<Result<Applied, StoreError>> {
    let all_or_nothing = write_transaction(conn, |conn| apply_batch(conn, batch));
    match all_or_nothing {
        Ok(applied) => applied.into_iter().map(Ok).collect(),
        Err(_) => apply_events_with_savepoints(conn, batch),
    }
}

/// [`apply_events`] with a savepoint per event. An event that lost a
/// serialization race or a deadlock is applied again on its own after the
/// commit.
fn apply_events_with_savepoints(
    conn: &mut StoreConn,
    batch: &[EventToApply],
) -> Vec<Result<Applied, StoreError>> {
    let grouped = write_transaction(
        conn,
        |conn| -> Result<Vec<Result<Applied, TxError>>, TxError> {
            Ok(batch
                .iter()
                .map(|to_apply| conn.transaction(|conn| apply_event_body(conn, to_apply)))
                .collect())
        },
    );
    match grouped {
        Ok(results) => results
            .into_iter()
            .zip(batch)
            .map(|(result, to_apply)| match result {
                Ok(applied) => Ok(applied),
                Err(error) if is_serialization_failure(&error) => apply_event(conn, to_apply),
                Err(error) => Err(error.into()),
            })
            .collect(),
        // The transaction as a whole failed (BEGIN or COMMIT): nothing of it
        // is durable, so each event is applied on its own, and fails or
        // succeeds on its own.
        Err(_) => batch
            .iter()
            .map(|to_apply| apply_event(conn, to_apply))
            .collect(),
    }
}

/// A decision taken on a locked payment, with what it was taken on (which
/// its writes are computed against).
pub(super) struct Decided {
    /// The payment as read.
    pub(super) before: Payment,
    /// Its refund ledger as read (without the refunds rows unless the
    /// event reports refunds).
    pub(super) ledger: RefundLedger,
    /// What `domain::decide` made of the event.
    pub(super) decision: Decision,
}

impl Decided {
    /// The writes of this decision for the event row `event_row`.
    pub(super) fn writes(&self, event_row: i64, now: DateTime<Utc>) -> DecisionWrites<'_> {
        DecisionWrites::new(
            &self.before,
            &self.ledger,
            &self.decision,
            event_row,
            naive(now),
        )
    }
}

/// Decides on the payment and order state [`find_and_lock`] read, reading
/// the refund ledger first when the event reports refunds.
pub(super) fn decide_locked(
    conn: &mut DbConn,
    event: &GatewayEvent,
    locked: LockedPayment,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Decided, TxError> {
    let LockedPayment {
        payment,
        order,
        running_total,
    } = locked;
    // Only a refund report needs the refunds rows. They are read after the
    // payment was locked, so they hold every refund committed before.
    let ledger = if event.kind == EventKind::Refund {
        ledger(conn, payment.id, running_total)?
    } else {
        RefundLedger {
            entries: Vec::new(),
            running_total,
        }
    };
    let decision = decide(&payment, &order, &ledger, event, policy, now);
    Ok(Decided {
        before: payment,
        ledger,
        decision,
    })
}

/// Writes a decision (see `decision` for how each backend writes it), then
/// [`finish_decided`].
pub(super) fn write_decided(
    conn: &mut DbConn,
    event_row: i64,
    decided: Decided,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Applied, TxError> {
    let waiting = decided.writes(event_row, now).execute(conn)?;
    finish_decided(conn, decided.decision, waiting, policy, now)
}

/// After a decision's writes, `waiting` telling whether events of its
/// payment wait for it to complete: when the decision confirms the payment,
/// those events (refunds and disputes that came first) are applied next,
/// oldest first, in the same transaction, each decided on the state the
/// one before left; the payment returned is the state after them. So no
/// shop ever sees a completed payment without the refunds the gateway had
/// already reported for it.
pub(super) fn finish_decided(
    conn: &mut DbConn,
    decision: Decision,
    waiting: bool,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Applied, TxError> {
    let mut latest = decision.payment;
    if decision.outcome == Outcome::Confirmed && waiting {
        latest = apply_awaiting(conn, latest, policy, now)?;
    }
    Ok(Applied::Decided {
        outcome: decision.outcome,
        payment: latest,
    })
}

/// [`decide_locked`] then [`write_decided`].
pub(super) fn decide_and_write(
    conn: &mut DbConn,
    event_row: i64,
    event: &GatewayEvent,
    locked: LockedPayment,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Applied, TxError> {
    let decided = decide_locked(conn, event, locked, policy, now)?;
    write_decided(conn, event_row, decided, policy, now)
}

/// Applies the events that waited for `payment` to complete, oldest first,
/// as `decide_and_write` applies any event, and returns the payment as they
/// leave it. Each is decided on the rows as the one before wrote them (read
/// again, under the lock this transaction holds): the ledger, the status,
/// the order. None of them confirms, so none applies waiting events again.
fn apply_awaiting(
    conn: &mut DbConn,
    confirmed: Payment,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Payment, TxError> {
    let mut latest = confirmed;
    for row in awaiting_events(conn, latest.id.0)? {
        let stored = StoredEvent::try_from(row)?;
        let Some(found) = find_by_id_and_lock(conn, latest.id)? else {
            break;
        };
        let locked = found.into_locked(conn, stored.event.kind)?;
        if let Applied::Decided { payment, .. } =
            decide_and_write(conn, stored.id, &stored.event, locked, policy, now)?
        {
            latest = payment;
        }
    }
    Ok(latest)
}
