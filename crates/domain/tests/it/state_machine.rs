//! The state machine as a table: one row per (payment status, event kind),
//! refused transitions included, each with the order pending, paid by
//! another payment, and split (its total larger than the payment); then the
//! amount check, the learnt gateway reference and the rendered
//! notifications.

use payhook_domain::ports::Headers;
use payhook_domain::RefundLedger;
use payhook_domain::{
    decide, AmountMismatch, AmountPolicy, Decision, EventKind, Money, Notification,
    NotificationKind, OrderState, OrderStatus, OrderUpdate, Outcome, Payment, PaymentId,
    PaymentStatus, TransitionError,
};
use serde_json::{json, Value};

use crate::support::{at, event, money, order_state, payment, KINDS};

use EventKind::{Canceled as EvCanceled, Failed as EvFailed, NotHandled, Succeeded};
use NotificationKind::{
    AmountMismatch as NotifyMismatch, OrderOverpaid, OrderPaid, PaymentCanceled, PaymentFailed,
};
use PaymentStatus::{
    Canceled, Completed, Created, Failed, PartiallyRefunded, PendingExternal, Refunded,
};

/// The contract of DESIGN.md, "Statuses and rules", for payment 3 (150.00
/// USD). The order column names what the order is besides this payment
/// (see [`Context`]); `*` stands for every one of them, used where the
/// order cannot matter. "order after" is the order update the decision
/// carries (`-`: none); notifications are in the order they are written.
const TABLE: &str = "
# payment           event        order       outcome               payment after     order after     notifications
created             succeeded    pending     confirmed             completed         paid 150.00     order.paid
created             succeeded    paid        confirmed             completed         paid 300.00     order.overpaid
created             succeeded    split       confirmed             completed         pending 150.00  -
created             succeeded    split_last  confirmed             completed         paid 300.00     order.paid
created             failed       *           failed                failed            -               payment.failed
created             canceled     *           canceled              canceled          -               payment.canceled
created             pending      *           pending               pending_external  -               -
created             not_handled  *           ignored               created           -               -

pending_external    succeeded    pending     confirmed             completed         paid 150.00     order.paid
pending_external    succeeded    paid        confirmed             completed         paid 300.00     order.overpaid
pending_external    succeeded    split       confirmed             completed         pending 150.00  -
pending_external    succeeded    split_last  confirmed             completed         paid 300.00     order.paid
pending_external    failed       *           failed                failed            -               payment.failed
pending_external    canceled     *           canceled              canceled          -               payment.canceled
pending_external    pending      *           pending               pending_external  -               -
pending_external    not_handled  *           ignored               pending_external  -               -

# money moved: a success wins over an earlier failure or cancel
failed              succeeded    pending     confirmed             completed         paid 150.00     order.paid
failed              succeeded    paid        confirmed             completed         paid 300.00     order.overpaid
failed              succeeded    split       confirmed             completed         pending 150.00  -
failed              succeeded    split_last  confirmed             completed         paid 300.00     order.paid
failed              failed       *           already_failed        failed            -               -
failed              canceled     *           canceled              canceled          -               payment.canceled
failed              pending      *           pending               failed            -               -
failed              not_handled  *           ignored               failed            -               -

canceled            succeeded    pending     confirmed             completed         paid 150.00     order.paid
canceled            succeeded    paid        confirmed             completed         paid 300.00     order.overpaid
canceled            succeeded    split       confirmed             completed         pending 150.00  -
canceled            succeeded    split_last  confirmed             completed         paid 300.00     order.paid
canceled            failed       *           already_canceled      canceled          -               -
canceled            canceled     *           already_canceled      canceled          -               -
canceled            pending      *           pending               canceled          -               -
canceled            not_handled  *           ignored               canceled          -               -

# the completed family never goes back, whatever the order
completed           succeeded    *           already_completed     completed         -               -
completed           failed       *           late_failure_ignored  completed         -               -
completed           canceled     *           late_cancel_ignored   completed         -               -
completed           pending      *           already_completed     completed         -               -
completed           not_handled  *           ignored               completed         -               -

partially_refunded  succeeded    *           already_completed     partially_refunded  -             -
partially_refunded  failed       *           late_failure_ignored  partially_refunded  -             -
partially_refunded  canceled     *           late_cancel_ignored   partially_refunded  -             -
partially_refunded  pending      *           already_completed     partially_refunded  -             -
partially_refunded  not_handled  *           ignored               partially_refunded  -             -

refunded            succeeded    *           already_completed     refunded          -               -
refunded            failed       *           late_failure_ignored  refunded          -               -
refunded            canceled     *           late_cancel_ignored   refunded          -               -
refunded            pending      *           already_completed     refunded          -               -
refunded            not_handled  *           ignored               refunded          -               -
";

/// What the order is besides the payment under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Its total is the payment's amount; no other payment completed.
    Pending,
    /// Its total is the payment's amount; payment 2 already paid it.
    Paid,
    /// Its total is twice the payment's amount; no other payment completed.
    Split,
    /// Its total is twice the payment's amount; payment 2 paid the other half.
    SplitLast,
}

impl Context {
    const ALL: [Context; 4] = [Self::Pending, Self::Paid, Self::Split, Self::SplitLast];

    fn parse(name: &str) -> Vec<Context> {
        match name {
            "*" => Self::ALL.to_vec(),
            "pending" => vec![Self::Pending],
            "paid" => vec![Self::Paid],
            "split" => vec![Self::Split],
            "split_last" => vec![Self::SplitLast],
            other => panic!("unknown order context {other:?}"),
        }
    }

    /// The order as the store reads it for `before`: a payment that has
    /// completed already counts towards it.
    fn order(self, before: &Payment) -> OrderState {
        let total = match self {
            Self::Pending | Self::Paid => before.amount,
            Self::Split | Self::SplitLast => money(before.amount.minor() * 2, "USD"),
        };
        let mut paid = Vec::new();
        if matches!(self, Self::Paid | Self::SplitLast) {
            paid.push((PaymentId(2), money(15000, "USD")));
        }
        if before.status.has_completed() {
            paid.push((before.id, before.amount));
        }
        order_state(total, &paid)
    }
}

/// One line of [`TABLE`], for one order context.
#[derive(Debug, Clone)]
struct Row {
    from: PaymentStatus,
    kind: EventKind,
    context: Context,
    outcome: Outcome,
    to: PaymentStatus,
    order: Option<OrderUpdate>,
    notifications: Vec<NotificationKind>,
}

fn outcome_named(name: &str) -> Outcome {
    Outcome::ALL
        .into_iter()
        .find(|outcome| outcome.as_str() == name)
        .unwrap_or_else(|| panic!("unknown outcome {name:?}"))
}

/// The table's rows, `*` expanded to every context.
fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for line in TABLE.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (order, notifications) = match words.as_slice() {
            [_, _, _, _, _, "-", notifications] => (None, *notifications),
            [_, _, _, _, _, status, paid, notifications] => {
                let update = OrderUpdate {
                    status: status.parse().expect("order status"),
                    paid_amount: Money::parse(paid, crate::support::currency("USD"))
                        .expect("paid amount"),
                };
                (Some(update), *notifications)
            }
            _ => panic!("malformed row {line:?}"),
        };
        let notifications: Vec<NotificationKind> = match notifications {
            "-" => Vec::new(),
            names => names
                .split(',')
                .map(|name| NotificationKind::parse(name).expect("notification name"))
                .collect(),
        };
        for context in Context::parse(words[2]) {
            rows.push(Row {
                from: words[0].parse().expect("payment status"),
                kind: EventKind::parse(words[1]).expect("event kind"),
                context,
                outcome: outcome_named(words[3]),
                to: words[4].parse().expect("payment status"),
                order,
                notifications: notifications.clone(),
            });
        }
    }
    rows
}

fn kinds(decision: &Decision) -> Vec<NotificationKind> {
    decision.notifications.iter().map(|n| n.kind).collect()
}

fn payload(notification: &Notification) -> Value {
    serde_json::from_str(&notification.payload).expect("notification payload is JSON")
}

/// Checks `decision` for `before` against `row`, with `extra` notifications
/// (a mismatch) after the row's own and `mismatch` recorded on a
/// confirmation.
fn check_row(
    row: &Row,
    before: &Payment,
    order: &OrderState,
    decision: &Decision,
    mismatch: Option<AmountMismatch>,
    case: &str,
) {
    let now = at(60);
    assert_eq!(decision.outcome, row.outcome, "{case}");
    assert_eq!(decision.payment.status, row.to, "{case}");
    assert_eq!(decision.order, row.order, "{case}");
    let mut expected_kinds = row.notifications.clone();
    if mismatch.is_some() {
        expected_kinds.push(NotifyMismatch);
    }
    assert_eq!(kinds(decision), expected_kinds, "{case}");

    // Only the status, the time and a confirmed mismatch move; identity,
    // amount and references never do (these events name no reference).
    let mut expected = before.clone();
    expected.status = row.to;
    if row.to != row.from {
        expected.updated_at = now;
        expected.amount_mismatch = mismatch;
    }
    assert_eq!(decision.payment, expected, "{case}");
    assert_eq!(
        decision.changes_payment(before),
        row.to != row.from,
        "{case}"
    );
    assert_eq!(
        decision.order_becomes_paid(order.status),
        row.notifications.contains(&OrderPaid),
        "{case}"
    );

    for notification in &decision.notifications {
        let body = payload(notification);
        assert_eq!(body["type"], notification.kind.as_str(), "{case}");
        assert_eq!(body["payment_id"], 3, "{case}");
        assert_eq!(body["order_id"], 7, "{case}");
        assert_eq!(body["payment_status"], row.to.as_str(), "{case}");
        assert_eq!(body["occurred_at"], "2023-11-14T22:14:20.000Z", "{case}");
        if notification.kind == OrderOverpaid {
            let update = row.order.expect("an overpaid order is updated");
            let mut ids: Vec<i64> = order.paid_by.iter().map(|id| id.0).collect();
            ids.push(3);
            assert_eq!(body["payment_ids"], json!(ids), "{case}");
            assert_eq!(
                body["paid_amount"],
                update.paid_amount.amount_string(),
                "{case}"
            );
            assert_eq!(body["order_total"], order.total.amount_string(), "{case}");
            assert_eq!(body["order_status"], update.status.as_str(), "{case}");
        }
    }
}

#[test]
fn decide_table() {
    let rows = rows();
    for policy in [AmountPolicy::Warn, AmountPolicy::Reject] {
        for amount in [Some(money(15000, "USD")), None] {
            for row in &rows {
                let before = payment(row.from);
                let order = row.context.order(&before);
                let decision = decide(
                    &before,
                    &order,
                    &RefundLedger::default(),
                    &event(row.kind, amount),
                    policy,
                    at(60),
                );
                let case = format!(
                    "{} x {:?}, order {:?}, {policy:?}, amount {amount:?}",
                    row.from, row.kind, row.context
                );
                check_row(row, &before, &order, &decision, None, &case);
            }
        }
    }
}

#[test]
fn the_table_covers_every_status_kind_and_order_once() {
    let rows = rows();
    for from in PaymentStatus::ALL {
        for kind in KINDS {
            for context in Context::ALL {
                let matching = rows
                    .iter()
                    .filter(|r| r.from == from && r.kind == kind && r.context == context)
                    .count();
                assert_eq!(matching, 1, "rows for {from} x {kind:?}, order {context:?}");
            }
        }
    }
    assert_eq!(
        rows.len(),
        PaymentStatus::ALL.len() * KINDS.len() * Context::ALL.len()
    );
}

/// A success reporting another amount than the payment's: refused under
/// `reject` and confirmed with the mismatch recorded under `warn`, for
/// every row the table confirms; every other row ignores the amount.
#[test]
fn decide_table_with_another_amount() {
    let received = money(14999, "USD");
    for row in rows() {
        let before = payment(row.from);
        let order = row.context.order(&before);
        let mismatched = event(row.kind, Some(received));
        let case = format!("{} x {:?}, order {:?}", row.from, row.kind, row.context);

        let rejected = decide(
            &before,
            &order,
            &RefundLedger::default(),
            &mismatched,
            AmountPolicy::Reject,
            at(60),
        );
        if row.outcome == Outcome::Confirmed {
            assert_eq!(rejected.outcome, Outcome::AmountRejected, "{case}");
            assert_eq!(rejected.payment, before, "{case}");
            assert_eq!(rejected.order, None, "{case}");
            assert!(rejected.notifications.is_empty(), "{case}");
        } else {
            check_row(&row, &before, &order, &rejected, None, &case);
        }

        let warned = decide(
            &before,
            &order,
            &RefundLedger::default(),
            &mismatched,
            AmountPolicy::Warn,
            at(60),
        );
        let mismatch = (row.outcome == Outcome::Confirmed).then_some(AmountMismatch {
            expected: before.amount,
            received,
        });
        check_row(&row, &before, &order, &warned, mismatch, &case);
    }
}

#[test]
fn outcome_and_notification_names_are_stable() {
    let outcomes = [
        (Outcome::Confirmed, "confirmed", true),
        (Outcome::Failed, "failed", true),
        (Outcome::Canceled, "canceled", true),
        (Outcome::Pending, "pending", true),
        (Outcome::AlreadyCompleted, "already_completed", true),
        (Outcome::AlreadyFailed, "already_failed", true),
        (Outcome::AlreadyCanceled, "already_canceled", true),
        (Outcome::LateFailureIgnored, "late_failure_ignored", true),
        (Outcome::LateCancelIgnored, "late_cancel_ignored", true),
        (Outcome::AmountRejected, "amount_rejected", false),
        (Outcome::RefundRecorded, "refund_recorded", true),
        (Outcome::RefundRejected, "refund_rejected", false),
        (Outcome::DisputeRecorded, "dispute_recorded", true),
        (Outcome::DisputeUnchanged, "dispute_unchanged", true),
        (Outcome::AwaitingCompletion, "awaiting_completion", false),
        (Outcome::Ignored, "ignored", true),
    ];
    for (outcome, name, is_final) in outcomes {
        assert_eq!(outcome.as_str(), name);
        assert_eq!(outcome.is_final(), is_final, "{name}");
    }
    assert_eq!(
        outcomes.map(|(outcome, _, _)| outcome),
        Outcome::ALL,
        "Outcome::ALL lists every outcome once"
    );
    let notifications = [
        (OrderPaid, "order.paid"),
        (PaymentFailed, "payment.failed"),
        (NotifyMismatch, "payment.amount_mismatch"),
        (PaymentCanceled, "payment.canceled"),
        (OrderOverpaid, "order.overpaid"),
        (NotificationKind::PaymentRefunded, "payment.refunded"),
        (NotificationKind::OrderRefunded, "order.refunded"),
        (
            NotificationKind::PaymentRefundFailed,
            "payment.refund_failed",
        ),
        (NotificationKind::PaymentDisputed, "payment.disputed"),
        (
            NotificationKind::PaymentDisputeClosed,
            "payment.dispute_closed",
        ),
    ];
    for (kind, name) in notifications {
        assert_eq!(kind.as_str(), name);
        assert_eq!(NotificationKind::parse(name), Some(kind));
    }
    assert_eq!(notifications.map(|(kind, _)| kind), NotificationKind::ALL);
    assert_eq!(NotificationKind::parse("order.Paid"), None);
    for kind in KINDS {
        assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(EventKind::parse("SUCCEEDED"), None);
}

fn unpaid() -> OrderState {
    OrderState::unpaid(money(15000, "USD"))
}

/// The order as payment 2 of 150.00 left it: paid.
fn paid_by_payment_2() -> OrderState {
    order_state(money(15000, "USD"), &[(PaymentId(2), money(15000, "USD"))])
}

#[test]
fn a_different_amount_under_warn_confirms_and_records_the_mismatch() {
    let received = money(14000, "USD");
    let decision = decide(
        &payment(PendingExternal),
        &unpaid(),
        &RefundLedger::default(),
        &event(Succeeded, Some(received)),
        AmountPolicy::Warn,
        at(1),
    );
    assert_eq!(decision.outcome, Outcome::Confirmed);
    assert_eq!(decision.payment.status, Completed);
    assert!(decision.order_becomes_paid(OrderStatus::Pending));
    assert_eq!(
        decision.payment.amount_mismatch,
        Some(AmountMismatch {
            expected: money(15000, "USD"),
            received,
        })
    );
    assert_eq!(kinds(&decision), [OrderPaid, NotifyMismatch]);
    // The payment's own amount counts towards the order, as the shop
    // created it: the mismatch is for the shop to settle.
    assert_eq!(
        decision.order,
        Some(OrderUpdate {
            status: OrderStatus::Paid,
            paid_amount: money(15000, "USD"),
        })
    );

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
fn a_mismatch_for_an_order_already_paid_notifies_the_overpayment_and_the_mismatch() {
    let decision = decide(
        &payment(Failed),
        &paid_by_payment_2(),
        &RefundLedger::default(),
        &event(Succeeded, Some(money(1, "USD"))),
        AmountPolicy::Warn,
        at(1),
    );
    assert_eq!(decision.outcome, Outcome::Confirmed);
    assert!(!decision.order_becomes_paid(OrderStatus::Paid));
    assert_eq!(kinds(&decision), [OrderOverpaid, NotifyMismatch]);
}

#[test]
fn a_different_amount_under_reject_leaves_the_payment_unchanged() {
    for from in [Created, PendingExternal, Failed, Canceled] {
        for order in [unpaid(), paid_by_payment_2()] {
            let before = payment(from);
            let mut refused = event(Succeeded, Some(money(15001, "USD")));
            refused.references.gateway_reference = Some("ch_1".into());
            let decision = decide(
                &before,
                &order,
                &RefundLedger::default(),
                &refused,
                AmountPolicy::Reject,
                at(1),
            );
            assert_eq!(decision.outcome, Outcome::AmountRejected, "{from}");
            assert_eq!(
                decision.payment, before,
                "{from}: not even the reference is learnt"
            );
            assert_eq!(decision.order, None, "{from}");
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
            &unpaid(),
            &RefundLedger::default(),
            &event(Succeeded, Some(received)),
            AmountPolicy::Reject,
            at(1),
        );
        assert_eq!(rejected.outcome, Outcome::AmountRejected, "{received}");

        let warned = decide(
            &payment(PendingExternal),
            &unpaid(),
            &RefundLedger::default(),
            &event(Succeeded, Some(received)),
            AmountPolicy::Warn,
            at(1),
        );
        assert_eq!(warned.outcome, Outcome::Confirmed, "{received}");
        let mismatch = warned.payment.amount_mismatch.expect("mismatch recorded");
        assert_eq!(mismatch.received, received);
        assert_eq!(mismatch.expected, money(15000, "USD"));
        assert_eq!(
            warned.order.map(|o| o.paid_amount),
            Some(money(15000, "USD")),
            "{received}: the order counts in its own currency"
        );
    }
}

#[test]
fn a_payment_in_another_currency_than_its_order_adds_nothing_to_it() {
    // Refused at creation now; only rows older than that rule can be so.
    let mut euros = payment(PendingExternal);
    euros.amount = money(15000, "EUR");
    let decision = decide(
        &euros,
        &unpaid(),
        &RefundLedger::default(),
        &event(Succeeded, None),
        AmountPolicy::Warn,
        at(1),
    );
    assert_eq!(decision.outcome, Outcome::Confirmed);
    assert_eq!(
        decision.order,
        Some(OrderUpdate {
            status: OrderStatus::Pending,
            paid_amount: money(0, "USD"),
        })
    );
    assert!(decision.notifications.is_empty());
}

#[test]
fn split_payments_pay_the_order_when_their_sum_reaches_its_total() {
    let total = money(15000, "USD");
    let mut first = payment(PendingExternal);
    first.amount = money(7500, "USD");
    let mut second = first.clone();
    second.id = PaymentId(4);

    let one = decide(
        &first,
        &OrderState::unpaid(total),
        &RefundLedger::default(),
        &event(Succeeded, None),
        AmountPolicy::Warn,
        at(1),
    );
    assert_eq!(
        one.order,
        Some(OrderUpdate {
            status: OrderStatus::Pending,
            paid_amount: money(7500, "USD"),
        })
    );
    assert!(one.notifications.is_empty(), "{:?}", one.notifications);

    let after_one = order_state(total, &[(first.id, first.amount)]);
    assert_eq!(after_one.status, OrderStatus::Pending);
    let two = decide(
        &second,
        &after_one,
        &RefundLedger::default(),
        &event(Succeeded, None),
        AmountPolicy::Warn,
        at(2),
    );
    assert_eq!(
        two.order,
        Some(OrderUpdate {
            status: OrderStatus::Paid,
            paid_amount: money(15000, "USD"),
        })
    );
    assert_eq!(kinds(&two), [OrderPaid]);
    assert!(two.order_becomes_paid(OrderStatus::Pending));
    let body = payload(&two.notifications[0]);
    assert_eq!(body["payment_id"], 4, "the payment that covered the total");

    // More than the total at once is paid too, not overpaid: nothing had
    // covered it before.
    let mut large = payment(PendingExternal);
    large.amount = money(20000, "USD");
    let over = decide(
        &large,
        &after_one,
        &RefundLedger::default(),
        &event(Succeeded, None),
        AmountPolicy::Warn,
        at(3),
    );
    assert_eq!(
        over.order,
        Some(OrderUpdate {
            status: OrderStatus::Paid,
            paid_amount: money(27500, "USD"),
        })
    );
    assert_eq!(kinds(&over), [OrderPaid]);
}

#[test]
fn order_overpaid_payload_names_every_payment_that_paid_it() {
    let total = money(15000, "USD");
    let earlier = order_state(
        total,
        &[
            (PaymentId(1), money(7500, "USD")),
            (PaymentId(2), money(7500, "USD")),
        ],
    );
    assert_eq!(earlier.status, OrderStatus::Paid);
    let decision = decide(
        &payment(Canceled),
        &earlier,
        &RefundLedger::default(),
        &event(Succeeded, Some(money(15000, "USD"))),
        AmountPolicy::Reject,
        at(0),
    );
    assert_eq!(decision.outcome, Outcome::Confirmed);
    assert_eq!(
        decision.order,
        Some(OrderUpdate {
            status: OrderStatus::Paid,
            paid_amount: money(30000, "USD"),
        })
    );
    let [overpaid] = decision.notifications.as_slice() else {
        panic!("one notification, got {:?}", decision.notifications);
    };
    assert_eq!(
        payload(overpaid),
        json!({
            "type": "order.overpaid",
            "order_id": 7,
            "payment_id": 3,
            "transaction_id": "TXN-1",
            "payment_status": "completed",
            "amount": "150.00",
            "currency": "USD",
            "occurred_at": "2023-11-14T22:13:20.000Z",
            "payment_ids": [1, 2, 3],
            "paid_amount": "300.00",
            "order_total": "150.00",
            "order_status": "paid",
        })
    );
}

#[test]
fn an_event_without_amount_never_mismatches() {
    for policy in [AmountPolicy::Warn, AmountPolicy::Reject] {
        let decision = decide(
            &payment(Created),
            &unpaid(),
            &RefundLedger::default(),
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
fn the_gateway_reference_is_learnt_whatever_the_outcome() {
    for from in PaymentStatus::ALL {
        // Handled kinds only: a type payhook does not act on never reaches
        // the store, and a refused amount is covered above.
        for kind in [Succeeded, EvFailed, EvCanceled, EventKind::Pending] {
            let before = payment(from);
            let order = if from.has_completed() {
                order_state(money(15000, "USD"), &[(before.id, before.amount)])
            } else {
                unpaid()
            };
            let mut with_reference = event(kind, None);
            with_reference.references.gateway_reference = Some("pi_new".into());
            let decision = decide(
                &before,
                &order,
                &RefundLedger::default(),
                &with_reference,
                AmountPolicy::Warn,
                at(1),
            );
            let case = format!("{from} x {kind:?} ({:?})", decision.outcome);
            assert_eq!(
                decision.payment.gateway_reference.as_deref(),
                Some("pi_new"),
                "{case}"
            );
            assert_eq!(
                decision.payment.external_id.as_deref(),
                Some("pi_1"),
                "{case}"
            );
            assert!(decision.changes_payment(&before), "{case}");
            assert_eq!(decision.payment.updated_at, at(1), "{case}");

            // Learning it is the only change a refused event makes.
            let without = decide(
                &before,
                &order,
                &RefundLedger::default(),
                &event(kind, None),
                AmountPolicy::Warn,
                at(1),
            );
            let mut expected = without.payment.clone();
            expected.gateway_reference = Some("pi_new".into());
            expected.updated_at = at(1);
            assert_eq!(decision.payment, expected, "{case}");
            assert_eq!(decision.outcome, without.outcome, "{case}");
            assert_eq!(decision.order, without.order, "{case}");
        }
    }
}

#[test]
fn a_not_handled_event_learns_nothing() {
    let before = payment(PendingExternal);
    let mut ignored = event(NotHandled, None);
    ignored.references.gateway_reference = Some("ch_1".into());
    let decision = decide(
        &before,
        &unpaid(),
        &RefundLedger::default(),
        &ignored,
        AmountPolicy::Warn,
        at(1),
    );
    assert_eq!(decision.outcome, Outcome::Ignored);
    assert_eq!(decision.payment, before);
}

#[test]
fn a_known_gateway_reference_is_kept_and_an_empty_one_is_none() {
    let mut before = payment(PendingExternal);
    before.gateway_reference = Some("ch_old".into());
    for reference in [Some("ch_new".to_owned()), Some(String::new()), None] {
        let mut later = event(Succeeded, None);
        later.references.gateway_reference = reference.clone();
        let decision = decide(
            &before,
            &unpaid(),
            &RefundLedger::default(),
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
    for reference in [Some(String::new()), None] {
        let mut later = event(EvFailed, None);
        later.references.gateway_reference = reference.clone();
        let before = payment(Failed);
        let decision = decide(
            &before,
            &unpaid(),
            &RefundLedger::default(),
            &later,
            AmountPolicy::Warn,
            at(1),
        );
        assert_eq!(decision.outcome, Outcome::AlreadyFailed);
        assert_eq!(decision.payment, before, "{reference:?}");
    }
}

#[test]
fn order_paid_payload_carries_the_payment() {
    let decision = decide(
        &payment(PendingExternal),
        &unpaid(),
        &RefundLedger::default(),
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
            "order_total": "150.00",
            "paid_amount": "150.00",
            "occurred_at": "2023-11-14T22:13:20.000Z",
        })
    );
}

#[test]
fn the_last_part_of_a_split_order_tells_the_paid_sum() {
    // Payment 2 paid 75.00 of the 150.00 order; this one pays 75.00 more.
    let mut before = payment(PendingExternal);
    before.amount = money(7500, "USD");
    let order = order_state(money(15000, "USD"), &[(PaymentId(2), money(7500, "USD"))]);
    let decision = decide(
        &before,
        &order,
        &RefundLedger::default(),
        &event(Succeeded, None),
        AmountPolicy::Warn,
        at(0),
    );
    assert_eq!(kinds(&decision), [OrderPaid]);
    let body = payload(&decision.notifications[0]);
    assert_eq!(body["amount"], "75.00");
    assert_eq!(body["paid_amount"], "150.00");
    assert_eq!(body["order_total"], "150.00");
}

#[test]
fn a_payment_completing_for_a_refunded_order_pays_it_again() {
    let mut order = order_state(money(15000, "USD"), &[(PaymentId(2), money(15000, "USD"))]);
    order.status = OrderStatus::Refunded;
    order.paid_by_refunded = true;
    let decision = decide(
        &payment(PendingExternal),
        &order,
        &RefundLedger::default(),
        &event(Succeeded, None),
        AmountPolicy::Warn,
        at(0),
    );
    assert_eq!(decision.outcome, Outcome::Confirmed);
    assert_eq!(
        decision.order.map(|o| o.status),
        Some(OrderStatus::Paid),
        "not refunded any more, and not overpaid: the first money went back"
    );
    assert_eq!(kinds(&decision), [OrderPaid]);
}

#[test]
fn payment_failed_and_canceled_payloads_carry_the_new_status() {
    for (kind, from, name, status) in [
        (EvFailed, Created, "payment.failed", "failed"),
        (EvCanceled, PendingExternal, "payment.canceled", "canceled"),
        (EvCanceled, Failed, "payment.canceled", "canceled"),
    ] {
        let decision = decide(
            &payment(from),
            &unpaid(),
            &RefundLedger::default(),
            &event(kind, None),
            AmountPolicy::Warn,
            at(0),
        );
        let body = payload(&decision.notifications[0]);
        assert_eq!(
            body,
            json!({
                "type": name,
                "order_id": 7,
                "payment_id": 3,
                "transaction_id": "TXN-1",
                "payment_status": status,
                "amount": "150.00",
                "currency": "USD",
                "occurred_at": "2023-11-14T22:13:20.000Z",
            }),
            "{from} x {kind:?}"
        );
    }
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

        let order = OrderUpdate {
            status: OrderStatus::Paid,
            paid_amount: Money::from_minor(amount.minor() * 2, amount.currency()),
        };
        let body = payload(&Notification::order_overpaid(
            &p,
            &order,
            &[PaymentId(1)],
            &amount,
            at(0),
        ));
        assert_eq!(body["order_total"], text);
        assert_eq!(
            body["paid_amount"],
            order.paid_amount.amount_string(),
            "{code}"
        );
    }
}

#[test]
fn mark_pending_follows_the_state_machine() {
    let now = at(5);
    for from in [Created, PendingExternal, Failed, Canceled] {
        let next = payment(from).mark_pending("pi_2", now).expect("allowed");
        assert_eq!(next.status, PendingExternal, "{from}");
        assert_eq!(next.external_id.as_deref(), Some("pi_2"), "{from}");
        assert_eq!(next.updated_at, now, "{from}");
    }
    for from in [Completed, PartiallyRefunded, Refunded] {
        assert_eq!(
            payment(from).mark_pending("pi_2", now),
            Err(TransitionError::AlreadyCompleted),
            "{from}"
        );
    }
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
