//! A compiled service: its targets bound to pools and registry state, and the weighted round
//! robin that picks among them.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::pool::{ClientPools, TargetPool, UpstreamProtocol, WorkerPools};
use super::registry::{ServiceState, TargetKey, TargetState, UpstreamRegistry};
use super::retry::RetryPolicy;
use super::tls::{TargetTls, UpstreamTls};

/// One address that serves a service.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target's URL as written in the config, for logs.
    pub url: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port` to connect to.
    pub authority: Authority,
    /// The `Host` header sent when the route does not preserve the client's.
    pub host_header: HeaderValue,
    /// Relative share of traffic (≥ 1).
    pub weight: u32,
    /// How to speak TLS to an `https` target (set by [`Target::with_tls`]).
    pub tls: Option<TargetTls>,
}

/// Why a target URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TargetError {}

impl Target {
    /// Parses a target URL (`http(s)://host:port`, no path) with its weight. The URL rules
    /// are the config's ([`crate::config::parse_target_url`]). An `https` target needs its
    /// TLS settings next ([`Target::with_tls`]).
    pub fn parse(url: &str, weight: u32) -> Result<Self, TargetError> {
        let parsed = crate::config::parse_target_url(url).map_err(TargetError)?;
        let (scheme, default_port) = if parsed.https {
            (Scheme::HTTPS, 443)
        } else {
            (Scheme::HTTP, 80)
        };
        let host = if parsed.host.contains(':') {
            format!("[{}]", parsed.host)
        } else {
            parsed.host
        };
        let invalid =
            |e: &dyn std::fmt::Display| TargetError(format!("invalid target URL `{url}`: {e}"));
        let authority: Authority = format!("{host}:{}", parsed.port)
            .parse()
            .map_err(|e| invalid(&e))?;
        // The default port is left out of `Host`, as clients do.
        let host_header = if parsed.port == default_port {
            HeaderValue::from_str(&host)
        } else {
            HeaderValue::from_str(authority.as_str())
        }
        .map_err(|e| invalid(&e))?;
        Ok(Self {
            url: url.to_owned(),
            scheme,
            authority,
            host_header,
            weight: weight.max(1),
            tls: None,
        })
    }

    /// Whether the target is `https://`.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// This `https` target with the service's TLS settings; its server name is the URL's host
    /// unless `tls.sni` says otherwise.
    pub fn with_tls(mut self, tls: &UpstreamTls) -> Result<Self, TargetError> {
        let host = self
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tls = tls
            .for_host(host)
            .map_err(|e| TargetError(format!("target URL `{}`: {e}", self.url)))?;
        self.tls = Some(tls);
        Ok(self)
    }
}

/// A service ready to forward to: its current targets, their pools, timeouts and state.
pub struct ServiceRuntime {
    /// The service's name in the config.
    pub name: Arc<str>,
    /// The protocol spoken to the targets.
    pub protocol: UpstreamProtocol,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange up to response headers.
    pub request_timeout: Duration,
    /// The service's state in the registry (breaker, retry budget).
    pub state: Arc<ServiceState>,
    /// How failed attempts are retried; `None`: they are not.
    pub retry: Option<RetryPolicy>,
    endpoints: ArcSwap<Endpoints>,
}

/// A target bound to its pools and its state in the registry.
pub struct Endpoint {
    /// The address and how to speak to it.
    pub target: Target,
    /// What traffic and health checks know about the target.
    pub state: Arc<TargetState>,
    pools: WorkerPools,
}

impl Endpoint {
    /// The calling worker's connections to the target.
    pub fn pool(&self) -> &Arc<TargetPool> {
        &self.pools[crate::server::current_worker() % self.pools.len()]
    }
}

/// The targets a service has now, with the schedule that spreads requests over them. A
/// request loads them once ([`ServiceRuntime::endpoints`]) and picks by index, so its retries
/// see the same list even when discovery replaces it meanwhile.
pub struct Endpoints {
    /// The targets, in config order.
    pub targets: Vec<Endpoint>,
    schedule: Vec<u32>,
    next: AtomicUsize,
}

/// What a balancer may look at to choose a target for a request.
pub struct PickKey<'a> {
    /// The client's address.
    pub client_ip: IpAddr,
    /// The request headers (for `hash_on: header:` and `cookie:`).
    pub headers: &'a HeaderMap,
    /// The authenticated consumer, if any.
    pub consumer: Option<&'a str>,
}

impl Endpoints {
    fn new(targets: Vec<Endpoint>) -> Self {
        let weights: Vec<u32> = targets.iter().map(|e| e.target.weight).collect();
        Self {
            schedule: smooth_schedule(&weights),
            targets,
            next: AtomicUsize::new(0),
        }
    }

    /// The target for a request, as an index into `targets`: the next one by weighted round
    /// robin that is available and not in `tried`. `None` when no target is left.
    pub fn pick(&self, _key: &PickKey<'_>, tried: &[usize]) -> Option<usize> {
        let now = Instant::now();
        let usable = |i: usize| !tried.contains(&i) && self.targets[i].state.available(now);
        if self.targets.len() == 1 {
            return usable(0).then_some(0);
        }
        for _ in 0..self.schedule.len() {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let index = self.schedule[n % self.schedule.len()] as usize;
            if usable(index) {
                return Some(index);
            }
        }
        (0..self.targets.len()).find(|&i| usable(i))
    }
}

impl ServiceRuntime {
    /// A service over `targets` (at least one), connecting through `pools`, keeping its state
    /// in `registry`.
    pub fn new(
        name: &str,
        targets: Vec<Target>,
        protocol: UpstreamProtocol,
        pools: &ClientPools,
        registry: &UpstreamRegistry,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        let name: Arc<str> = name.into();
        let endpoints = targets
            .into_iter()
            .map(|target| Endpoint {
                pools: pools.target(&target.authority, protocol, target.tls.as_ref()),
                state: registry.target(TargetKey {
                    service: name.clone(),
                    address: target.url.clone(),
                }),
                target,
            })
            .collect();
        Self {
            state: registry.service(&name),
            name,
            protocol,
            connect_timeout,
            request_timeout,
            retry: None,
            endpoints: ArcSwap::from_pointee(Endpoints::new(endpoints)),
        }
    }

    /// This service, retrying failed attempts by `policy`.
    pub fn with_retries(mut self, policy: Option<RetryPolicy>) -> Self {
        self.retry = policy;
        self
    }

    /// The targets the service has now.
    pub fn endpoints(&self) -> Arc<Endpoints> {
        self.endpoints.load_full()
    }

    /// The balancing algorithm's name, as in the config (`GET /services`).
    pub fn balance(&self) -> &'static str {
        "round_robin"
    }
}

/// Longest smooth weighted round robin schedule kept; longer cycles are scaled down.
const MAX_SCHEDULE: u64 = 4096;

/// One cycle of nginx's smooth weighted round robin: each target appears `weight` times,
/// spread out rather than in runs.
fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return vec![0];
    }
    let total: u64 = weights.iter().map(|&w| u64::from(w.max(1))).sum();
    // Scale very long cycles down, keeping every target at least once.
    let weights: Vec<i64> = if total > MAX_SCHEDULE {
        weights
            .iter()
            .map(|&w| ((u64::from(w.max(1)) * MAX_SCHEDULE / total).max(1)) as i64)
            .collect()
    } else {
        weights.iter().map(|&w| i64::from(w.max(1))).collect()
    };
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..weights.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        schedule.push(best as u32);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_schedule_spreads_weights() {
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_schedule(&[1, 1]), vec![0, 1]);
    }

    #[test]
    fn long_cycles_are_scaled_but_keep_every_target() {
        let schedule = smooth_schedule(&[1_000_000, 1]);
        assert!(schedule.len() as u64 <= MAX_SCHEDULE + 1);
        assert!(schedule.contains(&1));
    }

    #[test]
    fn target_urls() {
        let t = Target::parse("http://127.0.0.1:9001", 1).expect("valid");
        assert_eq!(t.authority.as_str(), "127.0.0.1:9001");
        let t = Target::parse("http://users.internal", 2).expect("valid");
        assert_eq!(t.authority.as_str(), "users.internal:80");
        assert_eq!(t.host_header, "users.internal");
        assert!(Target::parse("http://a:1/path", 1).is_err());
        let t = Target::parse("https://api.internal", 1).expect("valid");
        assert_eq!(t.authority.as_str(), "api.internal:443");
        assert_eq!(t.host_header, "api.internal");
        assert!(t.is_https());
        let t = Target::parse("https://api.internal:8443", 1).expect("valid");
        assert_eq!(t.host_header, "api.internal:8443");
        assert!(Target::parse("ftp://a:1", 1).is_err());
    }
}
