//! [`ReconcileStore`] for [`DieselStore`]: the units of work are in
//! `ops::reconcile`, which explains the claim.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payhook_domain::ports::StoreError;
use payhook_domain::reconcile::{DueQuery, ReconcileCheck, ReconcileStore};
use payhook_domain::{Payment, PaymentId};

use crate::{ops, DieselStore};

#[async_trait]
impl ReconcileStore for DieselStore {
    async fn due_payments(
        &self,
        query: &DueQuery,
        claim: Option<Duration>,
    ) -> Result<Vec<Payment>, StoreError> {
        let query = query.clone();
        self.run(move |conn| ops::due_payments(conn, &query, claim))
            .await
    }

    async fn record_check(
        &self,
        id: PaymentId,
        check: &ReconcileCheck,
        next_due: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let check = check.clone();
        self.run(move |conn| ops::record_check(conn, id, &check, next_due))
            .await
    }

    async fn last_check(&self, id: PaymentId) -> Result<Option<ReconcileCheck>, StoreError> {
        self.run(move |conn| ops::last_check(conn, id)).await
    }
}
