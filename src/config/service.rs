//! Services (SPEC §2.2): named sets of targets serving the same API, and how to reach them.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::plugins::Plugins;
use super::tokens::{Method, Selector};
use super::units::Duration;

/// An upstream service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Shorthand for a single target.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// Weighted targets (instead of `url`).
    #[serde(default)]
    pub targets: Vec<Target>,
    /// How requests are spread over targets. Absent: round robin.
    #[serde(default)]
    pub balance: Option<Spanned<Balance>>,
    /// The request attribute hashed by `balance: hash`.
    #[serde(default)]
    pub hash_on: Option<Spanned<Selector>>,
    /// The protocol spoken to the targets. Absent: http.
    #[serde(default)]
    pub protocol: Option<Spanned<Protocol>>,
    /// Connect and request timeouts.
    #[serde(default)]
    pub timeouts: ServiceTimeouts,
    /// Retries of failed attempts.
    #[serde(default)]
    pub retries: Option<Spanned<Retries>>,
    /// Active health checks.
    #[serde(default)]
    pub health: Option<Spanned<Health>>,
    /// Outlier ejection from live traffic.
    #[serde(default)]
    pub passive: Option<Spanned<Passive>>,
    /// Circuit breaker for the whole service.
    #[serde(default)]
    pub circuit_breaker: Option<Spanned<CircuitBreaker>>,
    /// TLS settings for `https://` targets.
    #[serde(default)]
    pub tls: Option<Spanned<ServiceTls>>,
    /// gRPC FileDescriptorSet for transcoding.
    #[serde(default)]
    pub descriptor: Option<Spanned<String>>,
    /// `.proto` sources compiled at load time, for transcoding.
    #[serde(default)]
    pub protos: Option<Spanned<Vec<String>>>,
    /// Plugins for every route of this service.
    #[serde(default)]
    pub plugins: Plugins,
}

/// One upstream address of a service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `http://host:port` or `https://host:port`, without path or query.
    pub url: Spanned<String>,
    /// Share of traffic relative to the other targets (at least 1). Default 1.
    #[serde(default = "default_weight")]
    pub weight: Spanned<u32>,
}

fn default_weight() -> Spanned<u32> {
    Spanned::new(
        1,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// Load-balancing algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Weighted round robin (the default).
    #[default]
    RoundRobin,
    /// Fewest requests in flight.
    LeastRequest,
    /// Weighted random.
    Random,
    /// Exponentially weighted moving average of latency.
    Ewma,
    /// Consistent hash of `hash_on`.
    Hash,
}

/// Protocol spoken to a service's targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1, or HTTP/2 by ALPN on https (the default).
    #[default]
    Http,
    /// HTTP/2 over plain TCP with prior knowledge.
    H2c,
    /// gRPC over HTTP/2.
    Grpc,
}

/// Upstream timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceTimeouts {
    /// Time to open a connection. Default 2s.
    pub connect: Duration,
    /// Time for the whole exchange up to the response headers. Default 30s.
    pub request: Duration,
}

impl Default for ServiceTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(30),
        }
    }
}

/// Retries of failed upstream attempts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retries {
    /// Extra tries after the first. Default 0.
    pub attempts: u32,
    /// Which failures are retried. Default: connect_failure, reset, 502, 503, 504.
    pub on: Vec<Spanned<RetryOn>>,
    /// Wait before the first retry, doubled each try, with jitter. Default 25ms.
    pub backoff: Duration,
    /// Methods that may be retried. Default: GET, HEAD, OPTIONS, PUT, DELETE.
    pub methods: Vec<Method>,
}

impl Default for Retries {
    fn default() -> Self {
        let unlocated = |on| {
            Spanned::new(
                on,
                serde_saphyr::Location::UNKNOWN,
                serde_saphyr::Location::UNKNOWN,
            )
        };
        Self {
            attempts: 0,
            on: vec![
                unlocated(RetryOn::ConnectFailure),
                unlocated(RetryOn::Reset),
                unlocated(RetryOn::Status(502)),
                unlocated(RetryOn::Status(503)),
                unlocated(RetryOn::Status(504)),
            ],
            backoff: Duration::from_millis(25),
            methods: ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]
                .into_iter()
                .map(|m| Method(m.to_owned()))
                .collect(),
        }
    }
}

/// A failure that may be retried: `connect_failure`, `reset`, `timeout`, or an upstream
/// status code (validation checks it is 400–599).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// The connection could not be opened.
    ConnectFailure,
    /// The connection was reset before a response.
    Reset,
    /// The attempt timed out.
    Timeout,
    /// The upstream answered with this status.
    Status(u16),
}

impl std::str::FromStr for RetryOn {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "connect_failure" => Ok(Self::ConnectFailure),
            "reset" => Ok(Self::Reset),
            "timeout" => Ok(Self::Timeout),
            _ => text.parse().map(Self::Status).map_err(|_| {
                format!(
                    "invalid retry condition `{text}`: expected `connect_failure`, `reset`, `timeout` or a status code"
                )
            }),
        }
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RetryOnVisitor;

        impl serde::de::Visitor<'_> for RetryOnVisitor {
            type Value = RetryOn;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`connect_failure`, `reset`, `timeout` or a status code")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RetryOn, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RetryOn, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RetryOn, E> {
                self.visit_str(&v.to_string())
            }
        }

        deserializer.deserialize_any(RetryOnVisitor)
    }
}

/// A value given by default, with no place in the file.
fn unlocated<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// Active health checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Health {
    /// Path requested on each target. Default `/health`.
    pub path: Spanned<String>,
    /// Time between checks. Default 5s.
    pub interval: Spanned<Duration>,
    /// Time a check may take. Default 1s.
    pub timeout: Spanned<Duration>,
    /// Passing checks before a target gets traffic again. Default 2.
    pub healthy_after: Spanned<u32>,
    /// Failing checks before a target gets no traffic. Default 3.
    pub unhealthy_after: Spanned<u32>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            path: unlocated("/health".to_owned()),
            interval: unlocated(Duration::from_secs(5)),
            timeout: unlocated(Duration::from_secs(1)),
            healthy_after: unlocated(2),
            unhealthy_after: unlocated(3),
        }
    }
}

/// Outlier ejection from live traffic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Passive {
    /// Consecutive 5xx or connect errors that eject a target. Default 5.
    pub failures: Spanned<u32>,
    /// How long an ejected target gets no traffic. Default 30s.
    pub eject_for: Spanned<Duration>,
}

impl Default for Passive {
    fn default() -> Self {
        Self {
            failures: unlocated(5),
            eject_for: unlocated(Duration::from_secs(30)),
        }
    }
}

/// Circuit breaker of a service.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Failed share of requests in the window that opens the circuit. Default 0.5.
    pub failure_ratio: Spanned<f64>,
    /// Requests in the window before the ratio counts. Default 20.
    pub min_requests: Spanned<u32>,
    /// Length of the measuring window. Default 10s.
    pub window: Spanned<Duration>,
    /// How long the circuit stays open before half-open probes. Default 30s.
    pub open_for: Spanned<Duration>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failure_ratio: unlocated(0.5),
            min_requests: unlocated(20),
            window: unlocated(Duration::from_secs(10)),
            open_for: unlocated(Duration::from_secs(30)),
        }
    }
}

/// TLS to `https://` targets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceTls {
    /// Verify the target's certificate. Default true.
    pub verify: bool,
    /// PEM file of CAs to trust instead of the system roots.
    pub ca: Option<Spanned<String>>,
    /// Server name sent and verified instead of the URL's host.
    pub sni: Option<Spanned<String>>,
}

impl Default for ServiceTls {
    fn default() -> Self {
        Self {
            verify: true,
            ca: None,
            sni: None,
        }
    }
}
