//! What an operator looks at: finding a payment by any id it is known by,
//! the counts of the overview (webhooks per gateway and outcome, and what
//! needs a person), and the notifications of one order.
//!
//! A port of its own, beside [`crate::ports::Store`], because these are
//! reads for people, not units of work of the payment flow: a store may
//! implement them with plain queries and no locks. Nothing here writes.
//! The management API's search and the operator console both read through
//! it, so the two never disagree.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::outbox::OutboxMessage;
use crate::payment::{OrderId, Payment};
use crate::ports::{EventOutcome, StoreError};

/// How many webhook events one gateway sent with one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCount {
    /// The gateway's name (`stripe`, `paypal`, `generic`, ...).
    pub gateway: String,
    /// Where those events stand now.
    pub outcome: EventOutcome,
    /// How many.
    pub count: u64,
}

/// The counts of the overview.
///
/// `webhooks` covers the window asked for; the other counts are what stands
/// now, whenever it started: they are the things that wait for a person.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overview {
    /// Events received in the window, per gateway and outcome, ordered by
    /// gateway and then by outcome name; only pairs with at least one event.
    pub webhooks: Vec<WebhookCount>,
    /// Payments in `pending_external` whose last change is older than the
    /// bound asked for: the customer may have paid and payhook not heard.
    pub pending_too_long: u64,
    /// Recorded events that no payment matched (yet).
    pub unmatched_events: u64,
    /// Notifications whose every attempt failed.
    pub dead_notifications: u64,
    /// Payments whose current dispute is `open`.
    pub open_disputes: u64,
}

/// The operator's reads. Each method is one read; none writes.
#[async_trait]
pub trait OverviewStore: Send + Sync {
    /// The payments `query` names, by ascending id, at most `limit`: the
    /// one whose payhook id is `query` (when it is a number), and those
    /// whose transaction id, external id or gateway reference equals it
    /// exactly. A payment named several ways is listed once. `query` is
    /// taken as given (the caller trims it); an empty one names nothing.
    async fn search_payments(&self, query: &str, limit: u32) -> Result<Vec<Payment>, StoreError>;

    /// The overview: webhooks received at or after `since`, payments
    /// pending since before `pending_before`, and the current counts of
    /// unmatched events, dead notifications and open disputes.
    async fn overview(
        &self,
        since: DateTime<Utc>,
        pending_before: DateTime<Utc>,
    ) -> Result<Overview, StoreError>;

    /// The notifications of the order, oldest first, at most `limit`, in
    /// every status (empty when none, or when no order has this id).
    async fn order_notifications(
        &self,
        order: OrderId,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
}

/// What a search `query` names as a payhook id, if anything: a decimal
/// number that fits an id. Shared by the stores so that `"007"` and `"7"`
/// name the same payment in each.
pub fn query_id(query: &str) -> Option<i64> {
    if query.is_empty() || !query.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    query.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::query_id;

    #[test]
    fn only_plain_decimal_numbers_are_ids() {
        assert_eq!(query_id("7"), Some(7));
        assert_eq!(query_id("007"), Some(7));
        for text in ["", "-1", "+1", " 1", "1e3", "TXN-1", "99999999999999999999"] {
            assert_eq!(query_id(text), None, "{text:?}");
        }
    }
}
