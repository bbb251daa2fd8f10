//! The state machine as a table: one row per (payment status, event kind),
//! refused transitions included, then the amount check, the learnt gateway
//! reference and the rendered notifications.

use payhook_domain::ports::Headers;
use payhook_domain::{
    decide, AmountMismatch, AmountPolicy, Decision, EventKind, Notification, NotificationKind,
    OrderStatus, Outcome, PaymentStatus, TransitionError,
};
use serde_json::{json, Value};

use crate::support::{at, event, money, payment};

use EventKind::{Failed as EvFailed, NotHandled, Succeeded};
use NotificationKind::{AmountMismatch as NotifyMismatch, OrderPaid, PaymentFailed};
use PaymentStatus::{Completed, Created, Failed, PendingExternal};

/// One row of the table.
struct Row {
    from: PaymentStatus,
    order: OrderStatus,
    kind: EventKind,
    outcome: Outcome,
    to: PaymentStatus,
    order_becomes_paid: bool,
    notifications: &'static [NotificationKind],
}

const fn row(
    from: PaymentStatus,
    order: OrderStatus,
    kind: EventKind,
    outcome: Outcome,
    to: PaymentStatus,
    order_becomes_paid: bool,
    notifications: &'static [NotificationKind],
) -> Row {
    Row {
        from,
        order,
        kind,
        outcome,
        to,
        order_becomes_paid,
        notifications,
    }
}

const PENDING: OrderStatus = OrderStatus::Pending;
const PAID: OrderStatus = OrderStatus::Paid;

/// Every (payment status x event kind), with the order pending, plus the
/// successes for an order another payment already paid.
const TABLE: &[Row] = &[
    // created
    row(
        Created,
        PENDING,
        Succeeded,
        Outcome::Confirmed,
        Completed,
        true,
        &[OrderPaid],
    ),
    row(
        Created,
        PENDING,
        EvFailed,
        Outcome::Failed,
        Failed,
        false,
        &[PaymentFailed],
    ),
    row(
        Created,
        PENDING,
        NotHandled,
        Outcome::Ignored,
        Created,
        false,
        &[],
    ),
    // pending_external
    row(
        PendingExternal,
        PENDING,
        Succeeded,
        Outcome::Confirmed,
        Completed,
        true,
        &[OrderPaid],
    ),
    row(
        PendingExternal,
        PENDING,
        EvFailed,
        Outcome::Failed,
        Failed,
        false,
        &[PaymentFailed],
    ),
    row(
        PendingExternal,
        PENDING,
        NotHandled,
        Outcome::Ignored,
        PendingExternal,
        false,
        &[],
    ),
    // failed: the customer may retry at the gateway
    row(
        Failed,
        PENDING,
        Succeeded,
        Outcome::Confirmed,
        Completed,
        true,
        &[OrderPaid],
    ),
    row(
        Failed,
        PENDING,
        EvFailed,
        Outcome::AlreadyFailed,
        Failed,
        false,
        &[],
    ),
    row(
        Failed,
        PENDING,
        NotHandled,
        Outcome::Ignored,
        Failed,
        false,
        &[],
    ),
    // completed: final, never downgraded
    row(
        Completed,
        PAID,
        Succeeded,
        Outcome::AlreadyCompleted,
        Completed,
        false,
        &[],
    ),
    row(
        Completed,
        PAID,
        EvFailed,
        Outcome::LateFailureIgnored,
        Completed,
        false,
        &[],
    ),
    row(
        Completed,
        PAID,
        NotHandled,
        Outcome::Ignored,
        Completed,
        false,
        &[],
    ),
    // the order was already paid by another payment: confirm, no order.paid
    row(
        Created,
        PAID,
        Succeeded,
        Outcome::Confirmed,
        Completed,
        false,
        &[],
    ),
    row(
        PendingExternal,
        PAID,
        Succeeded,
        Outcome::Confirmed,
        Completed,
        false,
        &[],
    ),
    row(
        Failed,
        PAID,
        Succeeded,
        Outcome::Confirmed,
        Completed,
        false,
        &[],
    ),
    row(
        PendingExternal,
        PAID,
        EvFailed,
        Outcome::Failed,
        Failed,
        false,
        &[PaymentFailed],
    ),
    row(
        Completed,
        PENDING,
        Succeeded,
        Outcome::AlreadyCompleted,
        Completed,
        false,
        &[],
    ),
];

fn kinds(decision: &Decision) -> Vec<NotificationKind> {
    decision.notifications.iter().map(|n| n.kind).collect()
}

fn payload(notification: &Notification) -> Value {
    serde_json::from_str(&notification.payload).expect("notification payload is JSON")
}

#[test]
fn decide_table() {
    let now = at(60);
    for policy in [AmountPolicy::Warn, AmountPolicy::Reject] {
        for amount in [Some(money(15000, "USD")), None] {
            for r in TABLE {
                let before = payment(r.from);
                let decision = decide(&before, r.order, &event(r.kind, amount), policy, now);
                let case = format!(
                    "{} x {:?}, order {}, {policy:?}, amount {amount:?}",
                    r.from, r.kind, r.order
                );
                assert_eq!(decision.outcome, r.outcome, "{case}");
                assert_eq!(decision.payment.status, r.to, "{case}");
                assert_eq!(decision.order_becomes_paid, r.order_becomes_paid, "{case}");
                assert_eq!(kinds(&decision), r.notifications, "{case}");
                assert_eq!(decision.payment.amount_mismatch, None, "{case}");
                let moves = matches!(r.outcome, Outcome::Confirmed | Outcome::Failed);
                if !moves {
                    assert_eq!(
                        decision.payment, before,
                        "{case}: refused or no-op rows change nothing"
                    );
                    assert!(!decision.changes_payment(&before), "{case}");
                } else {
                    assert!(decision.changes_payment(&before), "{case}");
                    assert_eq!(decision.payment.updated_at, now, "{case}");
                    // Only the status (and the time) move; identity and amount never do.
                    let mut expected = before.clone();
                    expected.status = r.to;
                    expected.updated_at = now;
                    assert_eq!(decision.payment, expected, "{case}");
                }
            }
        }
    }
}

#[test]
fn the_table_covers_every_status_and_event_kind() {
    for from in [Created, PendingExternal, Failed, Completed] {
        for kind in [Succeeded, EvFailed, NotHandled] {
            assert!(
                TABLE.iter().any(|r| r.from == from && r.kind == kind),
                "no row for {from} x {kind:?}"
            );
        }
    }
}

#[test]
fn outcome_and_notification_names_are_stable() {
    let outcomes = [
        (Outcome::Confirmed, "confirmed", true),
        (Outcome::Failed, "failed", true),
        (Outcome::AlreadyCompleted, "already_completed", true),
        (Outcome::AlreadyFailed, "already_failed", true),
        (Outcome::LateFailureIgnored, "late_failure_ignored", true),
        (Outcome::AmountRejected, "amount_rejected", false),
        (Outcome::Ignored, "ignored", true),
    ];
    for (outcome, name, is_final) in outcomes {
        assert_eq!(outcome.as_str(), name);
        assert_eq!(outcome.is_final(), is_final, "{name}");
    }
    assert_eq!(OrderPaid.as_str(), "order.paid");
    assert_eq!(PaymentFailed.as_str(), "payment.failed");
    assert_eq!(NotifyMismatch.as_str(), "payment.amount_mismatch");
    for kind in [Succeeded, EvFailed, NotHandled] {
        assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(EventKind::parse("SUCCEEDED"), None);
}

#[test]
fn a_matching_amount_confirms_without_mismatch() {
    for policy in [AmountPolicy::Warn, AmountPolicy::Reject] {
        let decision = decide(
            &payment(PendingExternal),
            OrderStatus::Pending,
            &event(Succeeded, Some(money(15000, "USD"))),
            policy,
            at(1),
        );
        assert_eq!(decision.outcome, Outcome::Confirmed, "{policy:?}");
        assert_eq!(decision.payment.amount_mismatch, None, "{policy:?}");
        assert_eq!(kinds(&decision), [OrderPaid], "{policy:?}");
    }
}

#[test]
fn a_different_amount_under_warn_confirms_and_records_the_mismatch() {
    let received = money(14000, "USD");
    let decision = decide(
        &payment(PendingExternal),
        OrderStatus::Pending,
        &event(Succeeded, Some(received)),
        AmountPolicy::Warn,
        at(1),
    );
    assert_eq!(decision.outcome, Outcome::Confirmed);
    assert_eq!(decision.payment.status, Completed);
    assert!(decision.order_becomes_paid);
    assert_eq!(
        decision.payment.amount_mismatch,
        Some(AmountMismatch {
            expected: money(15000, "USD"),
            received,
        })
    );
    assert_eq!(kinds(&decision), [OrderPaid, NotifyMismatch]);

    let mismatch = payload(&decision.notifications[1]);
    assert_eq!(mismatch["type"], "payment.amount_mismatch");
    assert_eq!(
        mismatch["expected"],
        json!({"amount": "150.00", "currency": "USD"})
    );
    assert_eq!(
        mismatch["received"],
        json!({"amount": "140.00", "currency": "USD"})
    );
    assert_eq!(
        mismatch["amount"], "150.00",
        "the payment's own amount stays the expected one"
    );
    let paid = payload(&decision.notifications[0]);
    assert!(paid.get("expected").is_none(), "{paid}");
    assert!(paid.get("received").is_none(), "{paid}");
}

#[test]
fn a_mismatch_for_an_order_already_paid_only_notifies_the_mismatch() {
    let decision = decide(
        &payment(Failed),
        OrderStatus::Paid,
        &event(Succeeded, Some(money(1, "USD"))),
        AmountPolicy::Warn,
        at(1),
    );
    assert_eq!(decision.outcome, Outcome::Confirmed);
    assert!(!decision.order_becomes_paid);
    assert_eq!(kinds(&decision), [NotifyMismatch]);
}

#[test]
fn a_different_amount_under_reject_leaves_the_payment_unchanged() {
    for from in [Created, PendingExternal, Failed] {
        for order in [OrderStatus::Pending, OrderStatus::Paid] {
            let before = payment(from);
            let mut refused = event(Succeeded, Some(money(15001, "USD")));
            refused.references.gateway_reference = Some("ch_1".into());
            let decision = decide(&before, order, &refused, AmountPolicy::Reject, at(1));
            assert_eq!(decision.outcome, Outcome::AmountRejected, "{from}");
            assert_eq!(
                decision.payment, before,
                "{from}: not even the reference is learnt"
            );
            assert!(!decision.order_becomes_paid, "{from}");
            assert!(decision.notifications.is_empty(), "{from}");
        }
    }
}

#[test]
fn a_different_currency_is_a_mismatch_even_with_the_same_digits() {
    for received in [
        money(15000, "EUR"),
        money(15000, "JPY"),
        money(150_000, "KWD"),
    ] {
        let rejected = decide(
            &payment(PendingExternal),
            OrderStatus::Pending,
            &event(Succeeded, Some(received)),
            AmountPolicy::Reject,
            at(1),
        );
        assert_eq!(rejected.outcome, Outcome::AmountRejected, "{received}");

        let warned = decide(
            &payment(PendingExternal),
            OrderStatus::Pending,
            &event(Succeeded, Some(received)),
            AmountPolicy::Warn,
            at(1),
        );
        assert_eq!(warned.outcome, Outcome::Confirmed, "{received}");
        let mismatch = warned.payment.amount_mismatch.expect("mismatch recorded");
        assert_eq!(mismatch.received, received);
        assert_eq!(mismatch.expected, money(15000, "USD"));
    }
}

#[test]
fn an_event_without_amount_never_mismatches() {
    for policy in [AmountPolicy::Warn, AmountPolicy::Reject] {
        let decision = decide(
            &payment(Created),
            OrderStatus::Pending,
            &event(Succeeded, None),
            policy,
            at(1),
        );
        assert_eq!(decision.outcome, Outcome::Confirmed, "{policy:?}");
        assert_eq!(decision.payment.amount_mismatch, None, "{policy:?}");
        assert_eq!(kinds(&decision), [OrderPaid], "{policy:?}");
    }
}

#[test]
fn the_amount_of_a_failure_is_not_checked() {
    let decision = decide(
        &payment(PendingExternal),
        OrderStatus::Pending,
        &event(EvFailed, Some(money(1, "EUR"))),
        AmountPolicy::Reject,
        at(1),
    );
    assert_eq!(decision.outcome, Outcome::Failed);
    assert_eq!(decision.payment.amount_mismatch, None);
}

#[test]
fn the_gateway_reference_is_learnt_when_the_payment_has_none() {
    for (kind, outcome) in [(Succeeded, Outcome::Confirmed), (EvFailed, Outcome::Failed)] {
        let mut with_reference = event(kind, None);
        with_reference.references.gateway_reference = Some("ch_new".into());
        let decision = decide(
            &payment(PendingExternal),
            OrderStatus::Pending,
            &with_reference,
            AmountPolicy::Warn,
            at(1),
        );
        assert_eq!(decision.outcome, outcome);
        assert_eq!(
            decision.payment.gateway_reference.as_deref(),
            Some("ch_new"),
            "{kind:?}"
        );
        assert_eq!(
            decision.payment.external_id.as_deref(),
            Some("pi_1"),
            "{kind:?}"
        );
    }
}

#[test]
fn a_known_gateway_reference_is_kept() {
    let mut before = payment(PendingExternal);
    before.gateway_reference = Some("ch_old".into());
    for reference in [Some("ch_new".to_owned()), None] {
        let mut later = event(Succeeded, None);
        later.references.gateway_reference = reference.clone();
        let decision = decide(
            &before,
            OrderStatus::Pending,
            &later,
            AmountPolicy::Warn,
            at(1),
        );
        assert_eq!(decision.outcome, Outcome::Confirmed);
        assert_eq!(
            decision.payment.gateway_reference.as_deref(),
            Some("ch_old"),
            "{reference:?}"
        );
    }
    let without = decide(
        &payment(PendingExternal),
        OrderStatus::Pending,
        &event(Succeeded, None),
        AmountPolicy::Warn,
        at(1),
    );
    assert_eq!(without.payment.gateway_reference, None);
}

#[test]
fn order_paid_payload_carries_the_payment() {
    let decision = decide(
        &payment(PendingExternal),
        OrderStatus::Pending,
        &event(Succeeded, Some(money(15000, "USD"))),
        AmountPolicy::Warn,
        at(0),
    );
    let [paid] = decision.notifications.as_slice() else {
        panic!(
            "expected one notification, got {:?}",
            decision.notifications
        );
    };
    let body = payload(paid);
    assert_eq!(
        body,
        json!({
            "type": "order.paid",
            "order_id": 7,
            "payment_id": 3,
            "transaction_id": "TXN-1",
            "payment_status": "completed",
            "amount": "150.00",
            "currency": "USD",
            "occurred_at": "2023-11-14T22:13:20.000Z",
        })
    );
}

#[test]
fn payment_failed_payload_carries_the_failed_status() {
    let decision = decide(
        &payment(Created),
        OrderStatus::Pending,
        &event(EvFailed, None),
        AmountPolicy::Warn,
        at(0),
    );
    let body = payload(&decision.notifications[0]);
    assert_eq!(body["type"], "payment.failed");
    assert_eq!(body["payment_status"], "failed");
    assert_eq!(body["order_id"], 7);
    assert_eq!(body["payment_id"], 3);
    assert_eq!(body["transaction_id"], "TXN-1");
    assert_eq!(body["amount"], "150.00");
    assert_eq!(body["currency"], "USD");
}

#[test]
fn payload_amounts_use_the_currency_exponent() {
    for (amount, text, code) in [
        (money(1500, "JPY"), "1500", "JPY"),
        (money(1500, "KWD"), "1.500", "KWD"),
        (money(5, "EUR"), "0.05", "EUR"),
    ] {
        let mut p = payment(PendingExternal);
        p.amount = amount;
        let body = payload(&Notification::for_payment(OrderPaid, &p, at(0)));
        assert_eq!(body["amount"], text);
        assert_eq!(body["currency"], code);
    }
}

#[test]
fn mark_pending_follows_the_state_machine() {
    let now = at(5);
    for from in [Created, PendingExternal, Failed] {
        let next = payment(from).mark_pending("pi_2", now).expect("allowed");
        assert_eq!(next.status, PendingExternal, "{from}");
        assert_eq!(next.external_id.as_deref(), Some("pi_2"), "{from}");
        assert_eq!(next.updated_at, now, "{from}");
    }
    assert_eq!(
        payment(Completed).mark_pending("pi_2", now),
        Err(TransitionError::AlreadyCompleted)
    );
}

#[test]
fn header_slices_are_read_case_insensitively_first_value_wins() {
    let borrowed: &[(&str, &str)] = &[("X-Test-Sig", "ok"), ("x-test-sig", "second")];
    assert_eq!(Headers::get(borrowed, "x-TEST-sig"), Some("ok"));
    assert_eq!(Headers::get(borrowed, "x-other"), None);
    let owned: Vec<(String, String)> = vec![("Content-Type".into(), "application/json".into())];
    assert_eq!(
        Headers::get(owned.as_slice(), "content-type"),
        Some("application/json")
    );
}
