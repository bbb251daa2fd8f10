//! The domain's reconciler over the in-memory store, asking the stand-in
//! Stripe through `StripeApi`: what Stripe's objects say is applied once,
//! and a Checkout Session teaches the payment its PaymentIntent.

use std::rc::Rc;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use payhook_domain::ports::Store;
use payhook_domain::reconcile::Mode;
use payhook_domain::testing::{FixedClock, InMemoryStore};
use payhook_domain::{
    AmountPolicy, CheckResult, Currency, Money, NewOrder, NewPayment, Outcome, PaymentId,
    PaymentStatus, ReconcileSettings, Reconciler,
};

use crate::support::{api_fixture, Reply, StandIn, INTENT_ID, SESSION_ID};

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
}

/// A Stripe payment of 10.99 USD marked pending under `external_id` at
/// `at(0)`, a reconciler asking `stripe` at one hour later.
async fn pending(
    stripe: &StandIn,
    external_id: &str,
) -> (Arc<InMemoryStore>, Reconciler, PaymentId) {
    let usd = Money::from_minor(1099, Currency::parse("USD").unwrap());
    let store = Arc::new(InMemoryStore::new());
    let order = store
        .create_order(
            NewOrder {
                client_id: "shop".into(),
                total: usd,
            },
            at(0),
        )
        .await
        .unwrap();
    let payment = store
        .create_payment(
            NewPayment {
                order_id: order.id,
                transaction_id: "TXN-8F3A2C91D4".into(),
                payment_method: "stripe".into(),
                amount: usd,
            },
            at(0),
        )
        .await
        .unwrap();
    store
        .mark_pending(
            payment.id,
            external_id.to_owned(),
            AmountPolicy::Warn,
            at(0),
        )
        .await
        .unwrap();
    let reconciler = Reconciler::new(
        store.clone(),
        store.clone(),
        Arc::new(FixedClock::new(at(3600))),
        AmountPolicy::Warn,
        ReconcileSettings::default(),
    )
    .with_api(Rc::new(stripe.client()));
    (store, reconciler, payment.id)
}

#[actix_rt::test]
async fn a_succeeded_intent_completes_the_payment_once() {
    let stripe = StandIn::start();
    stripe.on(
        &format!("/v1/payment_intents/{INTENT_ID}"),
        Reply::ok(api_fixture("payment_intent.succeeded")),
    );
    let (store, reconciler, id) = pending(&stripe, INTENT_ID).await;

    let reports = reconciler.pass(None, Mode::Apply).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].result, CheckResult::Applied(Outcome::Confirmed));
    assert_eq!(
        store.payment(id).await.unwrap().status,
        PaymentStatus::Completed
    );
    let events = store.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event.event_id,
        format!("reconcile:{INTENT_ID}:succeeded")
    );

    let again = reconciler.check(id, Mode::Apply).await.unwrap();
    assert_eq!(again.result, CheckResult::AlreadyKnown);
    assert_eq!(store.events().len(), 1);
}

#[actix_rt::test]
async fn a_paid_session_completes_the_payment_and_records_its_intent() {
    let stripe = StandIn::start();
    stripe.on(
        &format!("/v1/checkout/sessions/{SESSION_ID}"),
        Reply::ok(api_fixture("checkout.session.complete.paid")),
    );
    let (store, reconciler, id) = pending(&stripe, SESSION_ID).await;

    let report = reconciler.check(id, Mode::Apply).await.unwrap();
    assert_eq!(report.result, CheckResult::Applied(Outcome::Confirmed));
    assert_eq!(
        report.gateway_state.as_deref(),
        Some("checkout.session complete.paid")
    );
    let payment = store.payment(id).await.unwrap();
    assert_eq!(payment.status, PaymentStatus::Completed);
    assert_eq!(payment.gateway_reference.as_deref(), Some(INTENT_ID));
}

#[actix_rt::test]
async fn an_expired_session_cancels_and_a_refused_key_changes_nothing() {
    let stripe = StandIn::start();
    stripe.on(
        &format!("/v1/checkout/sessions/{SESSION_ID}"),
        Reply::ok(api_fixture("checkout.session.expired")),
    );
    let (store, reconciler, id) = pending(&stripe, SESSION_ID).await;
    let report = reconciler.check(id, Mode::DryRun).await.unwrap();
    assert!(
        matches!(report.result, CheckResult::WouldApply(_)),
        "{report:?}"
    );
    assert_eq!(report.status_after, PaymentStatus::Canceled);
    assert_eq!(
        store.payment(id).await.unwrap().status,
        PaymentStatus::PendingExternal
    );
    let report = reconciler.check(id, Mode::Apply).await.unwrap();
    assert_eq!(report.status_after, PaymentStatus::Canceled);

    let (store, _, id) = pending(&stripe, SESSION_ID).await;
    let refused = Reconciler::new(
        store.clone(),
        store.clone(),
        Arc::new(FixedClock::new(at(3600))),
        AmountPolicy::Warn,
        ReconcileSettings::default(),
    )
    .with_api(Rc::new(stripe.client_with_key("sk_test_wrong")));
    let report = refused.check(id, Mode::Apply).await.unwrap();
    assert!(matches!(report.result, CheckResult::Error(_)), "{report:?}");
    assert_eq!(
        store.payment(id).await.unwrap().status,
        PaymentStatus::PendingExternal
    );
    assert!(store.events().is_empty());
}
