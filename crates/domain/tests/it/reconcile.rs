//! The reconciler over the in-memory store, with a scripted gateway API:
//! a payment whose webhook never came is completed once; what the gateway
//! says twice is applied once; a webhook after it is a no-op; a gateway
//! that rate limits changes nothing and is asked again later; a dry run
//! writes nothing; claims never hand one payment to two passes.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use payhook_domain::ports::{Applied, EventFilter, EventSource, EventToApply, Store};
use payhook_domain::reconcile::{DueQuery, Mode};
use payhook_domain::testing::{FixedClock, InMemoryStore};
use payhook_domain::{
    AmountPolicy, CheckResult, EventKind, GatewayApi, GatewayApiError, GatewayEvent, GatewayState,
    NewOrder, NewPayment, NotificationKind, Outcome, Payment, PaymentStatus, ReconcileSettings,
    ReconcileStore, Reconciler, References,
};

use crate::support::{at, money};

/// A gateway API that answers from a script, counting calls.
struct Scripted {
    answer: RefCell<Result<GatewayState, GatewayApiError>>,
    calls: RefCell<Vec<String>>,
}

impl Scripted {
    fn new(answer: Result<GatewayState, GatewayApiError>) -> Rc<Self> {
        Rc::new(Self {
            answer: RefCell::new(answer),
            calls: RefCell::new(Vec::new()),
        })
    }

    fn answer(&self, answer: Result<GatewayState, GatewayApiError>) {
        *self.answer.borrow_mut() = answer;
    }

    fn calls(&self) -> usize {
        self.calls.borrow().len()
    }
}

#[async_trait(?Send)]
impl GatewayApi for Scripted {
    fn gateway(&self) -> &str {
        "test"
    }

    async fn state(&self, payment: &Payment) -> Result<GatewayState, GatewayApiError> {
        let object = payment.external_id.clone().unwrap_or_default();
        self.calls.borrow_mut().push(object.clone());
        // The scripted state, as the gateway's object of this payment.
        self.answer.borrow().clone().map(|state| GatewayState {
            object_id: object,
            ..state
        })
    }
}

fn intent(state: &str, kind: Option<EventKind>) -> GatewayState {
    GatewayState {
        object_id: "pi_1".into(),
        object_type: "payment_intent".into(),
        state: state.into(),
        kind,
        amount: (kind == Some(EventKind::Succeeded)).then(|| money(15000, "USD")),
        gateway_reference: None,
        body: format!(r#"{{"id":"pi_1","object":"payment_intent","status":"{state}"}}"#)
            .into_bytes(),
    }
}

struct World {
    store: Arc<InMemoryStore>,
    clock: Arc<FixedClock>,
    api: Rc<Scripted>,
    reconciler: Reconciler,
}

/// `count` payments of 150.00 USD, pending under `pi_1`, `pi_2`, ... since
/// `at(0)`; the clock at one hour later, past the 15 minutes.
async fn world(count: usize, answer: Result<GatewayState, GatewayApiError>) -> World {
    let store = Arc::new(InMemoryStore::new());
    for n in 1..=count {
        let order = store
            .create_order(
                NewOrder {
                    client_id: "shop".into(),
                    total: money(15000, "USD"),
                },
                at(0),
            )
            .await
            .expect("order");
        let payment = store
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
        store
            .mark_pending(payment.id, format!("pi_{n}"), AmountPolicy::Warn, at(0))
            .await
            .expect("pending");
    }
    let clock = Arc::new(FixedClock::new(at(3600)));
    let api = Scripted::new(answer);
    let reconciler = Reconciler::new(
        store.clone(),
        store.clone(),
        clock.clone(),
        AmountPolicy::Warn,
        ReconcileSettings::default(),
    )
    .with_api(api.clone());
    World {
        store,
        clock,
        api,
        reconciler,
    }
}

fn order_paid(store: &InMemoryStore) -> usize {
    store
        .outbox()
        .iter()
        .filter(|row| row.kind == NotificationKind::OrderPaid)
        .count()
}

#[tokio::test]
async fn a_payment_whose_webhook_never_came_is_completed_once() {
    let world = world(1, Ok(intent("succeeded", Some(EventKind::Succeeded)))).await;
    let reports = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].result, CheckResult::Applied(Outcome::Confirmed));
    assert!(reports[0].changed());
    assert_eq!(reports[0].status_after, PaymentStatus::Completed);
    assert_eq!(
        reports[0].gateway_state.as_deref(),
        Some("payment_intent succeeded")
    );
    assert_eq!(order_paid(&world.store), 1);

    let events = world
        .store
        .webhook_events(EventFilter {
            source: Some(EventSource::Reconcile),
            ..EventFilter::default()
        })
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.event_id, "reconcile:pi_1:succeeded");

    // The next pass has nothing due: the payment is no longer pending.
    world.clock.set(at(3600 + 600));
    let again = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    assert!(again.is_empty(), "{again:?}");
    // A manual check of the same state finds it already known.
    let manual = world
        .reconciler
        .check(reports[0].payment_id, Mode::Apply)
        .await
        .expect("check");
    assert_eq!(manual.result, CheckResult::AlreadyKnown);
    assert_eq!(order_paid(&world.store), 1);

    // The webhook arriving afterwards is answered "already completed".
    let webhook = GatewayEvent {
        gateway: "test".into(),
        event_id: "evt_late".into(),
        event_type: "payment_intent.succeeded".into(),
        kind: EventKind::Succeeded,
        references: References {
            external_id: Some("pi_1".into()),
            ..References::default()
        },
        amount: Some(money(15000, "USD")),
        report: None,
    };
    let applied = world
        .store
        .apply_event(EventToApply {
            event: webhook,
            payload: b"{}".to_vec(),
            policy: AmountPolicy::Warn,
            received_at: at(3600 + 700),
            source: EventSource::Webhook,
        })
        .await
        .expect("apply");
    assert!(
        matches!(
            applied,
            Applied::Decided {
                outcome: Outcome::AlreadyCompleted,
                ..
            }
        ),
        "{applied:?}"
    );
    assert_eq!(order_paid(&world.store), 1);
    let last = world
        .store
        .last_check(reports[0].payment_id)
        .await
        .expect("last")
        .expect("recorded");
    assert_eq!(last.result, "already_known");
}

#[tokio::test]
async fn a_payment_changed_recently_is_not_due() {
    let world = world(1, Ok(intent("succeeded", Some(EventKind::Succeeded)))).await;
    world.clock.set(at(10 * 60));
    let reports = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    assert!(reports.is_empty());
    assert_eq!(world.api.calls(), 0);
    // `--older-than 5m` reaches it.
    let reports = world
        .reconciler
        .pass(Some(Duration::from_secs(300)), Mode::Apply)
        .await
        .expect("pass");
    assert_eq!(reports.len(), 1);
}

#[tokio::test]
async fn a_canceled_intent_cancels_and_waiting_states_change_nothing() {
    let world = world(1, Ok(intent("requires_payment_method", None))).await;
    let reports = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    assert_eq!(reports[0].result, CheckResult::NoChange);
    assert_eq!(reports[0].status_after, PaymentStatus::PendingExternal);
    assert!(world.store.events().is_empty(), "nothing recorded");

    world
        .api
        .answer(Ok(intent("canceled", Some(EventKind::Canceled))));
    world.clock.set(at(3600 + 301));
    let reports = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    assert_eq!(reports[0].result, CheckResult::Applied(Outcome::Canceled));
    assert_eq!(reports[0].status_after, PaymentStatus::Canceled);
}

#[tokio::test]
async fn a_rate_limiting_gateway_changes_nothing_and_is_asked_again_later() {
    let world = world(
        3,
        Err(GatewayApiError::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        }),
    )
    .await;
    let reports = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    // Asked once; the two others wait for the next pass.
    assert_eq!(world.api.calls(), 1);
    let results: Vec<&str> = reports.iter().map(|r| r.result.as_str()).collect();
    assert_eq!(results, ["error", "skipped", "skipped"]);
    assert!(reports.iter().all(|r| !r.changed()));
    assert!(world.store.events().is_empty());
    let first = reports[0].payment_id;
    let last = world
        .store
        .last_check(first)
        .await
        .expect("last")
        .expect("recorded");
    assert_eq!(last.failures, 1);

    // Within the Retry-After, the gateway is not asked at all.
    world.clock.set(at(3600 + 30));
    assert!(world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass")
        .is_empty());
    assert_eq!(world.api.calls(), 1);

    // At the next interval the skipped ones are due, the failed one backs
    // off (its first failure waits one interval too); the gateway answers.
    world
        .api
        .answer(Ok(intent("succeeded", Some(EventKind::Succeeded))));
    world.clock.set(at(3600 + 301));
    let reports = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    assert_eq!(reports.len(), 3, "{reports:#?}");
    assert!(reports
        .iter()
        .all(|r| r.status_after == PaymentStatus::Completed));
    assert_eq!(order_paid(&world.store), 3);
}

#[tokio::test]
async fn transient_failures_back_off_longer_each_time() {
    let world = world(1, Err(GatewayApiError::Unavailable { status: Some(503) })).await;
    let mut now = 3600;
    let mut waits = Vec::new();
    for _ in 0..3 {
        world.clock.set(at(now));
        let reports = world
            .reconciler
            .pass(None, Mode::Apply)
            .await
            .expect("pass");
        assert_eq!(reports.len(), 1);
        // Find when it is due again, to the second.
        let mut wait = 1;
        loop {
            let due = world
                .store
                .due_payments(
                    &DueQuery {
                        gateways: vec!["test".into()],
                        unchanged_since: at(now + wait),
                        now: at(now + wait),
                        limit: 10,
                    },
                    None,
                )
                .await
                .expect("due");
            if !due.is_empty() {
                break;
            }
            wait += 1;
        }
        waits.push(wait);
        now += wait;
    }
    assert_eq!(waits, [300, 600, 1200]);
}

#[tokio::test]
async fn refused_credentials_are_reported_once_per_pass() {
    let world = world(4, Err(GatewayApiError::Unauthorized { status: 401 })).await;
    let reports = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    let errors = reports
        .iter()
        .filter(|r| r.result.as_str() == "error")
        .count();
    assert_eq!(errors, 1);
    assert_eq!(world.api.calls(), 1);
    assert!(world.store.events().is_empty());
}

#[tokio::test]
async fn a_dry_run_writes_nothing() {
    let world = world(2, Ok(intent("succeeded", Some(EventKind::Succeeded)))).await;
    let reports = world
        .reconciler
        .pass(None, Mode::DryRun)
        .await
        .expect("pass");
    assert_eq!(reports.len(), 2);
    for report in &reports {
        assert_eq!(report.result, CheckResult::WouldApply(Outcome::Confirmed));
        assert_eq!(report.status_after, PaymentStatus::Completed);
        assert!(report.changed());
        let payment = world
            .store
            .payment(report.payment_id)
            .await
            .expect("payment");
        assert_eq!(payment.status, PaymentStatus::PendingExternal);
        assert_eq!(
            world
                .store
                .last_check(report.payment_id)
                .await
                .expect("last"),
            None
        );
    }
    assert!(world.store.events().is_empty());
    assert!(world.store.outbox().is_empty());
    // Nothing was claimed: a real pass right after finds both.
    let reports = world
        .reconciler
        .pass(None, Mode::Apply)
        .await
        .expect("pass");
    assert_eq!(reports.len(), 2);
}

#[tokio::test]
async fn a_claim_hands_each_payment_to_one_caller() {
    let world = world(5, Ok(intent("processing", Some(EventKind::Pending)))).await;
    let query = DueQuery {
        gateways: vec!["test".into()],
        unchanged_since: at(3600),
        now: at(3600),
        limit: 3,
    };
    let hold = Some(Duration::from_secs(300));
    let first = world.store.due_payments(&query, hold).await.expect("claim");
    let second = world.store.due_payments(&query, hold).await.expect("claim");
    let third = world.store.due_payments(&query, hold).await.expect("claim");
    assert_eq!(first.len(), 3);
    assert_eq!(second.len(), 2);
    assert!(third.is_empty());
    let mut ids: Vec<_> = first.iter().chain(&second).map(|p| p.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    // Oldest change first.
    assert_eq!(first[0].transaction_id, "TXN-1");
}
