//! Retention: a background task that, once shortly after start-up and then
//! every [`PRUNE_INTERVAL`], empties the raw bodies of the events whose
//! outcome is final and deletes the delivered notifications, both older than
//! `PAYHOOK_RETENTION_DAYS`; and the same work for `payhook prune`.
//!
//! The event rows stay (their id, references and outcome): a gateway's late
//! retry still hits the unique index and is answered as already processed.
//! The store works [`BATCH`] rows per short transaction, so a webhook waits
//! for one batch at most, never for a run; on PostgreSQL a batch skips the
//! rows another transaction holds, so several processes may prune at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use payhook_domain::ports::StoreError;
use payhook_store_diesel::{DieselStore, PruneQuery, PruneReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::watch;

use crate::config::Config;
use crate::startup::open_store;

/// How often the background pruner runs, unless `PAYHOOK_PRUNE_INTERVAL`
/// says otherwise: at the default retention an hour's worth of rows per
/// run, a few thousand batches at a million events a day.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// How long after start-up the first run waits (or the interval, when that
/// is shorter): out of the way of the migrations and of the first burst
/// of traffic, but soon enough that a server restarted often still prunes.
pub const START_DELAY: Duration = Duration::from_secs(30);

/// Rows per transaction: small enough that a batch holds its locks for a
/// few milliseconds, so pruning barely shows in the webhook p99. On
/// SQLite a batch holds the one writer, and every webhook that commits
/// meanwhile waits for it: in a soak at 3 300 webhooks a second
/// (docs/performance.md), the minutes' p99 while pruning ran was 16.6 to
/// 25.0 ms with batches of 500 and 12.3 to 17.5 ms with batches of 100,
/// against 8.2 to 8.6 ms before pruning began; the rate was the same.
pub const BATCH: u32 = 100;

/// Labels of `payhook_pruned_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PrunedLabel {
    /// `event_bodies` or `outbox_rows`.
    pub what: &'static str,
}

/// `payhook_pruned_total`: what the background pruner removed.
#[derive(Clone, Debug, Default)]
pub struct PrunedCounter(pub(crate) Family<PrunedLabel, Counter>);

impl PrunedCounter {
    /// Counts what one run removed.
    pub fn count(&self, report: &PruneReport) {
        for (what, count) in [
            ("event_bodies", report.event_bodies),
            ("outbox_rows", report.outbox_rows),
        ] {
            self.0.get_or_create(&PrunedLabel { what }).inc_by(count);
        }
    }
}

/// Removes what is older than `older_than` at `now`: event bodies and
/// delivered notifications, [`BATCH`] rows per transaction; with `dry_run`
/// only counts them.
pub async fn prune(
    store: &DieselStore,
    older_than: TimeDelta,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport, StoreError> {
    store
        .prune(PruneQuery {
            before: now - older_than,
            batch: BATCH,
            dry_run,
            now,
        })
        .await
}

/// The background pruner of a serving process.
pub struct Pruner {
    store: Arc<DieselStore>,
    retention: TimeDelta,
    interval: Duration,
    counter: PrunedCounter,
}

impl Pruner {
    /// A pruner over `store` keeping `retention`, running every `interval`.
    pub fn new(
        store: Arc<DieselStore>,
        retention: Duration,
        interval: Duration,
        counter: PrunedCounter,
    ) -> Self {
        Self {
            store,
            // The configuration caps retention at a century, which fits.
            retention: TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX),
            interval,
            counter,
        }
    }

    /// Runs until `stop` turns true (or its sender is dropped). A run in
    /// flight is abandoned between two batches: each batch is its own
    /// transaction, so nothing is left half done.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            retention = %crate::config::format_duration(
                self.retention.to_std().unwrap_or(Duration::MAX)
            ),
            interval_s = self.interval.as_secs(),
            "retention pruner started"
        );
        let mut pause = START_DELAY.min(self.interval);
        while !*stop.borrow() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
            }
            tokio::select! {
                () = self.run_once() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
            pause = self.interval;
        }
        tracing::info!("retention pruner stopped");
    }

    /// One run: prunes what is older than the retention now, logs one line
    /// with the counts and counts them in the metrics. A failure (the
    /// database unreachable) is logged; the next run tries again.
    pub async fn run_once(&self) {
        let started = Instant::now();
        let now = Utc::now();
        match prune(&self.store, self.retention, now, false).await {
            Ok(report) => {
                self.counter.count(&report);
                tracing::info!(
                    event_bodies = report.event_bodies,
                    outbox_rows = report.outbox_rows,
                    batches = report.batches,
                    before = %(now - self.retention).to_rfc3339(),
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "retention pruned"
                );
            }
            Err(error) => {
                tracing::warn!(%error, "retention pruning failed; retrying at the next run");
            }
        }
    }
}

/// `payhook prune`: opens (and migrates) the store, removes what is older
/// than `older_than` (by default the configured retention), or only counts
/// it with `dry_run`, and prints the counts.
pub async fn prune_command(
    config: &Config,
    older_than: Option<Duration>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let older_than = match (older_than, config.retention) {
        (Some(age), _) => age,
        (None, Some(retention)) => retention,
        (None, None) => {
            anyhow::bail!("retention is off: pass --older-than to say what to prune")
        }
    };
    let age = TimeDelta::from_std(older_than).context("--older-than is too long")?;
    let store = open_store(config)?;
    let now = Utc::now();
    let report = prune(&store, age, now, dry_run)
        .await
        .context("pruning failed")?;
    let before = (now - age).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let verb = if dry_run { "would prune" } else { "pruned" };
    println!(
        "{verb} {} event bodies and {} delivered notifications older than {} (before {before}){}",
        report.event_bodies,
        report.outbox_rows,
        crate::config::format_duration(older_than),
        if dry_run {
            "; dry run, nothing changed"
        } else {
            ""
        },
    );
    Ok(())
}

/// Reads a period such as `90d`, `12h`, `30m`, `45s` or `500ms`: a
/// positive whole number and its unit (the configuration's durations,
/// [`crate::config::parse_duration`], without zero). `None` for anything
/// else.
pub fn parse_period(text: &str) -> Option<Duration> {
    crate::config::parse_duration(text)
        .ok()
        .filter(|period| !period.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_take_a_positive_number_and_a_unit() {
        let cases = [
            ("90d", 90 * 86_400_000),
            ("12h", 12 * 3_600_000),
            ("30m", 30 * 60_000),
            (" 45s ", 45_000),
            ("500ms", 500),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_period(text),
                Some(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in [
            "",
            "90",
            "d",
            "0d",
            "0s",
            "-1d",
            "1.5h",
            "1w",
            "10 s",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_period(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_formatted_period_reads_back() {
        for (ms, text) in [
            (90 * 86_400_000, "90d"),
            (3_600_000, "1h"),
            (90 * 60_000, "90m"),
            (30_000, "30s"),
            (1_500, "1500ms"),
        ] {
            let period = Duration::from_millis(ms);
            assert_eq!(crate::config::format_duration(period), text);
            assert_eq!(parse_period(text), Some(period));
        }
    }

    #[test]
    fn the_counter_counts_both_kinds() {
        let counter = PrunedCounter::default();
        counter.count(&PruneReport {
            event_bodies: 3,
            outbox_rows: 2,
            batches: 2,
        });
        counter.count(&PruneReport {
            event_bodies: 1,
            outbox_rows: 0,
            batches: 1,
        });
        let get = |what| counter.0.get_or_create(&PrunedLabel { what }).get();
        assert_eq!(get("event_bodies"), 4);
        assert_eq!(get("outbox_rows"), 2);
    }
}
