//! Passive health (`passive`, outlier ejection): consecutive failures of live traffic to a
//! target eject it for `eject_for`; it gets traffic again once that time has passed.
//!
//! What counts as a failure is [`Outcome::is_failure`]: a 5xx answer, a connect error, a
//! reset, a timeout. Any other answer resets the count; an attempt that failed on the client's
//! side ([`Outcome::Client`]) says nothing about the target and is not counted. Health-check
//! probes never pass through here. Nothing caps how many targets may be ejected at once (no
//! Envoy-style `max_ejection_percent`): SPEC §4.2 wants a service with no healthy target to
//! answer 503, and it does.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use super::clock;
use super::registry::Outcome;

/// A service's `passive` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveSettings {
    /// Consecutive failures that eject a target (at least 1).
    pub failures: u32,
    /// How long an ejected target gets no traffic.
    pub eject_for: Duration,
}

/// A service's `passive` settings, readable with Relaxed loads by every attempt.
#[derive(Debug, Default)]
pub struct PassivePolicy {
    /// Consecutive failures that eject; 0 when `passive` is off.
    failures: AtomicU32,
    eject_ms: AtomicU64,
}

impl PassivePolicy {
    /// Applies the settings of a newly compiled config (`None`: ejection off).
    pub fn configure(&self, settings: Option<PassiveSettings>) {
        let (failures, eject_ms) = settings.map_or((0, 0), |s| {
            (s.failures.max(1), clock::duration_millis(s.eject_for))
        });
        self.eject_ms.store(eject_ms, Relaxed);
        self.failures.store(failures, Relaxed);
    }

    /// Whether ejection is on.
    pub fn is_enabled(&self) -> bool {
        self.failures.load(Relaxed) != 0
    }
}

/// One target's ejection record: its run of consecutive failures and, once ejected, until
/// when.
#[derive(Debug, Default)]
pub struct Ejection {
    failures: AtomicU32,
    /// Milliseconds on the [`clock`] until which the target is ejected; 0: never ejected.
    until: AtomicU64,
}

impl Ejection {
    /// Whether the target is ejected at `now`. One Relaxed load while it has never been
    /// ejected.
    #[inline]
    pub fn is_ejected(&self, now: Instant) -> bool {
        let until = self.until.load(Relaxed);
        until != 0 && clock::millis(now) < until
    }

    /// The time left of the ejection running at `now`, if any.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        let until = self.until.load(Relaxed);
        let now_ms = clock::millis(now);
        (until > now_ms).then(|| Duration::from_millis(until - now_ms))
    }

    /// Ends any ejection and forgets the failures (when `passive` is turned off).
    pub fn clear(&self) {
        self.failures.store(0, Relaxed);
        self.until.store(0, Relaxed);
    }

    /// Counts one attempt's outcome under `policy`; returns whether it ejected the target.
    pub fn record(&self, policy: &PassivePolicy, outcome: Outcome, now: Instant) -> bool {
        let threshold = policy.failures.load(Relaxed);
        if threshold == 0 || outcome == Outcome::Client {
            return false;
        }
        if !outcome.is_failure() {
            // Load first: a healthy target's successes do not write a shared cache line.
            if self.failures.load(Relaxed) != 0 {
                self.failures.store(0, Relaxed);
            }
            return false;
        }
        if self.failures.fetch_add(1, Relaxed) + 1 < threshold {
            return false;
        }
        self.failures.store(0, Relaxed);
        // Failures of requests already in flight when the target was ejected do not extend
        // the ejection.
        if self.is_ejected(now) {
            return false;
        }
        let eject_ms = policy.eject_ms.load(Relaxed);
        self.until
            .store(clock::millis(now).saturating_add(eject_ms), Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(failures: u32, eject_for: Duration) -> PassivePolicy {
        let policy = PassivePolicy::default();
        policy.configure(Some(PassiveSettings {
            failures,
            eject_for,
        }));
        policy
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_eject_until_the_time_has_passed() {
        let policy = policy(3, Duration::from_secs(30));
        let target = Ejection::default();
        let now = Instant::now();
        assert!(!target.record(&policy, Outcome::Status(502), now));
        assert!(!target.record(&policy, Outcome::ConnectFailure, now));
        assert!(!target.is_ejected(now));
        assert!(target.record(&policy, Outcome::Timeout, now));
        assert!(target.is_ejected(now));
        assert_eq!(target.remaining(now), Some(Duration::from_secs(30)));
        tokio::time::advance(Duration::from_millis(29_999)).await;
        assert!(target.is_ejected(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!target.is_ejected(Instant::now()));
        assert_eq!(target.remaining(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_run_and_client_failures_do_not_count() {
        let policy = policy(2, Duration::from_secs(5));
        let target = Ejection::default();
        let now = Instant::now();
        target.record(&policy, Outcome::Reset, now);
        target.record(&policy, Outcome::Status(404), now);
        target.record(&policy, Outcome::Reset, now);
        assert!(!target.is_ejected(now), "the 404 broke the run");
        target.record(&policy, Outcome::Client, now);
        assert!(target.record(&policy, Outcome::Status(503), now));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_while_ejected_do_not_extend_it() {
        let policy = policy(1, Duration::from_secs(10));
        let target = Ejection::default();
        assert!(target.record(&policy, Outcome::Reset, Instant::now()));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!target.record(&policy, Outcome::Reset, Instant::now()));
        assert_eq!(
            target.remaining(Instant::now()),
            Some(Duration::from_secs(5))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn off_means_never_ejected() {
        let policy = PassivePolicy::default();
        let target = Ejection::default();
        for _ in 0..100 {
            assert!(!target.record(&policy, Outcome::Reset, Instant::now()));
        }
        assert!(!target.is_ejected(Instant::now()));
        let on = self::policy(1, Duration::from_secs(10));
        target.record(&on, Outcome::Reset, Instant::now());
        target.clear();
        assert!(!target.is_ejected(Instant::now()));
    }
}
