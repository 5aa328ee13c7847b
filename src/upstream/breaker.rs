//! The circuit breaker of a service (`circuit_breaker`).
//!
//! Closed: every attempt's outcome is counted in a rolling window of [`BUCKETS`] buckets
//! covering `window`. When a failure brings the window to at least `min_requests` attempts with
//! a failed share of at least `failure_ratio`, the circuit opens: for `open_for`, requests get
//! 503 with `Retry-After` and the upstream is not contacted. Then it is half-open: up to
//! [`MAX_PROBES`] requests at a time go through as probes; a success closes the circuit (with
//! an empty window), a failure opens it again for `open_for`.
//!
//! The closed path is lock-free: admission is two Relaxed loads, counting an outcome a load and
//! a `fetch_add` on the current bucket. Half-open needs no timer: it is an open circuit whose
//! time is up.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use super::clock;
use super::registry::{Outcome, ServiceState};
use super::service::ServiceRuntime;
use crate::error::{ErrorKind, GatewayError};

/// Buckets of the rolling window.
pub const BUCKETS: usize = 10;
/// Probe requests let through at once while half-open.
pub const MAX_PROBES: u32 = 3;

// A bucket is one u64: the bucket's tick (24 bits), its attempts (20) and failures (20).
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TICK_SHIFT: u32 = 2 * COUNT_BITS;
const TICK_MASK: u64 = (1 << (64 - TICK_SHIFT)) - 1;
/// A bucket stops counting here, far from overflowing into its neighbour field.
const SATURATED: u64 = COUNT_MASK / 2;

/// A service's `circuit_breaker` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Failed share of the window's attempts that opens the circuit (0 < ratio ≤ 1).
    pub failure_ratio: f64,
    /// Attempts the window must hold before the ratio counts.
    pub min_requests: u32,
    /// Length of the rolling window.
    pub window: Duration,
    /// How long the circuit stays open before half-open probes.
    pub open_for: Duration,
}

/// Where a circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Requests flow; outcomes are counted.
    Closed,
    /// Requests are refused with 503 until `open_for` has passed.
    Open,
    /// A few probe requests decide whether the circuit closes or opens again.
    HalfOpen,
}

/// The breaker of one service, kept in its [`ServiceState`] across reloads.
#[derive(Debug, Default)]
pub struct Breaker {
    /// The service's name and settings, for reloads and logs (cold path only).
    settings: Mutex<Option<(Arc<str>, BreakerSettings)>>,
    enabled: AtomicBool,
    /// `failure_ratio` in parts per million.
    ratio_ppm: AtomicU64,
    min_requests: AtomicU64,
    bucket_ms: AtomicU64,
    open_ms: AtomicU64,
    /// 0: closed; else the [`clock`] time the circuit is open until (half-open after it).
    open_until: AtomicU64,
    /// Probe permits out while half-open.
    probes: AtomicU32,
    buckets: [AtomicU64; BUCKETS],
}

/// Leave to send a request to the service; while half-open, one of the few probe slots, given
/// back when the permit is dropped (keep it until the attempt has finished).
#[derive(Debug)]
#[must_use = "a half-open probe slot is given back when the permit is dropped"]
pub struct Permit {
    probe: Option<Arc<ServiceState>>,
}

impl Permit {
    /// Whether this request is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(service) = &self.probe {
            let probes = &service.breaker().probes;
            let _ = probes.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        }
    }
}

impl ServiceRuntime {
    /// Asks the service's circuit breaker to let a request through: `Ok` while closed (and
    /// for a half-open probe), 503 with `Retry-After` while open. Hold the permit until the
    /// attempt has finished.
    #[inline]
    pub fn admit(&self) -> Result<Permit, GatewayError> {
        self.state.breaker().admit(&self.state, Instant::now)
    }
}

impl Breaker {
    /// Applies the settings of a newly compiled config. Unchanged settings keep the circuit
    /// and its window; changed ones start closed with an empty window; `None` turns it off.
    pub fn configure(&self, service: &str, settings: Option<BreakerSettings>) {
        let mut current = super::lock(&self.settings);
        if current.as_ref().map(|(_, s)| *s) == settings {
            return;
        }
        self.enabled.store(false, Relaxed);
        self.open_until.store(0, Relaxed);
        self.clear_window();
        *current = settings.map(|s| (Arc::from(service), s));
        let Some(s) = settings else {
            return;
        };
        let ratio = (s.failure_ratio.clamp(0.0, 1.0) * 1e6).round() as u64;
        self.ratio_ppm.store(ratio, Relaxed);
        self.min_requests
            .store(u64::from(s.min_requests.max(1)), Relaxed);
        self.bucket_ms.store(
            (clock::duration_millis(s.window) / BUCKETS as u64).max(1),
            Relaxed,
        );
        self.open_ms
            .store(clock::duration_millis(s.open_for), Relaxed);
        self.enabled.store(true, Relaxed);
    }

    /// Whether the service has a circuit breaker.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// The circuit's state at `now`, and the time left until half-open while open.
    pub fn state(&self, now: Instant) -> (CircuitState, Option<Duration>) {
        let until = self.open_until.load(Relaxed);
        if !self.enabled.load(Relaxed) || until == 0 {
            return (CircuitState::Closed, None);
        }
        let now_ms = clock::millis(now);
        if now_ms < until {
            (
                CircuitState::Open,
                Some(Duration::from_millis(until - now_ms)),
            )
        } else {
            (CircuitState::HalfOpen, None)
        }
    }

    /// Attempts and failures counted in the window at `now`.
    pub fn window_counts(&self, now: Instant) -> (u64, u64) {
        let bucket_ms = self.bucket_ms.load(Relaxed).max(1);
        self.window_counts_at(clock::millis(now) / bucket_ms)
    }

    fn admit(
        &self,
        service: &Arc<ServiceState>,
        now: impl FnOnce() -> Instant,
    ) -> Result<Permit, GatewayError> {
        let until = self.open_until.load(Relaxed);
        if until == 0 || !self.enabled.load(Relaxed) {
            return Ok(Permit { probe: None });
        }
        let now_ms = clock::millis(now());
        if now_ms < until {
            return Err(open_error(clock::secs_until(now_ms, until)));
        }
        let taken = self
            .probes
            .fetch_update(Relaxed, Relaxed, |n| (n < MAX_PROBES).then_some(n + 1));
        match taken {
            Ok(_) => Ok(Permit {
                probe: Some(service.clone()),
            }),
            Err(_) => Err(open_error(1)),
        }
    }

    /// Counts one attempt's outcome at `now` (an attempt that failed on the client's side is
    /// not counted).
    pub fn record(&self, outcome: Outcome, now: Instant) {
        if outcome == Outcome::Client || !self.enabled.load(Relaxed) {
            return;
        }
        let failure = outcome.is_failure();
        let now_ms = clock::millis(now);
        let until = self.open_until.load(Relaxed);
        if until == 0 {
            self.count(failure, now_ms);
            if failure {
                self.trip_if_over(now_ms);
            }
        } else if now_ms >= until {
            // Half-open: this outcome decides.
            if failure {
                let reopen = now_ms.saturating_add(self.open_ms.load(Relaxed));
                if self
                    .open_until
                    .compare_exchange(until, reopen, Relaxed, Relaxed)
                    .is_ok()
                {
                    self.log("circuit breaker probe failed; open again");
                }
            } else if self
                .open_until
                .compare_exchange(until, 0, Relaxed, Relaxed)
                .is_ok()
            {
                self.clear_window();
                self.log("circuit breaker probe succeeded; closed");
            }
        }
        // Open: outcomes of requests admitted before it opened change nothing.
    }

    /// Adds one attempt to the current bucket, starting the bucket afresh when it holds an
    /// older tick.
    fn count(&self, failure: bool, now_ms: u64) {
        let bucket_ms = self.bucket_ms.load(Relaxed).max(1);
        let tick = now_ms / bucket_ms;
        let bucket = &self.buckets[(tick % BUCKETS as u64) as usize];
        let tag = (tick & TICK_MASK) << TICK_SHIFT;
        let add = (1 << COUNT_BITS) | u64::from(failure);
        let mut word = bucket.load(Relaxed);
        loop {
            if word >> TICK_SHIFT == tick & TICK_MASK {
                if (word >> COUNT_BITS) & COUNT_MASK < SATURATED {
                    bucket.fetch_add(add, Relaxed);
                }
                return;
            }
            let ahead = (word >> TICK_SHIFT).wrapping_sub(tick & TICK_MASK) & TICK_MASK;
            if word != 0 && ahead != 0 && ahead < TICK_MASK / 2 {
                // A newer tick is already here: this attempt's time is stale.
                return;
            }
            match bucket.compare_exchange_weak(word, tag | add, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }

    fn trip_if_over(&self, now_ms: u64) {
        let bucket_ms = self.bucket_ms.load(Relaxed).max(1);
        let (total, failures) = self.window_counts_at(now_ms / bucket_ms);
        let ratio_ppm = self.ratio_ppm.load(Relaxed);
        if total < self.min_requests.load(Relaxed) || failures * 1_000_000 < ratio_ppm * total {
            return;
        }
        let open_until = now_ms.saturating_add(self.open_ms.load(Relaxed));
        if self
            .open_until
            .compare_exchange(0, open_until, Relaxed, Relaxed)
            .is_ok()
        {
            self.log(&format!(
                "circuit breaker opened: {failures} of {total} attempts failed"
            ));
        }
    }

    fn window_counts_at(&self, tick: u64) -> (u64, u64) {
        let (mut total, mut failures) = (0, 0);
        for bucket in &self.buckets {
            let word = bucket.load(Relaxed);
            let age = (tick & TICK_MASK).wrapping_sub(word >> TICK_SHIFT) & TICK_MASK;
            if word != 0 && age < BUCKETS as u64 {
                total += (word >> COUNT_BITS) & COUNT_MASK;
                failures += word & COUNT_MASK;
            }
        }
        (total, failures)
    }

    fn clear_window(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Relaxed);
        }
    }

    fn log(&self, message: &str) {
        let settings = super::lock(&self.settings);
        let service = settings.as_ref().map_or("", |(name, _)| name);
        tracing::warn!(service, "{message}");
    }
}

/// 503 while the circuit is open, with the seconds until it may let requests through.
fn open_error(retry_after_secs: u64) -> GatewayError {
    GatewayError::new(
        ErrorKind::ServiceUnavailable,
        "the service is temporarily unavailable; retry later",
    )
    .with_header(
        http::header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs),
    )
    .with_cause("circuit breaker open")
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
