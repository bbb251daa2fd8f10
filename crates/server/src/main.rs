//! The `payhook` binary: parses the command line and hands over to the
//! server library.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use payhook_server::{check, open_store, reconciler, telemetry, Application, Config};

/// Receives payment-gateway webhooks and confirms orders exactly once.
///
/// All configuration comes from environment variables (see the README);
/// `payhook check-config` prints what is in effect.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print the effective configuration, secrets masked; exit non-zero on a problem.
    CheckConfig,
    /// Remove old event bodies and delivered notifications now, as the
    /// server's background pruner does; print the counts.
    Prune {
        /// Count what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The age beyond which rows go, e.g. 90d, 36h or 30m [default:
        /// PAYHOOK_RETENTION_DAYS days].
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<std::time::Duration>,
    },
    /// Ask the gateways' APIs about payments stuck in pending_external, once,
    /// and print what was checked and changed.
    ///
    /// Exits non-zero on a database error, or when every check failed.
    Reconcile {
        /// Check payments pending at least this long (e.g. 30s, 15m, 2h);
        /// default PAYHOOK_RECONCILE_AFTER.
        #[arg(long, value_name = "DURATION", value_parser = payhook_server::config::parse_duration, conflicts_with = "payment")]
        older_than: Option<std::time::Duration>,
        /// Check only this payment (payhook's id), whatever its status.
        #[arg(long, value_name = "ID")]
        payment: Option<i64>,
        /// Ask the gateways and print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    payhook_server::pruner::parse_period(text).ok_or_else(|| {
        "expected a positive whole number and a unit: d, h, m or s (e.g. 90d)".into()
    })
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("payhook: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", check::describe(&config));
            check::validate(&config).context("configuration check failed")
        }
        Command::Reconcile {
            older_than,
            payment,
            dry_run,
        } => {
            let _ = telemetry::init_stderr(config.log_format);
            let options = reconciler::CommandOptions {
                older_than,
                payment,
                dry_run,
            };
            match reconciler::run_command(&config, options).await {
                Ok((table, summary)) => {
                    print!("{table}");
                    if summary.all_failed() {
                        Err(anyhow::anyhow!("every check failed"))
                    } else {
                        Ok(())
                    }
                }
                Err(error) => Err(error),
            }
        }
        Command::Migrate => {
            let _ = telemetry::init(config.log_format);
            open_store(&config).map(|_| println!("migrations applied"))
        }
        Command::Prune {
            dry_run,
            older_than,
        } => payhook_server::pruner::prune_command(&config, older_than, dry_run).await,
        Command::Serve => {
            let parse_errors = telemetry::init(config.log_format);
            match Application::build_with(&config, parse_errors) {
                Ok(app) => app.run_until_stopped().await.context("server failed"),
                Err(error) => Err(error),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("payhook: {error:#}");
            ExitCode::FAILURE
        }
    }
}
