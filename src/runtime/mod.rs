//! The compiled runtime: everything a request needs, built once per config by
//! [`compile`](compile::compile) and swapped in atomically; and the [`State`] registry that
//! outlives configs.

mod compile;
mod plan;
mod state;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use compile::{CompileOutcome, compile};
pub use plan::{ForwardPlan, Respond, RouteAction, RoutePlan};
pub use state::{State, TlsSessions};

use crate::observability::access_log::AccessLog;
use crate::pipeline::client_ip::TrustedProxies;
use crate::router::Router;
use crate::upstream::ServiceRuntime;
use crate::upstream::health::HealthCheck;
use crate::upstream::status::{self, ServiceStatus};
use crate::worker_hold::{WorkerHold, WorkerHolds};

/// Connection and request limits of the listeners (`limits`, SPEC §2.1).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, unless a route overrides it.
    pub max_body: u64,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Time to receive a request head.
    pub header_timeout: Duration,
    /// Keep-alive idle time.
    pub idle_timeout: Duration,
    /// Open connections at most, across listeners.
    pub max_connections: usize,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
}

/// One compiled config: the router with a [`RoutePlan`] per route, and the settings of the
/// request path. Immutable; replaced whole on reload.
pub struct Runtime {
    /// Route lookup.
    pub router: Router<RoutePlan>,
    /// Listener limits.
    pub limits: Limits,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Response steps for requests no route matched (404, 405, 400): the global plugins'.
    pub unrouted_security_headers: Option<crate::pipeline::security_headers::SecurityHeaders>,
    /// Header names set from token claims by some route (`claims_to_headers`): like the
    /// identity headers, client copies are removed on every route.
    pub claim_headers: Vec<http::HeaderName>,
    /// The TLS settings (certificates, client verifier, ALPN) for connections accepted on
    /// `tls.listen` while this runtime serves; `None` without `tls`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `tls.redirect_http`: plain-listener requests are answered 308 to https.
    pub redirect_http: Option<crate::pipeline::redirect::HttpsRedirect>,
    /// The access log, unless `access_log: off`.
    pub access_log: Option<AccessLog>,
    /// Number of routes, for `check` and logs.
    pub route_count: usize,
    /// Number of services, for `check` and logs.
    pub service_count: usize,
    /// Every service of the config, by name.
    pub services: Vec<Arc<ServiceRuntime>>,
    /// The services' running health checks: they stop when no runtime holds them.
    pub health_checks: Vec<Arc<HealthCheck>>,
}

impl Runtime {
    /// Each service's circuit state and its targets' health, ejection, requests in flight and
    /// latency, by service name (the admin API's `GET /services`).
    pub fn services_status(&self) -> Vec<ServiceStatus> {
        let now = tokio::time::Instant::now();
        self.services
            .iter()
            .map(|service| status::service_status(service, now))
            .collect()
    }
}

/// A request's hold on the runtime serving it; dereferences to the [`Runtime`]. It is its
/// worker's own hold (see [`crate::worker_hold`]): a clone of the shared `Arc<Runtime>` per
/// request made every worker write the same count, moving its cache line from core to core on
/// every request. The hold ends with the last of its requests; a later request (or one after
/// a reload) makes a new one.
pub type CurrentRuntime = WorkerHold<Runtime>;

/// The runtime currently serving, swapped in one atomic step.
pub struct RuntimeHandle {
    current: ArcSwap<Runtime>,
    /// Each worker's hold on `current`, for its requests.
    holds: WorkerHolds<Runtime>,
}

impl RuntimeHandle {
    /// Starts serving `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        Self {
            current: ArcSwap::from_pointee(runtime),
            holds: WorkerHolds::default(),
        }
    }

    /// The runtime serving now; requests keep theirs until they finish. The requests of one
    /// worker share one hold on it for as long as any of them runs and it is not swapped.
    pub fn current(&self) -> CurrentRuntime {
        self.holds.hold(&self.current.load())
    }

    /// Replaces the runtime for every request that starts after this call.
    pub fn swap(&self, runtime: Runtime) {
        self.current.store(Arc::new(runtime));
    }
}
