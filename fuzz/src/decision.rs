//! Carries a parsed [`GatewayEvent`] on to [`decide`], the domain's pure
//! decision, and checks what comes back against the documented rules.
//!
//! The payments are built from the event's own references and amount, so
//! that every rule is reached whatever the fuzzer invented: each payment
//! status, each order status, both [`AmountPolicy`] values, the event's own
//! amount and two other ones (off by one minor unit, another currency), with
//! and without a gateway reference already recorded.
//!
//! It does not model the store: which payment an event finds
//! ([`References::lookups`]) and what is written are the store's tests'
//! business. Failures are panics (`assert!`), which libFuzzer reports as
//! crashes with the message.

use chrono::{DateTime, Utc};
use payhook_domain::{
    decide, AmountMismatch, AmountPolicy, Currency, Decision, EventKind, GatewayEvent, Money,
    NotificationKind, OrderId, OrderState, OrderStatus, Outcome, Payment, PaymentId, PaymentStatus,
    References, RefundLedger,
};

/// A gateway reference a payment may already carry from an earlier event.
const PRIOR_REFERENCE: &str = "ref_recorded_earlier";

/// Runs `decide` for `event` against every payment of the module
/// documentation and asserts the rules of [`decide`] on each answer.
pub fn check(event: &GatewayEvent) {
    // References are only read as lookups by the store; they must not panic.
    assert_eq!(
        event.references.is_empty(),
        event.references.lookups().next().is_none()
    );
    assert_eq!(EventKind::parse(event.kind.as_str()), Some(event.kind));

    let created_at = DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time");
    let now = DateTime::from_timestamp(1_700_000_060, 0).expect("a valid time");
    // Refund reports are checked against an empty ledger: the ledger's
    // own rules have their property tests in the domain.
    let ledger = RefundLedger::default();
    for amount in amounts(event.amount) {
        for status in PaymentStatus::ALL {
            for prior_reference in [None, Some(PRIOR_REFERENCE.to_owned())] {
                let payment = payment(event, amount, status, prior_reference, created_at);
                for order in orders(&payment) {
                    for policy in [AmountPolicy::Warn, AmountPolicy::Reject] {
                        let decision = decide(&payment, &order, &ledger, event, policy, now);
                        check_decision(&payment, &order, event, policy, now, &decision);
                    }
                }
            }
        }
    }
}

/// The orders `payment` may belong to: unpaid and covered by it, unpaid
/// and larger than it (a split payment), already paid by another one, and
/// refunded (its one earlier payment went back).
fn orders(payment: &Payment) -> Vec<OrderState> {
    let amount = payment.amount;
    let larger = Money::from_minor(amount.minor().saturating_mul(2).max(1), amount.currency());
    let mut paid = OrderState::unpaid(amount);
    paid.status = OrderStatus::Paid;
    paid.paid_amount = amount;
    paid.paid_by = vec![PaymentId(6)];
    paid.paid_by_refunded = false;
    let mut refunded = paid.clone();
    refunded.status = OrderStatus::Refunded;
    refunded.paid_by_refunded = true;
    vec![
        OrderState::unpaid(amount),
        OrderState::unpaid(larger),
        paid,
        refunded,
    ]
}

/// The amounts payments are created for: the event's own (a match), one
/// minor unit off and the same figure in another currency (mismatches).
/// Without an event amount, a fixed one: nothing can mismatch then.
fn amounts(received: Option<Money>) -> Vec<Money> {
    let Some(received) = received else {
        let euro = Currency::parse("EUR").expect("EUR is a currency");
        return vec![Money::from_minor(1_000, euro)];
    };
    let minor = received.minor();
    let off_by_one = minor.checked_add(1).unwrap_or(minor - 1);
    let other_code = if received.currency().code() == "EUR" {
        "USD"
    } else {
        "EUR"
    };
    let other = Currency::parse(other_code).expect("a currency");
    vec![
        received,
        Money::from_minor(off_by_one, received.currency()),
        Money::from_minor(minor, other),
    ]
}

/// A payment the event could have found: its transaction and external ids
/// are the event's own when it names them.
fn payment(
    event: &GatewayEvent,
    amount: Money,
    status: PaymentStatus,
    gateway_reference: Option<String>,
    created_at: DateTime<Utc>,
) -> Payment {
    let References {
        transaction_id,
        external_id,
        ..
    } = &event.references;
    Payment {
        id: PaymentId(7),
        order_id: OrderId(3),
        transaction_id: transaction_id
            .clone()
            .unwrap_or_else(|| "TXN-FUZZ".to_owned()),
        payment_method: event.gateway.clone(),
        amount,
        status,
        external_id: external_id.clone(),
        gateway_reference,
        amount_mismatch: None,
        refunded_amount: Money::zero(amount.currency()),
        dispute: None,
        created_at,
        updated_at: created_at,
    }
}

/// The outcome the documentation of [`decide`] promises, or `None` for an
/// event kind added to the domain after this was written.
fn expected_outcome(
    status: PaymentStatus,
    kind: EventKind,
    mismatch: bool,
    policy: AmountPolicy,
) -> Option<Outcome> {
    let completed = matches!(
        status,
        PaymentStatus::Completed | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
    );
    Some(match kind {
        EventKind::NotHandled => Outcome::Ignored,
        EventKind::Succeeded if completed => Outcome::AlreadyCompleted,
        EventKind::Succeeded if mismatch && policy == AmountPolicy::Reject => {
            Outcome::AmountRejected
        }
        EventKind::Succeeded => Outcome::Confirmed,
        EventKind::Failed if completed => Outcome::LateFailureIgnored,
        EventKind::Canceled if completed => Outcome::LateCancelIgnored,
        EventKind::Failed | EventKind::Canceled if status == PaymentStatus::Canceled => {
            Outcome::AlreadyCanceled
        }
        EventKind::Failed if status == PaymentStatus::Failed => Outcome::AlreadyFailed,
        EventKind::Failed => Outcome::Failed,
        EventKind::Canceled => Outcome::Canceled,
        EventKind::Pending if completed => Outcome::AlreadyCompleted,
        EventKind::Pending => Outcome::Pending,
        EventKind::Refund | EventKind::Dispute if !completed => Outcome::AwaitingCompletion,
        _ => return None,
    })
}

/// The rules of [`decide`] for one answer.
fn check_decision(
    before: &Payment,
    order: &OrderState,
    event: &GatewayEvent,
    policy: AmountPolicy,
    now: DateTime<Utc>,
    decision: &Decision,
) {
    let after = &decision.payment;
    let received = event.amount.filter(|received| *received != before.amount);
    if let Some(expected) = expected_outcome(before.status, event.kind, received.is_some(), policy)
    {
        assert_eq!(
            decision.outcome, expected,
            "{:?} event on a {:?} payment",
            event.kind, before.status
        );
    }
    // What a payment is never changes, whatever the event.
    assert_eq!(after.id, before.id);
    assert_eq!(after.order_id, before.order_id);
    assert_eq!(after.transaction_id, before.transaction_id);
    assert_eq!(after.payment_method, before.payment_method);
    assert_eq!(after.amount, before.amount);
    assert_eq!(after.external_id, before.external_id);
    assert_eq!(after.created_at, before.created_at);
    // Only a confirmation and a refund touch the order.
    if decision.order.is_some() {
        assert!(matches!(
            decision.outcome,
            Outcome::Confirmed | Outcome::RefundRecorded
        ));
    }
    assert_eq!(
        decision.outcome == Outcome::Confirmed,
        decision.order.is_some() && event.kind == EventKind::Succeeded
    );

    match decision.outcome {
        Outcome::Confirmed => {
            assert_eq!(event.kind, EventKind::Succeeded);
            assert!(!before.status.has_completed());
            assert_eq!(after.status, PaymentStatus::Completed);
            assert_eq!(after.updated_at, now);
            assert_eq!(
                after.amount_mismatch,
                received.map(|received| AmountMismatch {
                    expected: before.amount,
                    received,
                })
            );
            let update = decision.order.expect("a confirmation updates the order");
            let paid = order
                .paid_amount
                .checked_add(before.amount)
                .unwrap_or(order.paid_amount);
            assert_eq!(update.paid_amount, paid);
            let covers = paid.minor() >= order.total.minor();
            let mut kinds = Vec::new();
            match order.status {
                OrderStatus::Pending if covers => {
                    assert_eq!(update.status, OrderStatus::Paid);
                    kinds.push(NotificationKind::OrderPaid);
                }
                OrderStatus::Pending => assert_eq!(update.status, OrderStatus::Pending),
                OrderStatus::Paid => {
                    assert_eq!(update.status, OrderStatus::Paid);
                    kinds.push(NotificationKind::OrderOverpaid);
                }
                OrderStatus::Refunded => {
                    assert_eq!(update.status, OrderStatus::Paid);
                    kinds.push(NotificationKind::OrderPaid);
                }
            }
            if received.is_some() {
                kinds.push(NotificationKind::AmountMismatch);
            }
            check_notifications(decision, &kinds);
            check_reference(before, event, after);
        }
        Outcome::Failed | Outcome::Canceled => {
            let (kind, status, notification) = if decision.outcome == Outcome::Failed {
                (
                    EventKind::Failed,
                    PaymentStatus::Failed,
                    NotificationKind::PaymentFailed,
                )
            } else {
                (
                    EventKind::Canceled,
                    PaymentStatus::Canceled,
                    NotificationKind::PaymentCanceled,
                )
            };
            assert_eq!(event.kind, kind);
            assert!(!before.status.has_completed());
            assert_eq!(after.status, status);
            assert_eq!(after.updated_at, now);
            assert_eq!(after.amount_mismatch, before.amount_mismatch);
            check_notifications(decision, &[notification]);
            check_reference(before, event, after);
        }
        Outcome::RefundRecorded => {
            assert_eq!(event.kind, EventKind::Refund);
            assert!(before.status.has_completed());
            let received = before.amount_received();
            let refunded = after.refunded_amount.minor();
            assert!((0..=received.minor()).contains(&refunded));
            let status = match refunded {
                0 => PaymentStatus::Completed,
                r if r < received.minor() => PaymentStatus::PartiallyRefunded,
                _ => PaymentStatus::Refunded,
            };
            assert_eq!(after.status, status);
            for notification in &decision.notifications {
                assert!(matches!(
                    notification.kind,
                    NotificationKind::PaymentRefunded
                        | NotificationKind::PaymentRefundFailed
                        | NotificationKind::OrderRefunded
                ));
            }
        }
        Outcome::DisputeRecorded => {
            assert_eq!(event.kind, EventKind::Dispute);
            assert!(before.status.has_completed());
            assert_eq!(after.status, before.status, "a dispute moves no status");
            assert!(after.dispute.is_some());
            assert!(!decision.notifications.is_empty());
            for notification in &decision.notifications {
                assert!(matches!(
                    notification.kind,
                    NotificationKind::PaymentDisputed | NotificationKind::PaymentDisputeClosed
                ));
            }
        }
        // A refused refund, an unchanged dispute and an early one change
        // no status and tell nobody.
        Outcome::RefundRejected | Outcome::DisputeUnchanged | Outcome::AwaitingCompletion => {
            assert_eq!(after.status, before.status);
            assert_eq!(after.refunded_amount, before.refunded_amount);
            assert_eq!(after.dispute, before.dispute);
            assert!(decision.notifications.is_empty());
            assert!(decision.refunds.is_none());
        }
        // A refused amount and an event payhook does not act on leave
        // everything as it was, the reference included.
        Outcome::AmountRejected | Outcome::Ignored => {
            assert_eq!(after, before, "{:?} changed the payment", decision.outcome);
            assert!(decision.notifications.is_empty());
            assert!(!decision.changes_payment(before));
        }
        // Every other outcome changes no status and tells nobody; it may
        // only learn the gateway's reference, or move a created payment to
        // pending_external on a pending event. A completed payment never
        // becomes failed or canceled.
        _ => {
            let expected_status = match (decision.outcome, before.status) {
                (Outcome::Pending, PaymentStatus::Created) => PaymentStatus::PendingExternal,
                _ => before.status,
            };
            assert_eq!(after.status, expected_status);
            assert_eq!(after.amount_mismatch, before.amount_mismatch);
            assert!(decision.notifications.is_empty());
            check_reference(before, event, after);
            if after.status == before.status && after.gateway_reference == before.gateway_reference
            {
                assert_eq!(after, before, "{:?} changed the payment", decision.outcome);
            } else {
                assert_eq!(after.updated_at, now);
            }
        }
    }
    assert_eq!(
        decision.outcome.is_final(),
        !matches!(
            decision.outcome,
            Outcome::AmountRejected | Outcome::RefundRejected | Outcome::AwaitingCompletion
        )
    );
}

/// The outbox rows are the expected kinds, in order, each rendered with
/// its own event name and the payment's transaction id.
fn check_notifications(decision: &Decision, kinds: &[NotificationKind]) {
    let written: Vec<_> = decision.notifications.iter().map(|n| n.kind).collect();
    assert_eq!(written, kinds);
    for notification in &decision.notifications {
        let kind = notification.kind;
        assert_eq!(NotificationKind::parse(kind.as_str()), Some(kind));
        assert!(notification.payload.starts_with('{') && notification.payload.ends_with('}'));
        assert!(notification
            .payload
            .contains(&format!("\"type\":\"{}\"", kind.as_str())));
    }
}

/// A recorded gateway reference is kept; otherwise the event's, when it
/// names a non-empty one, is learnt.
fn check_reference(before: &Payment, event: &GatewayEvent, after: &Payment) {
    let expected = before.gateway_reference.clone().or_else(|| {
        event
            .references
            .gateway_reference
            .clone()
            .filter(|reference| !reference.is_empty())
    });
    assert_eq!(after.gateway_reference, expected);
}
