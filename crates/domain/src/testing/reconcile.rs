//! [`ReconcileStore`] for the in-memory store: the reference for what the
//! diesel store's claim must do, under the store's one lock.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::InMemoryStore;
use crate::payment::{Payment, PaymentId, PaymentStatus};
use crate::ports::StoreError;
use crate::reconcile::{DueQuery, ReconcileCheck, ReconcileStore};

/// One payment's reconciliation state.
pub(super) struct Row {
    payment_id: PaymentId,
    due_at: Option<DateTime<Utc>>,
    last: Option<ReconcileCheck>,
}

fn row(rows: &mut Vec<Row>, id: PaymentId) -> &mut Row {
    let index = match rows.iter().position(|row| row.payment_id == id) {
        Some(index) => index,
        None => {
            rows.push(Row {
                payment_id: id,
                due_at: None,
                last: None,
            });
            rows.len() - 1
        }
    };
    &mut rows[index]
}

#[async_trait]
impl ReconcileStore for InMemoryStore {
    async fn due_payments(
        &self,
        query: &DueQuery,
        claim: Option<Duration>,
    ) -> Result<Vec<Payment>, StoreError> {
        let mut state = self.state();
        let state = &mut *state;
        let mut due: Vec<Payment> = state
            .payments
            .iter()
            .filter(|payment| {
                payment.status == PaymentStatus::PendingExternal
                    && query.gateways.contains(&payment.payment_method)
                    && payment.updated_at <= query.unchanged_since
                    && state
                        .reconcile
                        .iter()
                        .find(|row| row.payment_id == payment.id)
                        .and_then(|row| row.due_at)
                        .is_none_or(|due_at| due_at <= query.now)
            })
            .cloned()
            .collect();
        due.sort_by_key(|payment| (payment.updated_at, payment.id));
        due.truncate(usize::try_from(query.limit).unwrap_or(usize::MAX));
        if let Some(hold) = claim {
            let until =
                query.now + chrono::TimeDelta::from_std(hold).unwrap_or(chrono::TimeDelta::MAX);
            for payment in &due {
                row(&mut state.reconcile, payment.id).due_at = Some(until);
            }
        }
        Ok(due)
    }

    async fn record_check(
        &self,
        id: PaymentId,
        check: &ReconcileCheck,
        next_due: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if !state.payments.iter().any(|payment| payment.id == id) {
            return Err(StoreError::PaymentNotFound(id));
        }
        let row = row(&mut state.reconcile, id);
        row.due_at = Some(next_due);
        row.last = Some(check.clone());
        Ok(())
    }

    async fn last_check(&self, id: PaymentId) -> Result<Option<ReconcileCheck>, StoreError> {
        Ok(self
            .state()
            .reconcile
            .iter()
            .find(|row| row.payment_id == id)
            .and_then(|row| row.last.clone()))
    }
}
