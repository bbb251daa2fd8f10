//! The pace of a soak: deliveries started at a steady rate, never more
//! than a fixed number in flight, and every answer counted into the
//! current window (a minute, unless shortened for a test).
//!
//! Paced, not open-loop: a request waits for a free connection before its
//! slot, so a server slower than the rate gets fewer requests (the
//! window's req/s shows it) instead of an ever longer queue. Latency is
//! measured from the moment a request is sent, as in a normal run. A
//! slot missed because the loader was busy (building a chunk's bodies) is
//! made up for only within [`CATCH_UP`], so a stall never turns into a
//! burst longer than that.
//!
//! What it deliberately does not do: decide what is sent ([`crate::load`])
//! or what a window's figures mean ([`crate::soak`]).

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// How far behind the schedule slots are still made up for.
pub const CATCH_UP: Duration = Duration::from_millis(20);

/// The highest rate a soak accepts, in requests per second: far above
/// what one machine serves, so only a typo is refused.
pub const MAX_RATE: f64 = 1_000_000.0;

/// Why a rate was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    /// Zero, negative, not a number, or above [`MAX_RATE`].
    #[error("the rate must be above 0 and at most {MAX_RATE} requests/s, got {0}")]
    OutOfRange(f64),
}

/// The answers of one window.
#[derive(Debug, Clone)]
pub struct Window {
    /// When it started.
    pub started: Instant,
    /// Requests answered (or failed) in it: every delivery, the early 409s
    /// included.
    pub requests: usize,
    /// Of those, final answers other than 2xx, and transport errors.
    pub errors: usize,
    /// The latency of every request that got an answer.
    pub latencies: Vec<Duration>,
}

impl Window {
    /// An empty window starting at `started`.
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            requests: 0,
            errors: 0,
            latencies: Vec::new(),
        }
    }
}

/// The shared pace of one soak, on the one thread of the runtime.
#[derive(Debug)]
pub struct Pace {
    in_flight: Semaphore,
    interval: Duration,
    next_slot: Cell<Instant>,
    window: RefCell<Window>,
}

impl Pace {
    /// `rate` requests per second with at most `in_flight` at once,
    /// starting now.
    pub fn new(rate: f64, in_flight: usize) -> Result<Self, RateError> {
        if !(rate > 0.0 && rate <= MAX_RATE) {
            return Err(RateError::OutOfRange(rate));
        }
        let now = Instant::now();
        Ok(Self {
            in_flight: Semaphore::new(in_flight.max(1)),
            interval: Duration::from_secs_f64(1.0 / rate),
            next_slot: Cell::new(now),
            window: RefCell::new(Window::new(now)),
        })
    }

    /// The time between two slots.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes the next slot at or after `now`: the one after the last
    /// taken, but never more than [`CATCH_UP`] in the past.
    pub fn take_slot(&self, now: Instant) -> Instant {
        let earliest = now.checked_sub(CATCH_UP).unwrap_or(now);
        let slot = self.next_slot.get().max(earliest);
        self.next_slot.set(slot + self.interval);
        slot
    }

    /// Waits for a free connection, then for the next slot; the permit
    /// is held until the request has its answer.
    pub async fn start(&self) -> SemaphorePermit<'_> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let slot = self.take_slot(Instant::now());
        if slot > Instant::now() {
            actix_rt::time::sleep_until(actix_rt::time::Instant::from_std(slot)).await;
        }
        permit
    }

    /// Counts one answer into the current window: `error` for a final
    /// answer other than 2xx or a transport error (`latency` is `None`).
    pub fn record(&self, latency: Option<Duration>, error: bool) {
        let mut window = self.window.borrow_mut();
        window.requests += 1;
        window.errors += usize::from(error);
        if let Some(latency) = latency {
            window.latencies.push(latency);
        }
    }

    /// Closes the current window at `now` and starts the next.
    pub fn close_window(&self, now: Instant) -> Window {
        self.window.replace(Window::new(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_rate_and_catch_up_only_a_little() {
        let pace = Pace::new(1_000.0, 4).unwrap();
        assert_eq!(pace.interval(), Duration::from_millis(1));
        let start = Instant::now();
        let first = pace.take_slot(start);
        let second = pace.take_slot(start);
        assert_eq!(second - first, Duration::from_millis(1));
        // After a long stall the schedule restarts CATCH_UP back.
        let later = start + Duration::from_secs(5);
        let resumed = pace.take_slot(later);
        assert_eq!(resumed, later - CATCH_UP);
        assert_eq!(pace.take_slot(later), resumed + Duration::from_millis(1));
    }

    #[test]
    fn bad_rates_are_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_RATE * 2.0] {
            assert!(Pace::new(rate, 1).is_err(), "{rate}");
        }
    }

    #[test]
    fn windows_count_requests_errors_and_latencies() {
        let pace = Pace::new(10.0, 1).unwrap();
        pace.record(Some(Duration::from_millis(3)), false);
        pace.record(Some(Duration::from_millis(5)), true);
        pace.record(None, true);
        let closed = pace.close_window(Instant::now());
        assert_eq!(closed.requests, 3);
        assert_eq!(closed.errors, 2);
        assert_eq!(closed.latencies.len(), 2);
        let next = pace.close_window(Instant::now());
        assert_eq!(next.requests, 0);
    }

    #[test]
    fn at_most_the_given_requests_are_in_flight() {
        actix_rt::System::new().block_on(async {
            let pace = Pace::new(100_000.0, 2).unwrap();
            let first = pace.start().await;
            let _second = pace.start().await;
            assert_eq!(pace.in_flight.available_permits(), 0);
            drop(first);
            let _third = pace.start().await;
            assert_eq!(pace.in_flight.available_permits(), 0);
        });
    }
}
