//! Orders and payments: creating and reading them, and marking a payment
//! pending under the gateway's external id (which also applies the events
//! that arrived for it before). Gateway events themselves are `apply`'s.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use payhook_domain::ports::{Applied, StoreError, StoredEvent};
use payhook_domain::{
    AmountPolicy, NewOrder, NewPayment, Order, OrderId, OrderStatus, Payment, PaymentId,
};

use super::apply::decide_and_write;
use super::decision::{execute_write, payment_write};
use super::events::unmatched_events_naming;
use super::lookup::find_and_lock;
use super::{lock_external_ids, store_error, with_retry, TxError};
use crate::conn::{DbConn, StoreConn};
use crate::models::{naive, stored_precision, NewOrderRow, NewPaymentRow, OrderRow, PaymentRow};
use crate::schema::{orders, payments};

/// Reads a payment row, locking it on PostgreSQL.
fn lock_payment(conn: &mut DbConn, id: i64) -> QueryResult<Option<PaymentRow>> {
    // The query is written per arm: its backend type differs.
    match conn {
        DbConn::Pg(pg) => payments::table
            .find(id)
            .select(PaymentRow::as_select())
            .for_update()
            .get_result(pg)
            .optional(),
        DbConn::Sqlite(_) => payments::table
            .find(id)
            .select(PaymentRow::as_select())
            .get_result(conn)
            .optional(),
    }
}

pub(crate) fn create_order(
    conn: &mut StoreConn,
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
            .get_result(conn)?;
        Ok(Order::try_from(stored)?)
    })
}

pub(crate) fn order(conn: &mut StoreConn, id: OrderId) -> Result<Order, StoreError> {
    let row = orders::table
        .find(id.0)
        .select(OrderRow::as_select())
        .get_result(&mut conn.db)
        .optional()
        .map_err(store_error)?
        .ok_or(StoreError::OrderNotFound(id))?;
    Order::try_from(row).map_err(|e| StoreError::Backend(Box::new(e)))
}

pub(crate) fn create_payment(
    conn: &mut StoreConn,
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
            .get_result::<i64>(conn)
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
            .get_result(conn)?;
        Ok(Payment::try_from(stored)?)
    })
}

pub(crate) fn payment(conn: &mut StoreConn, id: PaymentId) -> Result<Payment, StoreError> {
    let row = payments::table
        .find(id.0)
        .select(PaymentRow::as_select())
        .get_result(&mut conn.db)
        .optional()
        .map_err(store_error)?
        .ok_or(StoreError::PaymentNotFound(id))?;
    Payment::try_from(row).map_err(|e| StoreError::Backend(Box::new(e)))
}

pub(crate) fn mark_pending(
    conn: &mut StoreConn,
    id: PaymentId,
    external_id: &str,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Payment, StoreError> {
    let now = stored_precision(now);
    with_retry(conn, |conn| {
        // Taken before the payment row; a delivery waits for it only while
        // holding no payment or order lock, so neither waits in a cycle.
        lock_external_ids(conn, &[external_id])?;
        let current =
            Payment::try_from(lock_payment(conn, id.0)?.ok_or(StoreError::PaymentNotFound(id))?)?;
        let holder = |conn: &mut DbConn| {
            payments::table
                .filter(payments::payment_method.eq(&current.payment_method))
                .filter(payments::external_id.eq(external_id))
                .filter(payments::id.ne(id.0))
                .select(payments::id)
                .get_result::<i64>(conn)
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
            let updated = conn.transaction(|conn| execute_write(&payment_write(&next, true), conn));
            match updated {
                Ok(_) => {}
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    let other = holder(conn)?.unwrap_or_default();
                    return Err(StoreError::ExternalIdTaken(PaymentId(other)).into());
                }
                Err(other) => return Err(other.into()),
            }
        }
        apply_waiting_events(conn, id, next, external_id, policy, now)
    })
}

/// Applies, in the mark-pending transaction, the events of the payment's
/// gateway that arrived before payment `id` was recorded under
/// `external_id`, and returns the payment as they leave it (`pending` when
/// there are none).
fn apply_waiting_events(
    conn: &mut DbConn,
    id: PaymentId,
    pending: Payment,
    external_id: &str,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Payment, TxError> {
    let pending_gateway = pending.payment_method.clone();
    let mut latest = pending;
    if external_id.is_empty() {
        return Ok(latest);
    }
    for row in unmatched_events_naming(conn, &pending_gateway, external_id)? {
        let stored = StoredEvent::try_from(row)?;
        // The event's own lookup decides, as for a delivery: a transaction
        // id naming another payment wins over the external id.
        let Some(found) = find_and_lock(conn, &stored.event)? else {
            continue;
        };
        if found.payment_id() != id.0 {
            tracing::warn!(
                event = stored.id,
                payment = found.payment_id(),
                "an unmatched event naming this external id belongs to another payment; left as is"
            );
            continue;
        }
        let locked = found.into_locked(conn, stored.event.kind)?;
        if let Applied::Decided { payment, .. } =
            decide_and_write(conn, stored.id, &stored.event, locked, policy, now)?
        {
            latest = payment;
        }
    }
    Ok(latest)
}
