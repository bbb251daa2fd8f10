//! Refunds and disputes through `decide` and the in-memory store: the
//! ledger's rule on a payment (statuses, order, notifications), events
//! that come before the success they refund, and the property that any
//! interleaving and repetition of a set of refund reports ends the same.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use payhook_domain::ports::{Applied, EventToApply, Store};
use payhook_domain::testing::InMemoryStore;
use payhook_domain::{
    AmountPolicy, Dispute, DisputeStatus, EventKind, GatewayEvent, Money, NewOrder, NewPayment,
    NotificationKind, Order, OrderStatus, Outcome, Payment, PaymentStatus, References, Refund,
    RefundReport, RefundStatus, Report,
};
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{at, money};

/// An order of `total` USD cents with one payment of `amount`, pending
/// under `pi_1`.
async fn shop(total: i64, amount: i64) -> (Arc<InMemoryStore>, Order, Payment) {
    let store = Arc::new(InMemoryStore::new());
    let order = store
        .create_order(
            NewOrder {
                client_id: "shop-1".into(),
                total: money(total, "USD"),
            },
            at(0),
        )
        .await
        .expect("order");
    let payment = store
        .create_payment(
            NewPayment {
                order_id: order.id,
                transaction_id: "TXN-1".into(),
                payment_method: "test".into(),
                amount: money(amount, "USD"),
            },
            at(0),
        )
        .await
        .expect("payment");
    let payment = store
        .mark_pending(payment.id, "pi_1".into(), AmountPolicy::Warn, at(0))
        .await
        .expect("pending");
    (store, order, payment)
}

fn event(id: &str, kind: EventKind, report: Option<Report>) -> GatewayEvent {
    GatewayEvent {
        gateway: "test".into(),
        event_id: id.into(),
        event_type: format!("test.{}", kind.as_str()),
        kind,
        references: References {
            external_id: Some("pi_1".into()),
            ..References::default()
        },
        amount: None,
        report,
    }
}

fn refund(id: &str, minor: i64, status: RefundStatus) -> Refund {
    Refund {
        refund_id: id.into(),
        amount: money(minor, "USD"),
        status,
    }
}

fn refund_event(id: &str, refunds: Vec<Refund>, total: Option<i64>, second: i64) -> GatewayEvent {
    event(
        id,
        EventKind::Refund,
        Some(Report::Refund(RefundReport {
            refunds,
            running_total: total.map(|minor| money(minor, "USD")),
            reported_at: at(second),
        })),
    )
}

fn dispute_event(id: &str, dispute: &str, status: DisputeStatus) -> GatewayEvent {
    event(
        id,
        EventKind::Dispute,
        Some(Report::Dispute(Dispute {
            dispute_id: dispute.into(),
            status,
            amount: money(15000, "USD"),
            reason: Some("fraudulent".into()),
        })),
    )
}

async fn apply(store: &InMemoryStore, event: GatewayEvent, at: DateTime<Utc>) -> Applied {
    store
        .apply_event(EventToApply {
            event,
            payload: b"{}".to_vec(),
            policy: AmountPolicy::Warn,
            received_at: at,
            source: payhook_domain::ports::EventSource::Webhook,
        })
        .await
        .expect("apply")
}

fn outcome(applied: &Applied) -> Outcome {
    match applied {
        Applied::Decided { outcome, .. } => *outcome,
        other => panic!("not decided: {other:?}"),
    }
}

fn kinds(store: &InMemoryStore) -> Vec<NotificationKind> {
    store.outbox().iter().map(|n| n.kind).collect()
}

fn last_payload(store: &InMemoryStore, kind: NotificationKind) -> Value {
    let outbox = store.outbox();
    let row = outbox
        .iter()
        .rev()
        .find(|n| n.kind == kind)
        .expect("notification written");
    serde_json::from_str(&row.payload).expect("JSON")
}

#[tokio::test]
async fn a_partial_then_a_final_refund_end_refunded_with_the_order() {
    let (store, order, payment) = shop(15000, 15000).await;
    apply(&store, event("evt_ok", EventKind::Succeeded, None), at(1)).await;

    let partial = refund_event(
        "evt_r1",
        vec![refund("re_1", 5000, RefundStatus::Succeeded)],
        None,
        2,
    );
    assert_eq!(
        outcome(&apply(&store, partial, at(2)).await),
        Outcome::RefundRecorded
    );
    let now = store.payment(payment.id).await.unwrap();
    assert_eq!(now.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(now.refunded_amount, money(5000, "USD"));
    assert_eq!(
        store.order(order.id).await.unwrap().status,
        OrderStatus::Paid
    );
    let refunded = last_payload(&store, NotificationKind::PaymentRefunded);
    assert_eq!(refunded["refund_id"], "re_1");
    assert_eq!(refunded["refund_amount"], "50.00");
    assert_eq!(refunded["refunded_amount"], "50.00");
    assert_eq!(refunded["payment_status"], "partially_refunded");

    let rest = refund_event(
        "evt_r2",
        vec![refund("re_2", 10000, RefundStatus::Succeeded)],
        None,
        3,
    );
    apply(&store, rest, at(3)).await;
    let now = store.payment(payment.id).await.unwrap();
    assert_eq!(now.status, PaymentStatus::Refunded);
    assert_eq!(now.refunded_amount, money(15000, "USD"));
    assert_eq!(
        store.order(order.id).await.unwrap().status,
        OrderStatus::Refunded
    );
    assert_eq!(
        kinds(&store),
        [
            NotificationKind::OrderPaid,
            NotificationKind::PaymentRefunded,
            NotificationKind::PaymentRefunded,
            NotificationKind::OrderRefunded,
        ]
    );
    let refunds = store.refunds(payment.id).await.unwrap();
    assert_eq!(
        refunds,
        [
            refund("re_1", 5000, RefundStatus::Succeeded),
            refund("re_2", 10000, RefundStatus::Succeeded)
        ]
    );
}

#[tokio::test]
async fn a_refund_reported_per_refund_and_as_a_running_total_counts_once() {
    let (store, _, payment) = shop(15000, 15000).await;
    apply(&store, event("evt_ok", EventKind::Succeeded, None), at(1)).await;
    // Stripe: refund.created, then charge.refunded with the total and the
    // same refund in refunds.data.
    let one = refund_event(
        "evt_r1",
        vec![refund("re_1", 4000, RefundStatus::Succeeded)],
        None,
        2,
    );
    let total = refund_event(
        "evt_c1",
        vec![refund("re_1", 4000, RefundStatus::Succeeded)],
        Some(4000),
        2,
    );
    apply(&store, one, at(2)).await;
    apply(&store, total, at(3)).await;
    let now = store.payment(payment.id).await.unwrap();
    assert_eq!(now.refunded_amount, money(4000, "USD"));
    let refunded = kinds(&store)
        .into_iter()
        .filter(|k| *k == NotificationKind::PaymentRefunded)
        .count();
    assert_eq!(refunded, 1, "the second report changed nothing");
}

#[tokio::test]
async fn a_refund_above_the_amount_is_refused_and_changes_nothing() {
    let (store, _, payment) = shop(15000, 15000).await;
    apply(&store, event("evt_ok", EventKind::Succeeded, None), at(1)).await;
    let before = store.payment(payment.id).await.unwrap();
    let outbox = store.outbox().len();
    let too_much = refund_event(
        "evt_r1",
        vec![refund("re_1", 15001, RefundStatus::Succeeded)],
        None,
        2,
    );
    let first = apply(&store, too_much.clone(), at(2)).await;
    assert_eq!(outcome(&first), Outcome::RefundRejected);
    assert_eq!(store.payment(payment.id).await.unwrap(), before);
    assert_eq!(store.outbox().len(), outbox);
    assert!(store.refunds(payment.id).await.unwrap().is_empty());
    // Not final: a re-delivery is evaluated again, and refused again.
    let again = apply(&store, too_much, at(3)).await;
    assert_eq!(outcome(&again), Outcome::RefundRejected);

    let mut euros = refund_event(
        "evt_r2",
        vec![refund("re_2", 100, RefundStatus::Succeeded)],
        None,
        4,
    );
    if let Some(Report::Refund(report)) = &mut euros.report {
        report.refunds[0].amount = Money::from_minor(100, crate::support::currency("EUR"));
    }
    assert_eq!(
        outcome(&apply(&store, euros, at(4)).await),
        Outcome::RefundRejected
    );
    assert_eq!(store.payment(payment.id).await.unwrap(), before);
}

#[tokio::test]
async fn a_refund_before_the_success_waits_and_is_applied_when_it_comes() {
    let (store, order, payment) = shop(15000, 15000).await;
    let early = refund_event(
        "evt_r1",
        vec![refund("re_1", 5000, RefundStatus::Succeeded)],
        Some(5000),
        5,
    );
    let waiting = apply(&store, early.clone(), at(1)).await;
    assert_eq!(outcome(&waiting), Outcome::AwaitingCompletion);
    assert_eq!(
        store.payment(payment.id).await.unwrap().status,
        PaymentStatus::PendingExternal
    );
    assert!(store.outbox().is_empty());
    // A re-delivery before the success tries again and still waits.
    assert_eq!(
        outcome(&apply(&store, early.clone(), at(2)).await),
        Outcome::AwaitingCompletion
    );

    let Applied::Decided {
        outcome: Outcome::Confirmed,
        payment: after,
    } = apply(&store, event("evt_ok", EventKind::Succeeded, None), at(3)).await
    else {
        panic!("the success confirms");
    };
    assert_eq!(after.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(after.refunded_amount, money(5000, "USD"));
    assert_eq!(
        store.order(order.id).await.unwrap().status,
        OrderStatus::Paid
    );
    assert_eq!(
        kinds(&store),
        [
            NotificationKind::OrderPaid,
            NotificationKind::PaymentRefunded
        ]
    );
    // Applied now, so a later re-delivery is a duplicate.
    assert!(matches!(
        apply(&store, early, at(4)).await,
        Applied::Duplicate { .. }
    ));
}

#[tokio::test]
async fn a_refund_that_fails_after_succeeding_stops_counting() {
    let (store, order, payment) = shop(15000, 15000).await;
    apply(&store, event("evt_ok", EventKind::Succeeded, None), at(1)).await;
    let full = refund_event(
        "evt_r1",
        vec![refund("re_1", 15000, RefundStatus::Succeeded)],
        Some(15000),
        2,
    );
    apply(&store, full, at(2)).await;
    assert_eq!(
        store.order(order.id).await.unwrap().status,
        OrderStatus::Refunded
    );
    let failed = refund_event(
        "evt_r2",
        vec![refund("re_1", 15000, RefundStatus::Failed)],
        None,
        9,
    );
    assert_eq!(
        outcome(&apply(&store, failed, at(9)).await),
        Outcome::RefundRecorded
    );
    let now = store.payment(payment.id).await.unwrap();
    assert_eq!(now.status, PaymentStatus::Completed);
    assert_eq!(now.refunded_amount, money(0, "USD"));
    assert_eq!(
        store.order(order.id).await.unwrap().status,
        OrderStatus::Paid
    );
    let failed = last_payload(&store, NotificationKind::PaymentRefundFailed);
    assert_eq!(failed["refund_id"], "re_1");
    assert_eq!(failed["refund_status"], "failed");
    assert_eq!(failed["payment_status"], "completed");
}

#[tokio::test]
async fn a_dispute_opens_is_won_and_a_late_open_does_not_reopen_it() {
    let (store, _, payment) = shop(15000, 15000).await;
    apply(&store, event("evt_ok", EventKind::Succeeded, None), at(1)).await;
    let open = dispute_event("evt_d1", "dp_1", DisputeStatus::Open);
    assert_eq!(
        outcome(&apply(&store, open, at(2)).await),
        Outcome::DisputeRecorded
    );
    let won = dispute_event("evt_d2", "dp_1", DisputeStatus::Won);
    apply(&store, won, at(3)).await;
    let late = dispute_event("evt_d3", "dp_1", DisputeStatus::Open);
    assert_eq!(
        outcome(&apply(&store, late, at(4)).await),
        Outcome::DisputeUnchanged
    );
    let now = store.payment(payment.id).await.unwrap();
    assert_eq!(
        now.status,
        PaymentStatus::Completed,
        "a dispute moves no status"
    );
    let dispute = now.dispute.expect("dispute recorded");
    assert_eq!(dispute.status, DisputeStatus::Won);
    assert_eq!(
        kinds(&store),
        [
            NotificationKind::OrderPaid,
            NotificationKind::PaymentDisputed,
            NotificationKind::PaymentDisputeClosed
        ]
    );
    let closed = last_payload(&store, NotificationKind::PaymentDisputeClosed);
    assert_eq!(closed["dispute"]["dispute_id"], "dp_1");
    assert_eq!(closed["dispute"]["status"], "won");
    assert_eq!(closed["dispute"]["amount"], "150.00");
}

#[tokio::test]
async fn a_dispute_before_the_success_waits_for_it() {
    let (store, _, payment) = shop(15000, 15000).await;
    let open = dispute_event("evt_d1", "dp_1", DisputeStatus::Open);
    assert_eq!(
        outcome(&apply(&store, open, at(1)).await),
        Outcome::AwaitingCompletion
    );
    apply(&store, event("evt_ok", EventKind::Succeeded, None), at(2)).await;
    let now = store.payment(payment.id).await.unwrap();
    assert_eq!(
        now.dispute.map(|d| d.status),
        Some(DisputeStatus::Open),
        "applied with the success"
    );
}

/// One refund's reports, as offsets in distinct seconds: succeeded, and
/// possibly failed later.
fn refund_reports() -> impl Strategy<Value = Vec<(i64, Option<i64>)>> {
    prop::collection::vec((1_i64..=3000, prop::option::of(1_i64..20)), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn through_the_store_any_order_and_repetition_of_refund_reports_ends_the_same(
        lives in refund_reports(),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        repeats in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        success_at in any::<prop::sample::Index>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let (store, _, payment) = shop(15000, 15000).await;
            let mut reports = Vec::new();
            let mut expected = 0;
            for (i, (amount, fails_after)) in lives.iter().enumerate() {
                let id = format!("re_{i}");
                let second = |n: i64| n * 10 + i64::try_from(i).unwrap();
                reports.push(refund_event(
                    &format!("evt_{i}_ok"),
                    vec![refund(&id, *amount, RefundStatus::Succeeded)],
                    None,
                    second(1),
                ));
                match fails_after {
                    Some(after) => reports.push(refund_event(
                        &format!("evt_{i}_failed"),
                        vec![refund(&id, *amount, RefundStatus::Failed)],
                        None,
                        second(1 + after),
                    )),
                    None => expected += amount,
                }
            }
            // Re-deliveries under the same event id, then a shuffle; the
            // success of the payment lands anywhere among them.
            let mut delivery = reports.clone();
            for index in &repeats {
                delivery.push(index.get(&reports).clone());
            }
            for (i, index) in order.iter().enumerate() {
                let len = delivery.len();
                delivery.swap(i % len, index.index(len));
            }
            let success = success_at.index(delivery.len() + 1);
            delivery.insert(success, event("evt_ok", EventKind::Succeeded, None));
            for (i, event) in delivery.into_iter().enumerate() {
                apply(&store, event, at(100 + i64::try_from(i).unwrap())).await;
                let now = store.payment(payment.id).await.unwrap();
                prop_assert!(now.refunded_amount.minor() <= 15000);
            }
            let now = store.payment(payment.id).await.unwrap();
            prop_assert_eq!(now.refunded_amount.minor(), expected);
            let status = match expected {
                0 => PaymentStatus::Completed,
                15000 => PaymentStatus::Refunded,
                _ => PaymentStatus::PartiallyRefunded,
            };
            prop_assert_eq!(now.status, status);
            let paid = kinds(&store)
                .into_iter()
                .filter(|k| *k == NotificationKind::OrderPaid)
                .count();
            prop_assert_eq!(paid, 1);
            Ok(())
        })?;
    }
}
