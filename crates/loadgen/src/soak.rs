//! `--duration`: a soak. The run's stream (the same kinds, bodies,
//! re-deliveries and early-409 handling as a counted run) goes on for a
//! bounded time at a steady rate ([`Pace`]), and every window (a minute)
//! becomes one [`Row`]: requests, errors, req/s, p50, p99, p99.9 and max,
//! the server's RSS, and the size of its storage (the SQLite file and its
//! WAL, or the PostgreSQL tables). The rows go to a CSV file as they are
//! made and, at the end, into an SVG plot; then every payment sent is
//! checked exactly once, as after a counted run.
//!
//! Payments are made in chunks of about a second of load while the chunk
//! before is being sent: written straight into the database as a shop's
//! pending payments (an order and a `pending_external` payment with its
//! external id), a few hundred per transaction, because creating them
//! through the API would cost three requests each and load the server
//! with more than what is measured. So a soak needs the database, and
//! writes into it: only with `--spawn-server`, whose database is the run's.
//! On SQLite, whose one write lock those transactions would take from the
//! server's webhooks all through the soak, every chunk is written before
//! the first minute instead (`write_upfront`).
//!
//! What it deliberately does not do: run longer than [`MAX_DURATION`],
//! talk to anything but the loopback server and its database, or keep
//! per-request figures (a window keeps its latencies until it closes; a
//! chunk keeps only its payments' ids for the final check).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use awc::Client;
use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::sql_types::{BigInt, Text};
use payhook_store_diesel::Target;

use crate::db::{literal, Database, Dialect};
use crate::load::{
    self, decimal, ApiCheck, DatabaseCheck, Expected, LoadConfig, Prepared, Reading, SendOutcome,
};
use crate::mix::{Kind, Mix};
use crate::pace::{Pace, Window};
use crate::plan::{self, OutboxRule, PaymentPlan};
use crate::preload::timestamp_literal;
use crate::proc_stats;
use crate::stats::percentile;
use crate::target::LoopbackUrl;

/// The longest soak accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(6 * 3600);

/// How much load one chunk of payments carries, in seconds at the rate.
pub const CHUNK_SECS: f64 = 1.0;

/// Payments written per transaction when a chunk is made: small, so the
/// SQLite write lock is never held long enough to show in the server's p99.
pub const INSERT_BATCH: usize = 100;

/// Why a `--duration` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a sequence of `<whole number><s|m|h>`.
    #[error("`{0}` is not a duration such as 90s, 60m, 1h or 1h30m")]
    Malformed(String),
    /// Nothing to run.
    #[error("the duration must be longer than 0 s")]
    Zero,
    /// Longer than [`MAX_DURATION`].
    #[error("`{0}` is longer than the 6 h a soak may last")]
    TooLong(String),
}

/// Reads `90s`, `60m`, `1h`, `1h30m`: whole numbers, each followed by
/// `s`, `m` or `h`; from above 0 up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed(text.to_owned());
    let mut seconds: u64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(malformed()),
        };
        let value: u64 = digits.parse().map_err(|_| malformed())?;
        digits.clear();
        seconds = value
            .checked_mul(unit)
            .and_then(|part| seconds.checked_add(part))
            .ok_or_else(|| DurationError::TooLong(text.to_owned()))?;
    }
    if !digits.is_empty() || text.trim().is_empty() {
        return Err(malformed());
    }
    let duration = Duration::from_secs(seconds);
    if duration.is_zero() {
        return Err(DurationError::Zero);
    }
    if duration > MAX_DURATION {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Ok(duration)
}

/// What a soak runs.
#[derive(Clone)]
pub struct SoakSpec {
    /// How long new payments are started; the chunks in flight then finish.
    pub duration: Duration,
    /// Requests per second.
    pub rate: f64,
    /// One row per window: a minute, unless shortened for a test.
    pub window: Duration,
    /// Re-deliveries as a fraction of the distinct events.
    pub duplicates: f64,
    /// The database the server uses, which the soak writes its payments
    /// into and measures.
    pub database_url: String,
    /// The server's process, whose RSS each row records.
    pub rss_pid: Option<u32>,
    /// Where the rows go as CSV, written as they are made.
    pub csv: Option<PathBuf>,
    /// Where the SVG plot goes at the end.
    pub plot: Option<PathBuf>,
    /// Read back through the API one payment in this many (1: all). The
    /// database check reads every payment whatever this is; an hour's
    /// millions of payments read one request each would take longer than
    /// the soak.
    pub api_check_every: usize,
}

impl std::fmt::Debug for SoakSpec {
    // A PostgreSQL URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoakSpec")
            .field("duration", &self.duration)
            .field("rate", &self.rate)
            .field("window", &self.window)
            .field("duplicates", &self.duplicates)
            .field("database_url", &"[redacted]")
            .field("rss_pid", &self.rss_pid)
            .field("csv", &self.csv)
            .field("plot", &self.plot)
            .finish()
    }
}

/// The storage a row records: the SQLite file and its WAL, or the
/// PostgreSQL tables a webhook writes, each with its indexes and TOAST
/// (`pg_total_relation_size`).
pub fn storage_names(database_url: &str) -> anyhow::Result<Vec<String>> {
    Ok(match Target::parse(database_url)? {
        Target::Sqlite(_) => vec!["db".into(), "wal".into()],
        Target::Postgres(_) => POSTGRES_TABLES.iter().map(|t| (*t).to_owned()).collect(),
    })
}

/// The PostgreSQL tables whose sizes a row records: the events' rows and
/// their raw bodies apart, since the bodies are pruned and the rows kept.
pub const POSTGRES_TABLES: [&str; 7] = [
    "webhook_events",
    "webhook_event_bodies",
    "webhook_bodies_pruned",
    "payments",
    "outbox",
    "orders",
    "refunds",
];

/// Reads the storage sizes of one database, in MiB.
enum StorageProbe {
    Sqlite(PathBuf),
    Postgres(Option<Database>),
}

impl StorageProbe {
    fn open(database_url: &str) -> anyhow::Result<Self> {
        Ok(match Target::parse(database_url)? {
            Target::Sqlite(path) => Self::Sqlite(PathBuf::from(path)),
            Target::Postgres(_) => Self::Postgres(Some(Database::connect(database_url)?)),
        })
    }

    /// The sizes, in the order of [`storage_names`].
    async fn sample(&mut self) -> anyhow::Result<Vec<f64>> {
        match self {
            Self::Sqlite(path) => {
                let size = |suffix: &str| {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    // No WAL file yet (or after a truncating checkpoint) is 0.
                    std::fs::metadata(file).map_or(0, |m| m.len())
                };
                Ok(vec![mib(size("")), mib(size("-wal"))])
            }
            Self::Postgres(slot) => {
                let mut db = slot.take().context("the size probe lost its connection")?;
                let (db, sizes) = actix_rt::task::spawn_blocking(move || {
                    let sizes: anyhow::Result<Vec<f64>> = POSTGRES_TABLES
                        .iter()
                        .map(|table| {
                            db.count(&format!("SELECT pg_total_relation_size('{table}') AS n"))
                                .map(|bytes| mib(bytes.unsigned_abs()))
                                .with_context(|| format!("cannot read the size of {table}"))
                        })
                        .collect();
                    (db, sizes)
                })
                .await
                .context("the size probe panicked")?;
                *slot = Some(db);
                sizes
            }
        }
    }
}

/// Bytes as MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One window of a soak.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1 for the first window.
    pub minute: usize,
    /// How long the window lasted (the last one may be shorter).
    pub seconds: f64,
    /// Requests answered (or failed) in it.
    pub requests: usize,
    /// Of those, final answers other than 2xx and transport errors.
    pub errors: usize,
    /// Requests per second over the window.
    pub rate: f64,
    /// Latency percentiles and maximum, in ms; `None` without answers.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Slowest answer.
    pub max_ms: Option<f64>,
    /// The server's resident set at the window's end, in MiB.
    pub rss_mib: Option<f64>,
    /// The storage sizes at the window's end, in MiB, as
    /// [`storage_names`] lists them.
    pub storage_mib: Vec<f64>,
}

impl Row {
    /// The row of `window`, closed at `ended`.
    pub fn of(
        minute: usize,
        mut window: Window,
        ended: Instant,
        rss_mib: Option<f64>,
        storage_mib: Vec<f64>,
    ) -> Self {
        let seconds = ended.duration_since(window.started).as_secs_f64();
        window.latencies.sort_unstable();
        let ms =
            |per_mille| percentile(&window.latencies, per_mille).map(|d| d.as_secs_f64() * 1000.0);
        Self {
            minute,
            seconds,
            requests: window.requests,
            errors: window.errors,
            rate: if seconds > 0.0 {
                window.requests as f64 / seconds
            } else {
                0.0
            },
            p50_ms: ms(500),
            p99_ms: ms(990),
            p999_ms: ms(999),
            max_ms: ms(1000),
            rss_mib,
            storage_mib,
        }
    }

    /// The row as a CSV line (no newline), in [`csv_header`]'s order;
    /// a figure that is absent is an empty field.
    pub fn csv_line(&self) -> String {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
        let mut fields = vec![
            self.minute.to_string(),
            format!("{:.3}", self.seconds),
            self.requests.to_string(),
            self.errors.to_string(),
            format!("{:.1}", self.rate),
            opt(self.p50_ms),
            opt(self.p99_ms),
            opt(self.p999_ms),
            opt(self.max_ms),
            opt(self.rss_mib),
        ];
        fields.extend(self.storage_mib.iter().map(|v| format!("{v:.3}")));
        fields.join(",")
    }

    /// The row as the soak prints it.
    fn line(&self, storage: &[String]) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
        let sizes = storage
            .iter()
            .zip(&self.storage_mib)
            .map(|(name, v)| format!("{name} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "soak: minute {} ({:.1} s): {} requests, {} errors, {:.1} req/s; ms p50 {} p99 {} \
             p99.9 {} max {}; RSS {} MiB; MiB: {sizes}",
            self.minute,
            self.seconds,
            self.requests,
            self.errors,
            self.rate,
            opt(self.p50_ms),
            opt(self.p99_ms),
            opt(self.p999_ms),
            opt(self.max_ms),
            opt(self.rss_mib),
        )
    }
}

/// The CSV header: the fixed columns, then `<name>_mib` for each storage
/// size.
pub fn csv_header(storage: &[String]) -> String {
    let mut columns: Vec<String> = [
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
    ]
    .map(str::to_owned)
    .to_vec();
    columns.extend(storage.iter().map(|name| format!("{name}_mib")));
    columns.join(",")
}

/// What a soak's rows add up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Rows (windows).
    pub windows: usize,
    /// Requests in all.
    pub requests: usize,
    /// Errors in all.
    pub errors: usize,
    /// RSS at the end of the first window, in MiB.
    pub rss_first_mib: Option<f64>,
    /// RSS at the end of the last window.
    pub rss_last_mib: Option<f64>,
    /// The highest RSS at a window's end after the first.
    pub rss_max_after_first_mib: Option<f64>,
    /// Growth from the first window's end to the highest after it, in %.
    pub rss_growth_pct: Option<f64>,
    /// The lowest, median and highest p99 of the full windows (all
    /// windows when none is full), in ms.
    pub p99_ms: Option<(f64, f64, f64)>,
    /// The storage sizes at the end of the first window and of the last.
    pub storage_first_mib: Vec<f64>,
    /// See `storage_first_mib`.
    pub storage_last_mib: Vec<f64>,
}

impl Summary {
    /// Adds up `rows`, whose windows were meant to last `window`.
    pub fn of(rows: &[Row], window: Duration) -> Self {
        let first = rows.first();
        let rss_first_mib = first.and_then(|row| row.rss_mib);
        let rss_max_after_first_mib = rows
            .iter()
            .skip(1)
            .filter_map(|row| row.rss_mib)
            .reduce(f64::max);
        let rss_growth_pct = rss_first_mib
            .zip(rss_max_after_first_mib)
            .filter(|(first, _)| *first > 0.0)
            .map(|(first, max)| (max - first) / first * 100.0);
        // A window cut short at the end has too few answers for a p99.
        let full: Vec<&Row> = rows
            .iter()
            .filter(|row| row.seconds >= 0.9 * window.as_secs_f64())
            .collect();
        let counted: Vec<&Row> = if full.is_empty() {
            rows.iter().collect()
        } else {
            full
        };
        let mut p99s: Vec<f64> = counted.iter().filter_map(|row| row.p99_ms).collect();
        p99s.sort_unstable_by(f64::total_cmp);
        let p99_ms = match (p99s.first(), p99s.last()) {
            (Some(low), Some(high)) => Some((*low, p99s[(p99s.len() - 1) / 2], *high)),
            _ => None,
        };
        Self {
            windows: rows.len(),
            requests: rows.iter().map(|row| row.requests).sum(),
            errors: rows.iter().map(|row| row.errors).sum(),
            rss_first_mib,
            rss_last_mib: rows.last().and_then(|row| row.rss_mib),
            rss_max_after_first_mib,
            rss_growth_pct,
            p99_ms,
            storage_first_mib: first.map(|row| row.storage_mib.clone()).unwrap_or_default(),
            storage_last_mib: rows
                .last()
                .map(|row| row.storage_mib.clone())
                .unwrap_or_default(),
        }
    }
}

/// A plotted line: its legend and its points.
type Series = (String, Vec<(f64, f64)>);

/// Draws `rows` as an SVG at `path`: four panels over the minute, p99
/// (with p50) in ms, req/s, the server's RSS in MiB, and each storage size
/// in MiB.
pub fn plot(path: &Path, rows: &[Row], storage: &[String], title: &str) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let draw_error = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 1280)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| draw_error(&e))?;
    let panels = root.split_evenly((4, 1));
    let minutes = |row: &Row| row.minute as f64;
    let x_end = rows.last().map_or(1.0, minutes).max(1.0);
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let mut storage_series: Vec<Series> = storage
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let points = rows
                .iter()
                .filter_map(|row| row.storage_mib.get(i).map(|v| (minutes(row), *v)))
                .collect();
            (format!("{name} MiB"), points)
        })
        .collect();
    if storage.len() > 1 {
        let total = rows
            .iter()
            .map(|row| (minutes(row), row.storage_mib.iter().sum()))
            .collect();
        storage_series.push(("total MiB".into(), total));
    }
    let series = |pick: &dyn Fn(&Row) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|row| pick(row).map(|v| (minutes(row), v)))
            .collect()
    };
    let p99: &dyn Fn(&Row) -> Option<f64> = &|row| row.p99_ms;
    let p50: &dyn Fn(&Row) -> Option<f64> = &|row| row.p50_ms;
    let rate: &dyn Fn(&Row) -> Option<f64> = &|row| Some(row.rate);
    let rss: &dyn Fn(&Row) -> Option<f64> = &|row| row.rss_mib;
    let charts: [(&str, Vec<Series>); 4] = [
        (
            "latency per minute (ms)",
            vec![("p99".into(), series(p99)), ("p50".into(), series(p50))],
        ),
        ("requests per second", vec![("req/s".into(), series(rate))]),
        ("server RSS (MiB)", vec![("RSS".into(), series(rss))]),
        ("storage (MiB)", storage_series),
    ];
    for (panel, (caption, lines)) in panels.iter().zip(charts) {
        let y_end = lines
            .iter()
            .flat_map(|(_, points)| points.iter().map(|(_, y)| *y))
            .fold(0.0, f64::max)
            .max(1e-3)
            * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_end, 0.0..y_end)
            .map_err(|e| draw_error(&e))?;
        // Only the labelled grid lines: the light ones between them made
        // most of the file (660 lines for four panels).
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_labels(8)
            .y_labels(6)
            .x_desc("minute")
            .draw()
            .map_err(|e| draw_error(&e))?;
        for ((name, points), color) in lines.into_iter().zip(colors.iter().cycle()) {
            let color = *color;
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| draw_error(&e))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw_error(&e))?;
    }
    root.present().map_err(|e| draw_error(&e))?;
    Ok(())
}

/// payhook's transaction id of a soak's payment `index`: the soak writes
/// its payments itself, so it names them.
pub fn transaction_id(run_id: &str, index: usize) -> String {
    format!("TXN-LOAD-{run_id}-{index}")
}

/// An id and a name a soak's insert returns.
#[derive(diesel::QueryableByName)]
struct Returned {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
}

/// How long the soak's own write transactions held the database: on
/// SQLite each holds the one write lock from its `BEGIN IMMEDIATE` to its
/// `COMMIT`, so a long one would show in the server's latency. The time
/// spent waiting for the lock (behind the server's writer) is apart.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriteTimes {
    /// Transactions committed.
    pub transactions: usize,
    /// Their time from holding the lock to the commit, in all.
    pub total: Duration,
    /// The longest of those.
    pub max: Duration,
    /// The longest wait for the lock (for `BEGIN` to return).
    pub max_wait: Duration,
}

impl WriteTimes {
    /// Counts one transaction that waited `wait` for the lock and then
    /// held it for `held`.
    pub fn add(&mut self, wait: Duration, held: Duration) {
        self.transactions += 1;
        self.total += held;
        self.max = self.max.max(held);
        self.max_wait = self.max_wait.max(wait);
    }

    /// Adds `other`'s transactions.
    pub fn merge(&mut self, other: &Self) {
        self.transactions += other.transactions;
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.max_wait = self.max_wait.max(other.max_wait);
    }
}

/// Writes `plans` as pending payments into `db` (see the module
/// documentation), [`INSERT_BATCH`] per transaction, at `now`, and returns
/// them with their ids, and how long the transactions took.
pub fn insert_pending(
    db: &mut Database,
    plans: Vec<PaymentPlan>,
    run_id: &str,
    now: NaiveDateTime,
) -> anyhow::Result<(Vec<Prepared>, WriteTimes)> {
    let mut times = WriteTimes::default();
    let at = timestamp_literal(db.dialect(), now);
    let begin = match db.dialect() {
        // Take the write lock first: a deferred transaction would fail
        // with SQLITE_BUSY, not wait, if the server wrote in between.
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        Dialect::Postgres => "BEGIN",
    };
    let mut prepared = Vec::with_capacity(plans.len());
    let mut plans = plans.into_iter().peekable();
    while plans.peek().is_some() {
        let batch: Vec<PaymentPlan> = plans.by_ref().take(INSERT_BATCH).collect();
        let orders = batch
            .iter()
            .map(|plan| {
                format!(
                    "({}, {}, 'USD', 'pending', 0, {at}, {at})",
                    literal(&format!("load-{run_id}-{}", plan.index)),
                    plan.amount_minor
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let asked = Instant::now();
        db.batch(begin)
            .context("cannot begin a chunk's transaction")?;
        let started = Instant::now();
        let written = (|| -> anyhow::Result<Vec<Prepared>> {
            let order_ids: HashMap<String, i64> = db
                .load::<Returned>(&format!(
                    "INSERT INTO orders (client_id, total_minor, currency, status, paid_minor, \
                     created_at, updated_at) VALUES {orders} \
                     RETURNING CAST(id AS BIGINT) AS id, client_id AS name"
                ))
                .context("cannot write a chunk's orders")?
                .into_iter()
                .map(|row| (row.name, row.id))
                .collect();
            let order_of = |plan: &PaymentPlan| {
                order_ids
                    .get(&format!("load-{run_id}-{}", plan.index))
                    .copied()
                    .context("an order the insert did not return")
            };
            let payments = batch
                .iter()
                .map(|plan| {
                    Ok(format!(
                        "({}, {}, 'stripe', {}, 'USD', 'pending_external', {}, {at}, {at})",
                        order_of(plan)?,
                        literal(&transaction_id(run_id, plan.index)),
                        plan.amount_minor,
                        literal(&plan.external_id)
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(", ");
            let payment_ids: HashMap<String, i64> = db
                .load::<Returned>(&format!(
                    "INSERT INTO payments (order_id, transaction_id, payment_method, amount_minor, \
                     currency, status, external_id, created_at, updated_at) VALUES {payments} \
                     RETURNING CAST(id AS BIGINT) AS id, transaction_id AS name"
                ))
                .context("cannot write a chunk's payments")?
                .into_iter()
                .map(|row| (row.name, row.id))
                .collect();
            batch
                .iter()
                .map(|plan| {
                    let transaction_id = transaction_id(run_id, plan.index);
                    Ok(Prepared {
                        order_id: order_of(plan)?,
                        payment_id: payment_ids
                            .get(&transaction_id)
                            .copied()
                            .context("a payment the insert did not return")?,
                        transaction_id,
                        plan: plan.clone(),
                    })
                })
                .collect()
        })();
        match written {
            Ok(written) => {
                db.batch("COMMIT")
                    .context("cannot commit a chunk's payments")?;
                times.add(started - asked, started.elapsed());
                prepared.extend(written);
            }
            Err(error) => {
                let _ = db.batch("ROLLBACK");
                return Err(error);
            }
        }
    }
    Ok((prepared, times))
}

/// The ids of a chunk's payments, in plan order: two runs of consecutive
/// ids when they are (the usual case), else every pair.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ids {
    Consecutive { order: i64, payment: i64 },
    Listed(Vec<(i64, i64)>),
}

impl Ids {
    fn of(prepared: &[Prepared]) -> Self {
        let pairs: Vec<(i64, i64)> = prepared
            .iter()
            .map(|p| (p.order_id, p.payment_id))
            .collect();
        let consecutive = pairs.first().is_some_and(|(order, payment)| {
            pairs
                .iter()
                .zip(0..)
                .all(|((o, p), i)| *o == order + i && *p == payment + i)
        });
        match pairs.first() {
            Some((order, payment)) if consecutive => Self::Consecutive {
                order: *order,
                payment: *payment,
            },
            _ => Self::Listed(pairs),
        }
    }

    fn get(&self, offset: usize) -> (i64, i64) {
        match self {
            Self::Consecutive { order, payment } => {
                let offset = i64::try_from(offset).expect("a chunk is small");
                (order + offset, payment + offset)
            }
            Self::Listed(pairs) => pairs[offset],
        }
    }
}

/// What a chunk leaves for the final check: enough to make its plans and
/// payments again.
#[derive(Debug, Clone)]
struct Chunk {
    first: usize,
    count: usize,
    seed: u64,
    ids: Ids,
}

impl Chunk {
    /// Its payments, as they were when it was sent.
    fn prepared(&self, mix: &Mix, run_id: &str) -> Vec<Prepared> {
        plan::plans_from(mix, self.first, self.count, run_id, self.seed)
            .into_iter()
            .enumerate()
            .map(|(offset, plan)| {
                let (order_id, payment_id) = self.ids.get(offset);
                Prepared {
                    order_id,
                    payment_id,
                    transaction_id: transaction_id(run_id, plan.index),
                    plan,
                }
            })
            .collect()
    }
}

/// Chunks written before a soak's first minute, what writing them took,
/// and how long that was.
type Upfront = (std::collections::VecDeque<Chunk>, WriteTimes, Duration);

/// Writes, before the first minute, the pending payments of every chunk the
/// soak will send if the server keeps up (its requests adding up to the
/// rate times the duration), as [`run`] would make them one by one. On
/// SQLite a chunk written during the soak holds the one write lock for its
/// transactions (22 a second at 3 300 requests/s), and the webhooks'
/// commits wait behind them: the soak would measure its own writes. A shop creates its payments through the API,
/// one small transaction each, interleaved with the webhooks by the
/// server's writer; the upfront writes leave the soak measuring the
/// webhooks alone. The chunks made this way are the same as made on the
/// fly (same seeds, same indices), so a soak that needs more than these
/// (it cannot when the requests are as counted) makes the rest on the fly.
async fn write_upfront(
    mut db: Database,
    config: &LoadConfig,
    spec: &SoakSpec,
    chunk_payments: usize,
) -> anyhow::Result<(Database, Upfront)> {
    let (mix, run_id, seed) = (config.mix.clone(), config.run_id.clone(), config.seed);
    let (duplicates, requests_wanted) = (spec.duplicates, spec.rate * spec.duration.as_secs_f64());
    actix_rt::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut chunks = std::collections::VecDeque::new();
        let mut times = WriteTimes::default();
        let mut requests = 0.0;
        let mut number = 0;
        while requests < requests_wanted {
            let chunk_seed = chunk_seed(seed, number);
            let first = chunks.len() * chunk_payments;
            let plans = plan::plans_from(&mix, first, chunk_payments, &run_id, chunk_seed);
            let events: usize = plans.iter().map(|plan| plan.events.len()).sum();
            let now = Utc::now().naive_utc().trunc_subsecs(6);
            let (prepared, took) = insert_pending(&mut db, plans, &run_id, now)?;
            times.merge(&took);
            #[allow(
                clippy::cast_precision_loss,
                reason = "a chunk's requests, far below 2^52"
            )]
            let chunk_requests = (events + duplicates_of(duplicates, events)) as f64;
            requests += chunk_requests;
            chunks.push_back(Chunk {
                first,
                count: prepared.len(),
                seed: chunk_seed,
                ids: Ids::of(&prepared),
            });
            number += 1;
        }
        Ok((db, (chunks, times, started.elapsed())))
    })
    .await
    .context("writing the soak's payments panicked")?
}

/// The seed of chunk `number` of a soak seeded `seed`.
fn chunk_seed(seed: u64, number: u64) -> u64 {
    seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What a soak found.
#[derive(Debug, Clone)]
pub struct SoakOutcome {
    /// One per window.
    pub rows: Vec<Row>,
    /// What they add up to.
    pub summary: Summary,
    /// The storage sizes' names, as the rows list them.
    pub storage: Vec<String>,
    /// Payments sent.
    pub payments: usize,
    /// Payments of each kind.
    pub kinds: Vec<(Kind, usize)>,
    /// The answers, added up over the chunks.
    pub sent: SendOutcome,
    /// The API check of the payments read back (see
    /// [`SoakSpec::api_check_every`]).
    pub api: ApiCheck,
    /// How many payments the API check read back.
    pub api_checked: usize,
    /// The database check of every payment, and of the run's events.
    pub database: DatabaseCheck,
    /// The soak's own write transactions (its payments).
    pub writes: WriteTimes,
    /// The failed checks, as [`load::failures`] words them; empty when
    /// the soak passed.
    pub failures: Vec<String>,
}

/// Keeps the rows: printed, written to the CSV file as they come.
struct RowSink {
    storage: Vec<String>,
    csv: Option<File>,
    rows: Vec<Row>,
}

impl RowSink {
    fn push(&mut self, row: Row) -> anyhow::Result<()> {
        println!("{}", row.line(&self.storage));
        if let Some(csv) = &mut self.csv {
            writeln!(csv, "{}", row.csv_line())
                .and_then(|()| csv.flush())
                .context("cannot write the CSV file")?;
        }
        self.rows.push(row);
        Ok(())
    }
}

/// Closes a window every `window` until `done` says the soak's requests
/// are all answered, then closes the last (shorter) one if it has any.
async fn windows(
    pace: Rc<Pace>,
    window: Duration,
    mut probe: StorageProbe,
    rss_pid: Option<u32>,
    mut sink: RowSink,
    done: Rc<std::cell::Cell<bool>>,
) -> anyhow::Result<RowSink> {
    let mut next = Instant::now() + window;
    let mut minute = 1;
    loop {
        while !done.get() && Instant::now() < next {
            let left = next.saturating_duration_since(Instant::now());
            actix_rt::time::sleep(left.min(Duration::from_millis(50))).await;
        }
        let now = Instant::now();
        let closed = pace.close_window(now);
        if done.get() && now < next && closed.requests == 0 {
            return Ok(sink);
        }
        let rss = rss_pid
            .and_then(proc_stats::memory_kib)
            .map(|(rss, _)| rss as f64 / 1024.0);
        let storage = probe.sample().await?;
        sink.push(Row::of(minute, closed, now, rss, storage))?;
        if done.get() {
            return Ok(sink);
        }
        minute += 1;
        next += window;
    }
}

/// Runs the soak `spec` with the stream `config` describes (its mix,
/// concurrency, seed, ids; not its count) against the server, then checks
/// every payment sent. The CSV file is written as the soak goes; the plot
/// at the end.
pub async fn run(
    client: &Client,
    config: &LoadConfig,
    spec: &SoakSpec,
) -> anyhow::Result<SoakOutcome> {
    if !(0.0..=10.0).contains(&spec.duplicates) {
        bail!(
            "--duplicates must be between 0 and 10, got {}",
            spec.duplicates
        );
    }
    let storage = storage_names(&spec.database_url)?;
    let csv = match &spec.csv {
        Some(path) => {
            let mut file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(file, "{}", csv_header(&storage))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(file)
        }
        None => None,
    };
    let sink = RowSink {
        storage: storage.clone(),
        csv,
        rows: Vec::new(),
    };
    let url = spec.database_url.clone();
    let probe = actix_rt::task::spawn_blocking(move || StorageProbe::open(&url))
        .await
        .context("the size probe panicked")??;
    let url = spec.database_url.clone();
    let mut inserter = Some(
        actix_rt::task::spawn_blocking(move || -> anyhow::Result<Database> {
            let mut db = Database::connect(&url)?;
            if db.dialect() == Dialect::Sqlite {
                // The soak's own rows need no fsync of their own: the
                // server's next commit syncs the WAL anyway.
                db.batch("PRAGMA synchronous = NORMAL")?;
            }
            Ok(db)
        })
        .await
        .context("connecting the chunk writer panicked")??,
    );

    let per_payment = plan::event_count(&config.mix, 10_000) as f64 / 10_000.0;
    let chunk_payments = (spec.rate * CHUNK_SECS / (per_payment * (1.0 + spec.duplicates)))
        .ceil()
        .clamp(10.0, 5_000.0);
    // Clamped to 10..=5 000 just above: exact as a usize.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "clamped to 10..=5000"
    )]
    let chunk_payments = chunk_payments as usize;
    println!(
        "soak: {:?} at {:.1} requests/s, windows of {:?}, chunks of {chunk_payments} payments \
         ({}), at most {} requests in flight",
        spec.duration, spec.rate, spec.window, config.mix, config.concurrency
    );

    let mut writes = WriteTimes::default();
    let sqlite = inserter
        .as_ref()
        .is_some_and(|db| db.dialect() == Dialect::Sqlite);
    let mut upfront = if sqlite {
        let db = inserter.take().context("the chunk writer was lost")?;
        let (db, made) = write_upfront(db, config, spec, chunk_payments).await?;
        inserter = Some(db);
        let (chunks, took, elapsed) = made;
        println!(
            "soak: SQLite: wrote the soak's {} pending payments ({} chunks) before its first \
             minute, in {:.1} s",
            chunks.iter().map(|chunk| chunk.count).sum::<usize>(),
            chunks.len(),
            elapsed.as_secs_f64()
        );
        writes.merge(&took);
        chunks
    } else {
        std::collections::VecDeque::new()
    };

    let pace = Rc::new(Pace::new(spec.rate, config.concurrency)?);
    let done = Rc::new(std::cell::Cell::new(false));
    let ticker = actix_rt::spawn(windows(
        pace.clone(),
        spec.window,
        probe,
        spec.rss_pid,
        sink,
        done.clone(),
    ));
    let end = Instant::now() + spec.duration;
    // Chunks are made until the load already planned lasts to the end at
    // the rate, so the soak ends on time when the server keeps up.
    let mut planned_until = Instant::now();
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut running: std::collections::VecDeque<actix_rt::task::JoinHandle<SendOutcome>> =
        std::collections::VecDeque::new();
    let mut sent = SendOutcome::default();
    let mut next_index = 0;
    let mut number = 0;
    let stream = async {
        while planned_until < end {
            let (chunk, prepared) = if let Some(chunk) = upfront.pop_front() {
                let prepared = chunk.prepared(&config.mix, &config.run_id);
                (chunk, prepared)
            } else {
                let seed = chunk_seed(config.seed, number);
                let plans = plan::plans_from(
                    &config.mix,
                    next_index,
                    chunk_payments,
                    &config.run_id,
                    seed,
                );
                let mut db = inserter.take().context("the chunk writer was lost")?;
                let run_id = config.run_id.clone();
                let (db, prepared) = actix_rt::task::spawn_blocking(move || {
                    let now = Utc::now().naive_utc().trunc_subsecs(6);
                    let prepared = insert_pending(&mut db, plans, &run_id, now);
                    (db, prepared)
                })
                .await
                .context("writing a chunk panicked")?;
                inserter = Some(db);
                let (prepared, took) = prepared?;
                writes.merge(&took);
                let chunk = Chunk {
                    first: next_index,
                    count: prepared.len(),
                    seed,
                    ids: Ids::of(&prepared),
                };
                (chunk, prepared)
            };
            // Two chunks are sent at once, so that one's tail and the
            // next one's start overlap; a third waits, made, in reserve.
            while running.len() >= 2 {
                let finished = running.pop_front().expect("two are running");
                sent.merge(finished.await.context("a chunk's delivery panicked")?);
            }
            let seed = chunk.seed;
            chunks.push(chunk);
            let events: usize = prepared.iter().map(|p| p.plan.events.len()).sum();
            let chunk_config = LoadConfig {
                events: prepared.len(),
                duplicates: duplicates_of(spec.duplicates, events),
                seed,
                ..config.clone()
            };
            let requests = events + chunk_config.duplicates;
            planned_until = planned_until.max(Instant::now())
                + Duration::from_secs_f64(requests as f64 / spec.rate);
            let (client, pace) = (client.clone(), pace.clone());
            running.push_back(actix_rt::spawn(async move {
                let mut outcome =
                    load::deliver_paced(&client, &chunk_config, &prepared, Some(pace)).await;
                // Counted by window already; a soak keeps no per-request list.
                outcome.latencies = Vec::new();
                outcome
            }));
            next_index += chunk_payments;
            number += 1;
        }
        while let Some(finished) = running.pop_front() {
            sent.merge(finished.await.context("a chunk's delivery panicked")?);
        }
        anyhow::Ok(())
    };
    let streamed = stream.await;
    done.set(true);
    let sink = ticker.await.context("the window task panicked")??;
    streamed?;
    // The answers' elapsed times add up the chunks' overlapping spans;
    // the soak's own span is the windows'.
    sent.elapsed = Duration::from_secs_f64(sink.rows.iter().map(|row| row.seconds).sum());
    let rows = sink.rows;
    let summary = Summary::of(&rows, spec.window);
    if let Some(path) = &spec.plot {
        let title = format!(
            "payhook soak: {} at {:.0} req/s, {} windows of {} s",
            config.mix,
            spec.rate,
            rows.len(),
            spec.window.as_secs()
        );
        plot(path, &rows, &storage, &title)?;
        println!("soak: plot written to {}", path.display());
    }

    let payments: usize = chunks.iter().map(|chunk| chunk.count).sum();
    let every = spec.api_check_every.max(1);
    if every == 1 {
        println!("soak: checking the {payments} payments sent, through the API ...");
    } else {
        println!(
            "soak: checking one in {every} of the {payments} payments sent through the API \
             (--api-check-every) ..."
        );
    }
    let mut api_checked = 0;
    let mut expected = Expected::default();
    let mut api = ApiCheck::default();
    let mut kinds: Vec<(Kind, usize)> = Kind::ALL.map(|kind| (kind, 0)).to_vec();
    for chunk in &chunks {
        let prepared = chunk.prepared(&config.mix, &config.run_id);
        expected.add(&Expected::of(&prepared));
        for (kind, count) in &mut kinds {
            *count += load::count_of(&prepared, *kind);
        }
        // By position in the chunk, so every kind is sampled.
        let sample: Vec<Prepared> = prepared.into_iter().step_by(every).collect();
        api_checked += sample.len();
        api.merge(load::check_api(client, config, &sample).await);
    }
    println!("soak: ... and in the database");
    let database = check_database(client, config, spec, &chunks, expected.outbox_rows).await?;
    let failures = load::failures(&expected, &sent, &api, Some(&database));
    Ok(SoakOutcome {
        rows,
        summary,
        storage,
        payments,
        kinds,
        sent,
        api,
        api_checked,
        database,
        writes,
        failures,
    })
}

/// Reads every payment of the soak in the database and judges it. When
/// the server's retention deleted delivered notifications during the soak
/// (its `payhook_pruned_total{what="outbox_rows"}` is above 0), each
/// payment's rows are judged by [`OutboxRule::AtMostPlanned`] and the
/// server's count must make up the difference exactly. A pruning run that
/// overlaps the reading (its batches committed, its count not yet added)
/// would look like a lost notification, so a reading whose count does not
/// add up, or changed while reading, is done again, up to three times.
async fn check_database(
    client: &Client,
    config: &LoadConfig,
    spec: &SoakSpec,
    chunks: &[Chunk],
    planned_rows: usize,
) -> anyhow::Result<DatabaseCheck> {
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    loop {
        let before = pruned_outbox_rows(client, &config.url).await?;
        let rule = if before > 0 {
            OutboxRule::AtMostPlanned
        } else {
            OutboxRule::Exact
        };
        let (url, mix, run_id, chunks) = (
            spec.database_url.clone(),
            config.mix.clone(),
            config.run_id.clone(),
            chunks.to_vec(),
        );
        let mut check = actix_rt::task::spawn_blocking(move || {
            read_database(&url, &mix, &run_id, &chunks, rule)
        })
        .await
        .context("the database check panicked")??;
        let after = pruned_outbox_rows(client, &config.url).await?;
        if after > 0 {
            check.pruned_outbox = Some(after);
        }
        let settled = before == after && (after == 0 || check.outbox_rows + after == planned_rows);
        if settled || attempt == ATTEMPTS {
            if after > 0 {
                println!(
                    "soak: the server pruned {after} delivered notifications during the soak; \
                     {} are left of the {planned_rows} planned",
                    check.outbox_rows
                );
            }
            return Ok(check);
        }
        println!(
            "soak: pruning ran while the database was read ({before} then {after} rows \
             pruned); reading again"
        );
        attempt += 1;
        actix_rt::time::sleep(Duration::from_secs(10)).await;
    }
}

/// One reading of [`check_database`], on a blocking thread.
fn read_database(
    url: &str,
    mix: &Mix,
    run_id: &str,
    chunks: &[Chunk],
    rule: OutboxRule,
) -> anyhow::Result<DatabaseCheck> {
    let ledger = mix.share(Kind::Refund) > 0 || mix.share(Kind::Dispute) > 0;
    let mut db = Database::connect(url)?;
    let mut check = DatabaseCheck::default();
    for batch in batches(chunks, CHECKED_AT_ONCE) {
        let mut plans: HashMap<i64, PaymentPlan> = HashMap::new();
        for chunk in batch {
            plans.extend(
                chunk
                    .prepared(mix, run_id)
                    .into_iter()
                    .map(|p| (p.payment_id, p.plan)),
            );
        }
        let reading = Reading {
            range: plans.keys().min().copied().zip(plans.keys().max().copied()),
            ledger,
            events_prefix: None,
        };
        check.merge(load::read_run(&mut db, &reading)?.judge_under(&plans, rule));
    }
    let events = Reading {
        events_prefix: Some(format!("evt_load_{run_id}_")),
        ..Reading::default()
    };
    check.merge(load::read_run(&mut db, &events)?.judge(&HashMap::new()));
    Ok(check)
}

/// Payments whose rows [`read_database`] reads with one set of queries.
/// The outbox has no index on the payment (the server never looks it up
/// so), so each reading scans it whole: read chunk by chunk, the hour of
/// stop 22 (800 chunks, millions of outbox rows) was still being checked
/// half an hour later. A few hundred thousand plans at once stay within a
/// few hundred MiB.
const CHECKED_AT_ONCE: usize = 250_000;

/// `chunks` in consecutive runs of at least `payments` payments (the last
/// one fewer), so that each run is read at once.
fn batches(chunks: &[Chunk], payments: usize) -> Vec<&[Chunk]> {
    let mut batches = Vec::new();
    let (mut start, mut counted) = (0, 0);
    for (index, chunk) in chunks.iter().enumerate() {
        counted += chunk.count;
        if counted >= payments {
            batches.push(&chunks[start..=index]);
            (start, counted) = (index + 1, 0);
        }
    }
    if start < chunks.len() {
        batches.push(&chunks[start..]);
    }
    batches
}

/// The server's `payhook_pruned_total{what="outbox_rows"}`: 0 before its
/// first pruning run.
async fn pruned_outbox_rows(client: &Client, url: &LoopbackUrl) -> anyhow::Result<usize> {
    let mut response = client
        .get(url.join("/metrics"))
        .send()
        .await
        .map_err(|e| anyhow!("/metrics: {e}"))?;
    let body = response
        .body()
        .limit(4 * 1024 * 1024)
        .await
        .map_err(|e| anyhow!("/metrics: reading the answer: {e}"))?;
    Ok(pruned_outbox_in(&String::from_utf8_lossy(&body)))
}

/// [`pruned_outbox_rows`] read from a Prometheus text exposition.
fn pruned_outbox_in(metrics: &str) -> usize {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("payhook_pruned_total{what=\"outbox_rows\"} "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a counter: a whole number, far below 2^53"
            )]
            let rows = value as usize;
            rows
        })
}

/// round(fraction * events): the re-deliveries of a chunk.
fn duplicates_of(fraction: f64, events: usize) -> usize {
    // A chunk has at most 15 000 events: exact in an f64, and the result
    // at most ten times that.
    let events = u32::try_from(events).unwrap_or(u32::MAX);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0 <= fraction <= 10, checked by run()"
    )]
    let count = (fraction * f64::from(events)).round() as usize;
    count
}

/// The summary as the soak prints it, a line per figure.
pub fn summary_lines(outcome: &SoakOutcome) -> Vec<String> {
    let summary = &outcome.summary;
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    let sizes = |values: &[f64]| {
        outcome
            .storage
            .iter()
            .zip(values)
            .map(|(name, v)| format!("{name} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kinds = outcome
        .kinds
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        format!(
            "soak summary: {} windows, {} requests, {} errors; {} payments ({kinds})",
            summary.windows, summary.requests, summary.errors, outcome.payments
        ),
        format!(
            "soak summary: RSS {} MiB after the first minute, {} at most after it, {} at the \
             end: growth {} %",
            opt(summary.rss_first_mib),
            opt(summary.rss_max_after_first_mib),
            opt(summary.rss_last_mib),
            opt(summary.rss_growth_pct)
        ),
        match summary.p99_ms {
            Some((low, median, high)) => format!(
                "soak summary: p99 per minute: min {low:.2} ms, median {median:.2} ms, max {high:.2} ms"
            ),
            None => "soak summary: no answers".to_owned(),
        },
        format!(
            "soak summary: storage MiB after the first minute: {}; at the end: {}",
            sizes(&summary.storage_first_mib),
            sizes(&summary.storage_last_mib)
        ),
        format!(
            "soak summary: refunded in all {}",
            decimal(outcome.database.refunded_total.unwrap_or(0))
        ),
        format!(
            "soak summary: the soak's own writes: {} transactions of up to {INSERT_BATCH} \
             payments, holding the database for mean {:.2} ms, max {:.2} ms (after waiting \
             up to {:.2} ms for it)",
            outcome.writes.transactions,
            outcome.writes.total.as_secs_f64() * 1000.0
                / outcome.writes.transactions.max(1) as f64,
            outcome.writes.max.as_secs_f64() * 1000.0,
            outcome.writes.max_wait.as_secs_f64() * 1000.0
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pruned_count_is_read_from_the_metrics() {
        let metrics = "# TYPE payhook_pruned_total counter\n\
                       payhook_pruned_total{what=\"event_bodies\"} 120\n\
                       payhook_pruned_total{what=\"outbox_rows\"} 97\n\
                       payhook_outbox_backlog 0\n";
        assert_eq!(pruned_outbox_in(metrics), 97);
        assert_eq!(pruned_outbox_in("payhook_outbox_backlog 3\n"), 0);
    }

    #[test]
    fn durations_are_read_in_whole_units_and_bounded() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("60m"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("6h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration(" 5s "), Ok(Duration::from_secs(5)));
        for bad in ["", "5", "m", "5x", "1.5h", "-5s", "5 s", "h1"] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::Malformed(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert_eq!(
            parse_duration("6h1s"),
            Err(DurationError::TooLong("6h1s".into()))
        );
        assert_eq!(
            parse_duration("361m"),
            Err(DurationError::TooLong("361m".into()))
        );
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Malformed(_) | DurationError::TooLong(_))
        ));
        assert!(matches!(
            parse_duration("9999999999999999h"),
            Err(DurationError::TooLong(_))
        ));
    }

    fn row(minute: usize, seconds: f64, p99: f64, rss: f64) -> Row {
        Row {
            minute,
            seconds,
            requests: 100,
            errors: 0,
            rate: 100.0 / seconds,
            p50_ms: Some(p99 / 2.0),
            p99_ms: Some(p99),
            p999_ms: Some(p99 * 1.5),
            max_ms: Some(p99 * 2.0),
            rss_mib: Some(rss),
            storage_mib: vec![1.0 * minute as f64, 0.5],
        }
    }

    #[test]
    fn a_row_is_made_of_its_window() {
        let started = Instant::now();
        let mut window = Window::new(started);
        window.requests = 4;
        window.errors = 1;
        window.latencies = [4, 1, 3, 2].map(Duration::from_millis).to_vec();
        let row = Row::of(
            3,
            window,
            started + Duration::from_secs(2),
            Some(30.5),
            vec![1.25, 0.5],
        );
        assert_eq!(row.minute, 3);
        assert_eq!(row.requests, 4);
        assert_eq!(row.errors, 1);
        assert!((row.rate - 2.0).abs() < 1e-9);
        assert_eq!(row.p50_ms, Some(2.0));
        assert_eq!(row.p99_ms, Some(4.0));
        assert_eq!(row.max_ms, Some(4.0));
        assert_eq!(
            row.csv_line(),
            "3,2.000,4,1,2.0,2.000,4.000,4.000,4.000,30.500,1.250,0.500"
        );
        let empty = Row::of(1, Window::new(started), started, None, vec![0.0, 0.0]);
        assert_eq!(empty.csv_line(), "1,0.000,0,0,0.0,,,,,,0.000,0.000");
        let names = vec!["db".to_owned(), "wal".to_owned()];
        assert_eq!(
            csv_header(&names),
            "minute,seconds,requests,errors,req_per_s,p50_ms,p99_ms,p999_ms,max_ms,rss_mib,db_mib,wal_mib"
        );
        assert_eq!(
            csv_header(&names).split(',').count(),
            row.csv_line().split(',').count()
        );
    }

    #[test]
    fn the_summary_measures_growth_after_the_first_minute() {
        let rows = [
            row(1, 60.0, 4.0, 30.0),
            row(2, 60.0, 9.0, 33.0),
            row(3, 60.0, 5.0, 31.5),
            // Cut short at the end: its p99 is left out.
            row(4, 10.0, 50.0, 31.0),
        ];
        let summary = Summary::of(&rows, Duration::from_secs(60));
        assert_eq!(summary.windows, 4);
        assert_eq!(summary.requests, 400);
        assert_eq!(summary.rss_first_mib, Some(30.0));
        assert_eq!(summary.rss_max_after_first_mib, Some(33.0));
        assert_eq!(summary.rss_last_mib, Some(31.0));
        assert!((summary.rss_growth_pct.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(summary.p99_ms, Some((4.0, 5.0, 9.0)));
        assert_eq!(summary.storage_first_mib, [1.0, 0.5]);
        assert_eq!(summary.storage_last_mib, [4.0, 0.5]);
        let one = Summary::of(&rows[..1], Duration::from_secs(60));
        assert_eq!(one.rss_growth_pct, None);
        assert_eq!(Summary::of(&[], Duration::from_secs(60)).p99_ms, None);
    }

    #[test]
    fn the_plot_is_an_svg_with_every_panel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soak.svg");
        let rows: Vec<Row> = (1..=5)
            .map(|m| row(m, 60.0, 3.0 + m as f64, 30.0))
            .collect();
        let names = vec!["db".to_owned(), "wal".to_owned()];
        plot(&path, &rows, &names, "test soak").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for text in [
            "test soak",
            "latency per minute (ms)",
            "requests per second",
            "server RSS (MiB)",
            "storage (MiB)",
            "p99",
            "wal MiB",
            "total MiB",
        ] {
            assert!(svg.contains(text), "{text}");
        }
        assert!(svg.matches("<polyline").count() >= 7, "a line per series");
        assert!(svg.len() < 50_000, "{} bytes", svg.len());
    }

    #[test]
    fn consecutive_ids_are_kept_as_two_numbers() {
        let prepared = |pairs: &[(i64, i64)]| -> Vec<Prepared> {
            pairs
                .iter()
                .map(|(order_id, payment_id)| Prepared {
                    order_id: *order_id,
                    payment_id: *payment_id,
                    transaction_id: String::new(),
                    plan: plan::plans(&Mix::default(), 1, "x", 1).remove(0),
                })
                .collect()
        };
        let run = Ids::of(&prepared(&[(10, 20), (11, 21), (12, 22)]));
        assert_eq!(
            run,
            Ids::Consecutive {
                order: 10,
                payment: 20
            }
        );
        assert_eq!(run.get(2), (12, 22));
        let gap = Ids::of(&prepared(&[(10, 20), (12, 21)]));
        assert_eq!(gap, Ids::Listed(vec![(10, 20), (12, 21)]));
        assert_eq!(gap.get(1), (12, 21));
        assert_eq!(chunk_seed(5, 0), 5);
        assert_ne!(chunk_seed(5, 1), chunk_seed(5, 2));
        assert_eq!(duplicates_of(0.1, 1_000), 100);
        let mut times = WriteTimes::default();
        times.add(Duration::from_millis(40), Duration::from_millis(3));
        times.add(Duration::from_millis(1), Duration::from_millis(5));
        let mut all = WriteTimes::default();
        all.merge(&times);
        all.merge(&times);
        assert_eq!(all.transactions, 4);
        assert_eq!(all.total, Duration::from_millis(16));
        assert_eq!(all.max, Duration::from_millis(5));
        assert_eq!(all.max_wait, Duration::from_millis(40));
    }

    #[test]
    fn chunks_are_checked_in_runs_of_at_least_the_given_payments() {
        let chunk = |count| Chunk {
            first: 0,
            count,
            seed: 1,
            ids: Ids::Consecutive {
                order: 1,
                payment: 1,
            },
        };
        let chunks: Vec<Chunk> = [4, 3, 5, 1, 1, 2].into_iter().map(chunk).collect();
        let counts: Vec<Vec<usize>> = batches(&chunks, 6)
            .iter()
            .map(|batch| batch.iter().map(|c| c.count).collect())
            .collect();
        assert_eq!(counts, vec![vec![4, 3], vec![5, 1], vec![1, 2]]);
        assert_eq!(batches(&chunks, 1).len(), 6);
        assert_eq!(batches(&chunks, 100).len(), 1);
        assert!(batches(&[], 6).is_empty());
    }
}
