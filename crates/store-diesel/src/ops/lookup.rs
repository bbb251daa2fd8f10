//! Finding the payment a gateway event names, with its order's status, in
//! the domain's lookup order, locked on PostgreSQL. It only reads: what to
//! do with the payment is `apply`'s business.

use diesel::prelude::*;
use payhook_domain::{GatewayEvent, Lookup, OrderStatus, Payment};

use crate::conn::DbConn;
use crate::models::{CorruptRow, PaymentRow};
use crate::schema::{orders, payments};

/// The payment an event names and its order's status, as read.
pub(super) struct Found {
    row: PaymentRow,
    order_status: String,
}

/// The payment an event names and its order's status, as values of the
/// domain: what `decide` takes.
pub(super) struct LockedPayment {
    /// The payment, as committed before this transaction's writes.
    pub(super) payment: Payment,
    /// Its order's status.
    pub(super) order_status: OrderStatus,
}

impl Found {
    /// The id of the payment found, read before the row is converted.
    pub(super) fn payment_id(&self) -> i64 {
        self.row.id
    }

    /// The row as domain values; a row that does not convert is corrupt.
    pub(super) fn into_locked(self) -> Result<LockedPayment, CorruptRow> {
        let payment = Payment::try_from(self.row)?;
        let order_status =
            self.order_status
                .parse()
                .map_err(|error: payhook_domain::UnknownStatus| {
                    CorruptRow::new("orders", payment.order_id.0, error.to_string())
                })?;
        Ok(LockedPayment {
            payment,
            order_status,
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
        let columns = (PaymentRow::as_select(), orders::status);
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
        let found: Option<(PaymentRow, String)> = match conn {
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
        if let Some((row, order_status)) = found {
            return Ok(Some(Found { row, order_status }));
        }
    }
    Ok(None)
}
