//! [`OverviewStore`] for the diesel store: the operator's reads, each on
//! one pooled connection of the blocking pool, like every other call.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payhook_domain::ports::StoreError;
use payhook_domain::{OrderId, OutboxMessage, Overview, OverviewStore, Payment};

use crate::{ops, DieselStore};

#[async_trait]
impl OverviewStore for DieselStore {
    async fn search_payments(&self, query: &str, limit: u32) -> Result<Vec<Payment>, StoreError> {
        let query = query.to_owned();
        self.run(move |conn| ops::overview::search_payments(conn, &query, limit))
            .await
    }

    async fn overview(
        &self,
        since: DateTime<Utc>,
        pending_before: DateTime<Utc>,
    ) -> Result<Overview, StoreError> {
        self.run(move |conn| ops::overview::overview(conn, since, pending_before))
            .await
    }

    async fn order_notifications(
        &self,
        order: OrderId,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.run(move |conn| ops::overview::order_notifications(conn, order, limit))
            .await
    }
}
