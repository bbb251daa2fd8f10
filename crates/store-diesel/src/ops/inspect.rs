//! Test-only inspection of the store: the outbox and event rows as stored,
//! for assertions. Built with the `testing` feature (and for this crate's
//! unit tests) only: nothing in production reads the tables this way.

use diesel::prelude::*;
use payhook_domain::ports::StoreError;

use super::store_error;
use crate::conn::StoreConn;
use crate::schema::{outbox, webhook_events};

/// One outbox row, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxEntry {
    /// Row id, increasing with time.
    pub id: i64,
    /// `order.paid`, `payment.failed`, `payment.amount_mismatch`.
    pub kind: String,
    /// The order concerned.
    pub order_id: i64,
    /// The payment concerned.
    pub payment_id: i64,
    /// The JSON body for the shop.
    pub payload: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i32,
}

/// The outbox rows, oldest first.
pub(crate) fn outbox(conn: &mut StoreConn) -> Result<Vec<OutboxEntry>, StoreError> {
    outbox::table
        .order(outbox::id)
        .select(OutboxEntry::as_select())
        .load(&mut conn.db)
        .map_err(store_error)
}

/// One recorded gateway event, without its payload.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub struct EventRecord {
    /// Row id.
    pub id: i64,
    /// The gateway's name.
    pub gateway: String,
    /// The gateway's event id.
    pub event_id: String,
    /// The gateway's event type.
    pub event_type: String,
    /// `unmatched` or the decision's outcome (`confirmed`, `failed`, ...).
    pub outcome: String,
    /// The payment it matched.
    pub payment_id: Option<i64>,
    /// Deliveries that reached the store.
    pub attempts: i32,
}

/// The recorded events, oldest first.
pub(crate) fn events(conn: &mut StoreConn) -> Result<Vec<EventRecord>, StoreError> {
    webhook_events::table
        .order(webhook_events::id)
        .select(EventRecord::as_select())
        .load(&mut conn.db)
        .map_err(store_error)
}
