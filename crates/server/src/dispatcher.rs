//! The outbox dispatcher: a background task that claims due outbox rows,
//! hands them to the notifier, and records each result.
//!
//! A claim returns at most one row per order (the oldest pending one), so
//! the rows of one batch are delivered concurrently and the rows of one
//! order strictly one after the other. A row is claimed under a lease
//! ([`LEASE`]): another dispatcher (this or another process) does not take
//! it until the lease runs out, so a dispatcher killed mid-delivery only
//! delays its rows. Delivery is at least once: a crash after the shop
//! answered and before the row was marked sends it again.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use payhook_domain::ports::{Notifier, OutboxStore};
use payhook_domain::{OutboxMessage, OutboxStatus, RetryPolicy};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::watch;

use crate::metrics::NotificationCounter;

/// How long a claim keeps a row from other dispatchers.
pub const LEASE: Duration = Duration::from_secs(30);

/// Most rows claimed at once.
pub const BATCH: u32 = 32;

/// How the dispatcher runs.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Backoff and attempts.
    pub retry: RetryPolicy,
    /// The pause when nothing was due.
    pub poll: Duration,
    /// How long a claim holds its rows; longer than a delivery can take.
    pub lease: Duration,
    /// Most rows claimed at once.
    pub batch: u32,
}

/// Drains the outbox until told to stop.
pub struct Dispatcher {
    store: Arc<dyn OutboxStore>,
    notifier: Rc<dyn Notifier>,
    settings: DispatchSettings,
    counter: NotificationCounter,
    random: SystemRandom,
}

impl Dispatcher {
    /// A dispatcher over `store` delivering with `notifier`.
    pub fn new(
        store: Arc<dyn OutboxStore>,
        notifier: Rc<dyn Notifier>,
        settings: DispatchSettings,
        counter: NotificationCounter,
    ) -> Self {
        Self {
            store,
            notifier,
            settings,
            counter,
            random: SystemRandom::new(),
        }
    }

    /// Runs until `stop` turns true (or its sender is dropped). A batch in
    /// flight is finished first; each call is bounded by the notifier's timeout.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            poll_ms = u64::try_from(self.settings.poll.as_millis()).unwrap_or(u64::MAX),
            max_attempts = self.settings.retry.max_attempts,
            "outbox dispatcher started"
        );
        loop {
            if *stop.borrow() {
                break;
            }
            let busy = self.run_once().await > 0;
            if busy {
                // More may be due now (the next row of an order just delivered).
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::info!("outbox dispatcher stopped");
    }

    /// Claims one batch and delivers it; returns how many rows it claimed.
    pub async fn run_once(&self) -> usize {
        let claimed = match self
            .store
            .claim_due(Utc::now(), self.settings.lease, self.settings.batch)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "cannot claim outbox rows; retrying at the next poll");
                return 0;
            }
        };
        let count = claimed.len();
        let delivered: Vec<i64> =
            futures_util::future::join_all(claimed.iter().map(|message| self.deliver(message)))
                .await
                .into_iter()
                .flatten()
                .collect();
        // One write for the batch: marked one by one, the rows each waited
        // for the store's writer behind the webhooks, and under load the
        // dispatcher fell hundreds of thousands of rows behind.
        if !delivered.is_empty() {
            match self.store.mark_all_delivered(&delivered, Utc::now()).await {
                Ok(marked) => {
                    for _ in 0..marked {
                        self.counter.count("delivered");
                    }
                }
                // Delivered but not recorded: sent again after the lease,
                // under the same webhook-id.
                Err(error) => tracing::error!(
                    notifications = delivered.len(),
                    %error,
                    "delivered but cannot mark the notifications delivered"
                ),
            }
        }
        count
    }

    fn jitter(&self) -> f64 {
        let mut bytes = [0u8; 8];
        if self.random.fill(&mut bytes).is_err() {
            return 1.0;
        }
        (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Sends one notification; its id when the shop took it (the batch
    /// marks those delivered together), `None` after recording a failure.
    async fn deliver(&self, message: &OutboxMessage) -> Option<i64> {
        match self.notifier.deliver(message).await {
            Ok(()) => Some(message.id),
            Err(failure) => {
                let reason = failure.to_string();
                let marked = self
                    .store
                    .mark_failed(
                        message.id,
                        &reason,
                        Utc::now(),
                        &self.settings.retry,
                        self.jitter(),
                    )
                    .await;
                match marked {
                    Ok(OutboxStatus::Dead) => {
                        self.counter.count("dead");
                        tracing::error!(
                            notification = message.id,
                            kind = message.kind.as_str(),
                            order_id = message.order_id.0,
                            attempts = message.attempts + 1,
                            error = %reason,
                            "notification is dead after its last attempt; re-queue it with \
                             POST /api/v1/notifications/{{id}}/requeue/"
                        );
                    }
                    Ok(_) => {
                        self.counter.count("retried");
                        tracing::warn!(
                            notification = message.id,
                            attempts = message.attempts + 1,
                            error = %reason,
                            "notification not delivered; will retry"
                        );
                    }
                    Err(error) => tracing::error!(
                        notification = message.id,
                        %error,
                        "cannot record a failed delivery; retried after the lease"
                    ),
                }
                None
            }
        }
    }
}
