//! The clock of the current poll: a connection's task reads the clock once each time it is
//! polled, and everything that asks for the time while it runs gets that reading.
//!
//! A request asked the clock about a dozen times (the pool's idle times, the balancer, the
//! attempt's start and end, the rate limit's window, the cache entry's time, the `Date`
//! field, a token's expiry…). Each read costs some 25 ns on a virtual machine, several
//! percent of a proxied request. nginx does the same: it updates its cached time once per
//! turn of its event loop.
//!
//! A reading is as old as the poll that took it, a few microseconds at most: no task waits
//! while being polled. Outside a clocked poll (other tasks, tests) [`now`] reads the clock.
//! The readings follow tokio's clock, so tests that pause and advance it see them move.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::time::Instant;

thread_local! {
    /// The current poll's reading of the monotonic clock, and of the wall clock once asked.
    static READING: Cell<Option<(Instant, Option<SystemTime>)>> = const { Cell::new(None) };
}

/// Now, as the current clocked poll read it, or from the clock outside one.
pub fn now() -> Instant {
    match READING.get() {
        Some((instant, _)) => instant,
        None => Instant::now(),
    }
}

/// The wall-clock time, read at most once per clocked poll.
pub fn system_now() -> SystemTime {
    match READING.get() {
        Some((_, Some(system))) => system,
        Some((instant, None)) => {
            let system = SystemTime::now();
            READING.set(Some((instant, Some(system))));
            system
        }
        None => SystemTime::now(),
    }
}

pin_project_lite::pin_project! {
    /// `F`, whose every poll reads the clock once for [`now`] and [`system_now`].
    pub struct Clocked<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Clocked<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F: Future> Future for Clocked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Restored when the poll ends, even by a panic: a reading never outlives its poll.
        let _reading = Reading::take();
        self.project().inner.poll(cx)
    }
}

/// The reading of one poll; puts back the one before (none, unless polls nest) on drop.
struct Reading {
    before: Option<(Instant, Option<SystemTime>)>,
}

impl Reading {
    fn take() -> Self {
        Self {
            before: READING.replace(Some((Instant::now(), None))),
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        READING.set(self.before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_poll_reads_the_clock_once() {
        let outside = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() > outside, "outside a clocked poll: the clock");

        let (first, second, system) = Clocked::new(async {
            let first = now();
            let system = system_now();
            std::thread::sleep(Duration::from_millis(2));
            (first, now(), (system, system_now()))
        })
        .await;
        assert_eq!(first, second, "one reading per poll");
        assert_eq!(system.0, system.1);
        assert!(READING.get().is_none(), "no reading left after the poll");
    }

    #[tokio::test(start_paused = true)]
    async fn each_poll_reads_again_and_follows_tokios_clock() {
        let (before, after) = Clocked::new(async {
            let before = now();
            tokio::time::sleep(Duration::from_secs(3)).await;
            (before, now())
        })
        .await;
        assert_eq!(after - before, Duration::from_secs(3));
    }
}
