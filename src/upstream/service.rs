//! A compiled service: its targets bound to pools and registry state, and the balancer that
//! picks among them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue};
use tokio_util::sync::CancellationToken;

use super::balance::{Balance, Balancer};
use super::discovery;
use super::pool::{ClientPools, TargetPool, UpstreamProtocol, WorkerPools};
use super::registry::{ServiceState, TargetKey, TargetState, UpstreamRegistry};
use super::retry::RetryPolicy;
use super::tls::{TargetTls, UpstreamTls};
use crate::worker_hold::{WorkerCopies, WorkerHold, WorkerHolds};

/// One address that serves a service.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target's URL as written in the config, for logs.
    pub url: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port` to connect to.
    pub authority: Authority,
    /// The `Host` header sent when the route does not preserve the client's, a copy per
    /// worker thread, since every request clones it (see [`Target::host_header`]).
    host_headers: WorkerCopies<HeaderValue>,
    /// Relative share of traffic (≥ 1).
    pub weight: u32,
    /// How to speak TLS to an `https` target (set by [`Target::with_tls`]).
    pub tls: Option<TargetTls>,
    /// The target's identity in the registry and on a hash ring: its URL, or `ip:port` for
    /// one address its DNS name resolved to.
    pub address: String,
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
            host_headers: WorkerCopies::of_value(&host_header),
            weight: weight.max(1),
            tls: None,
            address: url.to_owned(),
        })
    }

    /// The `Host` header sent when the route does not preserve the client's: the calling
    /// worker's copy (see [`crate::worker_hold::WorkerCopies`]).
    pub fn host_header(&self) -> &HeaderValue {
        self.host_headers.here()
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

    /// The DNS name and port to resolve, unless the URL names an IP address.
    pub fn dns_name(&self) -> Option<(&str, u16)> {
        let host = self.authority.host();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<IpAddr>().is_ok() {
            return None;
        }
        Some((host, self.authority.port_u16().unwrap_or(80)))
    }

    /// The same target at one address its name resolved to: connected to by address, still
    /// sending the name in `Host`.
    pub fn at(&self, addr: SocketAddr) -> Self {
        let address = addr.to_string();
        Self {
            authority: address.parse().unwrap_or_else(|_| self.authority.clone()),
            address,
            ..self.clone()
        }
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
    /// Each worker's hold on `endpoints`, for its requests (see [`ServiceRuntime::endpoints_here`]).
    holds: WorkerHolds<Endpoints>,
    /// The targets as configured (DNS names unresolved), that `endpoints` is made from.
    configured: Vec<Target>,
    balance: Balance,
    /// Cancelled when the service is dropped: stops its DNS discovery.
    stop: CancellationToken,
}

impl Drop for ServiceRuntime {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A target bound to its pools and its state in the registry.
#[derive(Clone)]
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

/// The targets a service has now, with the balancer that spreads requests over them. A
/// request loads them once ([`ServiceRuntime::endpoints`]) and picks by index, so its retries
/// see the same list even when discovery replaces it meanwhile.
pub struct Endpoints {
    /// The targets, in config order (a DNS name's addresses in address order).
    pub targets: Vec<Endpoint>,
    balancer: Balancer,
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
    fn new(targets: Vec<Endpoint>, balance: &Balance) -> Self {
        let identities: Vec<(&str, u32)> = targets
            .iter()
            .map(|e| (e.target.address.as_str(), e.target.weight))
            .collect();
        Self {
            balancer: Balancer::new(balance, &identities),
            targets,
        }
    }

    /// The target for a request, as an index into `targets`: one the service's balancer
    /// chooses among those available and not in `tried`. `None` when no target is left.
    pub fn pick(&self, key: &PickKey<'_>, tried: &[usize]) -> Option<usize> {
        let now = crate::poll_clock::now();
        if self.targets.len() == 1 {
            return (!tried.contains(&0) && self.targets[0].state.available(now)).then_some(0);
        }
        self.balancer
            .pick(|i| &*self.targets[i].state, key, tried, now)
    }

    /// The targets' registry addresses, in order.
    fn addresses(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|e| e.target.address.as_str())
    }
}

/// Binds targets to their pools and registry state.
fn bind(
    service: &Arc<str>,
    targets: Vec<Target>,
    protocol: UpstreamProtocol,
    pools: &ClientPools,
    registry: &UpstreamRegistry,
) -> Vec<Endpoint> {
    targets
        .into_iter()
        .map(|target| Endpoint {
            pools: pools.target(&target.authority, protocol, target.tls.as_ref()),
            state: registry.target(TargetKey {
                service: service.clone(),
                address: target.address.clone(),
            }),
            target,
        })
        .collect()
}

impl ServiceRuntime {
    /// A service over `targets` (at least one), connecting through `pools`, keeping its state
    /// in `registry`, balanced by round robin. A target naming a DNS host stands for the
    /// addresses the name last resolved to (see [`ServiceRuntime::discover`]), or for the name
    /// itself until it has resolved once.
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
        let balance = Balance::default();
        let current = discovery::expand(&targets, registry);
        let endpoints = Endpoints::new(bind(&name, current, protocol, pools, registry), &balance);
        Self {
            state: registry.service(&name),
            name,
            protocol,
            connect_timeout,
            request_timeout,
            retry: None,
            endpoints: ArcSwap::from_pointee(endpoints),
            holds: WorkerHolds::default(),
            configured: targets,
            balance,
            stop: CancellationToken::new(),
        }
    }

    /// This service, retrying failed attempts by `policy`.
    pub fn with_retries(mut self, policy: Option<RetryPolicy>) -> Self {
        self.retry = policy;
        self
    }

    /// The same service balanced by `balance`.
    pub fn with_balance(mut self, balance: Balance) -> Self {
        let targets = self.endpoints.load().targets.clone();
        self.endpoints = ArcSwap::from_pointee(Endpoints::new(targets, &balance));
        self.balance = balance;
        self
    }

    /// The targets the service has now.
    pub fn endpoints(&self) -> Arc<Endpoints> {
        self.endpoints.load_full()
    }

    /// The targets the service has now, through the calling worker's hold (see
    /// [`crate::worker_hold`]): for a request, which keeps them until it ends.
    pub fn endpoints_here(&self) -> WorkerHold<Endpoints> {
        self.holds.hold(&self.endpoints.load())
    }

    /// The balancing algorithm's name, as in the config (`GET /services`).
    pub fn balance(&self) -> &'static str {
        self.balance.name()
    }

    /// Starts re-resolving the service's DNS targets in the background (nothing to do when
    /// every target is an IP address). The task stops when the service is dropped.
    pub fn discover(self: &Arc<Self>, pools: Arc<ClientPools>, registry: Arc<UpstreamRegistry>) {
        discovery::start(self, pools, registry);
    }

    /// The targets as configured.
    pub(super) fn configured(&self) -> &[Target] {
        &self.configured
    }

    /// A token cancelled when the service is dropped.
    pub(super) fn stopped(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Rebuilds the targets from the configured ones and the DNS names' last resolution,
    /// swapping them in when the addresses changed. Targets that stay keep their state and
    /// pools (the registry hands out the same ones by address). Returns whether it swapped.
    pub(super) fn refresh(&self, pools: &ClientPools, registry: &UpstreamRegistry) -> bool {
        let targets = discovery::expand(&self.configured, registry);
        let current = self.endpoints.load();
        if current
            .addresses()
            .eq(targets.iter().map(|t| t.address.as_str()))
        {
            return false;
        }
        let endpoints = bind(&self.name, targets, self.protocol, pools, registry);
        self.endpoints
            .store(Arc::new(Endpoints::new(endpoints, &self.balance)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls() {
        let t = Target::parse("http://127.0.0.1:9001", 1).expect("valid");
        assert_eq!(t.authority.as_str(), "127.0.0.1:9001");
        let t = Target::parse("http://users.internal", 2).expect("valid");
        assert_eq!(t.authority.as_str(), "users.internal:80");
        assert_eq!(*t.host_header(), "users.internal");
        assert!(Target::parse("http://a:1/path", 1).is_err());
        let t = Target::parse("https://api.internal", 1).expect("valid");
        assert_eq!(t.authority.as_str(), "api.internal:443");
        assert_eq!(*t.host_header(), "api.internal");
        assert!(t.is_https());
        let t = Target::parse("https://api.internal:8443", 1).expect("valid");
        assert_eq!(*t.host_header(), "api.internal:8443");
        assert!(Target::parse("ftp://a:1", 1).is_err());
    }

    #[test]
    fn dns_names_and_their_addresses() {
        let named = Target::parse("http://users.internal:8080", 3).expect("valid");
        assert_eq!(named.dns_name(), Some(("users.internal", 8080)));
        let one = named.at("10.0.0.7:8080".parse().expect("addr"));
        assert_eq!(one.authority.as_str(), "10.0.0.7:8080");
        assert_eq!(one.address, "10.0.0.7:8080");
        assert_eq!(*one.host_header(), "users.internal:8080");
        assert_eq!(
            (one.url.as_str(), one.weight),
            ("http://users.internal:8080", 3)
        );
        let six = named.at("[::1]:8080".parse().expect("addr"));
        assert_eq!(six.authority.as_str(), "[::1]:8080");
        for literal in ["http://127.0.0.1:1", "http://[::1]:1"] {
            let t = Target::parse(literal, 1).expect("valid");
            assert_eq!(t.dns_name(), None);
            assert_eq!(t.address, literal);
        }
    }
}
