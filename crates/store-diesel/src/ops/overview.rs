//! The operator's reads ([`payhook_domain::OverviewStore`]): a payment found
//! by any id it is known by, the overview's counts, and one order's
//! notifications. Plain reads on one pooled connection, outside any write
//! transaction: nothing here locks or writes, and a count may be a moment
//! old by the time it is shown.
//!
//! Stored names (statuses, outcomes) are the domain's `as_str`, bound as
//! values, so the two sides cannot drift apart.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use payhook_domain::overview::query_id;
use payhook_domain::ports::{EventOutcome, StoreError};
use payhook_domain::{
    DisputeStatus, OrderId, OutboxMessage, OutboxStatus, Overview, Payment, PaymentStatus,
    WebhookCount,
};

use super::store_error;
use crate::conn::StoreConn;
use crate::models::{naive, CorruptRow, OutboxRow, PaymentRow};
use crate::schema::{outbox, payments, webhook_events};

fn corrupt(error: CorruptRow) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// A count as the domain reports it; a database never counts below zero.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The payments `query` names, by ascending id, at most `limit`.
pub(crate) fn search_payments(
    conn: &mut StoreConn,
    query: &str,
    limit: u32,
) -> Result<Vec<Payment>, StoreError> {
    if query.is_empty() {
        return Ok(Vec::new());
    }
    // Each condition is an equality on an indexed column (the primary key,
    // the unique transaction id, `payments_external_id`,
    // `payments_gateway_reference`).
    let mut search = payments::table
        .select(PaymentRow::as_select())
        .filter(
            payments::transaction_id
                .eq(query)
                .or(payments::external_id.eq(query))
                .or(payments::gateway_reference.eq(query)),
        )
        .order(payments::id)
        .limit(i64::from(limit))
        .into_boxed();
    if let Some(id) = query_id(query) {
        search = search.or_filter(payments::id.eq(id));
    }
    let rows: Vec<PaymentRow> = search.load(&mut conn.db).map_err(store_error)?;
    rows.into_iter()
        .map(|row| Payment::try_from(row).map_err(corrupt))
        .collect()
}

/// The overview's counts.
pub(crate) fn overview(
    conn: &mut StoreConn,
    since: DateTime<Utc>,
    pending_before: DateTime<Utc>,
) -> Result<Overview, StoreError> {
    let db = &mut conn.db;
    let grouped: Vec<(String, String, i64)> = webhook_events::table
        .filter(webhook_events::received_at.ge(naive(since)))
        .group_by((webhook_events::gateway, webhook_events::outcome))
        .select((
            webhook_events::gateway,
            webhook_events::outcome,
            count_star(),
        ))
        .load(db)
        .map_err(store_error)?;
    // Sorted here, not by `ORDER BY`: PostgreSQL compares text by the
    // database's collation and SQLite by bytes, and both must list alike.
    let mut webhooks = BTreeMap::new();
    for (gateway, outcome_name, n) in grouped {
        let outcome = EventOutcome::parse(&outcome_name).ok_or_else(|| {
            corrupt(CorruptRow::new(
                "webhook_events",
                0,
                format!("unknown outcome {outcome_name:?}"),
            ))
        })?;
        webhooks.insert((gateway, outcome_name), (outcome, count(n)));
    }
    let pending_too_long: i64 = payments::table
        .filter(payments::status.eq(PaymentStatus::PendingExternal.as_str()))
        .filter(payments::updated_at.lt(naive(pending_before)))
        .count()
        .get_result(db)
        .map_err(store_error)?;
    let unmatched_events: i64 = webhook_events::table
        .filter(webhook_events::outcome.eq(EventOutcome::Unmatched.as_str()))
        .count()
        .get_result(db)
        .map_err(store_error)?;
    let dead_notifications: i64 = outbox::table
        .filter(outbox::status.eq(OutboxStatus::Dead.as_str()))
        .count()
        .get_result(db)
        .map_err(store_error)?;
    let open_disputes: i64 = payments::table
        .filter(payments::dispute_status.eq(DisputeStatus::Open.as_str()))
        .count()
        .get_result(db)
        .map_err(store_error)?;
    Ok(Overview {
        webhooks: webhooks
            .into_iter()
            .map(|((gateway, _), (outcome, count))| WebhookCount {
                gateway,
                outcome,
                count,
            })
            .collect(),
        pending_too_long: count(pending_too_long),
        unmatched_events: count(unmatched_events),
        dead_notifications: count(dead_notifications),
        open_disputes: count(open_disputes),
    })
}

/// The order's outbox rows, oldest first, at most `limit`.
pub(crate) fn order_notifications(
    conn: &mut StoreConn,
    order: OrderId,
    limit: u32,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let rows: Vec<OutboxRow> = outbox::table
        .filter(outbox::order_id.eq(order.0))
        .order(outbox::id)
        .limit(i64::from(limit))
        .select(OutboxRow::as_select())
        .load(&mut conn.db)
        .map_err(store_error)?;
    rows.into_iter()
        .map(|row| OutboxMessage::try_from(row).map_err(corrupt))
        .collect()
}
