//! The units of work, each a synchronous function over one connection.
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

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Integer;
use payhook_domain::ports::{
    Applied, EventDetail, EventFilter, EventOutcome, EventToApply, StoreError, StoredEvent,
};
use payhook_domain::{
    decide, AmountPolicy, GatewayEvent, Lookup, NewOrder, NewPayment, Notification, Order, OrderId,
    OrderStatus, OutboxStatus, Payment, PaymentId,
};

use crate::conn::{write_transaction, DbConn};
use crate::models::{
    naive, stored_precision, CorruptRow, EventRow, EventStatusRow, NewEventRow, NewOrderRow,
    NewOutboxRow, NewPaymentRow, OrderRow, PaymentChanges, PaymentRow,
};
use crate::pg;
use crate::schema::{orders, outbox, payments, webhook_events};

/// The stored outcome of an event that matched no payment yet.
const UNMATCHED: &str = "unmatched";

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
            .get_result(pg)
            .optional(),
        DbConn::Sqlite(_) => payments::table
            .find(id)
            .select(PaymentRow::as_select())
            .get_result(conn)
            .optional(),
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
            .get_result(conn)?;
        Ok(Order::try_from(stored)?)
    })
}

pub(crate) fn order(conn: &mut DbConn, id: OrderId) -> Result<Order, StoreError> {
    let row = orders::table
        .find(id.0)
        .select(OrderRow::as_select())
        .get_result(conn)
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

pub(crate) fn payment(conn: &mut DbConn, id: PaymentId) -> Result<Payment, StoreError> {
    let row = payments::table
        .find(id.0)
        .select(PaymentRow::as_select())
        .get_result(conn)
        .optional()
        .map_err(store_error)?
        .ok_or(StoreError::PaymentNotFound(id))?;
    Payment::try_from(row).map_err(|e| StoreError::Backend(Box::new(e)))
}

pub(crate) fn mark_pending(
    conn: &mut DbConn,
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
        apply_waiting_events(conn, id, next, external_id, policy, now)
    })
}

/// The unmatched events whose external id or gateway reference is
/// `external_id`, oldest first; on PostgreSQL locked, skipping those a
/// delivery in flight holds (it will find the payment itself).
fn unmatched_events_naming(conn: &mut DbConn, external_id: &str) -> QueryResult<Vec<EventRow>> {
    // One query, written once; its type names the backend, so it is built per arm.
    macro_rules! naming {
        () => {
            webhook_events::table
                .filter(webhook_events::outcome.eq(UNMATCHED))
                .filter(
                    webhook_events::ref_external_id
                        .eq(external_id)
                        .or(webhook_events::ref_gateway_reference.eq(external_id)),
                )
                .order(webhook_events::id)
                .select(EventRow::as_select())
        };
    }
    match conn {
        DbConn::Pg(pg) => naming!().for_update().skip_locked().load(pg),
        DbConn::Sqlite(_) => naming!().load(conn),
    }
}

/// Applies, in the mark-pending transaction, the events that arrived before
/// payment `id` was recorded under `external_id`, and returns the payment
/// as they leave it (`pending` when there are none).
fn apply_waiting_events(
    conn: &mut DbConn,
    id: PaymentId,
    pending: Payment,
    external_id: &str,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Payment, TxError> {
    let mut latest = pending;
    if external_id.is_empty() {
        return Ok(latest);
    }
    for row in unmatched_events_naming(conn, external_id)? {
        let stored = StoredEvent::try_from(row)?;
        // The event's own lookup decides, as for a delivery: a transaction
        // id naming another payment wins over the external id.
        let Some((found, order_status)) = find_and_lock(conn, &stored.event)? else {
            continue;
        };
        if found.id != id.0 {
            tracing::warn!(
                event = stored.id,
                payment = found.id,
                "an unmatched event naming this external id belongs to another payment; left as is"
            );
            continue;
        }
        let payment = Payment::try_from(found)?;
        if let Applied::Decided { payment, .. } = decide_and_write(
            conn,
            stored.id,
            &stored.event,
            (payment, order_status),
            policy,
            now,
        )? {
            latest = payment;
        }
    }
    Ok(latest)
}

/// One lookup's query: the payment it names joined with its order's
/// status, ordered so that the wanted payment comes first, handed to
/// `$finish` as `$query` (each backend runs it its own way). The lookup
/// rules are written here once for both backends.
macro_rules! lookup_query {
    ($lookup:expr, $gateway:expr, |$query:ident| $finish:expr) => {{
        let joined = payments::table.inner_join(orders::table);
        let columns = (PaymentRow::as_select(), orders::status);
        match $lookup {
            Lookup::TransactionId(transaction_id) => {
                let $query = joined
                    .filter(payments::transaction_id.eq(transaction_id))
                    .select(columns);
                $finish
            }
            // Unique per gateway only, so prefer the payment of this gateway.
            Lookup::ExternalId(external_id) => {
                let $query = joined
                    .filter(payments::external_id.eq(external_id))
                    .order((payments::payment_method.eq($gateway).desc(), payments::id))
                    .select(columns);
                $finish
            }
            Lookup::GatewayReference(reference) => {
                let $query = joined
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

/// Finds the payment an event names, trying the lookups in the domain's
/// order, with its order's status, in one statement per lookup. On
/// PostgreSQL `FOR UPDATE` locks both rows (a row of each joined table) and
/// returns their latest committed versions, so that two payments of one
/// order cannot both see it pending; SQLite's single writer needs no lock.
fn find_and_lock(
    conn: &mut DbConn,
    event: &GatewayEvent,
) -> QueryResult<Option<(PaymentRow, String)>> {
    for lookup in event.references.lookups() {
        let found = match conn {
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
        if found.is_some() {
            return Ok(found);
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
    // `ON CONFLICT DO NOTHING` rather than catching the unique violation:
    // on PostgreSQL a failed statement aborts the transaction, so catching
    // it would need a savepoint (two more round trips). A conflict with a
    // transaction in flight waits for it, as the violation did, and then
    // returns no row.
    // Written per arm: MultiConnection has no upsert of its own.
    macro_rules! insert {
        ($conn:expr) => {
            diesel::insert_into(webhook_events::table)
                .values(&row)
                .on_conflict((webhook_events::gateway, webhook_events::event_id))
                .do_nothing()
                .returning(webhook_events::id)
                .get_result::<i64>($conn)
                .optional()?
        };
    }
    let inserted = match conn {
        DbConn::Pg(pg) => insert!(pg),
        DbConn::Sqlite(sqlite) => insert!(sqlite),
    };
    match inserted {
        Some(id) => Ok(Ok(id)),
        None => {
            let existing: EventStatusRow = match conn {
                DbConn::Pg(pg) => webhook_events::table
                    .filter(webhook_events::gateway.eq(&event.gateway))
                    .filter(webhook_events::event_id.eq(&event.event_id))
                    .select(EventStatusRow::as_select())
                    .for_update()
                    .get_result(pg)?,
                DbConn::Sqlite(_) => webhook_events::table
                    .filter(webhook_events::gateway.eq(&event.gateway))
                    .filter(webhook_events::event_id.eq(&event.event_id))
                    .select(EventStatusRow::as_select())
                    .get_result(conn)?,
            };
            let outcome = EventOutcome::parse(&existing.outcome).ok_or_else(|| {
                CorruptRow::new(
                    "webhook_events",
                    existing.id,
                    format!("unknown outcome {:?}", existing.outcome),
                )
            })?;
            if outcome.is_final() {
                let payment = match existing.payment_id {
                    Some(id) => Some(Payment::try_from(
                        payments::table
                            .find(id)
                            .select(PaymentRow::as_select())
                            .get_result(conn)?,
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
    }
}

/// The unit of work for one event, inside a write transaction the caller
/// opened: record it, find and lock the payment, decide, write.
fn apply_event_body(conn: &mut DbConn, to_apply: &EventToApply) -> Result<Applied, TxError> {
    let event = &to_apply.event;
    let event_row = match record_event(conn, to_apply)? {
        Ok(id) => id,
        Err(duplicate) => return Ok(duplicate),
    };
    let mut found = find_and_lock(conn, event)?;
    if found.is_none() && matches!(conn, DbConn::Pg(_)) {
        // A payment may be being marked pending under one of these ids
        // right now, blind to this uncommitted event: wait for it under
        // the id's lock, then look again (see the module comment).
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
    let Some((row, order_status)) = found else {
        return Ok(Applied::Unmatched);
    };
    let payment = Payment::try_from(row)?;
    let now = stored_precision(to_apply.received_at);
    decide_and_write(
        conn,
        event_row,
        event,
        (payment, order_status),
        to_apply.policy,
        now,
    )
}

pub(crate) fn apply_event(
    conn: &mut DbConn,
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
    conn: &mut DbConn,
    batch: &[EventToApply],
) -> Vec<Result<Applied, StoreError>> {
    let all_or_nothing = write_transaction(conn, |conn| {
        batch
            .iter()
            .map(|to_apply| apply_event_body(conn, to_apply))
            .collect::<Result<Vec<Applied>, TxError>>()
    });
    match all_or_nothing {
        Ok(applied) => applied.into_iter().map(Ok).collect(),
        Err(_) => apply_events_with_savepoints(conn, batch),
    }
}

/// [`apply_events`] with a savepoint per event. An event that lost a
/// serialization race or a deadlock is applied again on its own after the
/// commit.
fn apply_events_with_savepoints(
    conn: &mut DbConn,
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

/// Decides and writes the decision, on the payment and order status
/// [`find_and_lock`] read.
fn decide_and_write(
    conn: &mut DbConn,
    event_row: i64,
    event: &GatewayEvent,
    (payment, order_status): (Payment, String),
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Applied, TxError> {
    let order_status: OrderStatus = order_status
        .parse()
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
    let decision = decide(&payment, order_status, event, policy, now);
    let insert_notification = |conn: &mut DbConn, notification: &Notification| {
        diesel::insert_into(outbox::table)
            .values(NewOutboxRow {
                kind: notification.kind.as_str(),
                order_id: payment.order_id.0,
                payment_id: payment.id.0,
                payload: &notification.payload,
                status: OutboxStatus::Pending.as_str(),
                attempts: 0,
                next_attempt_at: naive(now),
                created_at: naive(now),
            })
            .execute(conn)
    };
    if let DbConn::Pg(pg) = conn {
        let first = decision.notifications.first();
        pg::WriteDecision::new(
            payment.id.0,
            decision
                .changes_payment(&payment)
                .then(|| PaymentChanges::from(&decision.payment)),
            payment.order_id.0,
            decision.order_becomes_paid,
            (event_row, decision.outcome.as_str()),
            first.map(|n| (n.kind.as_str(), n.payload.as_str())),
            naive(now),
        )
        .execute(pg)?;
        for notification in decision.notifications.iter().skip(1) {
            insert_notification(conn, notification)?;
        }
        return Ok(Applied::Decided {
            outcome: decision.outcome,
            payment: decision.payment,
        });
    }
    for notification in &decision.notifications {
        insert_notification(conn, notification)?;
    }
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
    diesel::update(webhook_events::table.find(event_row))
        .set((
            webhook_events::outcome.eq(decision.outcome.as_str()),
            webhook_events::payment_id.eq(payment.id.0),
            webhook_events::processed_at.eq(naive(now)),
        ))
        .execute(conn)?;
    Ok(Applied::Decided {
        outcome: decision.outcome,
        payment: decision.payment,
    })
}

/// The recorded events that pass `filter`, by ascending id.
pub(crate) fn webhook_events(
    conn: &mut DbConn,
    filter: &EventFilter,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut query = webhook_events::table
        .select(EventRow::as_select())
        .order(webhook_events::id)
        .limit(i64::from(filter.limit))
        .into_boxed();
    if let Some(after_id) = filter.after_id {
        query = query.filter(webhook_events::id.gt(after_id));
    }
    if let Some(gateway) = &filter.gateway {
        query = query.filter(webhook_events::gateway.eq(gateway));
    }
    if let Some(outcome) = filter.outcome {
        query = query.filter(webhook_events::outcome.eq(outcome.as_str()));
    }
    if let Some(payment_id) = filter.payment_id {
        query = query.filter(webhook_events::payment_id.eq(payment_id.0));
    }
    if let Some(after) = filter.received_after {
        query = query.filter(webhook_events::received_at.ge(naive(after)));
    }
    if let Some(before) = filter.received_before {
        query = query.filter(webhook_events::received_at.lt(naive(before)));
    }
    let rows: Vec<EventRow> = query.load(conn).map_err(store_error)?;
    rows.into_iter()
        .map(|row| StoredEvent::try_from(row).map_err(|e| StoreError::Backend(Box::new(e))))
        .collect()
}

/// The recorded event with this id and its payload, if any.
pub(crate) fn webhook_event(conn: &mut DbConn, id: i64) -> Result<Option<EventDetail>, StoreError> {
    let found: Option<(EventRow, Vec<u8>)> = webhook_events::table
        .find(id)
        .select((EventRow::as_select(), webhook_events::payload))
        .get_result(conn)
        .optional()
        .map_err(store_error)?;
    found
        .map(|(row, payload)| {
            Ok(EventDetail {
                record: StoredEvent::try_from(row).map_err(|e| StoreError::Backend(Box::new(e)))?,
                payload,
            })
        })
        .transpose()
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

pub(crate) fn outbox_backlog(conn: &mut DbConn) -> Result<i64, StoreError> {
    outbox::table
        .filter(outbox::status.eq("pending"))
        .count()
        .get_result(conn)
        .map_err(store_error)
}
