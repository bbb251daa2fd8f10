//! PostgreSQL's writes of one decision in one statement: the same writes as
//! the portable code in `ops`, in one round trip instead of four.
//!
//! Under load each statement costs PostgreSQL a round trip and, for an
//! UPDATE (which diesel never keeps prepared), a parse and a plan; perf
//! showed that work, not the commits, bounding the rate. So the payment,
//! the order, the first outbox row and the event's outcome are written by
//! one statement of data-modifying CTEs that stays prepared on the
//! connection.

use chrono::NaiveDateTime;
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};
use payhook_domain::{OrderStatus, OutboxStatus};

use crate::models::PaymentChanges;

/// The writes of one decision on rows this transaction has locked: the
/// payment (when it changes), the order (when it becomes paid), the first
/// notification's outbox row (if any) and the event's outcome, as one
/// statement.
pub(crate) struct WriteDecision<'a> {
    payment_id: i64,
    /// False when the payment does not change; its columns are then NULL
    /// and unused.
    write_payment: bool,
    status: Option<&'a str>,
    external_id: Option<&'a str>,
    gateway_reference: Option<&'a str>,
    mismatch_expected_minor: Option<i64>,
    mismatch_expected_currency: Option<&'a str>,
    mismatch_received_minor: Option<i64>,
    mismatch_received_currency: Option<&'a str>,
    updated_at: Option<NaiveDateTime>,
    order_id: i64,
    order_becomes_paid: bool,
    event_row: i64,
    outcome: &'a str,
    now: NaiveDateTime,
    /// False when the decision notifies nobody; kind and payload are
    /// then NULL and unused.
    write_notification: bool,
    notification_kind: Option<&'a str>,
    notification_payload: Option<&'a str>,
}

impl<'a> WriteDecision<'a> {
    /// The statement for one decision; `payment` is `None` when the payment
    /// row stays as it is. It writes at most one outbox row (`notification`,
    /// kind and payload); the caller inserts any further ones after it, so
    /// that the rows keep the decision's order.
    pub(crate) fn new(
        payment_id: i64,
        payment: Option<PaymentChanges<'a>>,
        order_id: i64,
        order_becomes_paid: bool,
        (event_row, outcome): (i64, &'a str),
        notification: Option<(&'a str, &'a str)>,
        now: NaiveDateTime,
    ) -> Self {
        let changes = payment.as_ref();
        Self {
            payment_id,
            write_payment: payment.is_some(),
            status: changes.map(|c| c.status),
            external_id: changes.and_then(|c| c.external_id),
            gateway_reference: changes.and_then(|c| c.gateway_reference),
            mismatch_expected_minor: changes.and_then(|c| c.mismatch_expected_minor),
            mismatch_expected_currency: changes.and_then(|c| c.mismatch_expected_currency),
            mismatch_received_minor: changes.and_then(|c| c.mismatch_received_minor),
            mismatch_received_currency: changes.and_then(|c| c.mismatch_received_currency),
            updated_at: changes.map(|c| c.updated_at),
            order_id,
            order_becomes_paid,
            event_row,
            outcome,
            now,
            write_notification: notification.is_some(),
            notification_kind: notification.map(|(kind, _)| kind),
            notification_payload: notification.map(|(_, payload)| payload),
        }
    }
}

impl QueryFragment<Pg> for WriteDecision<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        // The SQL is the same whatever the values (an unchanged payment is
        // a false condition, not a missing CTE), so one prepared statement
        // serves every decision.
        out.push_sql("WITH payment AS (UPDATE payments SET status = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.status)?;
        out.push_sql(", external_id = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.external_id)?;
        out.push_sql(", gateway_reference = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.gateway_reference)?;
        out.push_sql(", mismatch_expected_minor = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.mismatch_expected_minor)?;
        out.push_sql(", mismatch_expected_currency = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.mismatch_expected_currency)?;
        out.push_sql(", mismatch_received_minor = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.mismatch_received_minor)?;
        out.push_sql(", mismatch_received_currency = ");
        out.push_bind_param::<Nullable<Text>, _>(&self.mismatch_received_currency)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&self.updated_at)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.payment_id)?;
        out.push_sql(" AND ");
        out.push_bind_param::<Bool, _>(&self.write_payment)?;
        out.push_sql("), paid AS (UPDATE orders SET status = ");
        out.push_bind_param::<Text, _>(OrderStatus::Paid.as_str())?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.order_id)?;
        out.push_sql(" AND status = ");
        out.push_bind_param::<Text, _>(OrderStatus::Pending.as_str())?;
        out.push_sql(" AND ");
        out.push_bind_param::<Bool, _>(&self.order_becomes_paid)?;
        out.push_sql(
            "), note AS (INSERT INTO outbox (kind, order_id, payment_id, payload, \
             status, attempts, next_attempt_at, created_at) SELECT ",
        );
        out.push_bind_param::<Nullable<Text>, _>(&self.notification_kind)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.order_id)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.payment_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.notification_payload)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(OutboxStatus::Pending.as_str())?;
        out.push_sql(", 0, ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE ");
        out.push_bind_param::<Bool, _>(&self.write_notification)?;
        out.push_sql(") UPDATE webhook_events SET outcome = ");
        out.push_bind_param::<Text, _>(self.outcome)?;
        out.push_sql(", payment_id = ");
        out.push_bind_param::<BigInt, _>(&self.payment_id)?;
        out.push_sql(", processed_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<BigInt, _>(&self.event_row)?;
        Ok(())
    }
}

impl QueryId for WriteDecision<'_> {
    type QueryId = WriteDecision<'static>;
    // The text never varies, so diesel may keep it prepared.
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl RunQueryDsl<PgConnection> for WriteDecision<'_> {}
