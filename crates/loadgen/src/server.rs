//! Starting a payhook server for a run and watching its memory: a free
//! loopback port, the environment the server reads, a log file, and a
//! sampler of `/proc/<pid>/status` every 100 ms. The server is stopped when
//! the [`SpawnedServer`] is dropped, whatever happened to the run.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::proc_stats;
use crate::target::LoopbackUrl;

/// How often the server's memory is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The variables [`SpawnedServer::start`] sets itself, which
/// [`ServerSpec::env`] may not name.
pub const OWN_VARIABLES: [&str; 4] = [
    "DATABASE_URL",
    "PAYHOOK_ADDR",
    "PAYHOOK_API_TOKEN",
    "STRIPE_WEBHOOK_SECRET",
];

/// Why a `--server-env` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Not `KEY=VALUE` with a non-empty name of letters, digits and `_`.
    #[error("`{0}` is not KEY=VALUE (such as PAYHOOK_RETENTION_DAYS=1)")]
    Malformed(String),
    /// A variable the load generator sets itself.
    #[error("{0} is set by payhook-loadgen itself (see --database-url, --token, --stripe-secret)")]
    Own(String),
}

/// Reads one `--server-env KEY=VALUE`.
pub fn parse_env(text: &str) -> Result<(String, String), EnvError> {
    let (key, value) = text
        .split_once('=')
        .filter(|(key, _)| {
            !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .ok_or_else(|| EnvError::Malformed(text.to_owned()))?;
    if OWN_VARIABLES.contains(&key) {
        return Err(EnvError::Own(key.to_owned()));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// What the server is started with.
#[derive(Clone)]
pub struct ServerSpec {
    /// The `payhook` binary.
    pub binary: PathBuf,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `PAYHOOK_API_TOKEN`.
    pub api_token: String,
    /// `STRIPE_WEBHOOK_SECRET`.
    pub stripe_secret: String,
    /// Where the server's stdout and stderr go.
    pub log_file: PathBuf,
    /// More variables for it (`--server-env`), such as a retention
    /// setting; none of [`OWN_VARIABLES`].
    pub env: Vec<(String, String)>,
}

impl std::fmt::Debug for ServerSpec {
    // The token, the secret, a PostgreSQL password and any value of
    // `env` (which may be another secret) stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("ServerSpec")
            .field("binary", &self.binary)
            .field("database_url", &"[redacted]")
            .field("api_token", &"[redacted]")
            .field("stripe_secret", &"[redacted]")
            .field("log_file", &self.log_file)
            .field("env", &names)
            .finish()
    }
}

/// The highest memory figures seen so far, shared with the sampler thread.
#[derive(Debug, Default)]
struct Peaks {
    rss_kib: AtomicU64,
    hwm_kib: AtomicU64,
}

/// A running server and its memory sampler.
pub struct SpawnedServer {
    child: Child,
    url: LoopbackUrl,
    log_file: PathBuf,
    peaks: Arc<Peaks>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

/// A free TCP port on 127.0.0.1, found by binding port 0 and letting go.
/// Another process could take it in between; start-up then fails loudly.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl SpawnedServer {
    /// Starts `spec.binary serve` on a free port of 127.0.0.1 and starts
    /// sampling its memory. Readiness is the caller's to wait for.
    pub fn start(spec: &ServerSpec) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log = File::create(&spec.log_file)
            .with_context(|| format!("cannot create {}", spec.log_file.display()))?;
        let child = Command::new(&spec.binary)
            .arg("serve")
            .env("DATABASE_URL", &spec.database_url)
            .env("PAYHOOK_ADDR", format!("127.0.0.1:{port}"))
            .env("PAYHOOK_API_TOKEN", &spec.api_token)
            .env("STRIPE_WEBHOOK_SECRET", &spec.stripe_secret)
            .envs(spec.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share the log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", spec.binary.display()))?;
        let url = LoopbackUrl::parse(&format!("http://127.0.0.1:{port}"))
            .expect("127.0.0.1 with a port is a loopback URL");
        let peaks = Arc::new(Peaks::default());
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (pid, peaks, stop) = (child.id(), peaks.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rss-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some((rss, hwm)) = proc_stats::memory_kib(pid) else {
                            break;
                        };
                        peaks.rss_kib.fetch_max(rss, Ordering::Relaxed);
                        peaks.hwm_kib.fetch_max(hwm, Ordering::Relaxed);
                        std::thread::sleep(SAMPLE_EVERY);
                    }
                })
                .context("cannot start the memory sampler")?
        };
        Ok(Self {
            child,
            url,
            log_file: spec.log_file.clone(),
            peaks,
            stop,
            sampler: Some(sampler),
        })
    }

    /// The server's base URL.
    pub fn url(&self) -> &LoopbackUrl {
        &self.url
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its output goes.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Fails when the process has already exited (e.g. a bad configuration).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the server exited at start-up ({status}); see {}",
                self.log_file.display()
            );
        }
        Ok(())
    }

    /// The peak resident set in KiB: the kernel's high-water mark (`VmHWM`),
    /// or the highest sampled `VmRSS` if that is higher; read once more now.
    pub fn peak_rss_kib(&self) -> u64 {
        if let Some((rss, hwm)) = proc_stats::memory_kib(self.pid()) {
            self.peaks.rss_kib.fetch_max(rss, Ordering::Relaxed);
            self.peaks.hwm_kib.fetch_max(hwm, Ordering::Relaxed);
        }
        self.peaks
            .hwm_kib
            .load(Ordering::Relaxed)
            .max(self.peaks.rss_kib.load(Ordering::Relaxed))
    }

    /// The resident set now, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        proc_stats::memory_kib(self.pid()).map(|(rss, _)| rss)
    }

    /// CPU time the server has used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        proc_stats::process_cpu_time(self.pid())
    }

    /// Stops the server: SIGTERM (a graceful actix shutdown), then SIGKILL
    /// after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            // A panicked sampler only loses samples.
            let _ = sampler.join();
        }
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // std has no SIGTERM and this crate forbids `unsafe`, so ask kill(1).
        let termed = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + grace;
        while termed && Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_env_is_key_equals_value_and_never_one_of_ours() {
        assert_eq!(
            parse_env("PAYHOOK_RETENTION_DAYS=1"),
            Ok(("PAYHOOK_RETENTION_DAYS".into(), "1".into()))
        );
        assert_eq!(
            parse_env("RUST_LOG="),
            Ok(("RUST_LOG".into(), String::new()))
        );
        assert_eq!(
            parse_env("A=b=c"),
            Ok(("A".into(), "b=c".into())),
            "the value may hold ="
        );
        for bad in ["PAYHOOK_RETENTION_DAYS", "=1", "1X=2", "A-B=1", "A B=1"] {
            assert_eq!(
                parse_env(bad),
                Err(EnvError::Malformed(bad.into())),
                "{bad}"
            );
        }
        for own in OWN_VARIABLES {
            assert_eq!(
                parse_env(&format!("{own}=x")),
                Err(EnvError::Own(own.into()))
            );
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let spec = ServerSpec {
            binary: "payhook".into(),
            database_url: "postgres://user:hunter2@127.0.0.1/db".into(),
            api_token: "token-sesame".into(),
            stripe_secret: "whsec_sesame".into(),
            log_file: "log".into(),
            env: vec![("PAYPAL_CLIENT_SECRET".into(), "pp-sesame".into())],
        };
        let shown = format!("{spec:?}");
        for secret in ["hunter2", "sesame"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("PAYPAL_CLIENT_SECRET"));
    }
}
