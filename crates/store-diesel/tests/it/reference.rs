//! The diesel store against the domain's in-memory reference store: the same
//! pseudo-random script of "mark pending" calls and gateway deliveries
//! (duplicates, unmatched events, mismatched amounts, both policies, two
//! gateways) must give the same answers, payments, orders, outbox and event
//! outcomes on both.

use std::collections::BTreeSet;

use payhook_domain::ports::{Applied, EventToApply, Store, StoreError};
use payhook_domain::testing::InMemoryStore;
use payhook_domain::{
    AmountPolicy, EventKind, GatewayEvent, Money, NewOrder, NewPayment, Order, OrderId, Payment,
    PaymentId, References,
};
use payhook_store_diesel::StoreOptions;

use crate::support::{at, for_each_backend, money, usd, Backend};

/// A small deterministic generator (xorshift64*), so a failing script can be replayed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `bound`.
    fn below(&mut self, bound: usize) -> usize {
        let bound = u64::try_from(bound).expect("small bound");
        usize::try_from(self.next() % bound).expect("fits")
    }

    /// True with `percent` % probability.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

enum Step {
    MarkPending { payment: usize, external_id: String },
    Deliver { event: usize, policy: AmountPolicy },
}

struct Script {
    payments: Vec<(String, &'static str, Money)>,
    events: Vec<GatewayEvent>,
    steps: Vec<Step>,
}

const EXTERNAL_IDS: [&str; 4] = ["pi_a", "pi_b", "pi_c", "pi_d"];
const REFERENCES: [&str; 3] = ["ch_1", "ch_2", "pi_a"];

fn script(seed: u64) -> Script {
    let mut dice = Dice(seed);
    let payments = vec![
        (format!("TXN-REF-{seed}-1"), "stripe", usd(15000)),
        (format!("TXN-REF-{seed}-2"), "stripe", money(1500, "JPY")),
        (format!("TXN-REF-{seed}-3"), "paypal", usd(15000)),
        (format!("TXN-REF-{seed}-4"), "stripe", money(1500, "KWD")),
    ];
    // An event's content is fixed by its id, as at a real gateway.
    let events = (0..16)
        .map(|n| {
            let kind = match dice.below(20) {
                0..=9 => EventKind::Succeeded,
                10..=16 => EventKind::Failed,
                _ => EventKind::NotHandled,
            };
            let transaction_id = match dice.below(10) {
                0..=3 => Some(dice.pick(&payments).0.clone()),
                4 => Some("TXN-UNKNOWN".to_owned()),
                _ => None,
            };
            let external_id = dice.chance(45).then(|| {
                (*dice.pick(&[EXTERNAL_IDS[0], EXTERNAL_IDS[1], EXTERNAL_IDS[2], "pi_zzz"]))
                    .to_owned()
            });
            let gateway_reference = dice
                .chance(30)
                .then(|| (*dice.pick(&REFERENCES)).to_owned());
            let amount = match dice.below(10) {
                0..=2 => None,
                3 => Some(usd(1)),
                _ => Some(dice.pick(&payments).2),
            };
            GatewayEvent {
                gateway: if dice.chance(80) { "stripe" } else { "paypal" }.to_owned(),
                event_id: format!("evt_{n}"),
                event_type: kind.as_str().to_owned(),
                kind,
                references: References {
                    transaction_id,
                    external_id,
                    gateway_reference,
                },
                amount,
                report: None,
            }
        })
        .collect::<Vec<_>>();
    let steps = (0..120)
        .map(|_| {
            if dice.chance(20) {
                Step::MarkPending {
                    payment: dice.below(payments.len()),
                    external_id: (*dice.pick(&EXTERNAL_IDS)).to_owned(),
                }
            } else {
                Step::Deliver {
                    event: dice.below(events.len()),
                    policy: if dice.chance(70) {
                        AmountPolicy::Warn
                    } else {
                        AmountPolicy::Reject
                    },
                }
            }
        })
        .collect();
    Script {
        payments,
        events,
        steps,
    }
}

/// A store's answer in a comparable form (`StoreError` has no `PartialEq`).
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Payment(Payment),
    Applied(Applied),
    Refused(String),
}

fn answer<T>(result: Result<T, StoreError>, wrap: impl FnOnce(T) -> Answer) -> Answer {
    match result {
        Ok(value) => wrap(value),
        Err(error @ (StoreError::Unavailable(_) | StoreError::Backend(_))) => {
            panic!("the store failed: {error:?}")
        }
        Err(refused) => Answer::Refused(format!("{refused:?}")),
    }
}

/// Runs the script on `store`, returning every answer.
async fn run(store: &dyn Store, script: &Script) -> (Vec<Answer>, Vec<Order>, Vec<Payment>) {
    let mut orders = Vec::new();
    let mut payments = Vec::new();
    for (transaction_id, method, amount) in &script.payments {
        let order = store
            .create_order(
                NewOrder {
                    client_id: "c".into(),
                    total: *amount,
                },
                at(0),
            )
            .await
            .expect("create order");
        let payment = store
            .create_payment(
                NewPayment {
                    order_id: order.id,
                    transaction_id: transaction_id.clone(),
                    payment_method: (*method).to_owned(),
                    amount: *amount,
                },
                at(0),
            )
            .await
            .expect("create payment");
        orders.push(order.id);
        payments.push(payment.id);
    }
    let mut answers = Vec::new();
    for (n, step) in script.steps.iter().enumerate() {
        let now = at(i64::try_from(n).expect("few steps") + 1);
        answers.push(match step {
            Step::MarkPending {
                payment,
                external_id,
            } => answer(
                store
                    .mark_pending(
                        payments[*payment],
                        external_id.clone(),
                        AmountPolicy::Warn,
                        now,
                    )
                    .await,
                Answer::Payment,
            ),
            Step::Deliver { event, policy } => answer(
                store
                    .apply_event(EventToApply {
                        event: script.events[*event].clone(),
                        payload: b"{}".to_vec(),
                        policy: *policy,
                        received_at: now,
                        source: payhook_domain::ports::EventSource::Webhook,
                    })
                    .await,
                Answer::Applied,
            ),
        });
    }
    let mut final_orders = Vec::new();
    for id in orders {
        final_orders.push(store.order(id).await.expect("order"));
    }
    let mut final_payments = Vec::new();
    for id in payments {
        final_payments.push(store.payment(id).await.expect("payment"));
    }
    (answers, final_orders, final_payments)
}

/// What the reference store does with the script of `seed`.
struct Expected {
    run: (Vec<Answer>, Vec<Order>, Vec<Payment>),
    outbox: Vec<(String, String)>,
    events: BTreeSet<(String, String, String, Option<i64>)>,
}

async fn expected(seed: u64, script: &Script) -> Expected {
    let reference = InMemoryStore::new();
    let run = run(&reference, script).await;
    // The script must exercise the interesting paths, or it proves little.
    let outcomes: BTreeSet<String> = run
        .0
        .iter()
        .map(|a| match a {
            Answer::Applied(Applied::Decided { outcome, .. }) => outcome.as_str().to_owned(),
            Answer::Applied(Applied::Duplicate { .. }) => "duplicate".into(),
            Answer::Applied(Applied::Unmatched) => "unmatched".into(),
            Answer::Applied(other) => format!("{other:?}"),
            Answer::Payment(_) => "pending".into(),
            Answer::Refused(error) => error.clone(),
        })
        .collect();
    eprintln!("seed {seed}: {outcomes:?}");
    for needed in ["confirmed", "duplicate", "unmatched", "pending"] {
        assert!(
            outcomes.contains(needed),
            "seed {seed} never gives {needed}: {outcomes:?}"
        );
    }
    Expected {
        run,
        outbox: reference
            .outbox()
            .into_iter()
            .map(|n| (n.kind.as_str().to_owned(), n.payload))
            .collect(),
        events: reference
            .events()
            .into_iter()
            .map(|e| {
                (
                    e.event.gateway,
                    e.event.event_id,
                    e.outcome.as_str().to_owned(),
                    e.payment_id.map(|id| id.0),
                )
            })
            .collect(),
    }
}

/// Runs the script of `seed` on each backend, on a fresh database (so that
/// ids line up with the reference store's, which numbers from 1), and
/// compares everything with the reference store's run.
async fn compare_with_reference(seed: u64) {
    let script = &script(seed);
    let expected = &expected(seed, script).await;
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let actual = run(&store, script).await;
            for (n, (want, got)) in expected.run.0.iter().zip(&actual.0).enumerate() {
                assert_eq!(got, want, "{name} seed {seed} step {n}");
            }
            assert_eq!(actual.1, expected.run.1, "{name} seed {seed}: orders");
            assert_eq!(actual.2, expected.run.2, "{name} seed {seed}: payments");
            let outbox: Vec<(String, String)> = store
                .outbox()
                .await
                .expect("outbox")
                .into_iter()
                .map(|row| (row.kind, row.payload))
                .collect();
            assert_eq!(&outbox, &expected.outbox, "{name} seed {seed}: outbox");
            let events: BTreeSet<(String, String, String, Option<i64>)> = store
                .events()
                .await
                .expect("events")
                .into_iter()
                .map(|e| (e.gateway, e.event_id, e.outcome, e.payment_id))
                .collect();
            assert_eq!(&events, &expected.events, "{name} seed {seed}: events");
            assert_eq!(actual.1[0].id, OrderId(1), "{name}");
            assert_eq!(actual.2[0].id, PaymentId(1), "{name}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diesel_store_answers_like_the_reference_store_seed_1() {
    compare_with_reference(0x9E37_79B9_7F4A_7C15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diesel_store_answers_like_the_reference_store_seed_2() {
    compare_with_reference(42).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diesel_store_answers_like_the_reference_store_seed_3() {
    compare_with_reference(7_777_777).await;
}
