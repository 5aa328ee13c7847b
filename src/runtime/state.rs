//! State that outlives a config: kept by identity (service name, target URL…) so that a reload
//! keeps warm connection pools and, later, counters, caches, health and breaker state.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU16;

use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

use crate::observability::access_log::AccessLog;
use crate::pipeline::auth::jwks::JwksRegistry;
use crate::pipeline::auth::revocation::Revocations;
use crate::pipeline::cache::{CachePurge, CacheUsage, Caches};
use crate::store::local::LocalStore;
use crate::upstream::{ClientPools, UpstreamRegistry};

/// How long a request to an identity provider may take.
const IDP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The registry of long-lived state, shared by every runtime compiled in this process.
#[derive(Default)]
pub struct State {
    /// Upstream connection pools (shared with DNS discovery tasks).
    pub pools: Arc<ClientPools>,
    /// What traffic and health checks know about services and their targets (shared with
    /// background tasks).
    pub upstreams: Arc<UpstreamRegistry>,
    /// Revoked JWT ids (`jwt.revocable`), filled by the admin API.
    pub revocations: Arc<Revocations>,
    /// JWKS key sets by URL (`jwt.jwks_url`), kept warm across reloads.
    pub jwks: JwksRegistry,
    /// Response caches by route name (`cache`), kept across reloads with the same settings.
    pub caches: Caches,
    /// Rate-limit counters (`rate_limit`), by scope, limit and algorithm.
    pub rate_limits: Arc<LocalStore>,
    /// The HTTP client for identity providers (JWKS, introspection), built on first use.
    idp_client: Mutex<Option<reqwest::Client>>,
    /// The port of the first TLS listener bound at start-up (0: none), for `redirect_http`.
    pub https_port: AtomicU16,
    access_logs: Mutex<HashMap<String, AccessLog>>,
    tls_sessions: Mutex<Option<TlsSessions>>,
    dry_run: bool,
}

/// The TLS session-resumption state: TLS 1.3 ticket keys and the server-side session cache.
/// Kept across reloads, so clients resume sessions after a certificate reload too.
pub type TlsSessions = (Arc<dyn ProducesTickets>, Arc<dyn StoresServerSessions>);

/// Sessions the server-side cache holds (rustls' default size).
const TLS_SESSION_CACHE: usize = 256;

impl State {
    /// State for compiling a config that will never serve (`gatehouse check`): nothing is
    /// opened or started.
    pub fn dry_run() -> Self {
        Self {
            dry_run: true,
            ..Self::default()
        }
    }

    /// Whether this state only validates.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The HTTP client for identity providers (JWKS fetches, token introspection): one per
    /// process, with a 5 s timeout per request.
    pub fn idp_client(&self) -> Result<reqwest::Client, String> {
        let mut client = self.idp_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = client.as_ref() {
            return Ok(client.clone());
        }
        let built = reqwest::Client::builder()
            .timeout(IDP_TIMEOUT)
            .connect_timeout(IDP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        *client = Some(built.clone());
        Ok(built)
    }

    /// The TLS session ticketer and session cache, made on first use and then shared by
    /// every runtime.
    pub fn tls_sessions(&self) -> Result<TlsSessions, rustls::Error> {
        let mut sessions = self.tls_sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sessions) = sessions.as_ref() {
            return Ok(sessions.clone());
        }
        let made: TlsSessions = (
            rustls::crypto::aws_lc_rs::Ticketer::new()?,
            ServerSessionMemoryCache::new(TLS_SESSION_CACHE),
        );
        *sessions = Some(made.clone());
        Ok(made)
    }

    /// Purges cached responses: all, a route's, or a path's (in every route). Returns how
    /// many entries were removed.
    pub async fn cache_purge(&self, purge: CachePurge) -> usize {
        self.caches.purge(&purge).await
    }

    /// The entries and bytes of the cache of the route named `route`.
    pub async fn cache_usage(&self, route: &str) -> Option<CacheUsage> {
        self.caches.usage(route).await
    }

    /// The access log writing to stdout (one writer per process).
    pub fn access_log_stdout(&self) -> AccessLog {
        let mut logs = self.access_logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.entry(String::new())
            .or_insert_with(AccessLog::stdout)
            .clone()
    }

    /// The access log appending to `path` (one writer per file, kept across reloads).
    pub fn access_log_file(&self, path: &str) -> io::Result<AccessLog> {
        let mut logs = self.access_logs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = logs.get(path) {
            return Ok(log.clone());
        }
        let log = AccessLog::file(Path::new(path))?;
        logs.insert(path.to_owned(), log.clone());
        Ok(log)
    }
}
