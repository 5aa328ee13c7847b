//! Active health checks (`health`): a background task per service probes every target with
//! `GET path` each `interval`; `unhealthy_after` failed probes in a row take a target out of
//! the rotation, `healthy_after` passed probes in a row bring it back.
//!
//! Targets start healthy (as in Envoy with `ignore_new_hosts_until_first_hc` off, and as
//! nginx and Kong do): a gateway that starts or reloads keeps serving at once, and a dead
//! target is found within `unhealthy_after` intervals.
//!
//! Lifetime: [`start`] is called when a compiled config goes live. The task's [`HealthCheck`]
//! handle is held by every [`crate::runtime::Runtime`] that uses the service; when the last
//! one is dropped the task stops. A reload that keeps the service's `health` settings, protocol
//! and target list adopts the running task (its timing and the targets' counts carry on);
//! any change starts a new task and the old one stops probing at once. The health of each
//! target lives in its [`TargetState`](super::TargetState), so it carries over either way.
//! Each round reads the service's current endpoints, so targets that discovery adds or
//! removes at run time are followed.

mod probe;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::UpstreamProtocol;
use super::registry::{ServiceState, TargetState};
use super::service::{Endpoints, ServiceRuntime, Target};

/// A service's `health` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// Path (and query) requested on each target; starts with `/`.
    pub path: String,
    /// Time between the starts of two rounds of probes.
    pub interval: Duration,
    /// Time a probe may take, connecting included.
    pub timeout: Duration,
    /// Passed probes in a row that make an unhealthy target healthy (at least 1).
    pub healthy_after: u32,
    /// Failed probes in a row that make a healthy target unhealthy (at least 1).
    pub unhealthy_after: u32,
}

/// What the active checks know of one target: healthy or not, and the run of probe results
/// that will change that.
#[derive(Debug, Default)]
pub struct TargetHealth {
    unhealthy: AtomicBool,
    /// Failed probes in a row while healthy, passed probes in a row while unhealthy.
    streak: AtomicU32,
}

impl TargetHealth {
    /// Whether the target passes its health checks (always, without `health`).
    #[inline]
    pub fn is_healthy(&self) -> bool {
        !self.unhealthy.load(Relaxed)
    }

    /// Counts one probe result; returns the target's new health when it changed. Only the
    /// service's current checker calls this, so loads and stores need not be atomic together.
    pub fn record(&self, passed: bool, settings: &HealthSettings) -> Option<bool> {
        let healthy = self.is_healthy();
        if passed == healthy {
            self.streak.store(0, Relaxed);
            return None;
        }
        let streak = self.streak.load(Relaxed) + 1;
        let needed = if healthy {
            settings.unhealthy_after
        } else {
            settings.healthy_after
        };
        if streak < needed.max(1) {
            self.streak.store(streak, Relaxed);
            return None;
        }
        self.streak.store(0, Relaxed);
        self.unhealthy.store(healthy, Relaxed);
        Some(!healthy)
    }

    /// Healthy again with a clean slate (when the service's `health` is removed).
    pub fn reset(&self) {
        self.streak.store(0, Relaxed);
        self.unhealthy.store(false, Relaxed);
    }
}

/// Which checker a service has now, kept in its [`ServiceState`].
#[derive(Debug, Default)]
pub struct HealthSlot {
    current: Mutex<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    key: CheckKey,
    generation: u64,
    check: Weak<HealthCheck>,
}

/// What a running checker was started for: a reload with the same key adopts it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CheckKey {
    settings: HealthSettings,
    protocol: UpstreamProtocol,
    targets: Vec<String>,
}

impl HealthSlot {
    fn lock(&self) -> MutexGuard<'_, Option<Current>> {
        super::lock(&self.current)
    }

    /// Whether the service has health checks running.
    pub fn is_active(&self) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|c| c.check.strong_count() > 0)
    }

    /// Whether the checker of `generation` is the service's current one.
    fn is_current(&self, generation: u64) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|c| c.generation == generation)
    }
}

/// A running health-check task; the task stops when the last handle is dropped.
#[derive(Debug)]
pub struct HealthCheck {
    stop: CancellationToken,
    /// The compiled services using this checker, newest last; a round probes the endpoints
    /// of the newest one still alive.
    services: Mutex<Vec<Weak<ServiceRuntime>>>,
}

impl HealthCheck {
    fn adopt(&self, service: &Arc<ServiceRuntime>) {
        let mut services = super::lock(&self.services);
        services.retain(|s| s.strong_count() > 0);
        services.push(Arc::downgrade(service));
    }

    fn current_endpoints(&self) -> Option<Arc<Endpoints>> {
        let mut services = super::lock(&self.services);
        services.retain(|s| s.strong_count() > 0);
        let newest = services.last()?.upgrade()?;
        drop(services);
        Some(newest.endpoints())
    }
}

impl Drop for HealthCheck {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// Starts the health checks of `service` with `settings`, or adopts the running checker
/// when it was started for the same settings, protocol and targets. Keep the handle as long
/// as the service is in use. `None` outside a tokio runtime (nothing can run the checks).
pub fn start(service: &Arc<ServiceRuntime>, settings: HealthSettings) -> Option<Arc<HealthCheck>> {
    let key = CheckKey {
        settings,
        protocol: service.protocol,
        targets: service
            .endpoints()
            .targets
            .iter()
            .map(|e| e.target.url.clone())
            .collect(),
    };
    let mut slot = service.state.health().lock();
    if let Some(current) = slot.as_ref().filter(|c| c.key == key)
        && let Some(check) = current.check.upgrade()
    {
        check.adopt(service);
        return Some(check);
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(service = %service.name, "no async runtime: health checks not started");
        return None;
    };
    let generation = GENERATIONS.fetch_add(1, Relaxed);
    let check = Arc::new(HealthCheck {
        stop: CancellationToken::new(),
        services: Mutex::new(vec![Arc::downgrade(service)]),
    });
    let round = Round {
        service: service.name.clone(),
        protocol: service.protocol,
        settings: key.settings.clone(),
    };
    *slot = Some(Current {
        key,
        generation,
        check: Arc::downgrade(&check),
    });
    drop(slot);
    runtime.spawn(run(
        Arc::downgrade(&check),
        check.stop.clone(),
        service.state.clone(),
        generation,
        round,
    ));
    Some(check)
}

/// Turns the health checks of `service` off: no checker is current any more, and every
/// target is healthy again (nothing would ever bring an unhealthy one back).
pub fn stop(service: &ServiceRuntime) {
    service.state.health().lock().take();
    for endpoint in &service.endpoints().targets {
        endpoint.state.health().reset();
    }
}

/// What one round of probes needs.
struct Round {
    service: Arc<str>,
    protocol: UpstreamProtocol,
    settings: HealthSettings,
}

async fn run(
    check: Weak<HealthCheck>,
    stop: CancellationToken,
    state: Arc<ServiceState>,
    generation: u64,
    round: Round,
) {
    let mut ticks = tokio::time::interval(round.settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let round = Arc::new(round);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if !state.health().is_current(generation) {
            // A reload started a newer checker; this one only waits for its last user.
            continue;
        }
        let Some(endpoints) = check.upgrade().and_then(|c| c.current_endpoints()) else {
            return;
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = probe_all(&endpoints, &round) => {}
        }
    }
}

/// Probes every target at once and records the results.
async fn probe_all(endpoints: &Endpoints, round: &Arc<Round>) {
    let mut probes = JoinSet::new();
    for endpoint in &endpoints.targets {
        let (target, state, round) = (
            endpoint.target.clone(),
            endpoint.state.clone(),
            round.clone(),
        );
        probes.spawn(async move { check_target(&target, &state, &round).await });
    }
    while probes.join_next().await.is_some() {}
}

async fn check_target(target: &Target, state: &TargetState, round: &Round) {
    let settings = &round.settings;
    let result = probe::probe(target, round.protocol, &settings.path, settings.timeout).await;
    if let Err(failure) = &result {
        tracing::debug!(service = %round.service, target = %target.url, %failure, "health check failed");
    }
    match state.health().record(result.is_ok(), settings) {
        Some(true) => tracing::info!(
            service = %round.service,
            target = %target.url,
            "target passes its health checks again; back in rotation"
        ),
        Some(false) => tracing::warn!(
            service = %round.service,
            target = %target.url,
            "target failed {} health checks in a row; out of rotation",
            settings.unhealthy_after
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(healthy_after: u32, unhealthy_after: u32) -> HealthSettings {
        HealthSettings {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_after,
            unhealthy_after,
        }
    }

    #[test]
    fn unhealthy_after_failures_in_a_row_and_healthy_after_passes_in_a_row() {
        let s = settings(2, 3);
        let health = TargetHealth::default();
        assert!(health.is_healthy(), "targets start healthy");
        assert_eq!(health.record(false, &s), None);
        assert_eq!(health.record(false, &s), None);
        assert_eq!(health.record(true, &s), None, "a pass breaks the run");
        assert_eq!(health.record(false, &s), None);
        assert_eq!(health.record(false, &s), None);
        assert_eq!(health.record(false, &s), Some(false));
        assert!(!health.is_healthy());
        assert_eq!(health.record(false, &s), None);
        assert_eq!(health.record(true, &s), None);
        assert_eq!(health.record(false, &s), None, "a failure breaks the run");
        assert_eq!(health.record(true, &s), None);
        assert_eq!(health.record(true, &s), Some(true));
        assert!(health.is_healthy());
    }

    #[test]
    fn one_is_enough_when_configured() {
        let s = settings(1, 1);
        let health = TargetHealth::default();
        assert_eq!(health.record(false, &s), Some(false));
        assert_eq!(health.record(true, &s), Some(true));
        health.record(false, &s);
        health.reset();
        assert!(health.is_healthy());
    }
}
