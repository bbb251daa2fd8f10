//! Test doubles for the ports: an in-memory [`Store`], a settable clock and
//! predictable transaction ids. Behind the `testing` feature, for the tests of
//! this crate, of adapters and of embedders; the server never uses them.
//!
//! The in-memory store follows the same contract as the real one (duplicate
//! detection, lookup order, unmatched events retried, and applied when a
//! payment is marked pending under an id they name) with one lock, so it is
//! a reference for what a store must do, not a performance model.

mod overview;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::decision::{decide, AmountPolicy, Notification, OrderState, Outcome};
use crate::event::{GatewayEvent, Lookup};
use crate::money::Money;
use crate::outbox::{NextStep, OutboxMessage, OutboxStatus, RetryPolicy};
use crate::payment::{
    NewOrder, NewPayment, Order, OrderId, OrderStatus, Payment, PaymentId, PaymentStatus,
};
use crate::ports::{
    Applied, Clock, EventDetail, EventFilter, EventOutcome, EventToApply, OutboxStore, Store,
    StoreError, StoredEvent, TransactionIds,
};
use crate::refund::{Refund, RefundLedger};

mod reconcile;

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

/// One recorded event with its raw body; `events[n]` has id `n + 1`.
struct EventRow {
    stored: StoredEvent,
    payload: Vec<u8>,
}

#[derive(Default)]
struct State {
    orders: Vec<Order>,
    payments: Vec<Payment>,
    events: Vec<EventRow>,
    outbox: Vec<OutboxRow>,
    /// The refund ledger of each payment that has one.
    refunds: Vec<(PaymentId, RefundLedger)>,
    /// Reconciliation: each checked or claimed payment's next due time and
    /// last check.
    reconcile: Vec<reconcile::Row>,
}

/// One outbox row and its lease; `outbox[n]` has id `n + 1`.
struct OutboxRow {
    message: OutboxMessage,
    locked_until: Option<DateTime<Utc>>,
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
        self.state()
            .outbox
            .iter()
            .map(|row| Notification {
                kind: row.message.kind,
                payload: row.message.payload.clone(),
            })
            .collect()
    }

    /// The recorded events, oldest first.
    pub fn events(&self) -> Vec<StoredEvent> {
        self.state()
            .events
            .iter()
            .map(|row| row.stored.clone())
            .collect()
    }
}

/// True when `stored` meets every condition `filter` sets (the limit aside).
fn passes(filter: &EventFilter, stored: &StoredEvent) -> bool {
    filter.after_id.is_none_or(|after| stored.id > after)
        && filter
            .gateway
            .as_ref()
            .is_none_or(|gateway| &stored.event.gateway == gateway)
        && filter
            .outcome
            .is_none_or(|outcome| stored.outcome == outcome)
        && filter.kind.is_none_or(|kind| stored.event.kind == kind)
        && filter
            .payment_id
            .is_none_or(|id| stored.payment_id == Some(id))
        && filter.source.is_none_or(|source| stored.source == source)
        && filter
            .received_after
            .is_none_or(|after| stored.received_at >= after)
        && filter
            .received_before
            .is_none_or(|before| stored.received_at < before)
}

/// The payment `event` names, by the lookup rules.
fn lookup(payments: &[Payment], event: &GatewayEvent) -> Option<Payment> {
    event
        .references
        .lookups()
        .find_map(|lookup| find(payments, lookup, &event.gateway))
        .cloned()
}

/// Decides `event`, recorded as `events[index]`, for `payment` and writes
/// what the decision says: payment, order, outbox and the event's outcome.
/// The part of applying an event shared by `apply_event` and `mark_pending`.
fn decide_and_write(
    state: &mut State,
    index: usize,
    event: &GatewayEvent,
    payment: Payment,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let order = state
        .orders
        .iter()
        .find(|o| o.id == payment.order_id)
        .ok_or(StoreError::OrderNotFound(payment.order_id))?;
    // The order's other payments that have completed.
    let others: Vec<&Payment> = state
        .payments
        .iter()
        .filter(|p| p.order_id == order.id && p.id != payment.id && p.status.has_completed())
        .collect();
    let order = OrderState {
        status: order.status,
        total: order.total,
        paid_amount: order.paid_amount,
        paid_by: others.iter().map(|p| p.id).collect(),
        paid_by_refunded: others.iter().all(|p| p.status == PaymentStatus::Refunded),
    };
    let ledger = state
        .refunds
        .iter()
        .find(|(id, _)| *id == payment.id)
        .map(|(_, ledger)| ledger.clone())
        .unwrap_or_default();
    let decision = decide(&payment, &order, &ledger, event, policy, now);
    if let Some(slot) = state.payments.iter_mut().find(|p| p.id == payment.id) {
        *slot = decision.payment.clone();
    }
    if let Some(update) = decision.order {
        if let Some(order) = state.orders.iter_mut().find(|o| o.id == payment.order_id) {
            order.status = update.status;
            order.paid_amount = update.paid_amount;
            order.updated_at = now;
        }
    }
    if let Some(ledger) = &decision.refunds {
        state.refunds.retain(|(id, _)| *id != payment.id);
        state.refunds.push((payment.id, ledger.clone()));
    }
    for notification in &decision.notifications {
        let id = i64::try_from(state.outbox.len() + 1).unwrap_or(i64::MAX);
        state.outbox.push(OutboxRow {
            message: OutboxMessage {
                id,
                kind: notification.kind,
                order_id: payment.order_id,
                payment_id: payment.id,
                payload: notification.payload.clone(),
                status: OutboxStatus::Pending,
                attempts: 0,
                last_error: None,
                next_attempt_at: now,
                created_at: now,
                delivered_at: None,
            },
            locked_until: None,
        });
    }
    let stored = &mut state.events[index].stored;
    stored.outcome = EventOutcome::Decided(decision.outcome);
    stored.payment_id = Some(payment.id);
    stored.processed_at = now;
    let mut latest = decision.payment;
    if decision.outcome == Outcome::Confirmed {
        latest = apply_awaiting(state, latest, policy, now)?;
    }
    Ok(Applied::Decided {
        outcome: decision.outcome,
        payment: latest,
    })
}

/// The refunds and disputes that came before `payment` completed, applied
/// now that it has, oldest first, as the diesel store does in the same
/// transaction as the confirmation.
fn apply_awaiting(
    state: &mut State,
    mut payment: Payment,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Result<Payment, StoreError> {
    let awaiting: Vec<usize> = (0..state.events.len())
        .filter(|&index| {
            let stored = &state.events[index].stored;
            stored.payment_id == Some(payment.id)
                && stored.outcome == EventOutcome::Decided(Outcome::AwaitingCompletion)
        })
        .collect();
    for index in awaiting {
        let event = state.events[index].stored.event.clone();
        if let Applied::Decided { payment: after, .. } =
            decide_and_write(state, index, &event, payment.clone(), policy, now)?
        {
            payment = after;
        }
    }
    Ok(payment)
}

fn find<'a>(payments: &'a [Payment], lookup: Lookup<'_>, gateway: &str) -> Option<&'a Payment> {
    // A payment belongs to one gateway: only that gateway's events find it.
    let mut own = payments.iter().filter(|p| p.payment_method == gateway);
    match lookup {
        Lookup::TransactionId(id) => own.find(|p| p.transaction_id == id),
        Lookup::ExternalId(id) => own.find(|p| p.external_id.as_deref() == Some(id)),
        Lookup::GatewayReference(reference) => own.find(|p| {
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
            paid_amount: Money::zero(order.total.currency()),
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
            refunded_amount: Money::zero(payment.amount.currency()),
            dispute: None,
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
        policy: AmountPolicy,
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
        let mut latest = current.mark_pending(&external_id, now)?;
        if let Some(slot) = state.payments.iter_mut().find(|p| p.id == id) {
            *slot = latest.clone();
        }
        // The events that arrived before the shop recorded the id, oldest first.
        let names = |value: &Option<String>| {
            !external_id.is_empty() && value.as_deref() == Some(external_id.as_str())
        };
        // Of this payment's gateway only: no other gateway's event can find it.
        let gateway = latest.payment_method.clone();
        let waiting: Vec<usize> = (0..state.events.len())
            .filter(|&index| {
                let stored = &state.events[index].stored;
                stored.outcome == EventOutcome::Unmatched
                    && stored.event.gateway == gateway
                    && (names(&stored.event.references.external_id)
                        || names(&stored.event.references.gateway_reference))
            })
            .collect();
        for index in waiting {
            // Its own lookup decides, as for a delivery: a transaction id
            // naming another payment wins over the external id.
            let event = state.events[index].stored.event.clone();
            match lookup(&state.payments, &event) {
                Some(payment) if payment.id == id => {
                    if let Applied::Decided { payment, .. } =
                        decide_and_write(&mut state, index, &event, payment, policy, now)?
                    {
                        latest = payment;
                    }
                }
                _ => {}
            }
        }
        Ok(latest)
    }

    async fn apply_event(&self, to_apply: EventToApply) -> Result<Applied, StoreError> {
        let mut state = self.state();
        let event = &to_apply.event;
        let earlier = state.events.iter().position(|row| {
            row.stored.event.gateway == event.gateway && row.stored.event.event_id == event.event_id
        });
        let index = match earlier {
            Some(index) => {
                let stored = &state.events[index].stored;
                if stored.outcome.is_final() {
                    let payment = stored
                        .payment_id
                        .and_then(|id| state.payments.iter().find(|p| p.id == id).cloned());
                    return Ok(Applied::Duplicate { payment });
                }
                let stored = &mut state.events[index].stored;
                stored.attempts = stored.attempts.saturating_add(1);
                stored.processed_at = to_apply.received_at;
                index
            }
            None => {
                let id = i64::try_from(state.events.len() + 1).unwrap_or(i64::MAX);
                state.events.push(EventRow {
                    stored: StoredEvent {
                        id,
                        event: to_apply.event.clone(),
                        outcome: EventOutcome::Unmatched,
                        payment_id: None,
                        attempts: 1,
                        received_at: to_apply.received_at,
                        processed_at: to_apply.received_at,
                        source: to_apply.source,
                    },
                    payload: to_apply.payload.clone(),
                });
                state.events.len() - 1
            }
        };
        // This delivery's content decides, as in the diesel store; the
        // record keeps the first delivery's.
        let Some(payment) = lookup(&state.payments, event) else {
            return Ok(Applied::Unmatched);
        };
        decide_and_write(
            &mut state,
            index,
            event,
            payment,
            to_apply.policy,
            to_apply.received_at,
        )
    }

    async fn webhook_events(&self, filter: EventFilter) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = usize::try_from(filter.limit).unwrap_or(usize::MAX);
        Ok(self
            .state()
            .events
            .iter()
            .map(|row| &row.stored)
            .filter(|stored| passes(&filter, stored))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn webhook_event(&self, id: i64) -> Result<Option<EventDetail>, StoreError> {
        Ok(self
            .state()
            .events
            .iter()
            .find(|row| row.stored.id == id)
            .map(|row| EventDetail {
                record: row.stored.clone(),
                payload: row.payload.clone(),
            }))
    }

    async fn refunds(&self, id: PaymentId) -> Result<Vec<Refund>, StoreError> {
        let state = self.state();
        Ok(state
            .refunds
            .iter()
            .find(|(payment, _)| *payment == id)
            .map(|(_, ledger)| {
                ledger
                    .entries
                    .iter()
                    .map(|entry| entry.refund.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl State {
    fn outbox_row(&mut self, id: i64) -> Result<&mut OutboxRow, StoreError> {
        usize::try_from(id - 1)
            .ok()
            .and_then(|index| self.outbox.get_mut(index))
            .ok_or(StoreError::NotificationNotFound(id))
    }
}

#[async_trait]
impl OutboxStore for InMemoryStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut state = self.state();
        let until = now + chrono::TimeDelta::from_std(lease).unwrap_or(chrono::TimeDelta::MAX);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut heads = std::collections::HashSet::new();
        let mut claimed = Vec::new();
        for row in &mut state.outbox {
            if row.message.status != OutboxStatus::Pending {
                continue;
            }
            // Only the oldest pending row of each order.
            if !heads.insert(row.message.order_id) {
                continue;
            }
            let free = row.locked_until.is_none_or(|until| until < now);
            if claimed.len() < limit && free && row.message.next_attempt_at <= now {
                row.locked_until = Some(until);
                claimed.push(row.message.clone());
            }
        }
        Ok(claimed)
    }

    async fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.state();
        let row = state.outbox_row(id)?;
        row.message.status = OutboxStatus::Delivered;
        row.message.delivered_at = Some(now);
        row.locked_until = None;
        Ok(())
    }

    async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
        jitter: f64,
    ) -> Result<OutboxStatus, StoreError> {
        let mut state = self.state();
        let row = state.outbox_row(id)?;
        row.message.attempts = row.message.attempts.saturating_add(1);
        row.message.last_error = Some(error.to_owned());
        row.locked_until = None;
        match policy.next_step(row.message.attempts, now, jitter) {
            NextStep::RetryAt(at) => {
                row.message.status = OutboxStatus::Pending;
                row.message.next_attempt_at = at;
            }
            NextStep::Dead => row.message.status = OutboxStatus::Dead,
        }
        Ok(row.message.status)
    }

    async fn notifications(
        &self,
        status: Option<OutboxStatus>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(self
            .state()
            .outbox
            .iter()
            .filter(|row| status.is_none_or(|status| row.message.status == status))
            .take(limit)
            .map(|row| row.message.clone())
            .collect())
    }

    async fn requeue(&self, id: i64, now: DateTime<Utc>) -> Result<OutboxMessage, StoreError> {
        let mut state = self.state();
        let row = state.outbox_row(id)?;
        if row.message.status != OutboxStatus::Dead {
            return Err(StoreError::NotificationNotDead {
                id,
                status: row.message.status.as_str(),
            });
        }
        row.message.status = OutboxStatus::Pending;
        row.message.attempts = 0;
        row.message.next_attempt_at = now;
        row.locked_until = None;
        Ok(row.message.clone())
    }
}
