//! DNS discovery (SPEC §2.2): a target URL naming a DNS host stands for every address the name
//! resolves to, each a target of its own (same weight, the name in `Host`, its own pools and
//! registry state keyed by `ip:port`). A background task per service re-resolves the names every
//! [`RESOLVE_EVERY`] and swaps the service's targets when the addresses change.
//!
//! A failed resolution keeps the last good addresses (and logs a warning); a name that never
//! resolved stays a single target connected to by name. The last addresses of each name are
//! kept in the [`UpstreamRegistry`], so a reload starts from them instead of from the name. IP
//! addresses are never resolved.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::pool::ClientPools;
use super::registry::UpstreamRegistry;
use super::service::{ServiceRuntime, Target};

/// How often DNS names are resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);
/// Time one resolution may take before it counts as failed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Addresses by DNS name and port.
type Resolved = HashMap<(Box<str>, u16), Arc<[SocketAddr]>>;

/// The addresses each DNS name resolved to last, by name and port.
#[derive(Debug, Default)]
pub(super) struct DnsCache {
    names: Mutex<Resolved>,
}

impl DnsCache {
    fn lock(&self) -> MutexGuard<'_, Resolved> {
        super::lock(&self.names)
    }

    /// The addresses `host:port` last resolved to.
    pub(super) fn get(&self, host: &str, port: u16) -> Option<Arc<[SocketAddr]>> {
        self.lock().get(&(host.into(), port)).cloned()
    }

    fn set(&self, host: &str, port: u16, addresses: Vec<SocketAddr>) {
        self.lock().insert((host.into(), port), addresses.into());
    }
}

/// The targets `configured` stands for now: IP targets as they are, each DNS target once per
/// address its name last resolved to (or as it is, before the name has resolved once).
pub(super) fn expand(configured: &[Target], registry: &UpstreamRegistry) -> Vec<Target> {
    let mut targets = Vec::with_capacity(configured.len());
    for target in configured {
        let resolved = target
            .dns_name()
            .and_then(|(host, port)| registry.dns.get(host, port));
        match resolved {
            Some(addresses) => targets.extend(addresses.iter().map(|&addr| target.at(addr))),
            None => targets.push(target.clone()),
        }
    }
    targets
}

/// Starts the discovery task of `service` when it has DNS targets (on the calling tokio
/// runtime; without one, the names are only resolved when connecting).
pub(super) fn start(
    service: &Arc<ServiceRuntime>,
    pools: Arc<ClientPools>,
    registry: Arc<UpstreamRegistry>,
) {
    let names = names(service.configured());
    if names.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let task = Discovery {
        service: Arc::downgrade(service),
        name: service.name.clone(),
        stop: service.stopped(),
        pools,
        registry,
    };
    runtime.spawn(task.run(names, system_resolve, RESOLVE_EVERY));
}

/// The distinct DNS names (and ports) of `targets`.
fn names(targets: &[Target]) -> Vec<(String, u16)> {
    let mut names: Vec<(String, u16)> = Vec::new();
    for (host, port) in targets.iter().filter_map(Target::dns_name) {
        if !names.iter().any(|(h, p)| h == host && *p == port) {
            names.push((host.to_owned(), port));
        }
    }
    names
}

async fn system_resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host.as_str(), port))
        .await?
        .collect())
}

/// One service's discovery task: it holds the service weakly, so it never keeps it alive, and
/// stops when the service is dropped.
struct Discovery {
    service: Weak<ServiceRuntime>,
    name: Arc<str>,
    stop: CancellationToken,
    pools: Arc<ClientPools>,
    registry: Arc<UpstreamRegistry>,
}

impl Discovery {
    async fn run<R, F>(self, names: Vec<(String, u16)>, resolve: R, every: Duration)
    where
        R: Fn(String, u16) -> F,
        F: Future<Output = io::Result<Vec<SocketAddr>>>,
    {
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = self.resolve_all(&names, &resolve) => {}
            }
            let Some(service) = self.service.upgrade() else {
                return;
            };
            if service.refresh(&self.pools, &self.registry) {
                tracing::info!(
                    service = %self.name,
                    targets = service.endpoints().targets.len(),
                    "DNS targets changed"
                );
            }
            drop(service);
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Resolves every name once, storing each success in the registry's cache.
    async fn resolve_all<R, F>(&self, names: &[(String, u16)], resolve: &R)
    where
        R: Fn(String, u16) -> F,
        F: Future<Output = io::Result<Vec<SocketAddr>>>,
    {
        for (host, port) in names {
            let outcome = tokio::time::timeout(RESOLVE_TIMEOUT, resolve(host.clone(), *port)).await;
            let why = match outcome {
                Ok(Ok(mut addresses)) if !addresses.is_empty() => {
                    addresses.sort_unstable();
                    addresses.dedup();
                    self.registry.dns.set(host, *port, addresses);
                    continue;
                }
                Ok(Ok(_)) => "no address".to_owned(),
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no answer within {RESOLVE_TIMEOUT:?}"),
            };
            tracing::warn!(
                service = %self.name,
                host = %host,
                error = %why,
                "cannot resolve a target's DNS name; keeping its last addresses"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamProtocol;

    type Script = Arc<Mutex<Result<Vec<SocketAddr>, String>>>;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    fn service(urls: &[&str], registry: &UpstreamRegistry, pools: &ClientPools) -> ServiceRuntime {
        let targets = urls
            .iter()
            .map(|u| Target::parse(u, 2).expect("valid"))
            .collect();
        let second = Duration::from_secs(1);
        ServiceRuntime::new(
            "users",
            targets,
            UpstreamProtocol::Http1,
            pools,
            registry,
            second,
            second,
        )
    }

    fn addresses(service: &ServiceRuntime) -> Vec<String> {
        let endpoints = service.endpoints();
        endpoints
            .targets
            .iter()
            .map(|e| e.target.address.clone())
            .collect()
    }

    fn spawn(
        service: &Arc<ServiceRuntime>,
        registry: &Arc<UpstreamRegistry>,
        pools: &Arc<ClientPools>,
        script: &Script,
    ) -> tokio::task::JoinHandle<()> {
        let names = names(service.configured());
        let task = Discovery {
            service: Arc::downgrade(service),
            name: service.name.clone(),
            stop: service.stopped(),
            pools: pools.clone(),
            registry: registry.clone(),
        };
        let script = script.clone();
        let resolve = move |_host: String, _port: u16| {
            let answer = script.lock().expect("script").clone();
            async move { answer.map_err(io::Error::other) }
        };
        tokio::spawn(task.run(names, resolve, RESOLVE_EVERY))
    }

    #[tokio::test(start_paused = true)]
    async fn names_are_re_resolved_and_each_address_is_a_target() {
        let registry = Arc::new(UpstreamRegistry::default());
        let pools = Arc::new(ClientPools::new(1));
        let service = Arc::new(service(
            &["http://users.internal:8080", "http://10.9.9.9:80"],
            &registry,
            &pools,
        ));
        // Before the first resolution the name is a target of its own.
        assert_eq!(
            addresses(&service),
            ["http://users.internal:8080", "http://10.9.9.9:80"]
        );
        let script: Script = Arc::new(Mutex::new(Ok(vec![
            addr("10.0.0.2:8080"),
            addr("10.0.0.1:8080"),
        ])));
        let task = spawn(&service, &registry, &pools, &script);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            addresses(&service),
            ["10.0.0.1:8080", "10.0.0.2:8080", "http://10.9.9.9:80"]
        );
        let endpoints = service.endpoints();
        let first = &endpoints.targets[0];
        assert_eq!(first.target.authority.as_str(), "10.0.0.1:8080");
        assert_eq!(*first.target.host_header(), "users.internal:8080");
        assert_eq!(first.target.weight, 2);
        let kept = first.state.clone();

        // An address goes, another comes: the one that stays keeps its state.
        *script.lock().expect("script") = Ok(vec![addr("10.0.0.1:8080"), addr("10.0.0.3:8080")]);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            addresses(&service),
            ["10.0.0.1:8080", "10.0.0.3:8080", "http://10.9.9.9:80"]
        );
        assert!(Arc::ptr_eq(&service.endpoints().targets[0].state, &kept));

        // A failed resolution keeps the last good addresses.
        *script.lock().expect("script") = Err("no such host".into());
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(addresses(&service).len(), 3);

        // A new runtime of the same service (a reload) starts from the last addresses.
        let reloaded = self::service(&["http://users.internal:8080"], &registry, &pools);
        assert_eq!(addresses(&reloaded), ["10.0.0.1:8080", "10.0.0.3:8080"]);

        // The task stops when the service is dropped.
        drop(service);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the task stops")
            .expect("the task ran");
    }

    #[test]
    fn ip_targets_have_no_names_to_resolve() {
        let targets: Vec<Target> = [
            "http://127.0.0.1:1",
            "http://[::1]:2",
            "http://a.b:3",
            "http://a.b:3",
        ]
        .iter()
        .map(|u| Target::parse(u, 1).expect("valid"))
        .collect();
        assert_eq!(names(&targets), [("a.b".to_owned(), 3)]);
        assert!(names(&targets[..2]).is_empty());
    }
}
