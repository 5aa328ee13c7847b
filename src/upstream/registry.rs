//! Upstream state that outlives a config (SPEC §6): per target, what live traffic and health
//! checks have learned about it (requests in flight, latency, health, ejection); per service,
//! what guards the whole service (circuit breaker, retry budget).
//!
//! The registry sits in [`crate::runtime::State`]. A compiled [`super::ServiceRuntime`] holds
//! the `Arc`s it got from the registry, so a reload that keeps a service and its targets keeps
//! their state, and a request in flight on the old config reports into the same state as the
//! new config's requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::balance::PeakEwma;
use super::breaker::Breaker;
use super::health::{HealthSlot, TargetHealth};
use super::lock;
use super::passive::{Ejection, PassivePolicy};
use super::retry::RetryBudget;
use crate::padded::Padded;
use crate::worker_hold::WorkerCopies;

/// What live traffic and health checks know about one target of one service.
///
/// What every request writes (requests in flight, latency) sits on cache lines apart from
/// what every request only reads (health, ejection), and the count in flight is kept per
/// worker thread: a write by one worker then never takes from the other cores a line they
/// read or write on each request.
#[derive(Debug)]
pub struct TargetState {
    health: TargetHealth,
    ejection: Ejection,
    /// Requests in flight, counted by the worker that sent them (see [`Attempt`]).
    in_flight: WorkerCopies<AtomicU32>,
    /// Latency up to response headers (`balance: ewma`).
    pub(super) latency: Padded<PeakEwma>,
}

impl Default for TargetState {
    fn default() -> Self {
        Self {
            health: TargetHealth::default(),
            ejection: Ejection::default(),
            in_flight: WorkerCopies::new(AtomicU32::default),
            latency: Padded::default(),
        }
    }
}

impl TargetState {
    /// Requests sent to this target and not answered yet.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.iter().fold(0, |sum, count| {
            sum.wrapping_add(count.load(Ordering::Relaxed))
        })
    }

    /// Whether the target may get traffic now: not failing its health checks, not ejected.
    /// Two Relaxed loads unless the target has been ejected.
    #[inline]
    pub fn available(&self, now: Instant) -> bool {
        self.health.is_healthy() && !self.ejection.is_ejected(now)
    }

    /// What the active health checks know of the target.
    pub fn health(&self) -> &TargetHealth {
        &self.health
    }

    /// The target's passive ejection record.
    pub fn ejection(&self) -> &Ejection {
        &self.ejection
    }

    /// The target's smoothed latency up to response headers, once it has answered (peak
    /// EWMA, decaying toward zero while it gets no answers; `balance: ewma` and
    /// `GET /services`).
    pub fn latency(&self) -> Option<std::time::Duration> {
        self.latency.estimate(crate::poll_clock::now())
    }

    /// Adds the latency of an attempt sent at `started` to the estimate when its outcome
    /// measured the target: a response (any status) or a timeout. Connect failures and
    /// resets say nothing about how fast the target answers (passive ejection counts those).
    pub fn record_latency(&self, started: Instant, outcome: Outcome, now: Instant) {
        if matches!(outcome, Outcome::Status(_) | Outcome::Timeout) {
            self.latency
                .record(now.saturating_duration_since(started), now);
        }
    }
}

/// What guards one service as a whole.
#[derive(Debug, Default)]
pub struct ServiceState {
    /// The retries the service may still take (`retries`).
    pub retry_budget: RetryBudget,
    passive: PassivePolicy,
    breaker: Breaker,
    health: HealthSlot,
}

impl ServiceState {
    /// The service's `passive` settings, applied to each target's ejection record.
    pub fn passive(&self) -> &PassivePolicy {
        &self.passive
    }

    /// The service's circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Which health checker the service has now.
    pub fn health(&self) -> &HealthSlot {
        &self.health
    }
}

/// How one attempt on a target ended, as the balancer, passive ejection and the circuit
/// breaker count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Response headers arrived with this status (5xx counts as a failure).
    Status(u16),
    /// No connection could be opened (refused, unresolvable, connect timeout).
    ConnectFailure,
    /// The connection broke before response headers (reset, closed, invalid response).
    Reset,
    /// No response headers within the request timeout.
    Timeout,
    /// The client's side failed (its body went over the limit): not the target's failure.
    Client,
}

impl Outcome {
    /// Whether the attempt counts as a failure of the target.
    pub fn is_failure(self) -> bool {
        match self {
            Self::Status(status) => status >= 500,
            Self::ConnectFailure | Self::Reset | Self::Timeout => true,
            Self::Client => false,
        }
    }
}

/// One request on its way to a target: counted in flight from [`Attempt::start`] until it is
/// finished or dropped (a client that goes away cancels its attempt).
///
/// It borrows the states rather than cloning their `Arc`s: a clone and its drop write the
/// shared counts, whose cache lines then move between the worker threads' cores on every
/// request.
#[derive(Debug)]
pub struct Attempt<'a> {
    target: &'a TargetState,
    service: &'a ServiceState,
    /// The count it was added to (its worker's), which it is taken from when it ends.
    in_flight: &'a AtomicU32,
    started: Instant,
}

impl<'a> Attempt<'a> {
    /// Counts a request to `target` of `service` in flight.
    pub fn start(target: &'a TargetState, service: &'a ServiceState) -> Self {
        let in_flight = target.in_flight.here();
        in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            target,
            service,
            in_flight,
            started: crate::poll_clock::now(),
        }
    }

    /// When the attempt was sent.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Records how the attempt ended (latency up to response headers, success or failure):
    /// the latency feeds the target's EWMA, failures feed passive ejection and the service's
    /// circuit breaker.
    pub fn finish(self, outcome: Outcome) {
        self.finish_at(outcome, crate::poll_clock::now());
    }

    /// [`Attempt::finish`] for an attempt that ended at `now` (read once by the caller).
    pub fn finish_at(self, outcome: Outcome, now: Instant) {
        self.target.record_latency(self.started, outcome, now);
        self.target
            .ejection
            .record(&self.service.passive, outcome, now);
        self.service.breaker.record(outcome, now);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A target's identity in the registry: its service and its address (the URL as configured,
/// or one address a DNS name resolved to).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    /// The service's name.
    pub service: Arc<str>,
    /// The target's URL or resolved address.
    pub address: String,
}

/// Every service's and target's state, by identity.
#[derive(Debug, Default)]
pub struct UpstreamRegistry {
    targets: Mutex<HashMap<TargetKey, Arc<TargetState>>>,
    services: Mutex<HashMap<Arc<str>, Arc<ServiceState>>>,
    /// The addresses DNS target names resolved to last.
    pub(super) dns: super::discovery::DnsCache,
}

impl UpstreamRegistry {
    /// The state of one target, made on first use and shared after.
    pub fn target(&self, key: TargetKey) -> Arc<TargetState> {
        lock(&self.targets).entry(key).or_default().clone()
    }

    /// The state of one service, made on first use and shared after.
    pub fn service(&self, name: &str) -> Arc<ServiceState> {
        let mut services = lock(&self.services);
        if let Some(state) = services.get(name) {
            return state.clone();
        }
        let state = Arc::new(ServiceState::default());
        services.insert(name.into(), state.clone());
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_shared_by_identity() {
        let registry = UpstreamRegistry::default();
        let key = TargetKey {
            service: "users".into(),
            address: "http://127.0.0.1:1".into(),
        };
        let a = registry.target(key.clone());
        let b = registry.target(key);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(
            &registry.service("users"),
            &registry.service("users")
        ));
    }

    #[test]
    fn attempts_count_in_flight_until_dropped() {
        let target = Arc::new(TargetState::default());
        let service = Arc::new(ServiceState::default());
        let first = Attempt::start(&target, &service);
        let second = Attempt::start(&target, &service);
        assert_eq!(target.in_flight(), 2);
        first.finish(Outcome::Status(200));
        drop(second);
        assert_eq!(target.in_flight(), 0);
    }
}
