//! Where cached responses live: the [`CacheStore`] contract and the node-local store on moka.
//! The cluster store (Redis, `store: cluster`) implements the same contract later.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use tokio::time::Instant;

use super::key::CacheKey;

/// A stored upstream response, as the upstream sent it (less hop-by-hop headers).
#[derive(Debug)]
pub struct CachedResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers, with `Content-Length` set to the body's length.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// When it was stored (`Age`).
    pub stored_at: Instant,
    /// How long it is served.
    pub ttl: Duration,
    /// The store's invalidation clock when the request that fetched it started: a write to
    /// the path after that moment makes it invalid.
    pub stamp: u64,
}

impl CachedResponse {
    /// Bytes the entry takes, roughly: body, headers and a fixed overhead.
    pub fn weight(&self, key: &CacheKey) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 32)
            .sum();
        let total = self.body.len() + headers + key.path.len() + key.variant.len() + 160;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// Whether its time to live has passed.
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) >= self.ttl
    }
}

/// The contract of a response store, the same for the local and the cluster store.
///
/// Invalidation is by path and covers every variant of the path (query, headers, consumer),
/// including responses being fetched when it happens: a response whose fetch started (see
/// [`CacheStore::stamp`]) before a write to its path is never served.
pub trait CacheStore: Send + Sync {
    /// The invalidation clock now; taken before a miss goes upstream and stored with the
    /// entry.
    fn stamp(&self) -> u64;
    /// The live entry under `key`.
    fn get(&self, key: &CacheKey) -> impl Future<Output = Option<Arc<CachedResponse>>> + Send;
    /// Stores `entry` under `key` for `entry.ttl` (unless its path was invalidated since
    /// `entry.stamp`).
    fn insert(&self, key: CacheKey, entry: Arc<CachedResponse>) -> impl Future<Output = ()> + Send;
    /// Makes every entry of `path` invalid, at once.
    fn invalidate_path(&self, path: &str) -> impl Future<Output = ()> + Send;
    /// Removes every entry of `path`; returns how many there were.
    fn purge_path(&self, path: &str) -> impl Future<Output = usize> + Send;
    /// Removes every entry; returns how many there were.
    fn purge_all(&self) -> impl Future<Output = usize> + Send;
    /// Live entries and their weight in bytes.
    fn usage(&self) -> impl Future<Output = (u64, u64)> + Send;
}

/// Invalidation records are kept this long past the longest an invalid entry could live.
const RECORD_MARGIN: Duration = Duration::from_secs(5);
/// Paths with a recent write remembered at most (older records raise the floor instead).
const MAX_RECORDS: u64 = 100_000;

/// The node-local store: a moka cache bounded by weight (`max_memory`), entries expiring
/// after their own time to live, least recently used evicted first.
///
/// Invalidation by path is O(1): the path's record takes a new value of the clock, and
/// entries stamped before it are invalid (dropped when next looked up, or evicted). A record
/// is kept for as long as an entry it invalidates could live; when one is evicted early
/// (too many written paths) the floor rises to its value, so that nothing it invalidated
/// comes back — at the price of dropping older entries of other paths too.
pub struct LocalStore {
    entries: Cache<CacheKey, Arc<CachedResponse>>,
    records: Cache<Arc<str>, u64>,
    clock: AtomicU64,
    floor: Arc<AtomicU64>,
    /// Whether any path was ever invalidated: hits skip the record lookup until then.
    invalidated: AtomicBool,
}

impl LocalStore {
    /// A store of `max_memory` bytes whose entries live `max_ttl` at most; a fetch takes
    /// `max_fetch` at most.
    pub fn new(max_memory: u64, max_ttl: Duration, max_fetch: Duration) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_memory)
            .weigher(|key: &CacheKey, value: &Arc<CachedResponse>| value.weight(key))
            // Entries live the route's `ttl` at most; a shorter `max-age` is checked on
            // lookup ([`CachedResponse::expired`]): cheaper than a timer per entry.
            .time_to_live(max_ttl)
            .eviction_policy(EvictionPolicy::lru())
            .build();
        let floor = Arc::new(AtomicU64::new(0));
        let raised = floor.clone();
        let records = Cache::builder()
            .max_capacity(MAX_RECORDS)
            .time_to_live(max_ttl + max_fetch + RECORD_MARGIN)
            .eviction_listener(move |_path, value: u64, cause| {
                if cause != RemovalCause::Replaced && cause != RemovalCause::Explicit {
                    raised.fetch_max(value, Ordering::AcqRel);
                }
            })
            .build();
        Self {
            entries,
            records,
            clock: AtomicU64::new(0),
            floor,
            invalidated: AtomicBool::new(false),
        }
    }

    async fn valid(&self, path: &str, stamp: u64) -> bool {
        if !self.invalidated.load(Ordering::Acquire) {
            return true;
        }
        if stamp < self.floor.load(Ordering::Acquire) {
            return false;
        }
        match self.records.get(path).await {
            Some(record) => stamp >= record,
            None => true,
        }
    }
}

impl CacheStore for LocalStore {
    fn stamp(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    async fn get(&self, key: &CacheKey) -> Option<Arc<CachedResponse>> {
        let entry = self.entries.get(key).await?;
        if entry.expired(Instant::now()) || !self.valid(&key.path, entry.stamp).await {
            return None;
        }
        Some(entry)
    }

    async fn insert(&self, key: CacheKey, entry: Arc<CachedResponse>) {
        if self.valid(&key.path, entry.stamp).await {
            self.entries.insert(key, entry).await;
        }
    }

    async fn invalidate_path(&self, path: &str) {
        self.invalidated.store(true, Ordering::Release);
        let value = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        self.records.insert(path.into(), value).await;
    }

    async fn purge_path(&self, path: &str) -> usize {
        self.invalidate_path(path).await;
        let keys: Vec<Arc<CacheKey>> = self
            .entries
            .iter()
            .filter(|(key, _)| &*key.path == path)
            .map(|(key, _)| key)
            .collect();
        let mut removed = 0;
        for key in keys {
            if self.entries.remove(&*key).await.is_some() {
                removed += 1;
            }
        }
        removed
    }

    async fn purge_all(&self) -> usize {
        // Responses being fetched now are not stored either.
        self.invalidated.store(true, Ordering::Release);
        let value = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        self.floor.fetch_max(value, Ordering::AcqRel);
        self.entries.run_pending_tasks().await;
        let count = self.entries.iter().count();
        self.entries.invalidate_all();
        self.entries.run_pending_tasks().await;
        count
    }

    async fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks().await;
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}
