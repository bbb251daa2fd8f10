//! A five-second soak with one-second windows against a payhook server
//! started in this process: the CSV file has the documented header and a
//! row per window, the plot is drawn, the rows add up to the requests
//! answered, and every payment sent passes the checks of a counted run;
//! and with a retention shorter than the soak, the notifications the
//! server pruned are accounted for by its own count.

use std::time::Duration;

use payhook_loadgen::load::{self, LoadConfig};
use payhook_loadgen::soak::{self, SoakSpec};

use payhook_loadgen::soak::SoakOutcome;

use crate::support::{postgres, sqlite, start_server_with, Scratch, STRIPE_SECRET, TOKEN};

fn short_soak(scratch: &Scratch, storage_columns: &[&str]) -> SoakOutcome {
    short_soak_with(scratch, storage_columns, |_| {})
}

fn short_soak_with(
    scratch: &Scratch,
    storage_columns: &[&str],
    adjust: impl FnOnce(&mut payhook_server::Config),
) -> SoakOutcome {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let (csv, svg) = (dir.path().join("soak.csv"), dir.path().join("soak.svg"));
    actix_rt::System::new().block_on(async {
        let (url, server) = start_server_with(&scratch.url, adjust);
        let config = LoadConfig {
            url,
            token: TOKEN.into(),
            stripe_secret: STRIPE_SECRET.into(),
            events: 0,
            duplicates: 0,
            mix: "succeeded=60,checkout=10,refund=10,dispute=10,not_handled=10"
                .parse()
                .expect("a mix"),
            concurrency: 8,
            seed: 7,
            run_id: format!("s{}", std::process::id()),
        };
        let client = load::client(config.concurrency, Duration::from_secs(30));
        load::wait_ready(&client, &config.url, Duration::from_secs(30), || Ok(()))
            .await
            .expect("the server is ready");
        let spec = SoakSpec {
            duration: Duration::from_secs(5),
            rate: 60.0,
            window: Duration::from_secs(1),
            duplicates: 0.2,
            database_url: scratch.url.clone(),
            // The server runs in this process.
            rss_pid: Some(std::process::id()),
            csv: Some(csv.clone()),
            plot: Some(svg.clone()),
            api_check_every: 1,
        };
        let outcome = soak::run(&client, &config, &spec).await.expect("the soak");
        assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
        assert_eq!(outcome.summary.errors, 0);
        assert!(outcome.payments >= 80, "{} payments", outcome.payments);
        assert_eq!(outcome.api.as_planned, outcome.payments);
        assert_eq!(outcome.database.as_planned, outcome.payments);
        // Every answer of the soak is in exactly one window.
        let answered: usize = outcome.sent.tally.statuses.values().sum();
        assert_eq!(outcome.summary.requests, answered + outcome.sent.early);
        let seconds: f64 = outcome.rows.iter().map(|row| row.seconds).sum();
        // The windows cover the soak; a loaded machine (the whole suite runs
        // beside this test) may stretch it, never shorten it.
        assert!((4.0..=60.0).contains(&seconds), "{seconds} s");
        // The pace is a ceiling: a slow machine sends fewer, never more.
        let rate = outcome.summary.requests as f64 / seconds;
        assert!(rate > 0.0 && rate <= 70.0, "{rate} requests/s");
        assert!(outcome.summary.rss_first_mib.is_some());
        assert!(outcome.summary.p99_ms.is_some());
        assert!(outcome.writes.transactions >= outcome.payments / soak::INSERT_BATCH);
        assert!(outcome.writes.max > Duration::ZERO);

        let text = std::fs::read_to_string(&csv).expect("the CSV file");
        let mut lines = text.lines();
        let mut header = vec![
            "minute",
            "seconds",
            "requests",
            "errors",
            "req_per_s",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
            "rss_mib",
        ];
        let storage: Vec<String> = storage_columns.iter().map(|c| format!("{c}_mib")).collect();
        header.extend(storage.iter().map(String::as_str));
        assert_eq!(lines.next(), Some(header.join(",").as_str()));
        let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
        assert_eq!(rows.len(), outcome.rows.len());
        assert!((4..=10).contains(&rows.len()), "{} rows", rows.len());
        let mut requests = 0;
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), header.len(), "{row:?}");
            assert_eq!(row[0], (i + 1).to_string());
            requests += row[2].parse::<usize>().expect("requests");
            assert_eq!(row[3], "0", "no errors");
            let rss: f64 = row[9].parse().expect("RSS");
            assert!(rss > 1.0);
            let sizes: Vec<f64> = row[10..].iter().map(|v| v.parse().expect("size")).collect();
            assert!(sizes[0] > 0.0, "the database has a size: {row:?}");
        }
        assert_eq!(requests, outcome.summary.requests);
        let full = &rows[..rows.len() - 1];
        assert!(
            full.iter().all(|row| !row[6].is_empty()),
            "every full window has a p99"
        );

        let plot = std::fs::read_to_string(&svg).expect("the SVG file");
        assert!(plot.starts_with("<svg"));
        assert!(plot.contains("latency per minute (ms)"));
        server.abort();
        outcome
    })
}

#[test]
fn a_short_soak_writes_its_rows_and_plot_on_sqlite() {
    let outcome = short_soak(&sqlite(), &["db", "wal"]);
    assert_eq!(outcome.database.pruned_outbox, None);
}

#[test]
fn a_soak_longer_than_the_retention_counts_the_pruned_notifications() {
    // A second of retention, pruned every second (shorter than the
    // configuration accepts, which is for people): most notifications of
    // the five seconds are delivered and pruned before the end, and the
    // checks must still pass, with the server's count making up the rows
    // that are gone.
    let outcome = short_soak_with(&sqlite(), &["db", "wal"], |config| {
        config.retention = Some(Duration::from_secs(1));
        config.prune_interval = Duration::from_secs(1);
    });
    // short_soak_with asserted no failure: the rows left plus these are
    // exactly the rows planned, and no payment has a row twice.
    let pruned = outcome.database.pruned_outbox.expect("the server pruned");
    assert!(pruned > 0);
}

#[test]
fn a_short_soak_writes_its_rows_and_plot_on_postgres() {
    if let Some(scratch) = postgres() {
        short_soak(
            &scratch,
            &[
                "webhook_events",
                "webhook_event_bodies",
                "webhook_bodies_pruned",
                "payments",
                "outbox",
                "orders",
                "refunds",
            ],
        );
    }
}
