//! The units of work, each a synchronous function over one connection.
//!
//! Locking: on SQLite every write transaction holds the database write lock
//! from its first statement (`BEGIN IMMEDIATE`). On PostgreSQL (READ
//! COMMITTED) the unique index on `(gateway, event_id)` decides duplicates,
//! and rows are taken in one order — event, payment, order — with
//! `SELECT ... FOR UPDATE`, so two transactions never wait on each other in
//! a cycle.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use payhook_domain::ports::{Applied, EventToApply, StoreError};
use payhook_domain::{
    decide, GatewayEvent, Lookup, NewOrder, NewPayment, Order, OrderId, OrderStatus, Outcome,
    Payment, PaymentId,
};

use crate::conn::{write_transaction, DbConn};
use crate::models::{
    naive, stored_precision, CorruptRow, EventStatusRow, NewEventRow, NewOrderRow, NewOutboxRow,
    NewPaymentRow, OrderRow, PaymentChanges, PaymentRow,
};
use crate::schema::{orders, outbox, payments, webhook_events};

/// The stored outcome of an event that matched no payment yet.
pub(crate) const UNMATCHED: &str = "unmatched";

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

fn store_error(error: DieselError) -> StoreError {
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
    conn: &mut DbConn,
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

/// Reads a payment row, locking it on PostgreSQL.
fn lock_payment(conn: &mut DbConn, id: i64) -> QueryResult<Option<PaymentRow>> {
    // The query is written per arm: its backend type differs.
    match conn {
        DbConn::Pg(pg) => payments::table
            .find(id)
            .select(PaymentRow::as_select())
            .for_update()
            .first(pg)
            .optional(),
        DbConn::Sqlite(_) => payments::table
            .find(id)
            .select(PaymentRow::as_select())
            .first(conn)
            .optional(),
    }
}

/// Reads an order's status, locking the row on PostgreSQL so that two
/// payments of one order cannot both see it pending.
fn lock_order_status(conn: &mut DbConn, id: i64) -> QueryResult<String> {
    match conn {
        DbConn::Pg(pg) => orders::table
            .find(id)
            .select(orders::status)
            .for_update()
            .first(pg),
        DbConn::Sqlite(_) => orders::table.find(id).select(orders::status).first(conn),
    }
}

pub(crate) fn create_order(
    conn: &mut DbConn,
    order: &NewOrder,
    now: DateTime<Utc>,
) -> Result<Order, StoreError> {
    let row = NewOrderRow {
        client_id: &order.client_id,
        total_minor: order.total.minor(),
        currency: order.total.currency().code(),
        status: OrderStatus::Pending.as_str(),
        created_at: naive(now),
        updated_at: naive(now),
    };
    with_retry(conn, |conn| {
        // MultiConnection returns plain columns only, so read the row back.
        let id: i64 = diesel::insert_into(orders::table)
            .values(&row)
            .returning(orders::id)
            .get_result(conn)?;
        let stored: OrderRow = orders::table
            .find(id)
            .select(OrderRow::as_select())
            .first(conn)?;
        Ok(Order::try_from(stored)?)
    })
}

pub(crate) fn order(conn: &mut DbConn, id: OrderId) -> Result<Order, StoreError> {
    let row = orders::table
        .find(id.0)
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
        .map_err(store_error)?
        .ok_or(StoreError::OrderNotFound(id))?;
    Order::try_from(row).map_err(|e| StoreError::Backend(Box::new(e)))
}

pub(crate) fn create_payment(
    conn: &mut DbConn,
    payment: &NewPayment,
    now: DateTime<Utc>,
) -> Result<Payment, StoreError> {
    let row = NewPaymentRow {
        order_id: payment.order_id.0,
        transaction_id: &payment.transaction_id,
        payment_method: &payment.payment_method,
        amount_minor: payment.amount.minor(),
        currency: payment.amount.currency().code(),
        status: payhook_domain::PaymentStatus::Created.as_str(),
        created_at: naive(now),
        updated_at: naive(now),
    };
    with_retry(conn, |conn| {
        let exists = orders::table
            .find(payment.order_id.0)
            .select(orders::id)
            .first::<i64>(conn)
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::OrderNotFound(payment.order_id).into());
        }
        let id: i64 = diesel::insert_into(payments::table)
            .values(&row)
            .returning(payments::id)
            .get_result(conn)?;
        let stored: PaymentRow = payments::table
            .find(id)
            .select(PaymentRow::as_select())
            .first(conn)?;
        Ok(Payment::try_from(stored)?)
    })
}

pub(crate) fn payment(conn: &mut DbConn, id: PaymentId) -> Result<Payment, StoreError> {
    let row = payments::table
        .find(id.0)
        .select(PaymentRow::as_select())
        .first(conn)
        .optional()
        .map_err(store_error)?
        .ok_or(StoreError::PaymentNotFound(id))?;
    Payment::try_from(row).map_err(|e| StoreError::Backend(Box::new(e)))
}

pub(crate) fn mark_pending(
    conn: &mut DbConn,
    id: PaymentId,
    external_id: &str,
    now: DateTime<Utc>,
) -> Result<Payment, StoreError> {
    let now = stored_precision(now);
    with_retry(conn, |conn| {
        let current =
            Payment::try_from(lock_payment(conn, id.0)?.ok_or(StoreError::PaymentNotFound(id))?)?;
        let holder = |conn: &mut DbConn| {
            payments::table
                .filter(payments::payment_method.eq(&current.payment_method))
                .filter(payments::external_id.eq(external_id))
                .filter(payments::id.ne(id.0))
                .select(payments::id)
                .first::<i64>(conn)
                .optional()
        };
        if let Some(other) = holder(conn)? {
            return Err(StoreError::ExternalIdTaken(PaymentId(other)).into());
        }
        let next = current
            .mark_pending(external_id, now)
            .map_err(StoreError::from)?;
        if next != current {
            // A savepoint: on PostgreSQL two payments can pass the check
            // above at once, and the unique index then refuses the second.
            let updated = conn.transaction(|conn| {
                diesel::update(payments::table.find(id.0))
                    .set(PaymentChanges::from(&next))
                    .execute(conn)
            });
            match updated {
                Ok(_) => {}
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    let other = holder(conn)?.unwrap_or_default();
                    return Err(StoreError::ExternalIdTaken(PaymentId(other)).into());
                }
                Err(other) => return Err(other.into()),
            }
        }
        Ok(next)
    })
}

/// Finds the payment an event names, trying the lookups in the domain's order.
fn find_payment(conn: &mut DbConn, event: &GatewayEvent) -> QueryResult<Option<PaymentRow>> {
    for lookup in event.references.lookups() {
        let found = match lookup {
            Lookup::TransactionId(transaction_id) => payments::table
                .filter(payments::transaction_id.eq(transaction_id))
                .select(PaymentRow::as_select())
                .first(conn)
                .optional()?,
            // Unique per gateway only, so prefer the payment of this gateway.
            Lookup::ExternalId(external_id) => payments::table
                .filter(payments::external_id.eq(external_id))
                .order((
                    payments::payment_method.eq(&event.gateway).desc(),
                    payments::id,
                ))
                .select(PaymentRow::as_select())
                .first(conn)
                .optional()?,
            Lookup::GatewayReference(reference) => payments::table
                .filter(
                    payments::gateway_reference
                        .eq(reference)
                        .or(payments::external_id.eq(reference)),
                )
                .order(payments::id)
                .select(PaymentRow::as_select())
                .first(conn)
                .optional()?,
        };
        if let Some(row) = found {
            return match conn {
                // Re-read under the row lock: the decision must see the latest commit.
                DbConn::Pg(_) => lock_payment(conn, row.id),
                DbConn::Sqlite(_) => Ok(Some(row)),
            };
        }
    }
    Ok(None)
}

/// Records the event, or finds its earlier record. `Err(Applied::Duplicate)`
/// means a final outcome exists and nothing else must happen.
fn record_event(
    conn: &mut DbConn,
    to_apply: &EventToApply,
) -> Result<Result<i64, Applied>, TxError> {
    let event = &to_apply.event;
    let at = naive(to_apply.received_at);
    let refs = &event.references;
    let row = NewEventRow {
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
        payload: &to_apply.payload,
        attempts: 1,
        received_at: at,
        processed_at: at,
    };
    // A savepoint: on PostgreSQL a failed statement aborts the transaction,
    // and the unique violation is the expected answer for a duplicate.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(webhook_events::table)
            .values(&row)
            .returning(webhook_events::id)
            .get_result::<i64>(conn)
    });
    match inserted {
        Ok(id) => Ok(Ok(id)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            let existing: EventStatusRow = match conn {
                DbConn::Pg(pg) => webhook_events::table
                    .filter(webhook_events::gateway.eq(&event.gateway))
                    .filter(webhook_events::event_id.eq(&event.event_id))
                    .select(EventStatusRow::as_select())
                    .for_update()
                    .first(pg)?,
                DbConn::Sqlite(_) => webhook_events::table
                    .filter(webhook_events::gateway.eq(&event.gateway))
                    .filter(webhook_events::event_id.eq(&event.event_id))
                    .select(EventStatusRow::as_select())
                    .first(conn)?,
            };
            if existing.outcome != UNMATCHED && existing.outcome != Outcome::AmountRejected.as_str()
            {
                let payment = match existing.payment_id {
                    Some(id) => Some(Payment::try_from(
                        payments::table
                            .find(id)
                            .select(PaymentRow::as_select())
                            .first(conn)?,
                    )?),
                    None => None,
                };
                return Ok(Err(Applied::Duplicate { payment }));
            }
            diesel::update(webhook_events::table.find(existing.id))
                .set((
                    webhook_events::attempts.eq(existing.attempts.saturating_add(1)),
                    webhook_events::processed_at.eq(at),
                ))
                .execute(conn)?;
            Ok(Ok(existing.id))
        }
        Err(other) => Err(other.into()),
    }
}

pub(crate) fn apply_event(
    conn: &mut DbConn,
    to_apply: &EventToApply,
) -> Result<Applied, StoreError> {
    with_retry(conn, |conn| {
        let event_row = match record_event(conn, to_apply)? {
            Ok(id) => id,
            Err(duplicate) => return Ok(duplicate),
        };
        let Some(row) = find_payment(conn, &to_apply.event)? else {
            return Ok(Applied::Unmatched);
        };
        let payment = Payment::try_from(row)?;
        let order_status: OrderStatus = lock_order_status(conn, payment.order_id.0)?
            .parse()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let now = stored_precision(to_apply.received_at);
        let decision = decide(
            &payment,
            order_status,
            &to_apply.event,
            to_apply.policy,
            now,
        );
        if decision.changes_payment(&payment) {
            diesel::update(payments::table.find(payment.id.0))
                .set(PaymentChanges::from(&decision.payment))
                .execute(conn)?;
        }
        if decision.order_becomes_paid {
            diesel::update(
                orders::table
                    .find(payment.order_id.0)
                    .filter(orders::status.eq(OrderStatus::Pending.as_str())),
            )
            .set((
                orders::status.eq(OrderStatus::Paid.as_str()),
                orders::updated_at.eq(naive(now)),
            ))
            .execute(conn)?;
        }
        for notification in &decision.notifications {
            diesel::insert_into(outbox::table)
                .values(NewOutboxRow {
                    kind: notification.kind.as_str(),
                    order_id: payment.order_id.0,
                    payment_id: payment.id.0,
                    payload: &notification.payload,
                    status: "pending",
                    attempts: 0,
                    next_attempt_at: naive(now),
                    created_at: naive(now),
                })
                .execute(conn)?;
        }
        diesel::update(webhook_events::table.find(event_row))
            .set((
                webhook_events::outcome.eq(decision.outcome.as_str()),
                webhook_events::payment_id.eq(payment.id.0),
            ))
            .execute(conn)?;
        Ok(Applied::Decided {
            outcome: decision.outcome,
            payment: decision.payment,
        })
    })
}

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

pub(crate) fn outbox(conn: &mut DbConn) -> Result<Vec<OutboxEntry>, StoreError> {
    outbox::table
        .order(outbox::id)
        .select(OutboxEntry::as_select())
        .load(conn)
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

pub(crate) fn events(conn: &mut DbConn) -> Result<Vec<EventRecord>, StoreError> {
    webhook_events::table
        .order(webhook_events::id)
        .select(EventRecord::as_select())
        .load(conn)
        .map_err(store_error)
}
