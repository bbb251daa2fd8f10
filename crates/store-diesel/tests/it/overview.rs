//! The operator's reads on both backends: a payment found by each id it is
//! known by (and only by an exact one), the overview's counts in and out of
//! their windows, and one order's notifications.

use chrono::TimeDelta;
use payhook_domain::ports::{EventOutcome, OutboxStore, Store};
use payhook_domain::{
    Dispute, DisputeStatus, EventKind, GatewayEvent, OrderId, Outcome, OverviewStore, Report,
    RetryPolicy, WebhookCount,
};

use crate::support::{
    at, by_external_id, created_payment, failed, for_each_backend, fresh_id, pending_payment,
    stripe_event, succeeded, usd, warn,
};
use payhook_store_diesel::StoreOptions;

/// A Stripe event whose references name both the external id and a
/// gateway reference, so the payment records the reference.
fn with_reference(event_id: &str, external_id: &str, reference: &str) -> GatewayEvent {
    let mut event = stripe_event(
        event_id,
        EventKind::Pending,
        by_external_id(external_id),
        None,
    );
    event.references.gateway_reference = Some(reference.into());
    event
}

fn open_dispute(external_id: &str) -> GatewayEvent {
    GatewayEvent {
        gateway: "stripe".into(),
        event_id: fresh_id("evt"),
        event_type: "charge.dispute.created".into(),
        kind: EventKind::Dispute,
        references: by_external_id(external_id),
        amount: None,
        report: Some(Report::Dispute(Dispute {
            dispute_id: fresh_id("dp"),
            status: DisputeStatus::Open,
            amount: usd(15000),
            reason: Some("fraudulent".into()),
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_found_by_each_id_it_is_known_by() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        let store = &backend.store;
        let name = backend.name;
        let payment = pending_payment(store, "stripe", "cs_search_1", usd(15000)).await;
        let other = pending_payment(store, "stripe", "cs_search_2", usd(15000)).await;
        store
            .apply_event(warn(with_reference(
                "evt_ref_1",
                "cs_search_1",
                "pi_search_1",
            )))
            .await
            .expect("apply");
        let ids = |found: Vec<payhook_domain::Payment>| -> Vec<i64> {
            found.into_iter().map(|p| p.id.0).collect()
        };
        for query in [
            payment.id.0.to_string(),
            payment.transaction_id.clone(),
            "cs_search_1".to_owned(),
            "pi_search_1".to_owned(),
        ] {
            let found = store.search_payments(&query, 50).await.expect("search");
            assert_eq!(ids(found), [payment.id.0], "{name}: {query}");
        }
        // Exact matches only: no prefix, no other case, nothing for empty.
        for query in ["cs_search", "CS_SEARCH_1", "pi_search_", ""] {
            let found = store.search_payments(query, 50).await.expect("search");
            assert!(found.is_empty(), "{name}: {query:?} found {found:?}");
        }
        // A number that is one payment's id and another's external id
        // lists both, once each, by ascending id.
        let numbered = pending_payment(store, "stripe", &payment.id.0.to_string(), usd(100)).await;
        let found = store
            .search_payments(&payment.id.0.to_string(), 50)
            .await
            .expect("search");
        assert_eq!(ids(found), [payment.id.0, numbered.id.0], "{name}");
        let found = store
            .search_payments(&payment.id.0.to_string(), 1)
            .await
            .expect("search");
        assert_eq!(ids(found), [payment.id.0], "{name}: limit");
        assert_ne!(other.id, payment.id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_what_needs_a_person() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        let store = &backend.store;
        let name = backend.name;
        let empty = store.overview(at(0), at(0)).await.expect("overview");
        assert_eq!(empty, payhook_domain::Overview::default(), "{name}");

        // Marked pending at at(2): one confirmed, one failed, one left pending.
        let confirmed = pending_payment(store, "stripe", "pi_ov_1", usd(15000)).await;
        pending_payment(store, "stripe", "pi_ov_2", usd(15000)).await;
        pending_payment(store, "stripe", "pi_ov_3", usd(15000)).await;
        created_payment(store, "stripe", usd(15000)).await;
        let mut early = warn(succeeded("evt_ov_early", by_external_id("pi_ov_1"), None));
        early.received_at = at(50);
        store.apply_event(early).await.expect("apply");
        store
            .apply_event(warn(failed("evt_ov_fail", by_external_id("pi_ov_2"))))
            .await
            .expect("apply");
        store
            .apply_event(warn(succeeded(
                "evt_ov_none",
                by_external_id("pi_nobody"),
                None,
            )))
            .await
            .expect("apply");
        let mut paypal = warn(succeeded("evt_ov_pp", by_external_id("pp_nobody"), None));
        paypal.event.gateway = "paypal".into();
        store.apply_event(paypal).await.expect("apply");
        store
            .apply_event(warn(open_dispute("pi_ov_1")))
            .await
            .expect("apply");

        // Events at at(100), one at at(50): a window from at(60) leaves it out.
        let overview = store.overview(at(60), at(3)).await.expect("overview");
        let count = |gateway: &str, outcome: EventOutcome, count: u64| WebhookCount {
            gateway: gateway.into(),
            outcome,
            count,
        };
        assert_eq!(
            overview.webhooks,
            [
                count("paypal", EventOutcome::Unmatched, 1),
                count("stripe", EventOutcome::Decided(Outcome::DisputeRecorded), 1),
                count("stripe", EventOutcome::Decided(Outcome::Failed), 1),
                count("stripe", EventOutcome::Unmatched, 1),
            ],
            "{name}"
        );
        let wider = store.overview(at(50), at(3)).await.expect("overview");
        assert_eq!(wider.webhooks.len(), 5, "{name}: {:?}", wider.webhooks);
        assert!(
            wider.webhooks.contains(&count(
                "stripe",
                EventOutcome::Decided(Outcome::Confirmed),
                1
            )),
            "{name}: {:?}",
            wider.webhooks
        );
        // Pending since at(2): before at(3), not before at(2).
        assert_eq!(overview.pending_too_long, 1, "{name}");
        assert_eq!(
            store
                .overview(at(60), at(2))
                .await
                .expect("overview")
                .pending_too_long,
            0,
            "{name}"
        );
        assert_eq!(overview.unmatched_events, 2, "{name}");
        assert_eq!(overview.open_disputes, 1, "{name}");
        assert_eq!(overview.dead_notifications, 0, "{name}");

        // The confirmation's notification dies after one attempt.
        let rows = store.notifications(None, 50).await.expect("notifications");
        let paid = rows
            .iter()
            .find(|row| row.payment_id == confirmed.id)
            .expect("a notification of the confirmed payment");
        let once = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        store
            .mark_failed(paid.id, "the shop answered 500", at(200), &once, 0.5)
            .await
            .expect("mark failed");
        let overview = store
            .overview(at(60), at(3) + TimeDelta::seconds(1))
            .await
            .expect("overview");
        assert_eq!(overview.dead_notifications, 1, "{name}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_notifications_are_listed_oldest_first() {
    for_each_backend(StoreOptions::default(), |backend| async move {
        let store = &backend.store;
        let name = backend.name;
        let first = pending_payment(store, "stripe", "pi_on_1", usd(15000)).await;
        let second = pending_payment(store, "stripe", "pi_on_2", usd(15000)).await;
        for (event, external) in [("evt_on_1", "pi_on_1"), ("evt_on_2", "pi_on_2")] {
            store
                .apply_event(warn(succeeded(event, by_external_id(external), None)))
                .await
                .expect("apply");
        }
        store
            .apply_event(warn(open_dispute("pi_on_1")))
            .await
            .expect("apply");
        let listed = store
            .order_notifications(first.order_id, 50)
            .await
            .expect("notifications");
        let kinds: Vec<&str> = listed.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["order.paid", "payment.disputed"], "{name}");
        assert!(
            listed.iter().all(|m| m.order_id == first.order_id),
            "{name}"
        );
        assert!(listed[0].id < listed[1].id, "{name}");
        let limited = store
            .order_notifications(first.order_id, 1)
            .await
            .expect("notifications");
        assert_eq!(limited, listed[..1], "{name}");
        let others = store
            .order_notifications(second.order_id, 50)
            .await
            .expect("notifications");
        assert_eq!(others.len(), 1, "{name}: {others:?}");
        let none = store
            .order_notifications(OrderId(i64::MAX), 50)
            .await
            .expect("notifications");
        assert!(none.is_empty(), "{name}");
    })
    .await;
}
