//! More than one server on one database (`payhook-loadgen --servers N`):
//! the further servers are started like the first, each on a free port of
//! 127.0.0.1 with its own log file, once the first is ready (so that only
//! one of them migrates a fresh database), and the deliveries go to each
//! in turn (`load::deliver_to`). Setup and the checks go through the first.
//! Bounded: at most [`MAX_SERVERS`], all on the loopback interface.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::load;
use crate::server::{ServerSpec, SpawnedServer};
use crate::target::LoopbackUrl;

/// The most servers one run starts.
pub const MAX_SERVERS: u8 = 4;

/// `payhook-load-<run>.log` as `payhook-load-<run>.2.log` for server 2.
pub fn numbered_log(first: &std::path::Path, number: usize) -> PathBuf {
    let stem = first
        .file_stem()
        .map_or_else(|| "server".into(), |s| s.to_string_lossy().into_owned());
    let extension = first
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    first.with_file_name(format!("{stem}.{number}{extension}"))
}

/// Starts `count` more servers like `first` (same binary, database,
/// token and secret), each with its log beside the first's, and waits
/// until each is ready.
pub async fn start_more(
    client: &awc::Client,
    first: &ServerSpec,
    count: usize,
) -> anyhow::Result<Vec<SpawnedServer>> {
    let mut more = Vec::with_capacity(count);
    for number in 2..count + 2 {
        let spec = ServerSpec {
            log_file: numbered_log(&first.log_file, number),
            ..first.clone()
        };
        let mut server =
            SpawnedServer::start(&spec).with_context(|| format!("cannot start server {number}"))?;
        let url = server.url().clone();
        load::wait_ready(client, &url, Duration::from_secs(60), || {
            server.check_alive()
        })
        .await?;
        println!(
            "spawned payhook {number}: pid {} on {} (log: {})",
            server.pid(),
            server.url().as_str(),
            spec.log_file.display()
        );
        more.push(server);
    }
    Ok(more)
}

/// The servers' base URLs, the first first.
pub fn urls(first: &LoopbackUrl, more: &[SpawnedServer]) -> Vec<LoopbackUrl> {
    std::iter::once(first.clone())
        .chain(more.iter().map(|server| server.url().clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_has_its_own_log() {
        let first = std::path::Path::new("logs").join("payhook-load-1a.log");
        assert_eq!(
            numbered_log(&first, 2),
            std::path::Path::new("logs").join("payhook-load-1a.2.log")
        );
        assert_eq!(
            numbered_log(std::path::Path::new("server"), 3),
            std::path::Path::new("server.3")
        );
    }
}
