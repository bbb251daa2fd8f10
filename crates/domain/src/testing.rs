//! Test doubles for the ports: an in-memory [`Store`], a settable clock and
//! predictable transaction ids. Behind the `testing` feature, for the tests of
//! this crate, of adapters and of embedders; the server never uses them.
//!
//! The in-memory store follows the same contract as the real one (duplicate
//! detection, lookup order, unmatched events retried) with one lock, so it is
//! a reference for what a store must do, not a performance model.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::decision::{decide, Notification};
use crate::event::{GatewayEvent, Lookup};
use crate::payment::{
    NewOrder, NewPayment, Order, OrderId, OrderStatus, Payment, PaymentId, PaymentStatus,
};
use crate::ports::{Applied, Clock, EventToApply, Store, StoreError, TransactionIds};

/// A clock that says what it is told.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Transaction ids `TXN-TEST-1`, `TXN-TEST-2`, ...
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl TransactionIds for SequentialIds {
    fn next_id(&self) -> String {
        format!("TXN-TEST-{}", self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// A recorded gateway event, as the in-memory store keeps it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The event.
    pub event: GatewayEvent,
    /// `unmatched` or the decision's outcome name.
    pub outcome: String,
    /// The payment it matched.
    pub payment_id: Option<PaymentId>,
}

#[derive(Default)]
struct State {
    orders: Vec<Order>,
    payments: Vec<Payment>,
    events: HashMap<(String, String), StoredEvent>,
    outbox: Vec<Notification>,
}

/// A [`Store`] in memory, one mutex for everything.
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outbox rows written so far, oldest first.
    pub fn outbox(&self) -> Vec<Notification> {
        self.state().outbox.clone()
    }

    /// The recorded events.
    pub fn events(&self) -> Vec<StoredEvent> {
        self.state().events.values().cloned().collect()
    }
}

fn find<'a>(payments: &'a [Payment], lookup: Lookup<'_>, gateway: &str) -> Option<&'a Payment> {
    match lookup {
        Lookup::TransactionId(id) => payments.iter().find(|p| p.transaction_id == id),
        Lookup::ExternalId(id) => {
            let matches = |p: &&Payment| p.external_id.as_deref() == Some(id);
            payments
                .iter()
                .filter(matches)
                .find(|p| p.payment_method == gateway)
                .or_else(|| payments.iter().find(matches))
        }
        Lookup::GatewayReference(reference) => payments.iter().find(|p| {
            p.gateway_reference.as_deref() == Some(reference)
                || p.external_id.as_deref() == Some(reference)
        }),
    }
}

#[async_trait]
impl Store for InMemoryStore {
    async fn create_order(&self, order: NewOrder, now: DateTime<Utc>) -> Result<Order, StoreError> {
        let mut state = self.state();
        let order = Order {
            id: OrderId(state.orders.len() as i64 + 1),
            client_id: order.client_id,
            total: order.total,
            status: OrderStatus::Pending,
            created_at: now,
            updated_at: now,
        };
        state.orders.push(order.clone());
        Ok(order)
    }

    async fn order(&self, id: OrderId) -> Result<Order, StoreError> {
        let state = self.state();
        state
            .orders
            .iter()
            .find(|o| o.id == id)
            .cloned()
            .ok_or(StoreError::OrderNotFound(id))
    }

    async fn create_payment(
        &self,
        payment: NewPayment,
        now: DateTime<Utc>,
    ) -> Result<Payment, StoreError> {
        let mut state = self.state();
        if !state.orders.iter().any(|o| o.id == payment.order_id) {
            return Err(StoreError::OrderNotFound(payment.order_id));
        }
        let payment = Payment {
            id: PaymentId(state.payments.len() as i64 + 1),
            order_id: payment.order_id,
            transaction_id: payment.transaction_id,
            payment_method: payment.payment_method,
            amount: payment.amount,
            status: PaymentStatus::Created,
            external_id: None,
            gateway_reference: None,
            amount_mismatch: None,
            created_at: now,
            updated_at: now,
        };
        state.payments.push(payment.clone());
        Ok(payment)
    }

    async fn payment(&self, id: PaymentId) -> Result<Payment, StoreError> {
        let state = self.state();
        state
            .payments
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .ok_or(StoreError::PaymentNotFound(id))
    }

    async fn mark_pending(
        &self,
        id: PaymentId,
        external_id: String,
        now: DateTime<Utc>,
    ) -> Result<Payment, StoreError> {
        let mut state = self.state();
        let current = state
            .payments
            .iter()
            .find(|p| p.id == id)
            .cloned()
            .ok_or(StoreError::PaymentNotFound(id))?;
        if let Some(other) = state.payments.iter().find(|p| {
            p.id != id
                && p.payment_method == current.payment_method
                && p.external_id.as_deref() == Some(external_id.as_str())
        }) {
            return Err(StoreError::ExternalIdTaken(other.id));
        }
        let next = current.mark_pending(&external_id, now)?;
        if let Some(slot) = state.payments.iter_mut().find(|p| p.id == id) {
            *slot = next.clone();
        }
        Ok(next)
    }

    async fn apply_event(&self, to_apply: EventToApply) -> Result<Applied, StoreError> {
        let mut state = self.state();
        let key = (
            to_apply.event.gateway.clone(),
            to_apply.event.event_id.clone(),
        );
        if let Some(stored) = state.events.get(&key) {
            if stored.outcome != "unmatched" && stored.outcome != "amount_rejected" {
                let payment = stored
                    .payment_id
                    .and_then(|id| state.payments.iter().find(|p| p.id == id).cloned());
                return Ok(Applied::Duplicate { payment });
            }
        }
        let event = &to_apply.event;
        let found = event
            .references
            .lookups()
            .find_map(|lookup| find(&state.payments, lookup, &event.gateway))
            .cloned();
        let Some(payment) = found else {
            state.events.insert(
                key,
                StoredEvent {
                    event: to_apply.event,
                    outcome: "unmatched".into(),
                    payment_id: None,
                },
            );
            return Ok(Applied::Unmatched);
        };
        let order_status = state
            .orders
            .iter()
            .find(|o| o.id == payment.order_id)
            .map(|o| o.status)
            .ok_or(StoreError::OrderNotFound(payment.order_id))?;
        let decision = decide(
            &payment,
            order_status,
            event,
            to_apply.policy,
            to_apply.received_at,
        );
        if let Some(slot) = state.payments.iter_mut().find(|p| p.id == payment.id) {
            *slot = decision.payment.clone();
        }
        if decision.order_becomes_paid {
            if let Some(order) = state.orders.iter_mut().find(|o| o.id == payment.order_id) {
                order.status = OrderStatus::Paid;
                order.updated_at = to_apply.received_at;
            }
        }
        state.outbox.extend(decision.notifications.iter().cloned());
        state.events.insert(
            key,
            StoredEvent {
                event: to_apply.event,
                outcome: decision.outcome.as_str().into(),
                payment_id: Some(payment.id),
            },
        );
        Ok(Applied::Decided {
            outcome: decision.outcome,
            payment: decision.payment,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
