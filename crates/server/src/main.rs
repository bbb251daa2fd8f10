//! The `payhook` binary: parses the command line and starts the server.

use anyhow::Context;
use payhook_server::{open_store, telemetry, Application, Config};

const USAGE: &str = "usage: payhook [serve|migrate]\n\
  serve    run the HTTP server (default)\n\
  migrate  apply the database migrations and exit\n\
configuration comes from the environment; see the README";

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let command = std::env::args().nth(1);
    if matches!(command.as_deref(), Some("-h" | "--help" | "help")) {
        println!("{USAGE}");
        return Ok(());
    }
    telemetry::init(std::env::var("PAYHOOK_LOG_FORMAT").is_ok_and(|f| f == "json"));
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("payhook: configuration error: {error}");
            std::process::exit(2);
        }
    };
    match command.as_deref() {
        None | Some("serve") => {
            let app = Application::build(&config)?;
            app.run_until_stopped().await.context("server failed")
        }
        Some("migrate") => {
            open_store(&config)?;
            println!("migrations applied");
            Ok(())
        }
        Some(other) => {
            eprintln!("payhook: unknown command {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    }
}
