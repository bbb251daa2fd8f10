//! Orders and payments through the `Store` port: creation, reads, the
//! "mark pending" rule and its uniqueness of external ids per gateway.

use payhook_domain::ports::{Applied, Store, StoreError};
use payhook_domain::{
    AmountPolicy, NewOrder, NewPayment, OrderId, OrderStatus, Outcome, PaymentId, PaymentStatus,
    TransitionError,
};
use payhook_store_diesel::StoreOptions;

use crate::support::{
    at, by_transaction_id, created_payment, failed, for_each_backend, fresh_id,
    fresh_transaction_id, money, order, succeeded, usd, warn, Backend,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_round_trip_with_exact_amounts() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            for total in [
                money(1500, "JPY"),
                money(1500, "KWD"),
                usd(15000),
                usd(9_007_199_254_740_993),
            ] {
                let created = store
                    .create_order(
                        NewOrder {
                            client_id: "client-42".into(),
                            total,
                        },
                        at(5),
                    )
                    .await
                    .expect("create order");
                assert_eq!(created.client_id, "client-42", "{name}");
                assert_eq!(created.total, total, "{name}");
                assert_eq!(
                    created.total.currency().code(),
                    total.currency().code(),
                    "{name}"
                );
                assert_eq!(created.status, OrderStatus::Pending, "{name}");
                assert_eq!(created.created_at, at(5), "{name}");
                assert_eq!(created.updated_at, at(5), "{name}");
                assert_eq!(
                    store.order(created.id).await.expect("read order"),
                    created,
                    "{name}"
                );
            }
            let missing = store.order(OrderId(987_654)).await;
            assert!(
                matches!(missing, Err(StoreError::OrderNotFound(OrderId(987_654)))),
                "{name}: {missing:?}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_round_trip_with_exact_amounts() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            for amount in [money(1500, "JPY"), money(1500, "KWD"), usd(15000), usd(1)] {
                let order = order(&store, amount).await;
                let transaction_id = fresh_transaction_id();
                let created = store
                    .create_payment(
                        NewPayment {
                            order_id: order.id,
                            transaction_id: transaction_id.clone(),
                            payment_method: "stripe".into(),
                            amount,
                        },
                        at(7),
                    )
                    .await
                    .expect("create payment");
                assert_eq!(created.order_id, order.id, "{name}");
                assert_eq!(created.transaction_id, transaction_id, "{name}");
                assert_eq!(created.payment_method, "stripe", "{name}");
                assert_eq!(created.amount, amount, "{name}");
                assert_eq!(
                    created.amount.amount_string(),
                    amount.amount_string(),
                    "{name}"
                );
                assert_eq!(created.status, PaymentStatus::Created, "{name}");
                assert_eq!(created.external_id, None, "{name}");
                assert_eq!(created.gateway_reference, None, "{name}");
                assert_eq!(created.amount_mismatch, None, "{name}");
                assert_eq!(created.created_at, at(7), "{name}");
                assert_eq!(
                    store.payment(created.id).await.expect("read payment"),
                    created,
                    "{name}"
                );
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_orders_and_payments_are_named_errors() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let for_missing_order = store
                .create_payment(
                    NewPayment {
                        order_id: OrderId(424_242),
                        transaction_id: fresh_transaction_id(),
                        payment_method: "stripe".into(),
                        amount: usd(100),
                    },
                    at(0),
                )
                .await;
            assert!(
                matches!(
                    for_missing_order,
                    Err(StoreError::OrderNotFound(OrderId(424_242)))
                ),
                "{name}: {for_missing_order:?}"
            );
            let missing = store.payment(PaymentId(31_337)).await;
            assert!(
                matches!(missing, Err(StoreError::PaymentNotFound(PaymentId(31_337)))),
                "{name}: {missing:?}"
            );
            let pending_missing = store
                .mark_pending(PaymentId(31_337), "pi_x".into(), AmountPolicy::Warn, at(0))
                .await;
            assert!(
                matches!(
                    pending_missing,
                    Err(StoreError::PaymentNotFound(PaymentId(31_337)))
                ),
                "{name}: {pending_missing:?}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_pending_records_the_external_id() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = created_payment(&store, "stripe", usd(15000)).await;
            let external_id = fresh_id("pi");
            let pending = store
                .mark_pending(payment.id, external_id.clone(), AmountPolicy::Warn, at(10))
                .await
                .expect("mark pending");
            assert_eq!(pending.status, PaymentStatus::PendingExternal, "{name}");
            assert_eq!(
                pending.external_id.as_deref(),
                Some(external_id.as_str()),
                "{name}"
            );
            assert_eq!(pending.updated_at, at(10), "{name}");
            assert_eq!(pending.created_at, payment.created_at, "{name}");
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                pending,
                "{name}"
            );

            // The shop restarts its checkout: same id again changes nothing.
            let again = store
                .mark_pending(payment.id, external_id.clone(), AmountPolicy::Warn, at(20))
                .await
                .expect("mark pending again");
            assert_eq!(again, pending, "{name}");
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                pending,
                "{name}"
            );

            // ... or with a new id at the gateway.
            let renewed_id = fresh_id("pi");
            let renewed = store
                .mark_pending(payment.id, renewed_id.clone(), AmountPolicy::Warn, at(30))
                .await
                .expect("mark pending with a new id");
            assert_eq!(
                renewed.external_id.as_deref(),
                Some(renewed_id.as_str()),
                "{name}"
            );
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                renewed,
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_id_is_unique_per_gateway_only() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let external_id = fresh_id("pi");
            let first = created_payment(&store, "stripe", usd(15000)).await;
            let second = created_payment(&store, "stripe", usd(15000)).await;
            let elsewhere = created_payment(&store, "paypal", usd(15000)).await;

            store
                .mark_pending(first.id, external_id.clone(), AmountPolicy::Warn, at(10))
                .await
                .expect("first takes the id");
            let taken = store
                .mark_pending(second.id, external_id.clone(), AmountPolicy::Warn, at(11))
                .await;
            assert!(
                matches!(taken, Err(StoreError::ExternalIdTaken(id)) if id == first.id),
                "{name}: {taken:?}"
            );
            // The refused payment is untouched.
            assert_eq!(
                store.payment(second.id).await.expect("read"),
                second,
                "{name}"
            );

            // Another gateway may use the same id for its own payment.
            let other_gateway = store
                .mark_pending(
                    elsewhere.id,
                    external_id.clone(),
                    AmountPolicy::Warn,
                    at(12),
                )
                .await
                .expect("same id on another gateway");
            assert_eq!(
                other_gateway.external_id.as_deref(),
                Some(external_id.as_str()),
                "{name}"
            );
            assert_eq!(
                other_gateway.status,
                PaymentStatus::PendingExternal,
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_pending_follows_the_state_machine() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            // A failed payment may be sent to the gateway again.
            let retried = created_payment(&store, "stripe", usd(15000)).await;
            let failure = store
                .apply_event(warn(failed(
                    &fresh_id("evt"),
                    by_transaction_id(&retried.transaction_id),
                )))
                .await
                .expect("apply failure");
            assert!(
                matches!(
                    failure,
                    Applied::Decided {
                        outcome: Outcome::Failed,
                        ..
                    }
                ),
                "{name}: {failure:?}"
            );
            let pending_again = store
                .mark_pending(retried.id, fresh_id("pi"), AmountPolicy::Warn, at(200))
                .await
                .expect("failed -> pending");
            assert_eq!(
                pending_again.status,
                PaymentStatus::PendingExternal,
                "{name}"
            );

            // A completed one may not.
            let completed = created_payment(&store, "stripe", usd(15000)).await;
            let success = store
                .apply_event(warn(succeeded(
                    &fresh_id("evt"),
                    by_transaction_id(&completed.transaction_id),
                    Some(usd(15000)),
                )))
                .await
                .expect("apply success");
            let Applied::Decided {
                outcome: Outcome::Confirmed,
                payment: confirmed,
            } = success
            else {
                panic!("{name}: {success:?}");
            };
            let refused = store
                .mark_pending(completed.id, fresh_id("pi"), AmountPolicy::Warn, at(300))
                .await;
            assert!(
                matches!(
                    refused,
                    Err(StoreError::Transition(TransitionError::AlreadyCompleted))
                ),
                "{name}: {refused:?}"
            );
            assert_eq!(
                store.payment(completed.id).await.expect("read"),
                confirmed,
                "{name}"
            );
        },
    )
    .await;
}

/// An instant with nanoseconds, as `Utc::now()` gives on Linux.
fn precise(offset: i64) -> chrono::DateTime<chrono::Utc> {
    at(offset) + chrono::Duration::nanoseconds(123_456_789)
}

// Whatever a write returns must be what a later read gives, to the
// timestamp's last digit: `Applied::Decided` promises the payment "as stored
// now", and callers compare and serialise these values.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_orders_and_payments_are_returned_as_stored() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let order = store
                .create_order(
                    NewOrder {
                        client_id: "c".into(),
                        total: usd(15000),
                    },
                    precise(50),
                )
                .await
                .expect("create order");
            assert_eq!(
                store.order(order.id).await.expect("read order"),
                order,
                "{name}"
            );
            let payment = store
                .create_payment(
                    NewPayment {
                        order_id: order.id,
                        transaction_id: fresh_transaction_id(),
                        payment_method: "stripe".into(),
                        amount: usd(15000),
                    },
                    precise(51),
                )
                .await
                .expect("create payment");
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                payment,
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_pending_returns_the_payment_as_stored() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = created_payment(&store, "stripe", usd(15000)).await;
            let pending = store
                .mark_pending(payment.id, fresh_id("pi"), AmountPolicy::Warn, precise(60))
                .await
                .expect("mark pending");
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                pending,
                "{name}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_event_returns_the_payment_as_stored() {
    for_each_backend(
        StoreOptions::default(),
        |Backend { name, store, .. }| async move {
            let payment = created_payment(&store, "stripe", usd(15000)).await;
            let mut event = warn(succeeded(
                &fresh_id("evt"),
                by_transaction_id(&payment.transaction_id),
                Some(usd(15000)),
            ));
            event.received_at = precise(70);
            let applied = store.apply_event(event.clone()).await.expect("apply");
            let Applied::Decided {
                payment: decided, ..
            } = applied
            else {
                panic!("{name}: {applied:?}");
            };
            // The duplicate answer reads the row; both answers must agree.
            let duplicate = store.apply_event(event).await.expect("apply again");
            assert_eq!(
                duplicate,
                Applied::Duplicate {
                    payment: Some(decided.clone())
                },
                "{name}"
            );
            assert_eq!(
                store.payment(payment.id).await.expect("read"),
                decided,
                "{name}"
            );
        },
    )
    .await;
}
