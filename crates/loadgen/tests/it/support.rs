//! Scratch databases for the tests: a SQLite file, or a PostgreSQL
//! database created beside the one `PAYHOOK_TEST_POSTGRES_URL` names; each
//! removed when dropped.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use payhook_loadgen::db::Database;

const POSTGRES_ENV: &str = "PAYHOOK_TEST_POSTGRES_URL";

/// A database of its own for one test, removed when dropped.
pub struct Scratch {
    /// Its URL, as `DATABASE_URL` takes it.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(mut admin) = Database::connect(admin_url) {
                    let _ = admin.batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }
}

fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A fresh SQLite file in the temp directory.
pub fn sqlite() -> Scratch {
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("payhook_loadgen_t")));
    Scratch {
        url: format!("sqlite://{}", path.display()),
        cleanup: Cleanup::Sqlite(path),
    }
}

/// `url` with its database name replaced by `name`, keeping any query string.
fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[authority_start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority_start + i);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |i| &url[authority_end + i..]);
    format!("{}/{name}{query}", &url[..authority_end])
}

/// A fresh PostgreSQL database beside the one `PAYHOOK_TEST_POSTGRES_URL`
/// names; `None` (said loudly) when it is not set, a panic when
/// `PAYHOOK_REQUIRE_POSTGRES` is.
pub fn postgres() -> Option<Scratch> {
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        assert!(
            std::env::var_os("PAYHOOK_REQUIRE_POSTGRES").is_none(),
            "PAYHOOK_REQUIRE_POSTGRES is set but {POSTGRES_ENV} is not"
        );
        eprintln!("=== PostgreSQL loadgen test SKIPPED: {POSTGRES_ENV} is not set ===");
        return None;
    };
    let name = unique_name("payhook_loadgen_t");
    let mut admin = Database::connect(&admin_url)
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but unreachable: {e:#}"));
    admin
        .batch(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    Some(Scratch {
        url: with_database(&admin_url, &name),
        cleanup: Cleanup::Postgres { admin_url, name },
    })
}

/// The management token of the servers the tests start.
pub const TOKEN: &str = "loadgen-test-token";
/// Their Stripe endpoint secret.
pub const STRIPE_SECRET: &str = "whsec_loadgen_test_secret";

/// Starts a payhook server in this process, on a free port of 127.0.0.1,
/// on the database at `database_url`; call inside an actix system. Abort
/// the handle to stop it.
pub fn start_server(
    database_url: &str,
) -> (
    payhook_loadgen::target::LoopbackUrl,
    actix_rt::task::JoinHandle<std::io::Result<()>>,
) {
    start_server_with(database_url, |_| {})
}

/// [`start_server`], with `adjust` applied to its configuration first.
pub fn start_server_with(
    database_url: &str,
    adjust: impl FnOnce(&mut payhook_server::Config),
) -> (
    payhook_loadgen::target::LoopbackUrl,
    actix_rt::task::JoinHandle<std::io::Result<()>>,
) {
    let variables = [
        ("DATABASE_URL", database_url),
        ("PAYHOOK_ADDR", "127.0.0.1:0"),
        ("PAYHOOK_API_TOKEN", TOKEN),
        ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
    ];
    let mut config = payhook_server::Config::from_lookup(|name| {
        variables
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .expect("a valid server configuration");
    adjust(&mut config);
    let application = payhook_server::Application::build(&config).expect("the server builds");
    let url = payhook_loadgen::target::LoopbackUrl::parse(&format!(
        "http://127.0.0.1:{}",
        application.port()
    ))
    .expect("a loopback URL");
    (url, actix_rt::spawn(application.run_until_stopped()))
}
