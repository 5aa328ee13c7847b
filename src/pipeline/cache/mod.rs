//! The `cache` step (SPEC §3.8): answers from stored upstream responses, stores cacheable
//! misses, collapses concurrent misses into one upstream request and invalidates a path on a
//! successful write through the route.
//!
//! It sits between `request_transform` and the upstream: [`CacheStep::lookup`] runs before
//! forwarding and either answers (a hit) or gives a [`Pending`] that sees the upstream's
//! response ([`Pending::finish`]) and stores it when it may.

mod fill;
pub mod key;
pub mod policy;
mod registry;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::AGE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use tokio::sync::Notify;

use crate::body::GatewayBody;
use crate::config;
use crate::pipeline::auth::Identity;

pub use fill::Pending;
pub use key::{CacheKey, KeySpec, QueryVary};
pub use registry::{CachePurge, CacheUsage, Caches};
pub use store::{CacheStore, CachedResponse, Found, LocalStore};

use fill::PendingKind;
use policy::RequestDirective;

/// `X-Cache`: the cache's verdict on a response.
pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The cache's verdict, for `X-Cache` and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answered from the cache.
    Hit,
    /// Looked up, not found: fetched from the upstream (and stored when it may be).
    Miss,
    /// The cache was not used: a method it does not cache, a request asking for a fresh
    /// answer, or a response that may not be stored.
    Bypass,
}

impl Verdict {
    /// `HIT`, `MISS` or `BYPASS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
        }
    }
}

/// What the cache adds to an answer: `X-Cache`, and `Age` on a hit. Kept beside the answer
/// (see `pipeline::added_fields`) unless a `response_transform` is to see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheMark {
    /// The verdict, for `X-Cache`.
    pub verdict: Verdict,
    /// A hit's age in seconds, for `Age`.
    pub age: Option<u64>,
}

impl CacheMark {
    /// The mark of an answer that was not served from the cache.
    pub fn forwarded(verdict: Verdict) -> Self {
        Self { verdict, age: None }
    }

    /// The `X-Cache` value and, on a hit, the `Age` value.
    pub fn values(self) -> (HeaderValue, Option<HeaderValue>) {
        (
            HeaderValue::from_static(self.verdict.as_str()),
            self.age.map(HeaderValue::from),
        )
    }

    /// Puts the fields into `headers`, replacing those of the same names.
    pub fn insert_into(self, headers: &mut HeaderMap) {
        let (verdict, age) = self.values();
        insert_fields(headers, verdict, age);
    }
}

/// Puts `X-Cache` and, when given, `Age` (the values of a [`CacheMark`]) into `headers`,
/// replacing those of the same names.
pub fn insert_fields(headers: &mut HeaderMap, verdict: HeaderValue, age: Option<HeaderValue>) {
    headers.insert(X_CACHE.clone(), verdict);
    if let Some(age) = age {
        headers.insert(AGE, age);
    }
}

/// One route's cache: its store and the fetches in flight.
pub struct RouteCache {
    store: LocalStore,
    /// The keys being fetched, each with the [`Flight`] its waiters wait on, made by the
    /// first of them: a fetch nobody joins (the usual miss) allocates none.
    in_flight: Mutex<HashMap<CacheKey, Option<Arc<Flight>>, key::DigestState>>,
}

impl RouteCache {
    /// A cache of `max_memory` bytes; see [`LocalStore::new`].
    pub fn new(max_memory: u64, max_ttl: Duration, max_fetch: Duration) -> Self {
        Self {
            store: LocalStore::new(max_memory, max_ttl, max_fetch),
            in_flight: Mutex::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &LocalStore {
        &self.store
    }
}

/// The compiled `cache` settings of a route, with its cache.
pub struct CacheStep {
    cache: Arc<RouteCache>,
    key: KeySpec,
    methods: Vec<Method>,
    statuses: Arc<[StatusCode]>,
    ttl: Duration,
    max_body: u64,
    respect_cache_control: bool,
    /// How long a collapsed request waits for the one fetching (the route's timeout).
    wait: Duration,
}

/// What the step decided before forwarding.
pub enum Lookup<'a> {
    /// Answered from the cache: the stored answer, and its mark (`HIT` and its age).
    Hit(Response<GatewayBody>, CacheMark),
    /// Forward, then hand the upstream's response to [`Pending::finish`].
    Forward(Pending<'a>),
}

impl CacheStep {
    /// Compiles `settings` for the route `route` (which authenticates when `has_auth`),
    /// taking the route's cache from `caches` (kept when the settings are unchanged).
    /// `scope` tells apart unnamed routes of one pattern (their hosts and methods).
    pub fn compile(
        route: &str,
        scope: &str,
        settings: &config::Cache,
        has_auth: bool,
        timeout: Duration,
        caches: &Caches,
    ) -> Result<Self, String> {
        let mut methods = Vec::with_capacity(settings.methods.len());
        for method in &settings.methods {
            methods.push(
                Method::from_bytes(method.0.as_bytes())
                    .map_err(|_| format!("invalid method `{}`", method.0))?,
            );
        }
        let mut statuses = Vec::with_capacity(settings.statuses.len());
        for status in &settings.statuses {
            let status =
                StatusCode::from_u16(*status).map_err(|_| format!("invalid status {status}"))?;
            if !status.is_server_error() {
                statuses.push(status);
            }
        }
        let mut headers = Vec::with_capacity(settings.vary_headers.len());
        for name in &settings.vary_headers {
            headers.push(
                HeaderName::from_bytes(name.0.as_bytes())
                    .map_err(|_| format!("invalid header name `{}`", name.0))?,
            );
        }
        let per_consumer = match settings.per_consumer {
            config::PerConsumer::Auto => has_auth,
            config::PerConsumer::Yes => true,
            config::PerConsumer::No => false,
        };
        let key = KeySpec {
            query: match &settings.vary_query {
                config::VaryQuery::All => QueryVary::All,
                config::VaryQuery::None => QueryVary::None,
                config::VaryQuery::Only(names) => QueryVary::Only(names.clone()),
            },
            headers,
            per_consumer,
        };
        let ttl = settings.ttl.0;
        let fingerprint = format!("{scope} {settings:?} per_consumer={per_consumer}");
        let cache = caches.route_cache(route, &fingerprint, || {
            RouteCache::new(settings.max_memory.0, ttl, timeout)
        });
        Ok(Self {
            cache,
            key,
            methods,
            statuses: statuses.into(),
            ttl,
            max_body: settings.max_body.0,
            respect_cache_control: settings.respect_cache_control,
            wait: timeout,
        })
    }

    /// Looks the request up: a hit answers; otherwise the request goes upstream (a HEAD miss
    /// as a GET, so that its answer can fill GET's entry: see [`Pending::upstream_method`])
    /// and its answer comes back through [`Pending::finish`]. Concurrent misses for one key
    /// wait for the first one's answer.
    pub async fn lookup<B>(
        &self,
        request: &Request<B>,
        path: &str,
        identity: Option<&Identity>,
    ) -> Lookup<'_> {
        let method = request.method();
        // Writes invalidate, never fill (a config cannot list them in `methods`).
        if is_write(method) {
            return Lookup::Forward(Pending::new(PendingKind::Write {
                cache: &self.cache,
                path: path.into(),
            }));
        }
        if !self.methods.contains(method) {
            return Lookup::Forward(Pending::new(PendingKind::Bypass));
        }
        let directive = if self.respect_cache_control {
            policy::request_directive(request.headers())
        } else {
            RequestDirective::Normal
        };
        if directive == RequestDirective::NoStore {
            return Lookup::Forward(Pending::new(PendingKind::Bypass));
        }
        let consumer = identity.and_then(|i| i.consumer.as_deref().or(i.user_id.as_deref()));
        let key = self.key.key(
            method,
            path,
            request.uri().query(),
            request.headers(),
            consumer,
        );
        let head = method == Method::HEAD;
        let store = &self.cache.store;
        // Taken before anything goes upstream: a write to the path from now on makes this
        // fetch's answer invalid.
        let stamp = store.stamp();
        let mut verdict = Verdict::Miss;
        let mut leader = None;
        // What is stored, live or not, when going upstream: the answer is read against it.
        let current;
        if directive == RequestDirective::Refresh {
            verdict = Verdict::Bypass;
            current = store.find(&key).await.entry();
        } else {
            if let Some(entry) = store.get(&key).await {
                return fill::hit(&entry, head);
            }
            match self.join_or_lead(&key) {
                Ok(lead) => leader = Some(lead),
                // The answer could not be stored unless found now: then fetch our own.
                Err(flight) => flight.wait(self.wait).await,
            }
            // The fetch waited for (or the previous one, which may have stored its answer
            // just before leaving) may have stored what this request wants.
            current = match store.find(&key).await {
                Found::Live(entry) => return fill::hit(&entry, head),
                found => found.entry(),
            };
        }
        Lookup::Forward(Pending::new(PendingKind::Fill(fill::Fill {
            step: self,
            key,
            stamp,
            head,
            verdict,
            current,
            _leader: leader,
        })))
    }

    /// Becomes the one fetching `key` (the guard ends that), or gets the fetch to wait for.
    fn join_or_lead(&self, key: &CacheKey) -> Result<Leader<'_>, Arc<Flight>> {
        let mut in_flight = self
            .cache
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = in_flight.get_mut(key) {
            return Err(flight.get_or_insert_with(Arc::default).clone());
        }
        in_flight.insert(key.clone(), None);
        Ok(Leader {
            cache: &self.cache,
            key: key.clone(),
        })
    }
}

/// One key's fetch in flight, which other requests for the key wait for.
#[derive(Default)]
pub(crate) struct Flight {
    /// Set when the fetch has ended (before `ended` is notified).
    done: AtomicBool,
    /// Wakes the waiting when the fetch ends.
    ended: Notify,
}

impl Flight {
    /// Waits until the fetch has ended, `limit` at most.
    async fn wait(&self, limit: Duration) {
        let ended = self.ended.notified();
        tokio::pin!(ended);
        // Registered before `done` is read: a fetch that ends after the read wakes it.
        ended.as_mut().enable();
        if !self.done.load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(limit, ended).await;
        }
    }
}

/// The request fetching a key for others: when it ends (stored, not storable, failed or
/// cancelled), those waiting look again. It borrows the route's cache (as `Pending` does)
/// rather than counting a reference that every worker writes.
pub(crate) struct Leader<'a> {
    cache: &'a RouteCache,
    key: CacheKey,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let flight = self
            .cache
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key)
            .flatten();
        // Whoever joined made the flight under the lock, before it was removed here.
        if let Some(flight) = flight {
            flight.done.store(true, Ordering::SeqCst);
            // Only futures made before this call are woken: `Flight::wait` registers its
            // own before it reads `done`.
            flight.ended.notify_waiters();
        }
    }
}

/// Methods whose success invalidates the path's entries.
fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}
