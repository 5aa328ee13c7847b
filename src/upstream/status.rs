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
