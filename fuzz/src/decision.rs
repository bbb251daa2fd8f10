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
    NotificationKind, OrderId, OrderStatus, Outcome, Payment, PaymentId, PaymentStatus, References,
};

/// Every payment status, so that each transition (refused ones included)
/// is tried.
const PAYMENT_STATUSES: [PaymentStatus; 4] = [
    PaymentStatus::Created,
    PaymentStatus::PendingExternal,
    PaymentStatus::Completed,
    PaymentStatus::Failed,
];

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
    for amount in amounts(event.amount) {
        for status in PAYMENT_STATUSES {
            for prior_reference in [None, Some(PRIOR_REFERENCE.to_owned())] {
                let payment = payment(event, amount, status, prior_reference, created_at);
                for order_status in [OrderStatus::Pending, OrderStatus::Paid] {
                    for policy in [AmountPolicy::Warn, AmountPolicy::Reject] {
                        let decision = decide(&payment, order_status, event, policy, now);
                        check_decision(&payment, order_status, event, policy, now, &decision);
                    }
                }
            }
        }
    }
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
    Some(match (status, kind) {
        (_, EventKind::NotHandled) => Outcome::Ignored,
        (PaymentStatus::Completed, EventKind::Succeeded) => Outcome::AlreadyCompleted,
        (PaymentStatus::Completed, EventKind::Failed) => Outcome::LateFailureIgnored,
        (PaymentStatus::Failed, EventKind::Failed) => Outcome::AlreadyFailed,
        (PaymentStatus::Created | PaymentStatus::PendingExternal, EventKind::Failed) => {
            Outcome::Failed
        }
        (_, EventKind::Succeeded) if mismatch && policy == AmountPolicy::Reject => {
            Outcome::AmountRejected
        }
        (_, EventKind::Succeeded) => Outcome::Confirmed,
        _ => return None,
    })
}

/// The rules of [`decide`] for one answer.
fn check_decision(
    before: &Payment,
    order_status: OrderStatus,
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

    match decision.outcome {
        Outcome::Confirmed => {
            assert_eq!(event.kind, EventKind::Succeeded);
            assert_ne!(before.status, PaymentStatus::Completed);
            assert_eq!(after.status, PaymentStatus::Completed);
            assert_eq!(after.updated_at, now);
            assert_eq!(
                after.amount_mismatch,
                received.map(|received| AmountMismatch {
                    expected: before.amount,
                    received,
                })
            );
            assert_eq!(
                decision.order_becomes_paid,
                order_status == OrderStatus::Pending
            );
            let mut kinds = Vec::new();
            if decision.order_becomes_paid {
                kinds.push(NotificationKind::OrderPaid);
            }
            if received.is_some() {
                kinds.push(NotificationKind::AmountMismatch);
            }
            check_notifications(decision, &kinds);
            check_reference(before, event, after);
        }
        Outcome::Failed => {
            assert_eq!(event.kind, EventKind::Failed);
            assert!(matches!(
                before.status,
                PaymentStatus::Created | PaymentStatus::PendingExternal
            ));
            assert_eq!(after.status, PaymentStatus::Failed);
            assert_eq!(after.updated_at, now);
            assert_eq!(after.amount_mismatch, before.amount_mismatch);
            assert!(!decision.order_becomes_paid);
            check_notifications(decision, &[NotificationKind::PaymentFailed]);
            check_reference(before, event, after);
        }
        // Every other outcome leaves everything as it was: in particular a
        // completed payment never becomes failed, and a refused amount
        // confirms nothing.
        _ => {
            assert_eq!(after, before, "{:?} changed the payment", decision.outcome);
            assert!(!decision.order_becomes_paid);
            assert!(decision.notifications.is_empty());
            assert!(!decision.changes_payment(before));
        }
    }
    assert_eq!(
        decision.outcome.is_final(),
        decision.outcome != Outcome::AmountRejected
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
