//! A compiled service: its targets and the weighted round robin that picks among them.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;
use http::uri::{Authority, Scheme};

use super::pool::{ClientPools, TargetPool, UpstreamProtocol, WorkerPools};

/// One address that serves a service.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target's URL as written in the config, for logs.
    pub url: String,
    /// `http` (https comes with upstream TLS).
    pub scheme: Scheme,
    /// `host:port` to connect to.
    pub authority: Authority,
    /// The `Host` header sent when the route does not preserve the client's.
    pub host_header: HeaderValue,
    /// Relative share of traffic (≥ 1).
    pub weight: u32,
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
    /// Parses a target URL (`http://host:port`, no path) with its weight. The URL rules are
    /// the config's ([`crate::config::parse_target_url`]); this only adds that https targets
    /// are not supported yet.
    pub fn parse(url: &str, weight: u32) -> Result<Self, TargetError> {
        let parsed = crate::config::parse_target_url(url).map_err(TargetError)?;
        if parsed.https {
            return Err(TargetError(format!(
                "target URL `{url}`: only http:// targets are supported yet"
            )));
        }
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
        let host_header = if parsed.port == 80 {
            HeaderValue::from_str(&host)
        } else {
            HeaderValue::from_str(authority.as_str())
        }
        .map_err(|e| invalid(&e))?;
        Ok(Self {
            url: url.to_owned(),
            scheme: Scheme::HTTP,
            authority,
            host_header,
            weight: weight.max(1),
        })
    }
}

/// A service ready to forward to: targets, their schedule, their pools and timeouts.
pub struct ServiceRuntime {
    /// The service's name in the config.
    pub name: Arc<str>,
    /// Its targets, in config order.
    pub targets: Vec<Target>,
    /// The protocol spoken to the targets.
    pub protocol: UpstreamProtocol,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange up to response headers.
    pub request_timeout: Duration,
    pools: Vec<WorkerPools>,
    schedule: Vec<u32>,
    next: AtomicUsize,
}

/// Longest smooth weighted round robin schedule kept; longer cycles are scaled down.
const MAX_SCHEDULE: u64 = 4096;

impl ServiceRuntime {
    /// A service over `targets` (at least one), connecting through `pools`.
    pub fn new(
        name: &str,
        targets: Vec<Target>,
        protocol: UpstreamProtocol,
        pools: &ClientPools,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
        let pools = targets
            .iter()
            .map(|t| pools.target(&t.authority, protocol))
            .collect();
        Self {
            name: name.into(),
            schedule: smooth_schedule(&weights),
            targets,
            protocol,
            connect_timeout,
            request_timeout,
            pools,
            next: AtomicUsize::new(0),
        }
    }

    /// The next target by weighted round robin, as an index into `targets`.
    pub fn pick(&self) -> usize {
        if self.targets.len() == 1 {
            return 0;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.schedule[n % self.schedule.len()] as usize
    }

    /// The calling worker's connections to target `index`.
    pub fn pool(&self, index: usize) -> &Arc<TargetPool> {
        let pools = &self.pools[index];
        &pools[crate::server::current_worker() % pools.len()]
    }
}

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
        assert!(Target::parse("ftp://a:1", 1).is_err());
    }
}
