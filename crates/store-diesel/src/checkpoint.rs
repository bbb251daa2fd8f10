//! SQLite checkpoints on a thread of their own.
//!
//! By default SQLite copies the WAL back into the database file (a
//! checkpoint) inside the commit that takes the WAL past 1 000 pages, so
//! under load one batch in many also pays for the copy and two more fsyncs,
//! and every event waiting on that batch waits for them too. The pooled
//! connections turn that off (`wal_autocheckpoint = 0`, see `conn`) and this
//! thread checkpoints every [`INTERVAL`] instead, beside the writers:
//! `PASSIVE` never blocks them.
//!
//! A passive checkpoint running beside writers rarely copies the very last
//! frame, and SQLite starts the WAL over from its beginning only after a
//! checkpoint that copied everything. So once the WAL has passed
//! [`RESTART_FRAMES`] and passive passes have left fewer than
//! [`CATCH_UP_FRAMES`] to copy, the last pass holds the store's SQLite
//! writer mutex: the pause is short, and the next commit restarts the
//! file, which bounds its size.
//!
//! Checkpoints back to back beside committing writers are the setting of
//! SQLite's WAL-reset bug, fixed in 3.51.3: the bundled SQLite must be at
//! least that (test `bundled_sqlite_has_the_wal_reset_fix` in `conn`).

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

use diesel::sql_types::Integer;
use diesel::{QueryableByName, RunQueryDsl};

use crate::conn::{DbConn, Manager, StoreConn};

/// How often the WAL is copied back.
const INTERVAL: Duration = Duration::from_millis(100);

/// WAL frames (pages) past which the checkpoint also makes the WAL restart:
/// 4 MiB of 4 KiB pages, about where SQLite's own default (1 000) keeps it.
const RESTART_FRAMES: i32 = 1024;

/// Frames left to copy under which the writers are held for the restart.
const CATCH_UP_FRAMES: i32 = 128;

/// Passive passes in one tick at most.
const CATCH_UP_PASSES: usize = 4;

/// What `PRAGMA wal_checkpoint` answers.
#[derive(QueryableByName)]
struct CheckpointRow {
    /// Frames in the WAL.
    #[diesel(sql_type = Integer)]
    log: i32,
    /// Frames copied back so far.
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

/// The running checkpointer. Dropping it (with the last clone of the
/// store) stops the thread after one last checkpoint.
pub(crate) struct Checkpointer {
    _stop: Sender<()>,
}

impl Checkpointer {
    /// Starts the thread, which takes a pooled connection for each checkpoint.
    pub(crate) fn start(pool: r2d2::Pool<Manager>) -> Self {
        let (stop, stopped) = channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("payhook-checkpoint".into())
            .spawn(move || loop {
                let last = match stopped.recv_timeout(INTERVAL) {
                    Err(RecvTimeoutError::Timeout) => false,
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                };
                checkpoint(&pool);
                if last {
                    break;
                }
            });
        if let Err(error) = spawned {
            // Without it the WAL grows until the process ends; say so loudly.
            tracing::error!(%error, "cannot start the SQLite checkpoint thread");
        }
        Self { _stop: stop }
    }
}

/// Passive checkpoints, and, once the WAL is long and nearly all copied,
/// the last few frames under the writer mutex so that the WAL restarts.
fn checkpoint(pool: &r2d2::Pool<Manager>) {
    // A busy pool means busy writers: the next tick will do.
    let Some(mut conn) = pool.try_get() else {
        return;
    };
    let StoreConn { db, writer } = &mut *conn;
    let DbConn::Sqlite(sqlite) = db else {
        return;
    };
    let mut passive =
        || diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<CheckpointRow>(sqlite);
    // Each pass copies what was committed when it began, so a few passes
    // catch up with the writers; the bound keeps one tick short.
    for _ in 0..CATCH_UP_PASSES {
        match passive() {
            Ok(row) if row.log < RESTART_FRAMES => return,
            Ok(row) if row.log - row.checkpointed <= CATCH_UP_FRAMES => {
                // Writers wait only while these last frames are copied.
                let _writer = writer.hold();
                if let Err(error) = passive() {
                    tracing::warn!(%error, "SQLite checkpoint failed");
                }
                return;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "SQLite checkpoint failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use chrono::DateTime;
    use payhook_domain::{Currency, Money, NewOrder};

    use super::*;
    use crate::{ops, DieselStore, StoreOptions};

    #[test]
    fn the_wal_is_copied_back_without_a_commit_doing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = DieselStore::open(
            &format!("sqlite://{}", path.display()),
            &StoreOptions::default(),
        )
        .unwrap();
        store.migrate().unwrap();
        let wal = dir.path().join("c.db-wal");
        let mut conn = store.pool.get().unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let usd = Currency::parse("USD").unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for n in 0..300 {
            let order = NewOrder {
                client_id: format!("client-{n}-{}", "x".repeat(200)),
                total: Money::from_minor(100, usd),
            };
            ops::create_order(&mut conn, &order, now).unwrap();
        }
        drop(conn);
        // No connection checkpoints on commit (wal_autocheckpoint = 0), so
        // only the thread can make the database file itself grow.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() <= before {
            assert!(
                Instant::now() < deadline,
                "no checkpoint within 10 s: database file {before} bytes, WAL {} bytes",
                std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)
            );
            std::thread::sleep(INTERVAL);
        }
    }
}
