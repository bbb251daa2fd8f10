//! The decision for one event: a pure function of the payment, its order and
//! the event. The store runs it inside its transaction and writes what it says.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::dispute::{next_dispute, Dispute, DisputeChange};
use crate::event::{EventKind, GatewayEvent, Report};
use crate::money::Money;
use crate::payment::{AmountMismatch, OrderStatus, Payment, PaymentId, PaymentStatus};
use crate::refund::{RefundLedger, RefundReport};

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
    /// The payment moved to `completed` (possibly with a recorded mismatch),
    /// also from `failed` or `canceled`: money moved, so a success wins.
    Confirmed,
    /// The payment moved to `failed`.
    Failed,
    /// The payment moved to `canceled`.
    Canceled,
    /// The gateway is still working on the payment: a `created` one moved
    /// to `pending_external`, any other stayed as it was.
    Pending,
    /// A success for a payment that has already completed: nothing changes.
    AlreadyCompleted,
    /// A failure for a payment that has already failed: nothing changes.
    AlreadyFailed,
    /// A failure or a cancel for a payment that is already canceled:
    /// nothing changes.
    AlreadyCanceled,
    /// A failure that arrived after the payment completed: acknowledged and
    /// recorded, never applied.
    LateFailureIgnored,
    /// A cancel that arrived after the payment completed: acknowledged and
    /// recorded, never applied.
    LateCancelIgnored,
    /// A success whose amount did not match, under [`AmountPolicy::Reject`].
    AmountRejected,
    /// A refund report was applied to the ledger (it may have changed
    /// nothing, when it repeats what was known).
    RefundRecorded,
    /// A refund report in another currency, or one that would take the
    /// refunded amount above what was received: nothing changed.
    RefundRejected,
    /// A dispute report changed the payment's dispute.
    DisputeRecorded,
    /// A dispute report that changes nothing: a repeat, or a late report
    /// of a dispute that is already decided. Recorded, not applied.
    DisputeUnchanged,
    /// A refund or dispute for a payment that has not completed: kept,
    /// and applied in the transaction that completes the payment.
    AwaitingCompletion,
    /// The event type is not one payhook acts on.
    Ignored,
}

impl Outcome {
    /// Every outcome, for reading stored names back.
    pub const ALL: [Outcome; 16] = [
        Self::Confirmed,
        Self::Failed,
        Self::Canceled,
        Self::Pending,
        Self::AlreadyCompleted,
        Self::AlreadyFailed,
        Self::AlreadyCanceled,
        Self::LateFailureIgnored,
        Self::LateCancelIgnored,
        Self::AmountRejected,
        Self::RefundRecorded,
        Self::RefundRejected,
        Self::DisputeRecorded,
        Self::DisputeUnchanged,
        Self::AwaitingCompletion,
        Self::Ignored,
    ];

    /// The stored name of the outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Pending => "pending",
            Self::AlreadyCompleted => "already_completed",
            Self::AlreadyFailed => "already_failed",
            Self::AlreadyCanceled => "already_canceled",
            Self::LateFailureIgnored => "late_failure_ignored",
            Self::LateCancelIgnored => "late_cancel_ignored",
            Self::AmountRejected => "amount_rejected",
            Self::RefundRecorded => "refund_recorded",
            Self::RefundRejected => "refund_rejected",
            Self::DisputeRecorded => "dispute_recorded",
            Self::DisputeUnchanged => "dispute_unchanged",
            Self::AwaitingCompletion => "awaiting_completion",
            Self::Ignored => "ignored",
        }
    }

    /// True when a re-delivery of the same event must be evaluated again
    /// instead of being answered "already processed": a refused amount may be
    /// accepted after the policy changes, a refused refund after the success
    /// that makes room for it, and an early refund or dispute once its
    /// payment completes, so none of them is final.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Self::AmountRejected | Self::RefundRejected | Self::AwaitingCompletion
        )
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
    /// The payment was canceled at the gateway (checkout expired, intent
    /// canceled).
    PaymentCanceled,
    /// A payment completed for an order its other payments already covered:
    /// the shop should refund one of them.
    OrderOverpaid,
    /// Money of the payment went back to the customer.
    PaymentRefunded,
    /// Every completed payment of the order was refunded in full.
    OrderRefunded,
    /// A refund that had succeeded failed or was canceled: it no longer
    /// counts.
    PaymentRefundFailed,
    /// A dispute (chargeback or inquiry) was opened on the payment.
    PaymentDisputed,
    /// The payment's dispute was decided (won, lost) or closed.
    PaymentDisputeClosed,
}

impl NotificationKind {
    /// The event name the shop receives, e.g. `order.paid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderPaid => "order.paid",
            Self::PaymentFailed => "payment.failed",
            Self::AmountMismatch => "payment.amount_mismatch",
            Self::PaymentCanceled => "payment.canceled",
            Self::OrderOverpaid => "order.overpaid",
            Self::PaymentRefunded => "payment.refunded",
            Self::OrderRefunded => "order.refunded",
            Self::PaymentRefundFailed => "payment.refund_failed",
            Self::PaymentDisputed => "payment.disputed",
            Self::PaymentDisputeClosed => "payment.dispute_closed",
        }
    }

    /// Every kind.
    pub const ALL: [NotificationKind; 10] = [
        Self::OrderPaid,
        Self::PaymentFailed,
        Self::AmountMismatch,
        Self::PaymentCanceled,
        Self::OrderOverpaid,
        Self::PaymentRefunded,
        Self::OrderRefunded,
        Self::PaymentRefundFailed,
        Self::PaymentDisputed,
        Self::PaymentDisputeClosed,
    ];

    /// Reads an event name back; `None` for a name no kind has.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
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
        Self::with_fields(kind, payment, now, json!({}))
    }

    /// [`Notification::for_payment`] with the fields of `extra` (a JSON
    /// object) added, rendered once: it runs for every confirmation.
    fn with_fields(
        kind: NotificationKind,
        payment: &Payment,
        now: DateTime<Utc>,
        extra: serde_json::Value,
    ) -> Self {
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
        if payment.refunded_amount.minor() != 0 || kind == NotificationKind::PaymentRefunded {
            body["refunded_amount"] = json!(payment.refunded_amount.amount_string());
        }
        if let (
            NotificationKind::PaymentDisputed | NotificationKind::PaymentDisputeClosed,
            Some(dispute),
        ) = (kind, &payment.dispute)
        {
            body["dispute"] = json!({
                "dispute_id": dispute.dispute_id,
                "status": dispute.status.as_str(),
                "amount": dispute.amount.amount_string(),
                "currency": dispute.amount.currency().code(),
                "reason": dispute.reason,
            });
        }
        if let (serde_json::Value::Object(body), serde_json::Value::Object(extra)) =
            (&mut body, extra)
        {
            body.extend(extra);
        }
        Self {
            kind,
            payload: body.to_string(),
        }
    }

    /// Renders `order.overpaid` for `payment`, which completed when the
    /// order's earlier payments `paid_by` already covered it: the body
    /// names every completed payment of the order (`payment_ids`, this one
    /// last) and what they add up to (`paid_amount`), so the shop can
    /// choose which one to refund.
    pub fn order_overpaid(
        payment: &Payment,
        order: &OrderUpdate,
        paid_by: &[PaymentId],
        total: &Money,
        now: DateTime<Utc>,
    ) -> Self {
        let ids: Vec<i64> = paid_by
            .iter()
            .chain(std::iter::once(&payment.id))
            .map(|id| id.0)
            .collect();
        Self::with_fields(
            NotificationKind::OrderOverpaid,
            payment,
            now,
            json!({
                "payment_ids": ids,
                "order_status": order.status.as_str(),
                "order_total": total.amount_string(),
                "paid_amount": order.paid_amount.amount_string(),
            }),
        )
    }
}

/// The order a payment belongs to, as the store read it under the lock
/// it holds for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    /// Its status.
    pub status: OrderStatus,
    /// What it costs.
    pub total: Money,
    /// The sum of its completed payments' amounts so far.
    pub paid_amount: Money,
    /// Its payments that have completed, by id. Needed only to name them in
    /// `order.overpaid` and, for a refund, to know whether the order is
    /// refunded in full, so a store may leave it empty otherwise (see
    /// [`OrderState::needs_paid_by`]).
    pub paid_by: Vec<PaymentId>,
    /// True when every payment of `paid_by` is refunded in full (so also
    /// when it is empty). Filled with `paid_by`, and for a refund event:
    /// the order becomes `refunded` when its last paid payment is.
    pub paid_by_refunded: bool,
}

impl OrderState {
    /// The state of an order with no completed payment.
    pub fn unpaid(total: Money) -> Self {
        Self {
            status: OrderStatus::Pending,
            total,
            paid_amount: Money::zero(total.currency()),
            paid_by: Vec::new(),
            paid_by_refunded: true,
        }
    }

    /// True when the store must fill [`OrderState::paid_by`] (and
    /// [`OrderState::paid_by_refunded`]) for `decide` to decide `kind`: a
    /// refund (the order is refunded when its last paid payment is), or a
    /// success on an order no longer pending (`order.overpaid` names the
    /// payments that paid it). Nothing else reads them, so a store spares
    /// the read for the others: on PostgreSQL it was a statement for each
    /// dispute report on a paid order, a third of those that store ran
    /// for the completed payments of a mixed stream.
    pub fn needs_paid_by(status: OrderStatus, kind: EventKind) -> bool {
        match kind {
            EventKind::Refund => true,
            EventKind::Succeeded => status != OrderStatus::Pending,
            EventKind::Failed
            | EventKind::Canceled
            | EventKind::Pending
            | EventKind::Dispute
            | EventKind::NotHandled => false,
        }
    }
}

/// The order's columns a decision changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderUpdate {
    /// Its status afterwards.
    pub status: OrderStatus,
    /// Its `paid_amount` afterwards.
    pub paid_amount: Money,
}

/// Everything the store must write for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happened, for the answer and the event record.
    pub outcome: Outcome,
    /// The payment as it must be stored afterwards (equal to the input when
    /// nothing changes).
    pub payment: Payment,
    /// The order's new state, when the event changes it (a payment of it
    /// completed, or was refunded in full).
    pub order: Option<OrderUpdate>,
    /// The payment's refund ledger as it must be stored, when a refund
    /// report changed it.
    pub refunds: Option<RefundLedger>,
    /// Outbox rows to write in the same transaction.
    pub notifications: Vec<Notification>,
}

impl Decision {
    /// A decision that changes nothing at all, not even the reference.
    fn nothing(outcome: Outcome, payment: &Payment) -> Self {
        Self {
            outcome,
            payment: payment.clone(),
            order: None,
            refunds: None,
            notifications: Vec::new(),
        }
    }

    /// True when the payment row must be written.
    pub fn changes_payment(&self, before: &Payment) -> bool {
        &self.payment != before
    }

    /// True when the order moves from `pending` to `paid` with this event.
    pub fn order_becomes_paid(&self, before: OrderStatus) -> bool {
        before == OrderStatus::Pending
            && self
                .order
                .is_some_and(|order| order.status == OrderStatus::Paid)
    }
}

/// Decides what `event` does to `payment`, whose order is `order`.
///
/// | kind | payment is | effect |
/// |---|---|---|
/// | succeeded | created, pending_external, failed, canceled | completed; the order's `paid_amount` grows and it becomes paid once that covers its total (`order.paid`); an order already paid stays so (`order.overpaid`); a refunded order is paid again (`order.paid`) |
/// | succeeded | completed, partially_refunded, refunded | "already completed" |
/// | failed | created, pending_external | failed (`payment.failed`) |
/// | canceled | created, pending_external, failed | canceled (`payment.canceled`) |
/// | failed, canceled | failed / canceled / completed, partially_refunded, refunded | recorded, not applied |
/// | pending | created | pending_external; completed, partially_refunded, refunded: "already completed"; otherwise no change |
/// | refund | completed, partially_refunded, refunded | the ledger takes the report ([`crate::refund`]); the status follows `refunded_amount`; `payment.refunded`, `payment.refund_failed`, and `order.refunded` once every paid payment of the order is refunded in full |
/// | dispute | completed, partially_refunded, refunded | the payment's dispute follows [`crate::next_dispute`]; `payment.disputed`, `payment.dispute_closed` |
/// | refund, dispute | created, pending_external, failed, canceled | "awaiting completion": kept, and applied when the payment completes |
///
/// A success whose amount differs is confirmed with the mismatch recorded
/// under [`AmountPolicy::Warn`] and refused under [`AmountPolicy::Reject`].
/// The gateway's reference the event names is recorded on a payment that
/// has none yet (a checkout session's PaymentIntent id), whatever the
/// outcome, so later events that carry only that reference find it; only
/// a refused amount (the payment stays as it was) and an event type
/// payhook does not handle leave it unrecorded.
pub fn decide(
    payment: &Payment,
    order: &OrderState,
    refunds: &RefundLedger,
    event: &GatewayEvent,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Decision {
    let mut next = payment.clone();
    if next.gateway_reference.is_none() {
        // An empty reference is no reference, as in the lookup rules.
        next.gateway_reference = event
            .references
            .gateway_reference
            .clone()
            .filter(|r| !r.is_empty());
    }
    let decision = |outcome, status, order, notifications: Vec<NotificationKind>| {
        let mut next = next.clone();
        next.status = status;
        let notifications = notifications
            .into_iter()
            .map(|kind| Notification::for_payment(kind, &next, now))
            .collect();
        Decision {
            outcome,
            payment: next,
            order,
            refunds: None,
            notifications,
        }
    };
    let unchanged = |outcome| decision(outcome, payment.status, None, Vec::new());
    let status = payment.status;
    let mut decided = match event.kind {
        EventKind::NotHandled => Decision::nothing(Outcome::Ignored, payment),
        EventKind::Succeeded if status.has_completed() => unchanged(Outcome::AlreadyCompleted),
        EventKind::Succeeded => return confirm(payment, next, order, event, policy, now),
        EventKind::Failed | EventKind::Canceled if status.has_completed() => {
            unchanged(if event.kind == EventKind::Failed {
                Outcome::LateFailureIgnored
            } else {
                Outcome::LateCancelIgnored
            })
        }
        EventKind::Failed => match status {
            PaymentStatus::Failed => unchanged(Outcome::AlreadyFailed),
            PaymentStatus::Canceled => unchanged(Outcome::AlreadyCanceled),
            _ => decision(
                Outcome::Failed,
                PaymentStatus::Failed,
                None,
                vec![NotificationKind::PaymentFailed],
            ),
        },
        EventKind::Canceled => match status {
            PaymentStatus::Canceled => unchanged(Outcome::AlreadyCanceled),
            _ => decision(
                Outcome::Canceled,
                PaymentStatus::Canceled,
                None,
                vec![NotificationKind::PaymentCanceled],
            ),
        },
        EventKind::Pending if status.has_completed() => unchanged(Outcome::AlreadyCompleted),
        EventKind::Pending => match status {
            PaymentStatus::Created => decision(
                Outcome::Pending,
                PaymentStatus::PendingExternal,
                None,
                Vec::new(),
            ),
            _ => unchanged(Outcome::Pending),
        },
        EventKind::Refund | EventKind::Dispute if !status.has_completed() => {
            unchanged(Outcome::AwaitingCompletion)
        }
        EventKind::Refund => match &event.report {
            Some(Report::Refund(report)) => refund(payment, next, order, refunds, report, now),
            // An adapter that names the kind gives the detail; without it
            // there is nothing to apply.
            _ => Decision::nothing(Outcome::Ignored, payment),
        },
        EventKind::Dispute => match &event.report {
            Some(Report::Dispute(report)) => dispute(next, report, now),
            _ => Decision::nothing(Outcome::Ignored, payment),
        },
    };
    if decided.changes_payment(payment) {
        decided.payment.updated_at = now;
    }
    decided
}

/// A success for a payment that has not completed: completes it, unless
/// its amount is refused, and counts it towards its order.
fn confirm(
    before: &Payment,
    mut next: Payment,
    order: &OrderState,
    event: &GatewayEvent,
    policy: AmountPolicy,
    now: DateTime<Utc>,
) -> Decision {
    let mismatch = event
        .amount
        .filter(|received| *received != before.amount)
        .map(|received| AmountMismatch {
            expected: before.amount,
            received,
        });
    if mismatch.is_some() && policy == AmountPolicy::Reject {
        return Decision::nothing(Outcome::AmountRejected, before);
    }
    next.status = PaymentStatus::Completed;
    next.updated_at = now;
    if mismatch.is_some() {
        next.amount_mismatch = mismatch;
    }
    // The payment's own amount counts, as the shop created it; a payment
    // in another currency than its order (refused at creation, so only in
    // rows older than that rule) adds nothing.
    let paid_amount = order
        .paid_amount
        .checked_add(before.amount)
        .unwrap_or(order.paid_amount);
    let covered = paid_amount.minor() >= order.total.minor();
    let update = OrderUpdate {
        status: match order.status {
            OrderStatus::Pending if covered => OrderStatus::Paid,
            // Every earlier payment went back to the customer (a payment
            // created before that, completing late): this one pays the
            // order again, nothing is paid twice.
            OrderStatus::Refunded => OrderStatus::Paid,
            status => status,
        },
        paid_amount,
    };
    let mut notifications = Vec::new();
    if order.status == OrderStatus::Paid {
        notifications.push(Notification::order_overpaid(
            &next,
            &update,
            &order.paid_by,
            &order.total,
            now,
        ));
    } else if update.status == OrderStatus::Paid {
        // A split order's payment is one part of it: the shop sees the sum.
        notifications.push(Notification::with_fields(
            NotificationKind::OrderPaid,
            &next,
            now,
            json!({
                "order_total": order.total.amount_string(),
                "paid_amount": paid_amount.amount_string(),
            }),
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
        order: Some(update),
        refunds: None,
        notifications,
    }
}

/// A refund report for a completed payment: the ledger takes it, or
/// refuses it and nothing changes.
fn refund(
    before: &Payment,
    mut next: Payment,
    order: &OrderState,
    refunds: &RefundLedger,
    report: &RefundReport,
    now: DateTime<Utc>,
) -> Decision {
    let received = before.amount_received();
    let Ok(change) = refunds.apply(report, received) else {
        return Decision::nothing(Outcome::RefundRejected, before);
    };
    next.refunded_amount = change.refunded_after;
    next.status = match change.refunded_after.minor() {
        0 => PaymentStatus::Completed,
        refunded if refunded < received.minor() => PaymentStatus::PartiallyRefunded,
        _ => PaymentStatus::Refunded,
    };
    let mut notifications = Vec::new();
    if change.refunded_after.minor() > change.refunded_before.minor() {
        // A report of one refund names it; a running total names none.
        let named = match report.refunds.as_slice() {
            [one] => json!({
                "refund_id": one.refund_id,
                "refund_amount": one.amount.amount_string(),
            }),
            _ => json!({}),
        };
        notifications.push(Notification::with_fields(
            NotificationKind::PaymentRefunded,
            &next,
            now,
            named,
        ));
    }
    for undone in &change.undone {
        notifications.push(Notification::with_fields(
            NotificationKind::PaymentRefundFailed,
            &next,
            now,
            json!({
                "refund_id": undone.refund_id,
                "refund_amount": undone.amount.amount_string(),
                "refund_status": undone.status.as_str(),
            }),
        ));
    }
    let all_refunded = next.status == PaymentStatus::Refunded && order.paid_by_refunded;
    let order_status = match order.status {
        OrderStatus::Paid if all_refunded => Some(OrderStatus::Refunded),
        // A refund of it failed: the order is paid again.
        OrderStatus::Refunded if !all_refunded => Some(OrderStatus::Paid),
        _ => None,
    };
    let update = order_status.map(|status| OrderUpdate {
        status,
        paid_amount: order.paid_amount,
    });
    if order_status == Some(OrderStatus::Refunded) {
        notifications.push(Notification::for_payment(
            NotificationKind::OrderRefunded,
            &next,
            now,
        ));
    }
    let ledger_changed = &change.ledger != refunds;
    Decision {
        outcome: Outcome::RefundRecorded,
        payment: next,
        order: update,
        refunds: ledger_changed.then_some(change.ledger),
        notifications,
    }
}

/// A dispute report for a completed payment.
fn dispute(mut next: Payment, report: &Dispute, now: DateTime<Utc>) -> Decision {
    let DisputeChange::Applied {
        dispute,
        opened,
        closed,
    } = next_dispute(next.dispute.as_ref(), report)
    else {
        return Decision::nothing(Outcome::DisputeUnchanged, &next);
    };
    next.dispute = Some(dispute);
    let kinds = [
        (opened, NotificationKind::PaymentDisputed),
        (closed, NotificationKind::PaymentDisputeClosed),
    ];
    let notifications = kinds
        .into_iter()
        .filter(|(sent, _)| *sent)
        .map(|(_, kind)| Notification::for_payment(kind, &next, now))
        .collect();
    Decision {
        outcome: Outcome::DisputeRecorded,
        payment: next,
        order: None,
        refunds: None,
        notifications,
    }
}
