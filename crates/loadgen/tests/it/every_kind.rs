//! A counted run of every kind of `--mix` (succeeded, checkout, refund,
//! dispute, not handled) against a payhook server started in this
//! process, with as many re-deliveries as events, so that reports overtake
//! their payment's success and dispute reports each other: the run's checks
//! pass, what they rest on is counted again here by queries of its own,
//! and then the database is spoiled on purpose (a notification twice, one
//! missing, an ignored event stored) and the checks must say so.

use std::time::Duration;

use payhook_loadgen::db::{literal, Database};
use payhook_loadgen::load::{self, LoadConfig, Prepared, CONFIRMED, IGNORED};
use payhook_loadgen::mix::Kind;
use payhook_loadgen::plan::{self, EventType};

use crate::support::{postgres, sqlite, start_server, Scratch, STRIPE_SECRET, TOKEN};

const PAYMENTS: usize = 300;
const MIX: &str = "succeeded=40,checkout=15,refund=15,dispute=15,not_handled=15";

fn count(db: &mut Database, sql: &str) -> i64 {
    db.count(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn every_kind(scratch: &Scratch) {
    let mix = MIX.parse().expect("a mix");
    let run_id = format!("k{}", std::process::id());
    actix_rt::System::new().block_on(async {
        let (url, server) = start_server(&scratch.url);
        let config = LoadConfig {
            url,
            token: TOKEN.into(),
            stripe_secret: STRIPE_SECRET.into(),
            events: PAYMENTS,
            duplicates: plan::event_count(&mix, PAYMENTS),
            mix,
            concurrency: 16,
            seed: 20_261_205,
            run_id: run_id.clone(),
        };
        let client = load::client(config.concurrency, Duration::from_secs(30));
        load::wait_ready(&client, &config.url, Duration::from_secs(30), || Ok(()))
            .await
            .expect("the server is ready");
        let prepared = load::prepare(&client, &config).await.expect("setup").prepared;
        let of = |kind: Kind| -> Vec<&Prepared> {
            prepared.iter().filter(|p| p.plan.kind == kind).collect()
        };
        for kind in [Kind::Checkout, Kind::Refund, Kind::Dispute, Kind::NotHandled] {
            assert_eq!(of(kind).len(), 45, "{kind}");
        }
        let sent = load::deliver(&client, &config, &prepared).await;
        let api = load::check_api(&client, &config, &prepared).await;
        let db = load::check_database(&scratch.url, &config, &prepared)
            .await
            .expect("the database check");
        let expected = load::Expected::of(&prepared);
        let failures = load::failures(&expected, &sent, &api, Some(&db));
        assert!(failures.is_empty(), "{failures:#?}");

        // What the checks rest on, counted here.
        assert_eq!(sent.tally.failures(), 0, "{:?}", sent.tally);
        assert_eq!(sent.tally.message_count(CONFIRMED), PAYMENTS);
        assert!(sent.early > 0, "some report overtook its payment's success");
        let customers = &sent.by_type[&EventType::CustomerCreated];
        assert_eq!(customers.statuses.keys().collect::<Vec<_>>(), [&200]);
        let answered: usize = customers.statuses.values().sum();
        assert!(answered >= 45);
        assert_eq!(sent.ignored[&EventType::CustomerCreated], answered);
        assert_eq!(
            customers.message_count("Event type customer.created is not handled"),
            answered
        );
        assert_eq!(IGNORED, "ignored");
        assert_eq!(api.as_planned, PAYMENTS);

        let mut database = Database::connect(&scratch.url).expect("connect");
        let low = prepared.iter().map(|p| p.payment_id).min().unwrap();
        let high = prepared.iter().map(|p| p.payment_id).max().unwrap();
        let ours = format!("BETWEEN {low} AND {high}");
        let lost = of(Kind::Dispute)
            .iter()
            .filter(|p| p.plan.dispute.as_ref().unwrap().lost)
            .count();
        let checkout_ids = of(Kind::Checkout)
            .iter()
            .map(|p| p.payment_id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let prefix = literal(&format!("evt_load_{run_id}_%"));
        for (sql, expected) in [
            (
                format!("SELECT COUNT(*) AS n FROM payments WHERE dispute_status = 'lost' AND id {ours}"),
                lost,
            ),
            (
                format!("SELECT COUNT(*) AS n FROM payments WHERE dispute_status = 'won' AND id {ours}"),
                45 - lost,
            ),
            (
                format!("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'payment.disputed' AND payment_id {ours}"),
                45,
            ),
            (
                format!("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'payment.dispute_closed' AND payment_id {ours}"),
                45,
            ),
            (
                format!("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'order.paid' AND payment_id {ours}"),
                PAYMENTS,
            ),
            (
                format!(
                    "SELECT COUNT(*) AS n FROM payments WHERE id IN ({checkout_ids}) \
                     AND external_id LIKE 'cs_load_%' AND gateway_reference LIKE 'pi_load_%' \
                     AND status = 'completed'"
                ),
                45,
            ),
            (
                format!(
                    "SELECT COUNT(*) AS n FROM webhook_events \
                     WHERE event_type = 'checkout.session.completed' AND outcome = 'confirmed' \
                     AND event_id LIKE {prefix}"
                ),
                45,
            ),
            (
                format!(
                    "SELECT COUNT(*) AS n FROM webhook_events \
                     WHERE event_type = 'customer.created' AND event_id LIKE {prefix}"
                ),
                0,
            ),
        ] {
            let expected = i64::try_from(expected).unwrap();
            assert_eq!(count(&mut database, &sql), expected, "{sql}");
        }

        // Spoiled on purpose: each spoiling must be seen.
        let disputes = of(Kind::Dispute);
        let (twice, missing) = (disputes[0].payment_id, disputes[1].payment_id);
        database
            .batch(&format!(
                "INSERT INTO outbox (order_id, payment_id, kind, payload, status, attempts, \
                 created_at, next_attempt_at) \
                 SELECT order_id, payment_id, kind, payload, status, attempts, created_at, \
                 next_attempt_at FROM outbox \
                 WHERE payment_id = {twice} AND kind = 'payment.disputed'"
            ))
            .expect("a second payment.disputed");
        database
            .batch(&format!(
                "DELETE FROM outbox WHERE payment_id = {missing} \
                 AND kind = 'payment.dispute_closed'"
            ))
            .expect("no payment.dispute_closed");
        let customer = of(Kind::NotHandled)[0];
        database
            .batch(&format!(
                "INSERT INTO webhook_events (gateway, event_id, event_type, kind, outcome, \
                 attempts, received_at, processed_at) \
                 SELECT gateway, {}, 'customer.created', kind, outcome, attempts, \
                 received_at, processed_at FROM webhook_events WHERE event_id = {}",
                literal(&customer.plan.events[0].1),
                literal(&customer.plan.events[1].1)
            ))
            .expect("an ignored event stored");
        let spoiled = load::check_database(&scratch.url, &config, &prepared)
            .await
            .expect("the database check");
        let problems: Vec<i64> = spoiled.problems.iter().map(|(id, _)| *id).collect();
        let mut both = vec![twice, missing];
        both.sort_unstable();
        assert_eq!(problems, both, "{:?}", spoiled.problems);
        let failures = load::failures(&expected, &sent, &api, Some(&spoiled));
        for says in ["outbox rows", "customer.created stored", "recorded once each"] {
            assert!(failures.iter().any(|f| f.contains(says)), "{says}: {failures:#?}");
        }
        server.abort();
    });
}

#[test]
fn every_kind_is_exactly_once_on_sqlite() {
    every_kind(&sqlite());
}

#[test]
fn every_kind_is_exactly_once_on_postgres() {
    if let Some(scratch) = postgres() {
        every_kind(&scratch);
    }
}
