//! Finding the payment a gateway event names, with its order's state, in
//! the domain's lookup order, locked on PostgreSQL. It only reads: what to
//! do with the payment is `apply`'s business.

use std::collections::HashMap;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use payhook_domain::{
    EventKind, GatewayEvent, Lookup, OrderState, OrderStatus, Payment, PaymentId, PaymentStatus,
    RunningTotal,
};

use super::TxError;
use crate::conn::DbConn;
use crate::models::{money, CorruptRow, PaymentRow};
use crate::schema::{orders, payments};

/// The order columns `decide` needs: status, total, currency, paid sum.
type OrderColumns = (String, i64, String, i64);

/// The payment an event names and its order's state, as read.
pub(super) struct Found {
    row: PaymentRow,
    order: OrderColumns,
}

/// The payment an event names and its order's state, as values of the
/// domain: what `decide` takes.
pub(super) struct LockedPayment {
    /// The payment, as committed before this transaction's writes.
    pub(super) payment: Payment,
    /// Its order, with [`OrderState::paid_by`] filled when `decide` needs it.
    pub(super) order: OrderState,
    /// The latest running total of its refunds, from its row: with the
    /// `refunds` rows (read only for a refund event), its refund ledger.
    pub(super) running_total: Option<RunningTotal>,
}

impl Found {
    /// The id of the payment found, read before the row is converted.
    pub(super) fn payment_id(&self) -> i64 {
        self.row.id
    }

    /// The id of its order.
    pub(super) fn order_id(&self) -> i64 {
        self.row.order_id
    }

    /// The rows as domain values, reading the order's completed payments
    /// when `decide` needs them for an event of `kind`
    /// ([`OrderState::needs_paid_by`]); a row that does not convert is
    /// corrupt.
    pub(super) fn into_locked(
        self,
        conn: &mut DbConn,
        kind: EventKind,
    ) -> Result<LockedPayment, TxError> {
        let running_total = self.row.running_total()?;
        let payment = Payment::try_from(self.row)?;
        let order_id = payment.order_id.0;
        let corrupt = |reason: String| CorruptRow::new("orders", order_id, reason);
        let (status, total_minor, currency, paid_minor) = self.order;
        let status: OrderStatus = status
            .parse()
            .map_err(|error: payhook_domain::UnknownStatus| corrupt(error.to_string()))?;
        let total = money("orders", order_id, total_minor, &currency)?;
        let paid_amount = money("orders", order_id, paid_minor, &currency)?;
        let others: Vec<(i64, String)> = if OrderState::needs_paid_by(status, kind) {
            let completed: Vec<&str> = PaymentStatus::ALL
                .into_iter()
                .filter(|status| status.has_completed())
                .map(PaymentStatus::as_str)
                .collect();
            payments::table
                .filter(payments::order_id.eq(order_id))
                .filter(payments::status.eq_any(completed))
                .filter(payments::id.ne(payment.id.0))
                .order(payments::id)
                .select((payments::id, payments::status))
                .load(conn)?
        } else {
            Vec::new()
        };
        let refunded = PaymentStatus::Refunded.as_str();
        let paid_by_refunded = others.iter().all(|(_, status)| status == refunded);
        let paid_by = others.into_iter().map(|(id, _)| PaymentId(id)).collect();
        Ok(LockedPayment {
            payment,
            order: OrderState {
                status,
                total,
                paid_amount,
                paid_by,
                paid_by_refunded,
            },
            running_total,
        })
    }
}

// A macro, not a function: each lookup's query has its own diesel type,
// and PostgreSQL's `FOR UPDATE` changes it again, so a function returning
// "the query of this lookup" would have to be generic over three query
// types and two backends, with a `where` clause naming diesel's internal
// traits per query. The macro keeps the lookup rules written once.
//
// `lookup_query!(lookup, gateway, |query| finish)` builds the payment of
// `gateway` that `lookup` names, joined with its order's status, ordered so
// that the wanted payment comes first, and evaluates `finish` with it bound
// to `query` (each backend runs it its own way).
//
// Every step filters on `payments.payment_method = gateway`: a payment
// belongs to one gateway, so an event signed with one gateway's secret
// never finds another gateway's payment, whatever reference it names.
macro_rules! lookup_query {
    ($lookup:expr, $gateway:expr, |$query:ident| $finish:expr) => {{
        let own = payments::table
            .inner_join(orders::table)
            .filter(payments::payment_method.eq($gateway));
        let columns = (
            PaymentRow::as_select(),
            (
                orders::status,
                orders::total_minor,
                orders::currency,
                orders::paid_minor,
            ),
        );
        match $lookup {
            Lookup::TransactionId(transaction_id) => {
                let $query = own
                    .filter(payments::transaction_id.eq(transaction_id))
                    .select(columns);
                $finish
            }
            // Unique per gateway, and only this gateway's payments are read.
            Lookup::ExternalId(external_id) => {
                let $query = own
                    .filter(payments::external_id.eq(external_id))
                    .select(columns);
                $finish
            }
            Lookup::GatewayReference(reference) => {
                let $query = own
                    .filter(
                        payments::gateway_reference
                            .eq(reference)
                            .or(payments::external_id.eq(reference)),
                    )
                    .order(payments::id)
                    .select(columns);
                $finish
            }
        }
    }};
}

/// Finds the payment of the event's gateway that the event names, trying
/// the lookups in the domain's order, with its order's status, in one statement per lookup. On
/// PostgreSQL `FOR UPDATE` locks both rows (a row of each joined table) and
/// returns their latest committed versions, so that two payments of one
/// order cannot both see it pending; SQLite's single writer needs no lock.
pub(super) fn find_and_lock(conn: &mut DbConn, event: &GatewayEvent) -> QueryResult<Option<Found>> {
    for lookup in event.references.lookups() {
        let found: Option<(PaymentRow, OrderColumns)> = match conn {
            DbConn::Pg(pg) => lookup_query!(lookup, &event.gateway, |query| query
                .for_update()
                .get_result(pg)
                .optional()?),
            DbConn::Sqlite(sqlite) => {
                lookup_query!(lookup, &event.gateway, |query| query
                    .get_result(sqlite)
                    .optional()?)
            }
        };
        if let Some((row, order)) = found {
            return Ok(Some(Found { row, order }));
        }
    }
    Ok(None)
}

/// The payment with this id and its order's state, locked on PostgreSQL as
/// [`find_and_lock`] locks them: for the events that waited for this
/// payment to complete, which name it by the id they were recorded with.
pub(super) fn find_by_id_and_lock(conn: &mut DbConn, id: PaymentId) -> QueryResult<Option<Found>> {
    // `as_select` names the backend, and the locking clause changes the
    // query's type, so each arm builds its own.
    macro_rules! by_id {
        () => {
            payments::table
                .inner_join(orders::table)
                .filter(payments::id.eq(id.0))
                .select((
                    PaymentRow::as_select(),
                    (
                        orders::status,
                        orders::total_minor,
                        orders::currency,
                        orders::paid_minor,
                    ),
                ))
        };
    }
    let found: Option<(PaymentRow, OrderColumns)> = match conn {
        DbConn::Pg(pg) => by_id!().for_update().get_result(pg).optional()?,
        DbConn::Sqlite(sqlite) => by_id!().get_result(sqlite).optional()?,
    };
    Ok(found.map(|(row, order)| Found { row, order }))
}

/// PostgreSQL, for a group-commit batch: the payments the events at
/// `wanted` (index in the batch, event) name by their first lookup, when
/// that is a transaction id or an external id (each names at most one
/// payment of a gateway), found and locked with their orders in one
/// statement per gateway and kind of lookup, in payment id order (so two
/// batches lock their common rows in one order). An index is returned
/// with the payment only if it is the first of `wanted` to name it; the
/// others, and the events whose first lookup finds nothing or is by
/// gateway reference, are looked up one by one ([`find_and_lock`]).
///
/// A first lookup that finds a payment here finds the same payment when it
/// runs alone, as long as no earlier event of the batch wrote that payment
/// (`transaction_id` never changes, and `(payment_method, external_id)` is
/// unique): the caller looks up again an event whose payment or order an
/// earlier one touched.
pub(super) fn find_and_lock_first(
    pg: &mut PgConnection,
    wanted: &[(usize, &GatewayEvent)],
) -> QueryResult<HashMap<usize, Found>> {
    // (gateway, by transaction id?) -> (looked-up value -> first index).
    let mut groups: HashMap<(&str, bool), HashMap<&str, usize>> = HashMap::new();
    for (index, event) in wanted {
        let (by_transaction, value) = match event.references.lookups().next() {
            Some(Lookup::TransactionId(value)) => (true, value),
            Some(Lookup::ExternalId(value)) => (false, value),
            _ => continue,
        };
        groups
            .entry((event.gateway.as_str(), by_transaction))
            .or_default()
            .entry(value)
            .or_insert(*index);
    }
    let mut found = HashMap::new();
    for ((gateway, by_transaction), named) in groups {
        let values: Vec<&str> = named.keys().copied().collect();
        let own = payments::table
            .inner_join(orders::table)
            .filter(payments::payment_method.eq(gateway))
            .order(payments::id)
            .select((
                PaymentRow::as_select(),
                (
                    orders::status,
                    orders::total_minor,
                    orders::currency,
                    orders::paid_minor,
                ),
            ));
        let rows: Vec<(PaymentRow, OrderColumns)> = if by_transaction {
            own.filter(payments::transaction_id.eq_any(&values))
                .for_update()
                .load(pg)?
        } else {
            own.filter(payments::external_id.eq_any(&values))
                .for_update()
                .load(pg)?
        };
        for (row, order) in rows {
            let key = if by_transaction {
                Some(row.transaction_id.as_str())
            } else {
                row.external_id.as_deref()
            };
            if let Some(&index) = key.and_then(|key| named.get(key)) {
                found.insert(index, Found { row, order });
            }
        }
    }
    Ok(found)
}
