//! The decision for one event: a pure function of the payment, its order and
//! the event. The store runs it inside its transaction and writes what it says.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::event::{EventKind, GatewayEvent};
use crate::money::Money;
use crate::payment::{AmountMismatch, OrderStatus, Payment, PaymentStatus};

/// What to do when a confirmation reports another amount than the payment's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AmountPolicy {
    /// The original design's behaviour: log, record the mismatch on the
    /// payment, and confirm anyway.
    #[default]
    Warn,
    /// Do not confirm; the payment stays as it was.
    Reject,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The payment moved to `completed` (possibly with a recorded mismatch).
    Confirmed,
    /// The payment moved to `failed`.
    Failed,
    /// A success for a payment that is already completed: nothing changes.
    AlreadyCompleted,
    /// A failure for a payment that has already failed: nothing changes.
    AlreadyFailed,
    /// A failure that arrived after the payment completed: acknowledged and
    /// recorded, never applied.
    LateFailureIgnored,
    /// A success whose amount did not match, under [`AmountPolicy::Reject`].
    AmountRejected,
    /// The event type is not one payhook acts on.
    Ignored,
}

impl Outcome {
    /// The stored name of the outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::AlreadyCompleted => "already_completed",
            Self::AlreadyFailed => "already_failed",
            Self::LateFailureIgnored => "late_failure_ignored",
            Self::AmountRejected => "amount_rejected",
            Self::Ignored => "ignored",
        }
    }

    /// True when a re-delivery of the same event must be evaluated again
    /// instead of being answered "already processed": a refused amount may be
    /// accepted after the policy changes, so it is not final.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::AmountRejected)
    }
}

/// What the shop is told about, through the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotificationKind {
    /// The order became paid.
    OrderPaid,
    /// The payment failed at the gateway.
    PaymentFailed,
    /// A payment was confirmed with another amount than expected.
    AmountMismatch,
}

impl NotificationKind {
    /// The event name the shop receives, e.g. `order.paid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPaid => "order.paid",
            Self::PaymentFailed => "payment.failed",
            Self::AmountMismatch => "payment.amount_mismatch",
        }
    }

    /// Reads an event name back; `None` for a name no kind has.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::OrderPaid, Self::PaymentFailed, Self::AmountMismatch]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// One outbox row: what to tell the shop, already rendered as JSON so the
/// row is self-contained even if the payment changes again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What happened.
    pub kind: NotificationKind,
    /// The JSON body the shop will receive.
    pub payload: String,
}

impl Notification {
    /// Renders the notification of `kind` for `payment` as of `now`.
    pub fn for_payment(kind: NotificationKind, payment: &Payment, now: DateTime<Utc>) -> Self {
        let money =
            |m: &Money| json!({"amount": m.amount_string(), "currency": m.currency().code()});
        let mut body = json!({
            "type": kind.as_str(),
            "order_id": payment.order_id,
            "payment_id": payment.id,
            "transaction_id": payment.transaction_id,
            "payment_status": payment.status.as_str(),
            "amount": payment.amount.amount_string(),
            "currency": payment.amount.currency().code(),
            "occurred_at": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        if let (NotificationKind::AmountMismatch, Some(mismatch)) = (kind, &payment.amount_mismatch)
        {
            body["expected"] = money(&mismatch.expected);
            body["received"] = money(&mismatch.received);
        }
        Self {
            kind,
            payload: body.to_string(),
        }
    }
}

/// Everything the store must write for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happened, for the answer and the event record.
    pub outcome: Outcome,
    /// The payment as it must be stored afterwards (equal to the input when
    /// nothing changes).
    pub payment: Payment,
    /// True when the order moves from pending to paid with this event.
    pub order_becomes_paid: bool,
    /// Outbox rows to write in the same transaction.
    pub notifications: Vec<Notification>,
}

impl Decision {
    /// True when the payment row must be written.
    pub fn changes_payment(&self, before: &Payment) -> bool {
        &self.payment != before
    }
}

/// Decides what `event` does to `payment`, whose order is in `order_status`.
///
/// The rules: a success completes a created, pending or failed payment (a
/// failed one may still complete when the customer retried); a failure fails
/// a created or pending one; a completed payment never changes; repeating the
/// status a payment has is a no-op. A success whose amount differs is
/// confirmed with the mismatch recorded under [`AmountPolicy::Warn`] and
/// refused under [`AmountPolicy::Reject`]. The order becomes paid when its
/// first payment completes.
pub fn decide(
    payment: &Payment,
    order_status: OrderStatus,
    event: &GatewayEvent,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Decision {
    let unchanged = |outcome| Decision {
        outcome,
        payment: payment.clone(),
        order_becomes_paid: false,
        notifications: Vec::new(),
    };
    let mut next = payment.clone();
    next.updated_at = now;
    if next.gateway_reference.is_none() {
        // An empty reference is no reference, as in the lookup rules.
        next.gateway_reference = event
            .references
            .gateway_reference
            .clone()
            .filter(|r| !r.is_empty());
    }
    match (payment.status, event.kind) {
        (_, EventKind::NotHandled) => unchanged(Outcome::Ignored),
        // Decided in the next commit, with the statuses they lead to.
        (_, EventKind::Canceled | EventKind::Pending) => unchanged(Outcome::Ignored),
        (PaymentStatus::Completed, EventKind::Succeeded) => unchanged(Outcome::AlreadyCompleted),
        (PaymentStatus::Completed, EventKind::Failed) => unchanged(Outcome::LateFailureIgnored),
        (PaymentStatus::Failed, EventKind::Failed) => unchanged(Outcome::AlreadyFailed),
        (PaymentStatus::Created | PaymentStatus::PendingExternal, EventKind::Failed) => {
            next.status = PaymentStatus::Failed;
            let notifications = vec![Notification::for_payment(
                NotificationKind::PaymentFailed,
                &next,
                now,
            )];
            Decision {
                outcome: Outcome::Failed,
                payment: next,
                order_becomes_paid: false,
                notifications,
            }
        }
        (
            PaymentStatus::Created | PaymentStatus::PendingExternal | PaymentStatus::Failed,
            EventKind::Succeeded,
        ) => {
            let mismatch = event
                .amount
                .filter(|received| *received != payment.amount)
                .map(|received| AmountMismatch {
                    expected: payment.amount,
                    received,
                });
            if mismatch.is_some() && policy == AmountPolicy::Reject {
                return unchanged(Outcome::AmountRejected);
            }
            next.status = PaymentStatus::Completed;
            if mismatch.is_some() {
                next.amount_mismatch = mismatch;
            }
            let order_becomes_paid = order_status == OrderStatus::Pending;
            let mut notifications = Vec::new();
            if order_becomes_paid {
                notifications.push(Notification::for_payment(
                    NotificationKind::OrderPaid,
                    &next,
                    now,
                ));
            }
            if mismatch.is_some() {
                notifications.push(Notification::for_payment(
                    NotificationKind::AmountMismatch,
                    &next,
                    now,
                ));
            }
            Decision {
                outcome: Outcome::Confirmed,
                payment: next,
                order_becomes_paid,
                notifications,
            }
        }
    }
}
