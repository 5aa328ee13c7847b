//! A service's `health`, `passive` and `circuit_breaker`, applied when a compiled config is
//! about to serve: only a config that compiled completely changes the settings kept in the
//! registry or starts health checks, so a rejected reload leaves the running ones untouched.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::runtime::State;
use crate::upstream::ServiceRuntime;
use crate::upstream::breaker::BreakerSettings;
use crate::upstream::health::{self, HealthCheck, HealthSettings};
use crate::upstream::passive::PassiveSettings;

/// Applies every service's resilience settings and starts (or adopts) its health checks;
/// returns the health-check handles the runtime must hold. Nothing happens for a dry run.
pub(super) fn activate(
    config: &Config,
    services: &HashMap<String, Arc<ServiceRuntime>>,
    state: &State,
) -> Vec<Arc<HealthCheck>> {
    let mut checks = Vec::new();
    if state.is_dry_run() {
        return checks;
    }
    for (name, spec) in &config.services {
        let Some(service) = services.get(name) else {
            continue;
        };
        let spec = &spec.value;
        let passive = spec.passive.as_ref().map(|p| PassiveSettings {
            failures: p.value.failures.value,
            eject_for: p.value.eject_for.value.get(),
        });
        service.state.passive().configure(passive);
        if passive.is_none() {
            for endpoint in &service.endpoints().targets {
                endpoint.state.ejection().clear();
            }
        }
        let breaker = spec.circuit_breaker.as_ref().map(|b| BreakerSettings {
            failure_ratio: b.value.failure_ratio.value,
            min_requests: b.value.min_requests.value,
            window: b.value.window.value.get(),
            open_for: b.value.open_for.value.get(),
        });
        service.state.breaker().configure(name, breaker);
        match &spec.health {
            Some(h) => {
                let settings = HealthSettings {
                    path: h.value.path.value.clone(),
                    interval: h.value.interval.value.get(),
                    timeout: h.value.timeout.value.get(),
                    healthy_after: h.value.healthy_after.value,
                    unhealthy_after: h.value.unhealthy_after.value,
                };
                checks.extend(health::start(service, settings));
            }
            None => health::stop(service),
        }
    }
    checks
}
