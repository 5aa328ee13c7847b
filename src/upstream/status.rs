//! A snapshot of each service's resilience state, for the admin API's `GET /services` and the
//! dashboard: circuit state, and per target its health, ejection, requests in flight and
//! latency.

use serde::Serialize;
use tokio::time::Instant;

use super::breaker::CircuitState;
use super::service::ServiceRuntime;

/// One service as `GET /services` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStatus {
    /// The service's name in the config.
    pub name: String,
    /// The balancing algorithm.
    pub balance: &'static str,
    /// Whether active health checks run (`health`).
    pub health_checks: bool,
    /// Whether live traffic can eject targets (`passive`).
    pub passive: bool,
    /// The circuit breaker (closed when the service has none).
    pub circuit: CircuitStatus,
    /// The service's current targets, in config (or discovery) order.
    pub targets: Vec<TargetStatus>,
}

/// A service's circuit breaker now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CircuitStatus {
    /// Whether the service has a `circuit_breaker`.
    pub enabled: bool,
    /// `closed`, `open` or `half_open`.
    pub state: CircuitState,
    /// While open: whole seconds (rounded up) until probes are let through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_in_secs: Option<u64>,
    /// Attempts counted in the rolling window.
    pub window_requests: u64,
    /// Failed attempts counted in the rolling window.
    pub window_failures: u64,
}

/// Whether a target passes its active health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Passing (or not checked).
    Healthy,
    /// Failing: it gets no traffic until it passes `healthy_after` checks.
    Unhealthy,
}

/// One target as `GET /services` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    /// The target's URL as configured.
    pub url: String,
    /// The `host:port` the gateway connects to.
    pub address: String,
    /// Its relative share of traffic.
    pub weight: u32,
    /// Its active health.
    pub health: Health,
    /// Whether passive ejection keeps it out of rotation now.
    pub ejected: bool,
    /// While ejected: whole seconds (rounded up) until it gets traffic again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ejected_for_secs: Option<u64>,
    /// Whether it may get traffic now (healthy and not ejected).
    pub available: bool,
    /// Requests sent to it and not answered yet.
    pub in_flight: u32,
    /// Its smoothed latency to response headers, in milliseconds, once known.
    pub latency_ms: Option<f64>,
}

/// The status of `service` at `now`.
pub fn service_status(service: &ServiceRuntime, now: Instant) -> ServiceStatus {
    let state = &service.state;
    let (circuit, left) = state.breaker().state(now);
    let (window_requests, window_failures) = state.breaker().window_counts(now);
    let endpoints = service.endpoints();
    let targets = endpoints
        .targets
        .iter()
        .map(|endpoint| {
            let target = &endpoint.target;
            let state = &endpoint.state;
            let ejected_for = state.ejection().remaining(now);
            TargetStatus {
                url: target.url.clone(),
                address: target.authority.to_string(),
                weight: target.weight,
                health: if state.health().is_healthy() {
                    Health::Healthy
                } else {
                    Health::Unhealthy
                },
                ejected: ejected_for.is_some(),
                ejected_for_secs: ejected_for.map(|d| d.as_millis().div_ceil(1000) as u64),
                available: state.available(now),
                in_flight: state.in_flight(),
                latency_ms: state.latency().map(|d| d.as_secs_f64() * 1000.0),
            }
        })
        .collect();
    ServiceStatus {
        name: service.name.to_string(),
        balance: service.balance(),
        health_checks: state.health().is_active(),
        passive: state.passive().is_enabled(),
        circuit: CircuitStatus {
            enabled: state.breaker().is_enabled(),
            state: circuit,
            half_open_in_secs: left.map(|d| d.as_millis().div_ceil(1000) as u64),
            window_requests,
            window_failures,
        },
        targets,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::breaker::BreakerSettings;
    use crate::upstream::health::HealthSettings;
    use crate::upstream::passive::PassiveSettings;
    use crate::upstream::{ClientPools, Outcome, Target, UpstreamProtocol, UpstreamRegistry};

    fn service(registry: &UpstreamRegistry) -> ServiceRuntime {
        let targets = vec![
            Target::parse("http://127.0.0.1:9001", 3).expect("valid"),
            Target::parse("http://127.0.0.1:9002", 1).expect("valid"),
            Target::parse("http://127.0.0.1:9003", 1).expect("valid"),
        ];
        ServiceRuntime::new(
            "users",
            targets,
            UpstreamProtocol::Http1,
            &ClientPools::new(1),
            registry,
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn the_snapshot_shows_health_ejection_and_the_circuit() {
        let registry = UpstreamRegistry::default();
        let service = service(&registry);
        let quiet = service_status(&service, Instant::now());
        assert_eq!(quiet.name, "users");
        assert_eq!(quiet.balance, "round_robin");
        assert!(!quiet.passive && !quiet.health_checks && !quiet.circuit.enabled);
        assert_eq!(quiet.circuit.state, CircuitState::Closed);
        assert_eq!(quiet.targets.len(), 3);
        assert_eq!(quiet.targets[0].url, "http://127.0.0.1:9001");
        assert_eq!(quiet.targets[0].address, "127.0.0.1:9001");
        assert_eq!(quiet.targets[0].weight, 3);
        assert!(quiet.targets.iter().all(|t| t.available
            && t.health == Health::Healthy
            && !t.ejected
            && t.in_flight == 0
            && t.latency_ms.is_none()));

        let endpoints = service.endpoints();
        let [first, second, third] = &endpoints.targets[..] else {
            panic!("three targets");
        };
        service.state.passive().configure(Some(PassiveSettings {
            failures: 1,
            eject_for: Duration::from_millis(2500),
        }));
        first
            .state
            .ejection()
            .record(service.state.passive(), Outcome::Reset, Instant::now());
        let health = HealthSettings {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_after: 1,
            unhealthy_after: 1,
        };
        second.state.health().record(false, &health);
        let attempt = crate::upstream::Attempt::start(&third.state, &service.state);
        service.state.breaker().configure(
            "users",
            Some(BreakerSettings {
                failure_ratio: 0.5,
                min_requests: 1,
                window: Duration::from_secs(10),
                open_for: Duration::from_secs(30),
            }),
        );
        service
            .state
            .breaker()
            .record(Outcome::Status(503), Instant::now());
        tokio::time::advance(Duration::from_millis(100)).await;

        let now = service_status(&service, Instant::now());
        assert!(now.passive && now.circuit.enabled);
        assert_eq!(now.circuit.state, CircuitState::Open);
        assert_eq!(now.circuit.half_open_in_secs, Some(30));
        assert_eq!(
            (now.circuit.window_requests, now.circuit.window_failures),
            (1, 1)
        );
        let [a, b, c] = &now.targets[..] else {
            panic!("three targets");
        };
        assert!(a.ejected && !a.available && a.health == Health::Healthy);
        assert_eq!(a.ejected_for_secs, Some(3));
        assert!(!b.ejected && !b.available && b.health == Health::Unhealthy);
        assert!(c.available && c.in_flight == 1);

        let json = serde_json::to_value(&now).expect("serializes");
        assert_eq!(json["circuit"]["state"], "open");
        assert_eq!(json["circuit"]["half_open_in_secs"], 30);
        assert_eq!(json["targets"][0]["ejected_for_secs"], 3);
        assert_eq!(json["targets"][1]["health"], "unhealthy");
        assert!(json["targets"][2].get("ejected_for_secs").is_none());
        drop(attempt);

        tokio::time::advance(Duration::from_secs(30)).await;
        let later = service_status(&service, Instant::now());
        assert_eq!(later.circuit.state, CircuitState::HalfOpen);
        assert_eq!(later.circuit.half_open_in_secs, None);
        assert!(!later.targets[0].ejected && later.targets[0].available);
        assert_eq!(later.targets[2].in_flight, 0);
    }
}
