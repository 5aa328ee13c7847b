//! Retries of failed attempts (SPEC §2.2 `retries`): which failures and methods are retried,
//! the backoff between tries, and the per-service retry budget that keeps retries from
//! multiplying load during an outage.
//!
//! The attempt loop itself is `pipeline::attempts`; this module holds its pure parts.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use http::Method;
use tokio::time::Instant;

use super::registry::Outcome;
use crate::config::{self, RetryOn};

/// A service's `retries`, compiled.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Extra tries after the first (≥ 1).
    pub attempts: u32,
    on_connect_failure: bool,
    on_reset: bool,
    on_timeout: bool,
    /// Statuses 400–655 as bits (validation keeps them within 400–599).
    on_status: [u64; 4],
    backoff: Duration,
    methods: MethodSet,
}

impl RetryPolicy {
    /// The policy of `retries`; `None` when it asks for no extra tries.
    pub fn compile(retries: &config::Retries) -> Option<Self> {
        if retries.attempts == 0 {
            return None;
        }
        let mut policy = Self {
            attempts: retries.attempts,
            on_connect_failure: false,
            on_reset: false,
            on_timeout: false,
            on_status: [0; 4],
            backoff: retries.backoff.0,
            methods: MethodSet::default(),
        };
        for on in &retries.on {
            match on.value {
                RetryOn::ConnectFailure => policy.on_connect_failure = true,
                RetryOn::Reset => policy.on_reset = true,
                RetryOn::Timeout => policy.on_timeout = true,
                RetryOn::Status(status) => {
                    if let Some(bit) = status.checked_sub(400).filter(|b| *b < 256) {
                        policy.on_status[usize::from(bit / 64)] |= 1 << (bit % 64);
                    }
                }
            }
        }
        for method in &retries.methods {
            if let Ok(method) = Method::from_bytes(method.0.as_bytes()) {
                policy.methods.insert(method);
            }
        }
        Some(policy)
    }

    /// Whether requests with `method` may be retried after they were sent (`methods`).
    pub fn retries_method(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }

    /// Whether an attempt that ended with `outcome` is retried; `method_allowed`: whether the
    /// request's method is in `methods`.
    ///
    /// A connect failure is retried whatever the method: the request never left the gateway,
    /// so no target can have acted on it (Envoy's `reset-before-request` reasoning).
    pub fn retries(&self, outcome: Outcome, method_allowed: bool) -> bool {
        match outcome {
            Outcome::ConnectFailure => self.on_connect_failure,
            Outcome::Reset => self.on_reset && method_allowed,
            Outcome::Timeout => self.on_timeout && method_allowed,
            Outcome::Status(status) => self.on_status(status) && method_allowed,
            Outcome::Client => false,
        }
    }

    fn on_status(&self, status: u16) -> bool {
        status
            .checked_sub(400)
            .filter(|b| *b < 256)
            .is_some_and(|bit| self.on_status[usize::from(bit / 64)] & (1 << (bit % 64)) != 0)
    }

    /// The wait before retry number `retry` (1 for the first): `backoff` doubled for each
    /// earlier retry, with equal jitter (half of it fixed, half random), so a crowd of
    /// clients spreads out but each still waits at least half the backoff.
    pub fn backoff(&self, retry: u32) -> Duration {
        let full = self.full_backoff(retry);
        let half = full / 2;
        let spread = u64::try_from((full - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=spread))
    }

    /// The backoff before jitter: `backoff × 2^(retry − 1)`, at most 2^16 times `backoff`.
    fn full_backoff(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(16);
        self.backoff.saturating_mul(1 << doublings)
    }
}

/// A set of methods: a bit per standard method, a list for the others.
#[derive(Debug, Clone, Default)]
struct MethodSet {
    standard: u16,
    other: Vec<Method>,
}

const STANDARD: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
    Method::PATCH,
    Method::TRACE,
    Method::CONNECT,
];

impl MethodSet {
    fn insert(&mut self, method: Method) {
        match STANDARD.iter().position(|m| *m == method) {
            Some(i) => self.standard |= 1 << i,
            None => self.other.push(method),
        }
    }

    fn contains(&self, method: &Method) -> bool {
        match STANDARD.iter().position(|m| m == method) {
            Some(i) => self.standard & (1 << i) != 0,
            None => self.other.contains(method),
        }
    }
}

/// Retries a first attempt earns, in thousandths: retries may add 20% to the requests.
const DEPOSIT: i64 = 200;
/// What one retry costs, in thousandths.
const WITHDRAWAL: i64 = 1000;
/// Most retries saved up from first attempts (a burst allowance; beyond it, retries are
/// bounded by the 20% earned as requests arrive).
const MAX_SAVED: i64 = 100 * WITHDRAWAL;
/// Retries allowed per second whatever the traffic, so a quiet service is retried too.
pub const MIN_RETRIES_PER_SEC: i64 = 10;
/// The floor's bucket holds one second's worth of retries.
const MAX_FLOOR: i64 = MIN_RETRIES_PER_SEC * WITHDRAWAL;

/// A service's retry budget (Finagle's `RetryBudget`): each first attempt deposits 0.2 of a
/// retry, each retry withdraws one, and a floor of [`MIN_RETRIES_PER_SEC`] lets a quiet
/// service retry too. During an outage retries add at most 20% to the requests (plus the
/// floor), instead of multiplying them by `attempts + 1`. Lock-free: a few relaxed atomics.
#[derive(Debug)]
pub struct RetryBudget {
    saved: AtomicI64,
    floor: AtomicI64,
    /// When the floor was last refilled, in milliseconds since `epoch`.
    refilled: AtomicU64,
    epoch: Instant,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            saved: AtomicI64::new(0),
            floor: AtomicI64::new(MAX_FLOOR),
            refilled: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl RetryBudget {
    /// A first attempt was sent: it earns a fifth of a retry.
    pub fn deposit(&self) {
        if self.saved.load(Ordering::Relaxed) < MAX_SAVED {
            self.saved.fetch_add(DEPOSIT, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        take(&self.saved, WITHDRAWAL) || {
            self.refill_floor();
            take(&self.floor, WITHDRAWAL)
        }
    }

    /// Adds the floor's share of the time since the last refill.
    fn refill_floor(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.refilled.load(Ordering::Relaxed);
        if now <= last
            || self
                .refilled
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // MIN_RETRIES_PER_SEC retries a second is that many thousandths a millisecond.
        let earned = i64::try_from(now - last)
            .unwrap_or(i64::MAX)
            .saturating_mul(MIN_RETRIES_PER_SEC);
        let _ = self
            .floor
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some(f.saturating_add(earned).min(MAX_FLOOR))
            });
    }
}

/// Takes `amount` from `tokens` if it holds that much.
fn take(tokens: &AtomicI64, amount: i64) -> bool {
    tokens
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
            (t >= amount).then_some(t - amount)
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy(yaml: &str) -> RetryPolicy {
        let retries: config::Retries = serde_saphyr::from_str(yaml).expect("retries");
        RetryPolicy::compile(&retries).expect("attempts ≥ 1")
    }

    #[test]
    fn no_attempts_no_policy() {
        assert!(RetryPolicy::compile(&config::Retries::default()).is_none());
    }

    #[test]
    fn defaults_retry_idempotent_methods_on_connect_reset_and_gateway_errors() {
        let p = policy("attempts: 2");
        for method in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"] {
            assert!(p.retries_method(&Method::from_bytes(method.as_bytes()).expect("m")));
        }
        assert!(!p.retries_method(&Method::POST));
        assert!(!p.retries_method(&Method::PATCH));
        assert!(p.retries(Outcome::ConnectFailure, false), "any method");
        assert!(p.retries(Outcome::Reset, true));
        assert!(!p.retries(Outcome::Reset, false));
        assert!(!p.retries(Outcome::Timeout, true), "not in the defaults");
        for status in [502, 503, 504] {
            assert!(p.retries(Outcome::Status(status), true));
        }
        assert!(!p.retries(Outcome::Status(500), true));
        assert!(!p.retries(Outcome::Status(200), true));
        assert!(!p.retries(Outcome::Client, true));
    }

    #[test]
    fn conditions_and_methods_as_listed() {
        let p = policy("attempts: 1\non: [timeout, 429, 500]\nmethods: [POST, PURGE]");
        assert!(p.retries(Outcome::Timeout, true));
        assert!(p.retries(Outcome::Status(429), true));
        assert!(p.retries(Outcome::Status(500), true));
        assert!(!p.retries(Outcome::Status(503), true));
        assert!(!p.retries(Outcome::ConnectFailure, true));
        assert!(p.retries_method(&Method::POST));
        assert!(p.retries_method(&Method::from_bytes(b"PURGE").expect("m")));
        assert!(!p.retries_method(&Method::GET));
    }

    #[test]
    fn backoff_doubles_with_equal_jitter() {
        let p = policy("attempts: 3\nbackoff: 100ms");
        for (retry, full) in [(1, 100), (2, 200), (3, 400)] {
            let full = Duration::from_millis(full);
            assert_eq!(p.full_backoff(retry), full);
            for _ in 0..100 {
                let wait = p.backoff(retry);
                assert!(wait >= full / 2 && wait <= full, "{wait:?} for {full:?}");
            }
        }
        assert_eq!(p.full_backoff(100), Duration::from_millis(100) * 65_536);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_allows_a_fifth_of_requests_plus_the_floor() {
        let budget = RetryBudget::default();
        for _ in 0..1000 {
            budget.deposit();
        }
        let mut granted = 0;
        while budget.withdraw() {
            granted += 1;
        }
        // Saved retries are capped at 100, then the floor's second's worth.
        assert_eq!(granted, 100 + MIN_RETRIES_PER_SEC);
        tokio::time::advance(Duration::from_millis(500)).await;
        let mut refilled = 0;
        while budget.withdraw() {
            refilled += 1;
        }
        assert_eq!(
            refilled,
            MIN_RETRIES_PER_SEC / 2,
            "the floor refills with time"
        );
        for _ in 0..10 {
            budget.deposit();
        }
        assert!(budget.withdraw(), "ten requests earn two retries");
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
    }

    proptest! {
        #[test]
        fn budget_grants_at_most_a_fifth_of_deposits_plus_the_floor(
            ops in proptest::collection::vec(any::<bool>(), 0..3000)
        ) {
            let budget = RetryBudget::default();
            let started = std::time::Instant::now();
            let (mut deposits, mut asked, mut granted) = (0u32, 0u32, 0u32);
            for deposit in ops {
                if deposit {
                    budget.deposit();
                    deposits += 1;
                } else {
                    asked += 1;
                    granted += u32::from(budget.withdraw());
                }
            }
            // The floor also refills with the time the test took.
            let refill = started.elapsed().as_secs_f64() * MIN_RETRIES_PER_SEC as f64 + 1.0;
            let bound = f64::from(deposits) / 5.0 + MIN_RETRIES_PER_SEC as f64 + refill;
            prop_assert!(f64::from(granted) <= bound, "{granted} granted, bound {bound}");
            // The floor alone grants the first ten asked.
            prop_assert!(granted >= asked.min(MIN_RETRIES_PER_SEC as u32));
        }

        #[test]
        fn backoff_stays_within_half_and_all_of_the_doubled_wait(
            backoff_ms in 1u64..2000,
            retry in 1u32..12,
        ) {
            let p = policy(&format!("attempts: 1\nbackoff: {backoff_ms}ms"));
            let full = Duration::from_millis(backoff_ms) * (1 << (retry - 1));
            let wait = p.backoff(retry);
            prop_assert!(wait >= full / 2 && wait <= full, "{wait:?} for {full:?}");
        }
    }
}
