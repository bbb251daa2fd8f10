//! Reading a payment's refund ledger: its `refunds` rows, in the order the
//! refunds were first reported, and the running total its row holds. The
//! ledger's rules are the domain's (`payhook_domain::refund`); its writes
//! are the decision's (`decision`).

use diesel::prelude::*;
use payhook_domain::ports::StoreError;
use payhook_domain::{LedgerEntry, PaymentId, Refund, RefundLedger, RunningTotal};

use super::TxError;
use crate::conn::{DbConn, StoreConn};
use crate::models::RefundRow;
use crate::schema::refunds;

/// The payment's refunds rows, by ascending id: the order in which the
/// refunds were first reported, since each row is inserted once (by
/// upsert) on the first report of its refund.
fn entries(conn: &mut DbConn, payment_id: PaymentId) -> Result<Vec<LedgerEntry>, TxError> {
    let rows: Vec<RefundRow> = refunds::table
        .filter(refunds::payment_id.eq(payment_id.0))
        .order(refunds::id)
        .select(RefundRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(LedgerEntry::try_from)
        .collect::<Result<_, _>>()?)
}

/// The ledger of a payment the caller has locked, whose row held
/// `running_total`: read after the lock, so that it includes every refund
/// a transaction that held the payment before committed.
pub(super) fn ledger(
    conn: &mut DbConn,
    payment_id: PaymentId,
    running_total: Option<RunningTotal>,
) -> Result<RefundLedger, TxError> {
    Ok(RefundLedger {
        entries: entries(conn, payment_id)?,
        running_total,
    })
}

/// The refunds recorded for a payment (none when no payment has the id).
pub(crate) fn refunds(
    conn: &mut StoreConn,
    payment_id: PaymentId,
) -> Result<Vec<Refund>, StoreError> {
    let entries = entries(&mut conn.db, payment_id).map_err(StoreError::from)?;
    Ok(entries.into_iter().map(|entry| entry.refund).collect())
}
