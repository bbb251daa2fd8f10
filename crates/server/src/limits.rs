//! Abuse protection: per-client token buckets for requests that fail
//! verification or authentication, a global byte budget for webhook bodies
//! being received, and a global bound on verified work in flight.
//!
//! A real gateway's burst is never throttled by the buckets, because only
//! failures take tokens; it is bounded only by the in-flight limit, which
//! answers 503 with `Retry-After` so the gateway retries.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of one server process.
pub struct Limits {
    failed_verification: DefaultKeyedRateLimiter<IpAddr>,
    failed_authentication: DefaultKeyedRateLimiter<IpAddr>,
    in_flight: Arc<Semaphore>,
    receiving: Arc<Semaphore>,
    clock: DefaultClock,
}

impl Limits {
    /// `per_second` sustained failures per client address with bursts of
    /// `burst`; at most `max_in_flight` verified webhooks processed at once;
    /// at most `max_receiving_bytes` of webhook bodies held while they are
    /// received (clamped to what a semaphore can count).
    pub fn new(
        per_second: NonZeroU32,
        burst: NonZeroU32,
        max_in_flight: usize,
        max_receiving_bytes: usize,
    ) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            failed_verification: RateLimiter::keyed(quota),
            failed_authentication: RateLimiter::keyed(quota),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            receiving: Arc::new(Semaphore::new(
                max_receiving_bytes.min(Semaphore::MAX_PERMITS),
            )),
            clock: DefaultClock::default(),
        }
    }

    fn take(
        &self,
        limiter: &DefaultKeyedRateLimiter<IpAddr>,
        client: Option<IpAddr>,
    ) -> Result<(), u64> {
        // Without a peer address (a Unix socket, a test transport) there is
        // no key to throttle on.
        let Some(client) = client else { return Ok(()) };
        // The map of buckets grows with the number of addresses; drop the
        // full ones now and then so a scan of many addresses cannot grow it forever.
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Records a failed signature check from `client`; `Err(seconds)` when
    /// the client is over its budget and must be answered 429.
    pub fn failed_verification(&self, client: Option<IpAddr>) -> Result<(), u64> {
        self.take(&self.failed_verification, client)
    }

    /// Records a failed bearer-token check from `client`, as above.
    pub fn failed_authentication(&self, client: Option<IpAddr>) -> Result<(), u64> {
        self.take(&self.failed_authentication, client)
    }

    /// A slot for one verified webhook, or `None` when the server is at its limit.
    pub fn in_flight(&self) -> Option<OwnedSemaphorePermit> {
        self.in_flight.clone().try_acquire_owned().ok()
    }

    /// `bytes` more of the receiving budget, returned when the permit is
    /// dropped; `None` when the bodies already being received hold the
    /// rest. It never waits: a client that cannot be received now is told
    /// to retry, rather than queued behind stalled uploads.
    pub fn receiving(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let bytes = u32::try_from(bytes).ok()?;
        self.receiving.clone().try_acquire_many_owned(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_throttled_per_address_after_the_burst() {
        let limits = Limits::new(NonZeroU32::MIN, NonZeroU32::new(3).unwrap(), 2, 10);
        let attacker = Some(IpAddr::from([10, 0, 0, 1]));
        let other = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert_eq!(limits.failed_verification(attacker), Ok(()));
        }
        let retry_after = limits.failed_verification(attacker).unwrap_err();
        assert!((1..=1).contains(&retry_after), "{retry_after}");
        assert_eq!(limits.failed_verification(other), Ok(()));
        // Authentication failures have their own budget.
        assert_eq!(limits.failed_authentication(attacker), Ok(()));
    }

    #[test]
    fn in_flight_slots_are_bounded_and_returned() {
        let limits = Limits::new(NonZeroU32::MIN, NonZeroU32::MIN, 2, 10);
        let first = limits.in_flight().unwrap();
        let _second = limits.in_flight().unwrap();
        assert!(limits.in_flight().is_none());
        drop(first);
        assert!(limits.in_flight().is_some());
    }

    #[test]
    fn the_receiving_budget_is_shared_and_returned() {
        let limits = Limits::new(NonZeroU32::MIN, NonZeroU32::MIN, 2, 10);
        let mut first = limits.receiving(4).unwrap();
        first.merge(limits.receiving(4).unwrap());
        assert!(limits.receiving(3).is_none());
        let _second = limits.receiving(2).unwrap();
        drop(first);
        assert!(limits.receiving(8).is_some());
    }
}
