//! A small mixed load (`--mix succeeded=80,refund=20`) against a payhook
//! server started in this process on a scratch database, through the
//! load generator's own phases: every payment confirmed once, every refund
//! counted once however often it was reported, and the run's checks pass.
//! Then the database is spoiled on purpose (a second notification, a
//! refund counted twice) and the same checks must catch it.

use std::time::Duration;

use payhook_loadgen::db::Database;
use payhook_loadgen::load::{self, LoadConfig, Prepared, CONFIRMED};
use payhook_loadgen::mix::Kind;
use payhook_loadgen::plan;
use payhook_loadgen::target::LoopbackUrl;
use payhook_server::{Application, Config};

use crate::support::{postgres, sqlite, Scratch};

const TOKEN: &str = "loadgen-test-token";
const STRIPE_SECRET: &str = "whsec_loadgen_test_secret";
const PAYMENTS: usize = 200;

/// A count from the scratch database, by a query written here rather than
/// the load generator's.
fn count(db: &mut Database, sql: &str) -> i64 {
    db.count(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs the mixed load against a server on `scratch` and checks it.
fn mixed_load(scratch: &Scratch) {
    let variables = [
        ("DATABASE_URL", scratch.url.as_str()),
        ("PAYHOOK_ADDR", "127.0.0.1:0"),
        ("PAYHOOK_API_TOKEN", TOKEN),
        ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
    ];
    let config = Config::from_lookup(|name| {
        variables
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .expect("a valid server configuration");
    let mix = "succeeded=80,refund=20".parse().expect("a mix");
    let load_config = |url: LoopbackUrl| LoadConfig {
        url,
        token: TOKEN.into(),
        stripe_secret: STRIPE_SECRET.into(),
        events: PAYMENTS,
        duplicates: plan::event_count(&mix, PAYMENTS),
        mix: mix.clone(),
        concurrency: 16,
        // Fixed, so that the re-deliveries that overtake their payment's
        // success (the early 409s) are the same on every run.
        seed: 20_261_204,
        run_id: format!("t{}", std::process::id()),
    };

    actix_rt::System::new().block_on(async {
        let application = Application::build(&config).expect("the server builds");
        let url = LoopbackUrl::parse(&format!("http://127.0.0.1:{}", application.port()))
            .expect("a loopback URL");
        let server = actix_rt::spawn(application.run_until_stopped());
        let config = load_config(url);
        let client = load::client(config.concurrency, Duration::from_secs(30));
        load::wait_ready(&client, &config.url, Duration::from_secs(30), || Ok(()))
            .await
            .expect("the server is ready");

        let setup = load::prepare(&client, &config).await.expect("setup");
        let prepared = setup.prepared;
        let refunds: Vec<&Prepared> = prepared
            .iter()
            .filter(|p| p.plan.kind == Kind::Refund)
            .collect();
        assert_eq!(refunds.len(), PAYMENTS / 5);
        let full = refunds.iter().filter(|p| p.plan.refunded_in_full()).count();
        assert_eq!(full, 10, "one refund in four in full");

        let sent = load::deliver(&client, &config, &prepared).await;
        let api = load::check_api(&client, &config, &prepared).await;
        let db = load::check_database(&scratch.url, &config, &prepared)
            .await
            .expect("the database check");
        let failures = load::failures(&load::Expected::of(&prepared), &sent, &api, Some(&db));
        assert!(failures.is_empty(), "{failures:#?}");

        // What the checks rest on, counted independently of them.
        assert_eq!(sent.tally.failures(), 0, "{:?}", sent.tally);
        assert_eq!(sent.tally.message_count(CONFIRMED), PAYMENTS);
        assert_eq!(sent.deliveries, 2 * 280 + sent.early);
        assert!(
            sent.early > 0,
            "with as many re-deliveries as events, some refund re-delivery overtakes its \
             payment's success and is answered 409"
        );
        assert_eq!(api.as_planned, PAYMENTS);
        let mut database = Database::connect(&scratch.url).expect("connect");
        // Created concurrently: the ids are the run's, in no order.
        let low = prepared.iter().map(|p| p.payment_id).min().unwrap();
        let high = prepared.iter().map(|p| p.payment_id).max().unwrap();
        let ours = |column: &str| format!("{column} BETWEEN {low} AND {high}");
        let refunded: i64 = refunds.iter().map(|p| p.plan.refunded_minor()).sum();
        for (sql, expected) in [
            (
                format!(
                    "SELECT COUNT(*) AS n FROM payments WHERE status = 'refunded' AND {}",
                    ours("id")
                ),
                10,
            ),
            (
                format!(
                    "SELECT COUNT(*) AS n FROM payments WHERE status = 'partially_refunded' AND {}",
                    ours("id")
                ),
                30,
            ),
            (
                format!(
                    "SELECT CAST(COALESCE(SUM(refunded_minor), 0) AS BIGINT) AS n FROM payments \
                     WHERE {}",
                    ours("id")
                ),
                refunded,
            ),
            (
                format!(
                    "SELECT COUNT(*) AS n FROM refunds WHERE status = 'succeeded' AND {}",
                    ours("payment_id")
                ),
                40,
            ),
            (
                format!(
                    "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'order.paid' AND {}",
                    ours("payment_id")
                ),
                200,
            ),
            (
                format!(
                    "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'payment.refunded' AND {}",
                    ours("payment_id")
                ),
                40,
            ),
            (
                format!(
                    "SELECT COUNT(*) AS n FROM outbox WHERE kind = 'order.refunded' AND {}",
                    ours("payment_id")
                ),
                10,
            ),
            (
                "SELECT COUNT(*) AS n FROM orders WHERE status = 'refunded'".to_owned(),
                10,
            ),
        ] {
            assert_eq!(count(&mut database, &sql), expected, "{sql}");
        }

        // Spoiled on purpose: the checks must see each spoiling.
        let partial = refunds
            .iter()
            .find(|p| !p.plan.refunded_in_full())
            .expect("a partial refund");
        database
            .batch(&format!(
                "INSERT INTO outbox (order_id, payment_id, kind, payload, status, attempts, \
                 created_at, next_attempt_at) \
                 SELECT order_id, payment_id, kind, payload, status, attempts, created_at, \
                 next_attempt_at FROM outbox \
                 WHERE payment_id = {} AND kind = 'payment.refunded'",
                partial.payment_id
            ))
            .expect("a second payment.refunded");
        let doubled = prepared
            .iter()
            .find(|p| p.plan.refund.is_some() && p.payment_id != partial.payment_id)
            .expect("another refund");
        database
            .batch(&format!(
                "UPDATE payments SET refunded_minor = 2 * refunded_minor WHERE id = {}",
                doubled.payment_id
            ))
            .expect("a refund counted twice");
        let spoiled = load::check_database(&scratch.url, &config, &prepared)
            .await
            .expect("the database check");
        let problems: Vec<i64> = spoiled.problems.iter().map(|(id, _)| *id).collect();
        assert_eq!(problems, {
            let mut both = vec![partial.payment_id, doubled.payment_id];
            both.sort_unstable();
            both
        });
        let failures = load::failures(&load::Expected::of(&prepared), &sent, &api, Some(&spoiled));
        assert!(
            failures.iter().any(|f| f.contains("outbox rows")),
            "{failures:#?}"
        );

        server.abort();
    });
}

#[test]
fn a_mixed_load_is_exactly_once_on_sqlite() {
    mixed_load(&sqlite());
}

#[test]
fn a_mixed_load_is_exactly_once_on_postgres() {
    if let Some(scratch) = postgres() {
        mixed_load(&scratch);
    }
}
