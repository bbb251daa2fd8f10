//! [`OverviewStore`] for the in-memory store: the reference for what the
//! diesel store's queries must return.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::InMemoryStore;
use crate::dispute::DisputeStatus;
use crate::outbox::{OutboxMessage, OutboxStatus};
use crate::overview::{query_id, Overview, OverviewStore, WebhookCount};
use crate::payment::{OrderId, Payment, PaymentStatus};
use crate::ports::{EventOutcome, StoreError};

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[async_trait]
impl OverviewStore for InMemoryStore {
    async fn search_payments(&self, query: &str, limit: u32) -> Result<Vec<Payment>, StoreError> {
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let id = query_id(query);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let state = self.state();
        // Payments are kept by ascending id.
        Ok(state
            .payments
            .iter()
            .filter(|p| {
                Some(p.id.0) == id
                    || p.transaction_id == query
                    || p.external_id.as_deref() == Some(query)
                    || p.gateway_reference.as_deref() == Some(query)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn overview(
        &self,
        since: DateTime<Utc>,
        pending_before: DateTime<Utc>,
    ) -> Result<Overview, StoreError> {
        let state = self.state();
        let mut webhooks: BTreeMap<(String, &'static str), (EventOutcome, u64)> = BTreeMap::new();
        for row in &state.events {
            let stored = &row.stored;
            if stored.received_at < since {
                continue;
            }
            let key = (stored.event.gateway.clone(), stored.outcome.as_str());
            webhooks.entry(key).or_insert((stored.outcome, 0)).1 += 1;
        }
        Ok(Overview {
            webhooks: webhooks
                .into_iter()
                .map(|((gateway, _), (outcome, count))| WebhookCount {
                    gateway,
                    outcome,
                    count,
                })
                .collect(),
            pending_too_long: count(
                state
                    .payments
                    .iter()
                    .filter(|p| {
                        p.status == PaymentStatus::PendingExternal && p.updated_at < pending_before
                    })
                    .count(),
            ),
            unmatched_events: count(
                state
                    .events
                    .iter()
                    .filter(|row| row.stored.outcome == EventOutcome::Unmatched)
                    .count(),
            ),
            dead_notifications: count(
                state
                    .outbox
                    .iter()
                    .filter(|row| row.message.status == OutboxStatus::Dead)
                    .count(),
            ),
            open_disputes: count(
                state
                    .payments
                    .iter()
                    .filter(|p| {
                        p.dispute
                            .as_ref()
                            .is_some_and(|d| d.status == DisputeStatus::Open)
                    })
                    .count(),
            ),
        })
    }

    async fn order_notifications(
        &self,
        order: OrderId,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(self
            .state()
            .outbox
            .iter()
            .filter(|row| row.message.order_id == order)
            .take(limit)
            .map(|row| row.message.clone())
            .collect())
    }
}
