//! Retention: what the pruner removes once the audit no longer needs it,
//! in short transactions so that webhooks never wait behind it.

use chrono::{DateTime, Utc};
use payhook_domain::ports::StoreError;

use crate::{ops, DieselStore};

/// What [`DieselStore::prune`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneQuery {
    /// The cut-off: only events last processed, and outbox rows delivered,
    /// strictly before this instant.
    pub before: DateTime<Utc>,
    /// Rows per transaction (at least 1). Each batch is its own short
    /// transaction on its own pooled connection, so a webhook waits for at
    /// most one batch, never for the whole run.
    pub batch: u32,
    /// Count what would go, change nothing.
    pub dry_run: bool,
    /// Now, recorded as each pruned event's `pruned_at`.
    pub now: DateTime<Utc>,
}

/// What [`DieselStore::prune`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Events whose raw body was removed. Their rows stay: a late
    /// re-delivery is still a duplicate, and the audit still lists them.
    pub event_bodies: u64,
    /// Delivered outbox rows deleted.
    pub outbox_rows: u64,
    /// Batches run: one transaction each (reads only in a dry run).
    pub batches: u32,
}

impl DieselStore {
    /// Removes the raw body of the events whose outcome is final
    /// (never evaluated again) and that were last processed before
    /// `query.before`, and deletes the outbox rows delivered before it,
    /// `query.batch` rows per transaction until none is left.
    ///
    /// An event whose outcome is not final (unmatched, an amount or refund
    /// refused, waiting for its payment to complete) keeps its body: it can
    /// still be applied. A pruned event's body reads as empty and its
    /// `pruned_at` is when it was removed. With `dry_run`, nothing is written and the
    /// report counts what would go.
    pub async fn prune(&self, query: PruneQuery) -> Result<PruneReport, StoreError> {
        let batch = query.batch.max(1);
        let mut report = PruneReport::default();
        let mut events = None;
        loop {
            let done = self
                .run(move |conn| {
                    ops::prune::prune_events(
                        conn,
                        query.before,
                        query.now,
                        batch,
                        query.dry_run,
                        events,
                    )
                })
                .await?;
            report.event_bodies += done.pruned;
            report.batches += u32::from(done.pruned > 0);
            match done.cursor {
                Some(cursor) if done.more => events = Some(cursor),
                _ => break,
            }
        }
        let mut outbox = None;
        loop {
            let done = self
                .run(move |conn| {
                    ops::prune::prune_outbox(conn, query.before, batch, query.dry_run, outbox)
                })
                .await?;
            report.outbox_rows += done.pruned;
            report.batches += u32::from(done.pruned > 0);
            match done.cursor {
                Some(cursor) if done.more => outbox = Some(cursor),
                _ => break,
            }
        }
        Ok(report)
    }
}
