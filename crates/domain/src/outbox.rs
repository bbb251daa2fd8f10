//! Delivering the outbox to the shop: the stored notification as the
//! dispatcher sees it, and the retry schedule as a pure function.
//!
//! Every state change writes its outbox row in the same transaction as the
//! change (see [`crate::Decision::notifications`]). A dispatcher then claims
//! due rows ([`crate::ports::OutboxStore::claim_due`]), hands each to a
//! [`crate::ports::Notifier`], and records the result. Delivery is at least
//! once: a row is marked delivered only after the shop answered, so a crash
//! between the two sends it again, under the same [`OutboxMessage::webhook_id`].
//!
//! Order per order: only the oldest pending row of an order is claimable, so
//! a later notification of the same order waits until the earlier one is
//! delivered. A dead row (attempts exhausted) no longer blocks the rows
//! after it: the shop would otherwise never hear of its order again, and
//! the dead one stays listed for an operator to re-queue.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::decision::NotificationKind;
use crate::payment::{OrderId, PaymentId};

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    /// Not delivered yet; retried when due.
    Pending,
    /// The shop answered 2xx.
    Delivered,
    /// Every attempt failed; waits for an operator to re-queue it.
    Dead,
}

impl OutboxStatus {
    /// The stored name: `pending`, `delivered` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Reads a stored name back; `None` for any other text.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// One outbox row, as the dispatcher and the management API see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The row id, increasing with time.
    pub id: i64,
    /// What happened.
    pub kind: NotificationKind,
    /// The order concerned.
    pub order_id: OrderId,
    /// The payment concerned.
    pub payment_id: PaymentId,
    /// The JSON rendered when the change committed
    /// ([`crate::Notification::for_payment`]).
    pub payload: String,
    /// Where it stands.
    pub status: OutboxStatus,
    /// Failed delivery attempts so far (reset to 0 by a re-queue).
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Not to be tried before this instant.
    pub next_attempt_at: DateTime<Utc>,
    /// When the change that wrote it committed.
    pub created_at: DateTime<Utc>,
    /// When the shop acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl OutboxMessage {
    /// The message id the shop receives (`webhook-id`): the same on every
    /// attempt, so the shop can recognise a repeat.
    pub fn webhook_id(&self) -> String {
        format!("msg_payhook_{}", self.id)
    }

    /// The body the shop receives: the stored payload with
    /// `"notification_id"` (the row id) added. A payload that is not a JSON
    /// object is sent as it is.
    pub fn body(&self) -> String {
        match serde_json::from_str::<serde_json::Value>(&self.payload) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.insert("notification_id".into(), self.id.into());
                serde_json::Value::Object(fields).to_string()
            }
            _ => self.payload.clone(),
        }
    }
}

/// When to try again after a failed attempt, and when to give up.
///
/// The delay before retry `n` (after the `n`-th failed attempt) is
/// `min(base * 2^(n-1), max)`, scaled by a jitter factor between 1/2 and 1
/// so that many rows failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before the first retry, before jitter.
    pub base: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
    /// Attempts in all; after this many failures the row is dead.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 5 s, doubling, capped at 10 minutes, 12 attempts (about an hour).
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(600),
            max_attempts: 12,
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try again at this instant.
    RetryAt(DateTime<Utc>),
    /// Give up: the row is dead.
    Dead,
}

impl RetryPolicy {
    /// The delay after `failures` failed attempts (1 for the first), with
    /// `jitter` in `[0, 1]` choosing between half and all of the backoff
    /// (values outside are clamped).
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let backoff = self
            .base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        backoff.mul_f64(0.5 + 0.5 * jitter)
    }

    /// What to do after the `failures`-th failed attempt at `now`.
    pub fn next_step(&self, failures: u32, now: DateTime<Utc>, jitter: f64) -> NextStep {
        if failures >= self.max_attempts {
            return NextStep::Dead;
        }
        let delay = chrono::TimeDelta::from_std(self.delay(failures, jitter))
            .unwrap_or(chrono::TimeDelta::MAX);
        NextStep::RetryAt(now.checked_add_signed(delay).unwrap_or(now))
    }
}

/// Why a delivery attempt failed. Every one is retried until the attempts
/// run out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The shop answered, but not with 2xx.
    #[error("the shop answered {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// No answer within the timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// The shop could not be reached (connection refused, DNS, TLS).
    #[error("the shop is unreachable: {0}")]
    Unreachable(String),
    /// Anything else.
    #[error("delivery failed: {0}")]
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_default_schedule_starts_within_five_seconds_doubles_and_is_capped() {
        let policy = RetryPolicy::default();
        assert!(policy.delay(1, 1.0) <= S(5));
        assert!(policy.delay(1, 0.0) >= Duration::from_millis(2500));
        assert_eq!(policy.delay(2, 1.0), S(10));
        assert_eq!(policy.delay(3, 1.0), S(20));
        assert_eq!(policy.delay(8, 1.0), S(600), "5 * 2^7 = 640 is capped");
        assert_eq!(policy.delay(40, 1.0), S(600));
        assert_eq!(policy.delay(u32::MAX, 1.0), S(600));
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        let policy = RetryPolicy::default();
        for failures in 1..20 {
            let full = policy.delay(failures, 1.0);
            for jitter in [0.0, 0.1, 0.5, 0.99, 1.0, -3.0, 7.0, f64::NAN] {
                let delay = policy.delay(failures, jitter);
                assert!(delay <= full && delay >= full / 2, "{failures} {jitter}");
            }
        }
    }

    #[test]
    fn the_last_attempt_makes_the_row_dead() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let now = DateTime::UNIX_EPOCH;
        assert_eq!(
            policy.next_step(1, now, 1.0),
            NextStep::RetryAt(now + chrono::TimeDelta::seconds(5))
        );
        assert!(matches!(
            policy.next_step(2, now, 0.0),
            NextStep::RetryAt(_)
        ));
        assert_eq!(policy.next_step(3, now, 0.0), NextStep::Dead);
    }

    #[test]
    fn statuses_round_trip_and_the_body_names_the_row() {
        for status in [
            OutboxStatus::Pending,
            OutboxStatus::Delivered,
            OutboxStatus::Dead,
        ] {
            assert_eq!(OutboxStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OutboxStatus::parse("sent"), None);
        let message = OutboxMessage {
            id: 7,
            kind: NotificationKind::OrderPaid,
            order_id: OrderId(1),
            payment_id: PaymentId(2),
            payload: r#"{"type":"order.paid"}"#.into(),
            status: OutboxStatus::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_at: DateTime::UNIX_EPOCH,
            created_at: DateTime::UNIX_EPOCH,
            delivered_at: None,
        };
        assert_eq!(message.webhook_id(), "msg_payhook_7");
        let body: serde_json::Value = serde_json::from_str(&message.body()).unwrap();
        assert_eq!(body["notification_id"], 7);
        assert_eq!(body["type"], "order.paid");
    }
}
