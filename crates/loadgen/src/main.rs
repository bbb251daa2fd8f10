//! `payhook-loadgen`: the load benchmark of payhook.
//!
//! Creates N payments through the management API, delivers N freshly
//! signed Stripe `payment_intent.succeeded` events (and, for the share of
//! them `--mix` makes refunds, a `refund.created` and a `charge.refunded`
//! after each one's success) plus round(D*E) re-deliveries of the E
//! distinct events, interleaved, over C connections, prints throughput,
//! latency percentiles, answers by status and (when it started the server)
//! the server's peak memory, then checks every payment was confirmed once
//! and refunded once when it was meant to be.
//! Exits 1 on any failed check, any answer other than 2xx, or a time-out.
//! With `--spawn-server`, `--preload COUNT` first fills the run's own
//! database with COUNT finished payments, to measure against big tables.
//! `--duration 60m --rate R` makes it a soak instead: the same stream at a
//! steady rate for a bounded time, a row of figures per minute (CSV, SVG
//! plot), then the same checks over every payment sent.
//!
//! ```sh
//! cargo build --release -p payhook-server -p payhook-loadgen
//! target/release/payhook-loadgen --spawn-server target/release/payhook
//! ```
//!
//! Only ever talks to 127.0.0.1, localhost or [::1].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use payhook_loadgen::load::{self, LoadConfig};
use payhook_loadgen::mix::{Kind, Mix};
use payhook_loadgen::multi;
use payhook_loadgen::plan::{self, EventType};
use payhook_loadgen::preload;
use payhook_loadgen::proc_stats;
use payhook_loadgen::server::{self, ServerSpec, SpawnedServer};
use payhook_loadgen::soak::{self, SoakSpec};
use payhook_loadgen::stats::{millis, percentile, LatencySummary};
use payhook_loadgen::target::LoopbackUrl;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "payhook-loadgen", version, about)]
struct Options {
    /// Base URL of a running payhook (loopback only). Ignored with --spawn-server.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8000",
        conflicts_with = "spawn_server"
    )]
    url: String,
    /// Bearer token of the management API (PAYHOOK_API_TOKEN of the server).
    #[arg(long, default_value = "loadgen-token")]
    token: String,
    /// Stripe endpoint secret (STRIPE_WEBHOOK_SECRET of the server).
    #[arg(long, default_value = "whsec_loadgen_secret")]
    stripe_secret: String,
    /// Payments, each confirmed by one event (a refund payment is sent two
    /// more, see --mix).
    #[arg(short = 'n', long = "events", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    events: u32,
    /// What the payments are made of, as kind=percent pairs adding up to
    /// 100. Kinds: `succeeded` (confirmed once), `checkout` (a Checkout
    /// Session, confirmed by `checkout.session.completed`), `refund`
    /// (confirmed, then one refund, in full for one in four, reported by
    /// `refund.created` and by `charge.refunded`), `dispute` (confirmed,
    /// then `charge.dispute.created` and `charge.dispute.closed`, lost for
    /// one in two, won otherwise) and `not_handled` (a `customer.created`,
    /// which payhook ignores, then confirmed).
    #[arg(long, default_value = "succeeded=100", value_name = "KIND=PERCENT,...")]
    mix: Mix,
    /// Re-deliveries as a fraction of the distinct events (0.1: 10 % more
    /// deliveries).
    #[arg(long, default_value_t = 0.1)]
    duplicates: f64,
    /// Requests in flight at once.
    #[arg(short = 'c', long, default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Hard bound on the whole run, start-up and checks included.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Start this payhook binary on a free port of 127.0.0.1 and stop it at the end.
    #[arg(long, value_name = "PATH")]
    spawn_server: Option<PathBuf>,
    /// DATABASE_URL of the spawned server [default: a fresh SQLite file in
    /// the temp directory, removed after a run that passed].
    #[arg(long, requires = "spawn_server")]
    database_url: Option<String>,
    /// Count the outbox rows in this database too [default with
    /// --spawn-server: its --database-url].
    #[arg(long)]
    verify_database_url: Option<String>,
    /// Where the spawned server's output goes [default: a file in the temp
    /// directory, removed after a run that passed].
    #[arg(long, requires = "spawn_server")]
    server_log: Option<PathBuf>,
    /// Seed of the kinds, the duplicate choice and the shuffle [default:
    /// from the clock].
    #[arg(long)]
    seed: Option<u64>,
    /// Before the server starts, fill its (empty) database with COUNT
    /// finished payments (order paid, payment completed, event confirmed,
    /// outbox row delivered), so the run works against big tables. Only
    /// with --spawn-server, which owns the database. Not counted in
    /// --timeout-secs.
    #[arg(long, value_name = "COUNT", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100_000_000))]
    preload: u32,
    /// First measure the database's own ceiling for the per-event
    /// transaction at the same N (SQLite: the `sqlite-ceiling` binary beside
    /// this one; PostgreSQL: --pg-ceiling-script at the same concurrency),
    /// then print payhook's rate as a ratio of it. Only with --spawn-server.
    #[arg(long, requires = "spawn_server")]
    ceiling: bool,
    /// Start this many servers on the one database (only with
    /// --spawn-server; PostgreSQL, since SQLite is one process's): setup and
    /// checks go through the first, deliveries to each in turn.
    #[arg(long, default_value_t = 1, requires = "spawn_server",
          value_parser = clap::value_parser!(u8).range(1..=i64::from(payhook_loadgen::multi::MAX_SERVERS)))]
    servers: u8,
    /// The PostgreSQL ceiling script, run with `-u <database url> -n N -c C`.
    #[arg(long, default_value = "bench/pg-ceiling.sh")]
    pg_ceiling_script: PathBuf,
    /// Soak for this long (90s, 60m, 1h30m; at most 6h) at --rate instead
    /// of sending N payments: payments are made as needed, a row of figures
    /// is recorded per minute, and every payment sent is checked at the
    /// end (--timeout-secs then bounds start-up and the checks, beyond the
    /// duration). Only with --spawn-server, whose database it writes the
    /// payments into.
    #[arg(long, value_parser = parse_soak_duration, requires = "spawn_server",
          conflicts_with_all = ["events", "ceiling"])]
    duration: Option<Duration>,
    /// The soak's rate, in requests per second (deliveries, re-deliveries
    /// included).
    #[arg(long, requires = "duration", conflicts_with = "rate_of_peak")]
    rate: Option<f64>,
    /// The soak's rate as a fraction of --peak (0.7: 70 % of it).
    #[arg(long, requires_all = ["duration", "peak"])]
    rate_of_peak: Option<f64>,
    /// The peak rate measured by a normal run (its `rate=`), in requests
    /// per second, for --rate-of-peak.
    #[arg(long, requires = "rate_of_peak")]
    peak: Option<f64>,
    /// Write the soak's rows to this CSV file, one per minute as they come.
    #[arg(long, value_name = "PATH", requires = "duration")]
    csv: Option<PathBuf>,
    /// Draw the soak's rows into this SVG file at the end.
    #[arg(long, value_name = "PATH", requires = "duration")]
    plot: Option<PathBuf>,
    /// The length of a soak's window in seconds: 60 (a minute) but for
    /// tests.
    #[arg(long, hide = true, default_value_t = 60, requires = "duration",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    soak_window_secs: u64,
    /// In a soak, read back through the API one payment in this many
    /// (the database check still reads every one): an hour's millions
    /// read one request each would take longer than the soak.
    #[arg(long, default_value_t = 1, requires = "duration",
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    api_check_every: u16,
    /// Another variable for the spawned server, such as
    /// PAYHOOK_RETENTION_DAYS=1; repeatable. Not one the load generator
    /// sets itself.
    #[arg(long, value_name = "KEY=VALUE", requires = "spawn_server",
          value_parser = parse_server_env)]
    server_env: Vec<(String, String)>,
}

/// `--duration`, as [`soak::parse_duration`] reads it.
fn parse_soak_duration(text: &str) -> Result<Duration, String> {
    soak::parse_duration(text).map_err(|e| e.to_string())
}

/// `--server-env`, as [`server::parse_env`] reads it.
fn parse_server_env(text: &str) -> Result<(String, String), String> {
    server::parse_env(text).map_err(|e| e.to_string())
}

/// The soak's rate: --rate, or --rate-of-peak times --peak; `None` for a
/// counted run.
fn soak_rate(options: &Options) -> anyhow::Result<Option<f64>> {
    if options.duration.is_none() {
        return Ok(None);
    }
    let rate = match (options.rate, options.rate_of_peak, options.peak) {
        (Some(rate), None, _) => rate,
        (None, Some(fraction), Some(peak)) => {
            if !(fraction > 0.0 && fraction <= 1.0) {
                bail!("--rate-of-peak must be above 0 and at most 1, got {fraction}");
            }
            fraction * peak
        }
        _ => bail!("a soak (--duration) needs --rate, or --rate-of-peak with --peak"),
    };
    if !(rate > 0.0 && rate <= payhook_loadgen::pace::MAX_RATE) {
        bail!(
            "the soak's rate must be above 0 and at most {} requests/s, got {rate}",
            payhook_loadgen::pace::MAX_RATE
        );
    }
    Ok(Some(rate))
}

/// The value of `key` in the last `RESULT` line of a ceiling tool's output,
/// when that line says `ok=true`.
fn result_value(output: &str, key: &str) -> Option<f64> {
    let line = output
        .lines()
        .rev()
        .find(|line| line.starts_with("RESULT "))?;
    let fields: Vec<(&str, &str)> = line
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .collect();
    if !fields.contains(&("ok", "true")) {
        return None;
    }
    fields
        .iter()
        .find(|(name, _)| *name == key)
        .and_then(|(_, value)| value.parse().ok())
}

/// Runs the ceiling tool of the backend `database_url` names and returns
/// its rate (transactions per second).
fn measure_ceiling(options: &Options, database_url: &str) -> anyhow::Result<f64> {
    let events = options.events.to_string();
    let (mut command, key) = if database_url.starts_with("sqlite:") {
        let binary = std::env::current_exe()
            .context("where is payhook-loadgen?")?
            .with_file_name("sqlite-ceiling");
        let mut command = std::process::Command::new(binary);
        command.args(["-n", &events]);
        (command, "rate")
    } else {
        let mut command = std::process::Command::new("bash");
        command
            .arg(&options.pg_ceiling_script)
            .args(["-u", database_url, "-n", &events])
            .args(["-c", &options.concurrency.to_string()]);
        (command, "tps")
    };
    println!("ceiling: running {:?} ...", command.get_program());
    let output = command.output().context("cannot run the ceiling tool")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match result_value(&stdout, key) {
        Some(rate) if output.status.success() => {
            println!("ceiling: {rate:.1} transactions/s");
            Ok(rate)
        }
        _ => bail!(
            "the ceiling tool failed ({}): {}{}",
            output.status,
            stdout.lines().last().unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ),
    }
}

/// Refuses a preload into a database this run does not own.
fn check_preload(options: &Options) -> anyhow::Result<()> {
    if options.preload > 0 && options.spawn_server.is_none() {
        bail!(
            "--preload needs --spawn-server: it writes into the database, so only one this \
             run creates (a fresh SQLite file, or the scratch --database-url) may be preloaded"
        );
    }
    Ok(())
}

/// Migrates the database at `url` and preloads `count` finished payments
/// into it, saying what it did.
fn preload_database(url: &str, count: u32) -> anyhow::Result<()> {
    println!("preload: {count} finished payments ...");
    let done = preload::migrate_and_preload(url, u64::from(count)).context("--preload failed")?;
    let rows = preload::TABLES
        .iter()
        .zip(done.rows)
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "preload: {count} payments in {:.1} s (inserts {:.1} s, statistics {:.1} s); rows: {rows}",
        (done.inserting + done.analyzing).as_secs_f64(),
        done.inserting.as_secs_f64(),
        done.analyzing.as_secs_f64(),
    );
    Ok(())
}

/// round(fraction * events), refusing fractions outside 0..=10.
fn duplicate_count(fraction: f64, events: usize) -> anyhow::Result<usize> {
    if !(0.0..=10.0).contains(&fraction) {
        bail!("--duplicates must be between 0 and 10, got {fraction}");
    }
    // At most 3 events of each of 1 000 000 payments: exact in an f64.
    let events = u32::try_from(events).context("too many events")?;
    let count = (fraction * f64::from(events)).round();
    // At most 10 * 3 000 000, exactly representable and far below usize::MAX.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked above: 0 <= count <= 3e7"
    )]
    Ok(count as usize)
}

/// A SQLite database created for this run, removed with its WAL files.
struct ScratchSqlite(PathBuf);

impl ScratchSqlite {
    /// Leaves the files in place (a failed run's) and says where they are.
    fn keep(self) -> PathBuf {
        let kept = std::mem::ManuallyDrop::new(self);
        kept.0.clone()
    }
}

impl Drop for ScratchSqlite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Everything a run prints in its last line.
struct Outcome {
    ok: bool,
    line: String,
    /// Deliveries per second over the send phase.
    rate: f64,
}

fn main() -> ExitCode {
    // awc is built with rustls (the server's notifier needs it), and rustls
    // wants a process-wide provider before any client exists, even one
    // that only speaks plain http to 127.0.0.1.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = Options::parse();
    match run(&options) {
        Ok(outcome) => {
            println!("{}", outcome.line);
            if outcome.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("payhook-loadgen: {error:#}");
            println!("RESULT ok=false error={:?}", format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> anyhow::Result<Outcome> {
    check_preload(options)?;
    let soak_rate = soak_rate(options)?;
    let events = usize::try_from(options.events).context("--events")?;
    let duplicates = duplicate_count(options.duplicates, plan::event_count(&options.mix, events))?;
    let started_ms = chrono::Utc::now().timestamp_millis();
    let run_id = format!("{started_ms:x}");
    let seed = options.seed.unwrap_or(started_ms.unsigned_abs());

    if options.duration.is_some() && options.servers > 1 {
        anyhow::bail!("--servers is for a counted run; a soak drives one server");
    }
    // The server, when this run starts it; dropped (stopped) before the
    // scratch database is removed.
    let mut scratch = None;
    let mut verify_url = options.verify_database_url.clone();
    let mut ceiling = None;
    let mut more_servers = None;
    let mut server = match &options.spawn_server {
        Some(binary) => {
            let database_url = match &options.database_url {
                Some(url) => url.clone(),
                None => {
                    let path = std::env::temp_dir().join(format!("payhook-load-{run_id}.db"));
                    let url = format!("sqlite://{}", path.display());
                    scratch = Some(ScratchSqlite(path));
                    url
                }
            };
            verify_url.get_or_insert_with(|| database_url.clone());
            // Before the server exists, so that nothing else loads the machine.
            if options.ceiling {
                ceiling = Some(measure_ceiling(options, &database_url)?);
            }
            if options.preload > 0 {
                preload_database(&database_url, options.preload)?;
            }
            let log_file = options
                .server_log
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(format!("payhook-load-{run_id}.log")));
            let spec = ServerSpec {
                binary: binary.clone(),
                database_url,
                api_token: options.token.clone(),
                stripe_secret: options.stripe_secret.clone(),
                log_file,
                env: options.server_env.clone(),
            };
            let server = SpawnedServer::start(&spec)?;
            more_servers = Some(spec);
            Some(server)
        }
        None => None,
    };
    let url = match &server {
        Some(server) => server.url().clone(),
        None => LoopbackUrl::parse(&options.url).context("--url")?,
    };
    let config = LoadConfig {
        url,
        token: options.token.clone(),
        stripe_secret: options.stripe_secret.clone(),
        events,
        mix: options.mix.clone(),
        duplicates,
        concurrency: usize::from(options.concurrency),
        seed,
        run_id,
    };
    let timeout = Duration::from_secs(options.timeout_secs) + options.duration.unwrap_or_default();
    let soak = match (options.duration, soak_rate) {
        (Some(duration), Some(rate)) => Some(SoakSpec {
            duration,
            rate,
            window: Duration::from_secs(options.soak_window_secs),
            duplicates: options.duplicates,
            database_url: verify_url
                .clone()
                .context("a soak needs the spawned server's database")?,
            rss_pid: server.as_ref().map(SpawnedServer::pid),
            csv: options.csv.clone(),
            plot: options.plot.clone(),
            api_check_every: usize::from(options.api_check_every),
        }),
        _ => None,
    };
    let system = actix_rt::System::new();
    let result = system.block_on(async {
        let run = async {
            match &soak {
                Some(spec) => drive_soak(&config, server.as_mut(), spec).await,
                None => {
                    drive(
                        &config,
                        server.as_mut(),
                        more_servers
                            .as_ref()
                            .map(|spec| (spec, usize::from(options.servers) - 1)),
                        verify_url.as_deref(),
                        options.preload,
                    )
                    .await
                }
            }
        };
        match actix_rt::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => bail!(
                "the run did not finish within --timeout-secs {}{}",
                options.timeout_secs,
                if soak.is_some() {
                    " beyond the soak's --duration"
                } else {
                    ""
                }
            ),
        }
    });
    let passed = matches!(&result, Ok(outcome) if outcome.ok);
    if let Some(server) = &mut server {
        server.stop(Duration::from_secs(10));
        // A default log is only worth keeping when something went wrong.
        if passed && options.server_log.is_none() {
            let _ = std::fs::remove_file(server.log_file());
        } else {
            println!("server log: {}", server.log_file().display());
        }
    }
    drop(server);
    match scratch {
        // What the server left is evidence of what went wrong (a database
        // SQLite calls malformed, say): kept, like the log.
        Some(scratch) if !passed => println!("database kept: {}", scratch.keep().display()),
        other => drop(other),
    }
    let mut outcome = result?;
    if let Some(ceiling) = ceiling {
        let ratio = outcome.rate / ceiling;
        println!(
            "payhook / ceiling: {:.1} / {ceiling:.1} = {ratio:.2}x",
            outcome.rate
        );
        outcome.line = format!("{} ceiling={ceiling:.1} ratio={ratio:.2}", outcome.line);
    }
    Ok(outcome)
}

/// `800 succeeded, 0 checkout, 200 refund (50 in full), ...`: the
/// payments of each kind.
fn kinds_line(prepared: &[load::Prepared]) -> String {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let count = load::count_of(prepared, kind);
            match kind {
                Kind::Refund => {
                    let full = prepared
                        .iter()
                        .filter(|p| p.plan.refunded_in_full())
                        .count();
                    format!("{count} {kind} ({full} in full)")
                }
                Kind::Dispute => {
                    let lost = prepared
                        .iter()
                        .filter(|p| p.plan.dispute.as_ref().is_some_and(|d| d.lost))
                        .count();
                    format!("{count} {kind} ({lost} lost)")
                }
                Kind::Succeeded | Kind::Checkout | Kind::NotHandled => format!("{count} {kind}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits for the server: the spawned one up to a minute (noticing an
/// early exit), a running one up to 5 s.
async fn wait_for_server(
    client: &awc::Client,
    config: &LoadConfig,
    server: Option<&mut SpawnedServer>,
) -> anyhow::Result<()> {
    match server {
        Some(server) => {
            println!(
                "spawned payhook pid {} (log: {})",
                server.pid(),
                server.log_file().display()
            );
            load::wait_ready(client, &config.url, Duration::from_secs(60), || {
                server.check_alive()
            })
            .await
        }
        None => load::wait_ready(client, &config.url, Duration::from_secs(5), || Ok(())).await,
    }
}

/// The soak, on the actix runtime.
async fn drive_soak(
    config: &LoadConfig,
    server: Option<&mut SpawnedServer>,
    spec: &SoakSpec,
) -> anyhow::Result<Outcome> {
    let client = load::client(config.concurrency, Duration::from_secs(30));
    println!(
        "payhook-loadgen soak {}: {:?} at {:.1} requests/s ({}), duplicates {}, concurrency {}, \
         seed {}, server {}",
        config.run_id,
        spec.duration,
        spec.rate,
        config.mix,
        spec.duplicates,
        config.concurrency,
        config.seed,
        config.url.as_str()
    );
    wait_for_server(&client, config, server).await?;
    let outcome = soak::run(&client, config, spec).await?;
    for line in soak::summary_lines(&outcome) {
        println!("{line}");
    }
    println!("answers by status: {}", outcome.sent.tally.statuses_line());
    for (message, count) in &outcome.sent.tally.messages {
        println!("  {count:>9}  {message}");
    }
    if outcome.sent.early > 0 {
        println!(
            "early: {} refund or dispute deliveries answered 409 and sent again after their \
             payment's success",
            outcome.sent.early
        );
    }
    println!(
        "verify: {}/{} payments as planned through the API, {}/{} in the database; {} events \
         recorded, {} confirmed; {} outbox rows",
        outcome.api.as_planned,
        outcome.api_checked,
        outcome.database.as_planned,
        outcome.payments,
        outcome.database.events_recorded,
        outcome.database.events_confirmed,
        outcome.database.outbox_rows
    );
    for failure in &outcome.failures {
        println!("FAIL: {failure}");
    }
    let ok = outcome.failures.is_empty() && outcome.summary.errors == 0;
    let summary = &outcome.summary;
    let opt = |v: Option<f64>| v.map_or("na".to_owned(), |v| format!("{v:.2}"));
    let (p99_min, p99_median, p99_max) = summary
        .p99_ms
        .map_or((None, None, None), |(a, b, c)| (Some(a), Some(b), Some(c)));
    let line = format!(
        "RESULT soak_s={} rate_target={:.1} mix={} windows={} requests={} errors={} payments={} \
         rss_first_mib={} rss_max_mib={} rss_growth_pct={} p99_min_ms={} p99_median_ms={} \
         p99_max_ms={} status={} early_409={} ok={ok}",
        spec.duration.as_secs(),
        spec.rate,
        config.mix,
        summary.windows,
        summary.requests,
        summary.errors,
        outcome.payments,
        opt(summary.rss_first_mib),
        opt(summary.rss_max_after_first_mib),
        opt(summary.rss_growth_pct),
        opt(p99_min),
        opt(p99_median),
        opt(p99_max),
        outcome.sent.tally.statuses_line().replace(' ', ","),
        outcome.sent.early,
    );
    let rate = summary.requests as f64 / outcome.sent.elapsed.as_secs_f64().max(1e-9);
    Ok(Outcome { ok, line, rate })
}

/// The run itself, on the actix runtime.
async fn drive(
    config: &LoadConfig,
    mut server: Option<&mut SpawnedServer>,
    more_servers: Option<(&ServerSpec, usize)>,
    verify_url: Option<&str>,
    preloaded: u32,
) -> anyhow::Result<Outcome> {
    let client = load::client(config.concurrency, Duration::from_secs(30));
    println!(
        "payhook-loadgen run {}: {} payments ({}), {} events + {} duplicates, concurrency {}, seed {}, server {}",
        config.run_id,
        config.events,
        config.mix,
        plan::event_count(&config.mix, config.events),
        config.duplicates,
        config.concurrency,
        config.seed,
        config.url.as_str()
    );
    wait_for_server(&client, config, server.as_deref_mut()).await?;

    // Further servers on the same database, once the first is ready (it
    // migrated); stopped when this function returns.
    let more = match more_servers {
        Some((spec, count)) if count > 0 => multi::start_more(&client, spec, count).await?,
        _ => Vec::new(),
    };
    let cpu = |server: &Option<&mut SpawnedServer>| server.as_ref().and_then(|s| s.cpu_time());
    let started = Instant::now();
    let setup_outcome = load::prepare(&client, config).await?;
    let prepared = setup_outcome.prepared;
    let setup = started.elapsed();
    println!(
        "setup: {} orders + payments (3 API calls each) in {:.1} s ({:.0} payments/s)",
        prepared.len(),
        setup.as_secs_f64(),
        prepared.len() as f64 / setup.as_secs_f64()
    );
    println!("mix: {}: {}", config.mix, kinds_line(&prepared));
    if setup_outcome.retried > 0 {
        println!(
            "setup: {} calls repeated after a 5xx or no answer; first: {}",
            setup_outcome.retried,
            setup_outcome.first_retry_reason.as_deref().unwrap_or("?")
        );
    }
    let rss_after_setup = server.as_ref().and_then(|s| s.rss_kib());

    let server_cpu_before = cpu(&server);
    let own_cpu_before = proc_stats::process_cpu_time(std::process::id());
    let mut sent =
        load::deliver_to(&client, config, &prepared, &multi::urls(&config.url, &more)).await;
    let server_cpu = cpu(&server)
        .zip(server_cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let own_cpu = proc_stats::process_cpu_time(std::process::id())
        .zip(own_cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let seconds = sent.elapsed.as_secs_f64();
    let rate = sent.deliveries as f64 / seconds;
    let distinct = load::planned_events(&prepared);
    let events_rate = distinct as f64 / seconds;
    let latency = LatencySummary::of(&mut sent.latencies);
    // `of` sorted the samples.
    let p999 = percentile(&sent.latencies, 999).map_or_else(|| "na".into(), millis);
    println!(
        "send: {} deliveries in {seconds:.3} s: {rate:.1} deliveries/s, {events_rate:.1} distinct events/s",
        sent.deliveries
    );
    if let Some(latency) = &latency {
        println!(
            "latency ms: p50 {} p90 {} p99 {} p99.9 {p999} max {}",
            millis(latency.p50),
            millis(latency.p90),
            millis(latency.p99),
            millis(latency.max)
        );
    }
    println!("answers by status: {}", sent.tally.statuses_line());
    for (message, count) in &sent.tally.messages {
        println!("  {count:>7}  {message}");
    }
    for event_type in EventType::ALL {
        if let Some(tally) = sent.by_type.get(&event_type) {
            let messages = tally
                .messages
                .iter()
                .map(|(message, count)| format!("{count} {message:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "  {}: {} ({messages})",
                event_type.as_str(),
                tally.statuses_line()
            );
        }
    }
    if sent.early > 0 {
        println!(
            "early: {} refund or dispute deliveries answered 409 (they overtook their \
             payment's success) and sent again after it; not counted as answers",
            sent.early
        );
    }
    for (event_type, count) in &sent.ignored {
        println!(
            "ignored: {count} {} answered {:?}",
            event_type.as_str(),
            load::IGNORED
        );
    }
    if let Some(error) = &sent.first_error {
        println!("first transport error: {error}");
    }
    let per_delivery = |cpu: Duration| cpu.as_secs_f64() * 1e6 / sent.deliveries as f64;
    if let Some(cpu) = server_cpu {
        println!(
            "server CPU during send: {:.2} s ({:.0} us/delivery)",
            cpu.as_secs_f64(),
            per_delivery(cpu)
        );
    }
    if let Some(cpu) = own_cpu {
        println!(
            "loadgen CPU during send: {:.2} s ({:.0} us/delivery)",
            cpu.as_secs_f64(),
            per_delivery(cpu)
        );
    }
    let rss_peak = server.as_ref().map(|s| s.peak_rss_kib());
    if let Some(peak) = rss_peak {
        println!(
            "server RSS: peak {peak} KiB ({:.1} MiB); {} KiB after setup, {} KiB after send",
            peak as f64 / 1024.0,
            rss_after_setup.map_or("?".into(), |v| v.to_string()),
            server
                .as_ref()
                .and_then(|s| s.rss_kib())
                .map_or("?".into(), |v| v.to_string()),
        );
    }

    for (number, other) in (2..).zip(&more) {
        println!(
            "server {number} RSS: peak {} KiB; CPU {:.2} s in all",
            other.peak_rss_kib(),
            other.cpu_time().unwrap_or_default().as_secs_f64()
        );
    }

    let api = load::check_api(&client, config, &prepared).await;
    let api_statuses = api
        .statuses
        .iter()
        .map(|(status, count)| format!("{status} {count}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "verify (API): {}/{} payments as planned ({api_statuses})",
        api.as_planned,
        prepared.len()
    );
    let database = match verify_url {
        Some(url) => {
            let db = load::check_database(url, config, &prepared).await?;
            println!(
                "verify (database): {} outbox rows for this run's {} payments ({} payments with a row; {} rows in the table), kinds {:?}; {} events recorded, {} confirmed; {}/{} payments as planned",
                db.outbox_rows, prepared.len(), db.payments_with_rows, db.outbox_total, db.kinds,
                db.events_recorded, db.events_confirmed, db.as_planned, prepared.len()
            );
            let outcomes = db
                .outcomes
                .iter()
                .map(|((event_type, outcome), count)| format!("{event_type} {outcome} {count}"))
                .collect::<Vec<_>>()
                .join(", ");
            println!("verify (database): events by type and outcome: {outcomes}");
            Some(db)
        }
        None => None,
    };
    let failed = load::failures(
        &load::Expected::of(&prepared),
        &sent,
        &api,
        database.as_ref(),
    );
    for failure in &failed {
        println!("FAIL: {failure}");
    }
    let ok = failed.is_empty();

    let (p50, p90, p99, max) = latency.map_or_else(Default::default, |l| {
        (millis(l.p50), millis(l.p90), millis(l.p99), millis(l.max))
    });
    let line = format!(
        "RESULT events={} mix={} refunds={} disputes={} checkouts={} not_handled={} \
         duplicates={} concurrency={} preload={preloaded} \
         seconds={seconds:.3} rate={rate:.1} events_rate={events_rate:.1} p50_ms={p50} \
         p90_ms={p90} p99_ms={p99} p999_ms={p999} max_ms={max} rss_peak_kib={} status={} early_409={} \
         setup_retries={} servers={} ok={ok}",
        config.events,
        config.mix,
        load::count_of(&prepared, Kind::Refund),
        load::count_of(&prepared, Kind::Dispute),
        load::count_of(&prepared, Kind::Checkout),
        load::count_of(&prepared, Kind::NotHandled),
        config.duplicates,
        config.concurrency,
        rss_peak.map_or("na".into(), |v| v.to_string()),
        sent.tally.statuses_line().replace(' ', ","),
        sent.early,
        setup_outcome.retried,
        1 + more.len(),
    );
    Ok(Outcome { ok, line, rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_database_is_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let files = |db: &std::path::Path| {
            ["", "-wal", "-shm"].map(|suffix| {
                let mut path = db.as_os_str().to_owned();
                path.push(suffix);
                PathBuf::from(path)
            })
        };
        let removed = dir.path().join("passed.db");
        let kept = dir.path().join("failed.db");
        for path in files(&removed).iter().chain(&files(&kept)) {
            std::fs::write(path, b"x").unwrap();
        }
        drop(ScratchSqlite(removed.clone()));
        assert_eq!(ScratchSqlite(kept.clone()).keep(), kept);
        assert!(files(&removed).iter().all(|path| !path.exists()));
        assert!(files(&kept).iter().all(|path| path.exists()));
    }

    #[test]
    fn duplicates_round_and_stay_in_range() {
        assert_eq!(duplicate_count(0.1, 20_000).unwrap(), 2_000);
        assert_eq!(duplicate_count(0.15, 3).unwrap(), 0);
        assert_eq!(duplicate_count(0.5, 3).unwrap(), 2);
        assert_eq!(duplicate_count(0.0, 10).unwrap(), 0);
        assert!(duplicate_count(-0.1, 10).is_err());
        assert!(duplicate_count(f64::NAN, 10).is_err());
    }

    #[test]
    fn command_line_defaults_follow_the_issue() {
        let options = Options::try_parse_from(["payhook-loadgen"]).unwrap();
        assert_eq!(options.url, "http://127.0.0.1:8000");
        assert_eq!(options.events, 20_000);
        assert_eq!(options.concurrency, 64);
        assert_eq!(options.timeout_secs, 600);
        assert!((options.duplicates - 0.1).abs() < f64::EPSILON);
        assert!(
            Options::try_parse_from(["payhook-loadgen", "--database-url", "sqlite://x"]).is_err()
        );
        assert!(Options::try_parse_from(["payhook-loadgen", "-n", "0"]).is_err());
        assert_eq!(options.preload, 0);
        assert!(check_preload(&options).is_ok());
    }

    #[test]
    fn the_mix_defaults_to_succeeded_only_and_refuses_bad_shares() {
        let options = Options::try_parse_from(["payhook-loadgen"]).unwrap();
        assert_eq!(options.mix, Mix::default());
        assert_eq!(options.mix.to_string(), "succeeded=100");
        let mixed = Options::try_parse_from(["payhook-loadgen", "--mix", "succeeded=80,refund=20"])
            .unwrap();
        assert_eq!(mixed.mix.share(Kind::Refund), 20);
        // 800 payments with one event, 200 with three.
        assert_eq!(plan::event_count(&mixed.mix, 1_000), 1_400);
        let every = Options::try_parse_from([
            "payhook-loadgen",
            "--mix",
            "succeeded=70,checkout=10,refund=10,dispute=5,not_handled=5",
        ])
        .unwrap();
        for kind in Kind::ALL {
            assert!(every.mix.share(kind) > 0, "{kind}");
        }
        // 800 payments of one event, 100 + 50 of three, 50 of two.
        assert_eq!(plan::event_count(&every.mix, 1_000), 800 + 450 + 100);
        for (bad, says) in [
            ("succeeded=90,refund=20", "add up to 110"),
            ("succeeded=90,chargeback=10", "unknown kind `chargeback`"),
        ] {
            let error = Options::try_parse_from(["payhook-loadgen", "--mix", bad])
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn a_ceiling_is_read_from_a_passing_result_line_only() {
        let sqlite = "sqlite-ceiling: ...\nRESULT events=20000 synchronous=full seconds=61.982 \
                      rate=322.7 p50_ms=3.607 p99_ms=11.465 ok=true\n";
        assert_eq!(result_value(sqlite, "rate"), Some(322.7));
        let pg = "tps = 1877.17\nRESULT events=20032 clients=64 tps=1877.174395 \
                  latency_avg_ms=34.094 ok=true";
        assert_eq!(result_value(pg, "tps"), Some(1_877.174_395));
        assert_eq!(result_value(pg, "rate"), None);
        assert_eq!(result_value("RESULT rate=10.0 ok=false", "rate"), None);
        assert_eq!(result_value("rate=10.0 ok=true", "rate"), None);
        assert!(Options::try_parse_from(["payhook-loadgen", "--ceiling"]).is_err());
    }

    #[test]
    fn more_servers_only_when_spawned_and_bounded() {
        let one = Options::try_parse_from(["payhook-loadgen"]).unwrap();
        assert_eq!(one.servers, 1);
        assert!(Options::try_parse_from(["payhook-loadgen", "--servers", "2"]).is_err());
        let spawned = |count: &str| {
            Options::try_parse_from([
                "payhook-loadgen",
                "--spawn-server",
                "target/release/payhook",
                "--servers",
                count,
            ])
        };
        assert_eq!(spawned("2").unwrap().servers, 2);
        assert_eq!(spawned("4").unwrap().servers, 4);
        for refused in ["0", "5", "-1"] {
            assert!(spawned(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn preload_only_into_a_database_of_the_run() {
        let alone = Options::try_parse_from(["payhook-loadgen", "--preload", "1000"]).unwrap();
        let refused = check_preload(&alone).unwrap_err().to_string();
        assert!(refused.contains("--spawn-server"), "{refused}");
        let spawned = Options::try_parse_from([
            "payhook-loadgen",
            "--spawn-server",
            "target/release/payhook",
            "--preload",
            "1000000",
        ])
        .unwrap();
        assert_eq!(spawned.preload, 1_000_000);
        assert!(check_preload(&spawned).is_ok());
        assert!(Options::try_parse_from(["payhook-loadgen", "--preload", "-1"]).is_err());
    }

    #[test]
    fn a_soak_is_bounded_spawned_and_paced() {
        let parse = |args: &[&str]| {
            let mut all = vec!["payhook-loadgen"];
            all.extend_from_slice(args);
            Options::try_parse_from(all)
        };
        let soak = parse(&[
            "--spawn-server",
            "target/release/payhook",
            "--duration",
            "60m",
            "--rate",
            "2000",
            "--csv",
            "soak.csv",
            "--plot",
            "soak.svg",
            "--server-env",
            "PAYHOOK_RETENTION_DAYS=1",
            "--server-env",
            "RUST_LOG=warn",
        ])
        .unwrap();
        assert_eq!(soak.duration, Some(Duration::from_secs(3_600)));
        assert_eq!(soak_rate(&soak).unwrap(), Some(2_000.0));
        assert_eq!(soak.soak_window_secs, 60);
        assert_eq!(
            soak.server_env,
            [
                ("PAYHOOK_RETENTION_DAYS".to_owned(), "1".to_owned()),
                ("RUST_LOG".to_owned(), "warn".to_owned())
            ]
        );
        let of_peak = parse(&[
            "--spawn-server",
            "p",
            "--duration",
            "1h",
            "--rate-of-peak",
            "0.7",
            "--peak",
            "6000",
        ])
        .unwrap();
        assert!((soak_rate(&of_peak).unwrap().unwrap() - 4_200.0).abs() < 1e-9);
        let too_much = parse(&[
            "--spawn-server",
            "p",
            "--duration",
            "1h",
            "--rate-of-peak",
            "1.5",
            "--peak",
            "6000",
        ])
        .unwrap();
        assert!(soak_rate(&too_much).is_err());
        let no_rate = parse(&["--spawn-server", "p", "--duration", "1h"]).unwrap();
        assert!(soak_rate(&no_rate)
            .unwrap_err()
            .to_string()
            .contains("--rate"));
        assert_eq!(soak_rate(&parse(&[]).unwrap()).unwrap(), None);
        for (refused, why) in [
            (&["--duration", "1h", "--rate", "10"][..], "spawn-server"),
            (
                &["--spawn-server", "p", "--duration", "7h", "--rate", "10"][..],
                "6 h",
            ),
            (
                &["--spawn-server", "p", "--duration", "60", "--rate", "10"][..],
                "duration",
            ),
            (
                &[
                    "--spawn-server",
                    "p",
                    "--duration",
                    "1h",
                    "-n",
                    "5",
                    "--rate",
                    "1",
                ][..],
                "events",
            ),
            (
                &[
                    "--spawn-server",
                    "p",
                    "--duration",
                    "1h",
                    "--rate",
                    "1",
                    "--rate-of-peak",
                    "0.5",
                    "--peak",
                    "9",
                ][..],
                "rate",
            ),
            (&["--rate", "10"][..], "duration"),
            (&["--csv", "x.csv"][..], "duration"),
            (
                &[
                    "--spawn-server",
                    "p",
                    "--server-env",
                    "DATABASE_URL=sqlite://x",
                ][..],
                "DATABASE_URL",
            ),
            (&["--server-env", "A=1"][..], "spawn-server"),
        ] {
            let error = parse(refused).unwrap_err().to_string();
            assert!(error.contains(why), "{refused:?}: {error}");
        }
    }
}
