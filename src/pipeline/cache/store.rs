//! Where cached responses live: the [`CacheStore`] contract and the node-local store.
//! The cluster store (Redis, `store: cluster`) implements the same contract later.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use moka::future::Cache;
use moka::notification::RemovalCause;
use quick_cache::OptionsBuilder;
use quick_cache::sync::DefaultLifecycle;
use tokio::time::Instant;

use super::key::{CacheKey, DigestState};

/// A stored upstream response, as the upstream sent it (less hop-by-hop headers).
///
/// A refetch whose answer is this one byte for byte refreshes it in place
/// ([`CacheStore::refresh`]): its time and stamp are atomics for that.
#[derive(Debug)]
pub struct CachedResponse {
    /// Its status.
    pub status: StatusCode,
    /// Its headers, with `Content-Length` set to the body's length.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// How long it is served.
    pub ttl: Duration,
    /// What the headers weigh (see [`CachedResponse::weight`]), counted once when stored.
    pub headers_weight: u32,
    /// When it was first stored.
    created: Instant,
    /// Milliseconds from `created` to when it was last refreshed (`Age`). Whole
    /// milliseconds, so that the refreshes within one write it once: it is shared by every
    /// worker.
    refreshed: AtomicU64,
    /// The store's invalidation clock when the request that fetched (or last refreshed) it
    /// started: a write to the path after that moment makes it invalid.
    stamp: AtomicU64,
}

impl CachedResponse {
    /// A response stored `now` by a fetch whose stamp (see [`CacheStore::stamp`]) is
    /// `stamp`; `headers_weight` is what the headers weigh.
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        ttl: Duration,
        headers_weight: u32,
        now: Instant,
        stamp: u64,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            ttl,
            headers_weight,
            created: now,
            refreshed: AtomicU64::new(0),
            stamp: AtomicU64::new(stamp),
        }
    }

    /// Bytes the entry takes, roughly: body, headers (each name and value, and 32 bytes),
    /// key and a fixed overhead.
    pub fn weight(&self, key: &CacheKey) -> u32 {
        let total = self.body.len() + self.headers_weight as usize + key.weight() + 160;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// When it was stored, or last refreshed: its age counts from then.
    pub fn stored_at(&self) -> Instant {
        self.created + Duration::from_millis(self.refreshed.load(Ordering::Relaxed))
    }

    /// The invalidation clock when its fetch (or last refresh) started.
    pub fn stamp(&self) -> u64 {
        self.stamp.load(Ordering::Acquire)
    }

    /// Whether its time to live has passed.
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at()) >= self.ttl
    }

    /// Whether an answer of `status`, `headers` and `ttl` (its body being this one's) is
    /// this one: the same status and time to live, and the same header lines in the same
    /// order.
    pub fn same_answer(&self, status: StatusCode, headers: &HeaderMap, ttl: Duration) -> bool {
        self.status == status && self.ttl == ttl && self.headers.iter().eq(headers.iter())
    }

    /// Makes it stored `now` (to the millisecond) by a fetch stamped `stamp`. Reads before
    /// it writes: most refreshes change nothing.
    fn refresh(&self, now: Instant, stamp: u64) {
        let since = now.saturating_duration_since(self.created).as_millis();
        let since = u64::try_from(since).unwrap_or(u64::MAX);
        if since > self.refreshed.load(Ordering::Relaxed) {
            self.refreshed.fetch_max(since, Ordering::Relaxed);
        }
        if stamp > self.stamp.load(Ordering::Acquire) {
            self.stamp.fetch_max(stamp, Ordering::AcqRel);
        }
    }
}

/// What a store holds under a key (see [`CacheStore::find`]).
pub enum Found {
    /// Nothing.
    Nothing,
    /// An entry that may be served.
    Live(Arc<CachedResponse>),
    /// An entry that may not be served (expired, or invalid since a write to its path), which
    /// a fetch's answer may refresh in place.
    Stale(Arc<CachedResponse>),
}

impl Found {
    /// The entry, live or stale.
    pub fn entry(self) -> Option<Arc<CachedResponse>> {
        match self {
            Self::Nothing => None,
            Self::Live(entry) | Self::Stale(entry) => Some(entry),
        }
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
    /// `entry.stamp()`).
    fn insert(&self, key: CacheKey, entry: Arc<CachedResponse>) -> impl Future<Output = ()> + Send;
    /// The entry under `key`, live or not: a fetch for the key serves a live one (stored
    /// while it was deciding to fetch) and compares its answer with a stale one. Not a use
    /// of the entry.
    fn find(&self, key: &CacheKey) -> impl Future<Output = Found> + Send;
    /// Makes `entry` (found under `key` by [`CacheStore::find`]) as if stored now by a
    /// fetch stamped `stamp`, whose answer was the same (unless the path was invalidated
    /// since `stamp`): the same as inserting that answer, without making a copy of it.
    fn refresh(
        &self,
        key: &CacheKey,
        entry: &CachedResponse,
        stamp: u64,
    ) -> impl Future<Output = ()> + Send;
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
/// Bytes per shard of the entries, at least (when `max_memory` allows).
const SHARD_BYTES: u64 = 4 << 20;
/// Shards of the entries, at most.
const MAX_SHARDS: usize = 16;
/// A guess at an entry's weight, to size the tables.
const ESTIMATED_ENTRY_BYTES: u64 = 2048;

/// The entries: keys placed by their digest, weighed by [`CachedResponse::weight`].
type Entries = quick_cache::sync::Cache<
    CacheKey,
    Arc<CachedResponse>,
    EntryWeight,
    DigestState,
    DefaultLifecycle<CacheKey, Arc<CachedResponse>>,
>;

/// Weighs an entry: body, headers, key and a fixed overhead.
#[derive(Clone)]
struct EntryWeight;

impl quick_cache::Weighter<CacheKey, Arc<CachedResponse>> for EntryWeight {
    fn weight(&self, key: &CacheKey, value: &Arc<CachedResponse>) -> u64 {
        u64::from(value.weight(key))
    }
}

/// The node-local store: a [`quick_cache`] map bounded by weight (`max_memory`), whose
/// CLOCK-PRO policy keeps entries that are used again over entries not used since they were
/// stored. An entry past its time to live is dropped when it is next looked up (or evicted
/// under memory pressure). Keys are placed by their digest, a hash seeded at random per process
/// (foldhash), computed once per key: clients choose them.
///
/// The entries are not in moka (the architecture's first choice) because a store on every
/// miss there cost about 7 µs of CPU (write-op channel, deque upkeep, epoch reclamation),
/// which showed as a quarter of the gateway's time on the miss path; here a store is a
/// short lock on one shard. The invalidation records, written only by writes, stay in moka.
///
/// Invalidation by path is O(1): the path's record takes a new value of the clock, and
/// entries stamped before it are invalid (dropped when next looked up, or evicted). A record
/// is kept for as long as an entry it invalidates could live; when one is evicted early
/// (too many written paths) the floor rises to its value, so that nothing it invalidated
/// comes back — at the price of dropping older entries of other paths too.
pub struct LocalStore {
    entries: Entries,
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
        // Shards of 4 MiB at least (up to 16), so that an entry of a usual `max_body`
        // fits one: an entry heavier than its shard is not kept.
        let shards = usize::try_from(max_memory / SHARD_BYTES)
            .unwrap_or(MAX_SHARDS)
            .clamp(1, MAX_SHARDS);
        let estimated = usize::try_from(max_memory / ESTIMATED_ENTRY_BYTES)
            .unwrap_or(usize::MAX)
            .clamp(16, 65_536);
        let options = OptionsBuilder::new()
            .shards(shards)
            .estimated_items_capacity(estimated)
            .weight_capacity(max_memory.max(1))
            // Half for entries not used again since stored (quick_cache's default keeps 3%:
            // too little for a small cache to hold a fresh entry until its first hit).
            .hot_allocation(0.5)
            .build();
        let entries = match options {
            Ok(options) => Entries::with_options(
                options,
                EntryWeight,
                DigestState::default(),
                DefaultLifecycle::default(),
            ),
            // Only a zero capacity is refused; validation keeps `max_memory` above that.
            Err(_) => Entries::with(
                estimated,
                max_memory.max(1),
                EntryWeight,
                DigestState::default(),
                DefaultLifecycle::default(),
            ),
        };
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
        // Boxed: only a store that saw a write gets here, and moka's future is large; the
        // lookups and inserts of every request stay small.
        match Box::pin(self.records.get(path)).await {
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
        let entry = self.entries.get(key)?;
        let now = crate::poll_clock::now();
        if entry.expired(now) {
            // Dropped unless a fresher answer replaced (or refreshed) it meanwhile.
            self.entries.remove_if(key, |stored| {
                Arc::ptr_eq(stored, &entry) && stored.expired(now)
            });
            return None;
        }
        if !self.valid(key.path(), entry.stamp()).await {
            return None;
        }
        Some(entry)
    }

    async fn insert(&self, key: CacheKey, entry: Arc<CachedResponse>) {
        if self.valid(key.path(), entry.stamp()).await {
            self.entries.insert(key, entry);
        }
    }

    async fn find(&self, key: &CacheKey) -> Found {
        // A peek: a refetch is not a use of the entry. An expired entry stays: the fetch's
        // answer replaces (or refreshes) it.
        let Some(entry) = self.entries.peek(key) else {
            return Found::Nothing;
        };
        if entry.expired(crate::poll_clock::now()) || !self.valid(key.path(), entry.stamp()).await {
            return Found::Stale(entry);
        }
        Found::Live(entry)
    }

    async fn refresh(&self, key: &CacheKey, entry: &CachedResponse, stamp: u64) {
        if self.valid(key.path(), stamp).await {
            entry.refresh(crate::poll_clock::now(), stamp);
        }
    }

    async fn invalidate_path(&self, path: &str) {
        self.invalidated.store(true, Ordering::Release);
        let value = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        self.records.insert(path.into(), value).await;
    }

    async fn purge_path(&self, path: &str) -> usize {
        self.invalidate_path(path).await;
        let removed = AtomicUsize::new(0);
        self.entries.retain(|key, _| {
            let keep = key.path() != path;
            if !keep {
                removed.fetch_add(1, Ordering::Relaxed);
            }
            keep
        });
        removed.into_inner()
    }

    async fn purge_all(&self) -> usize {
        // Responses being fetched now are not stored either.
        self.invalidated.store(true, Ordering::Release);
        let value = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        self.floor.fetch_max(value, Ordering::AcqRel);
        let count = self.entries.len();
        self.entries.clear();
        count
    }

    async fn usage(&self) -> (u64, u64) {
        (self.entries.len() as u64, self.entries.weight())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::cache::key::{KeySpec, QueryVary};
    use http::Method;

    fn key(path: &str) -> CacheKey {
        let spec = KeySpec {
            query: QueryVary::All,
            headers: Vec::new(),
            per_consumer: false,
        };
        spec.key(&Method::GET, path, None, &HeaderMap::new(), None)
    }

    fn entry(stamp: u64) -> Arc<CachedResponse> {
        Arc::new(CachedResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(b"body"),
            Duration::from_secs(10),
            0,
            Instant::now(),
            stamp,
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_restarts_the_age_and_the_time_to_live() {
        let store = LocalStore::new(1 << 20, Duration::from_secs(10), Duration::from_secs(5));
        let key = key("/a");
        store.insert(key.clone(), entry(store.stamp())).await;
        tokio::time::advance(Duration::from_secs(8)).await;
        let Found::Live(stored) = store.find(&key).await else {
            panic!("live");
        };
        assert_eq!(stored.stored_at().elapsed(), Duration::from_secs(8));
        store.refresh(&key, &stored, store.stamp()).await;
        assert_eq!(stored.stored_at().elapsed(), Duration::ZERO);
        // Past the first time to live, within the refreshed one.
        tokio::time::advance(Duration::from_secs(8)).await;
        let live = store.get(&key).await.expect("live after the refresh");
        assert!(Arc::ptr_eq(&live, &stored), "refreshed in place");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            matches!(store.find(&key).await, Found::Stale(_)),
            "found stale once expired"
        );
        assert!(store.get(&key).await.is_none(), "expired 10 s after it");
        assert!(
            matches!(store.find(&key).await, Found::Nothing),
            "dropped when looked up expired"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_by_a_fetch_older_than_a_write_changes_nothing() {
        let store = LocalStore::new(1 << 20, Duration::from_secs(10), Duration::from_secs(5));
        let key = key("/w");
        let before = store.stamp();
        store.insert(key.clone(), entry(before)).await;
        let stored = store.find(&key).await.entry().expect("stored");
        store.invalidate_path("/w").await;
        assert!(store.get(&key).await.is_none(), "invalid after the write");
        assert!(
            matches!(store.find(&key).await, Found::Stale(_)),
            "found stale after the write"
        );
        // A fetch that started before the write: its answer may predate it.
        store.refresh(&key, &stored, before).await;
        assert!(store.get(&key).await.is_none(), "still invalid");
        assert_eq!(stored.stamp(), before);
        // A fetch that started after the write revalidates it.
        store.refresh(&key, &stored, store.stamp()).await;
        let live = store.get(&key).await.expect("valid again");
        assert!(Arc::ptr_eq(&live, &stored));
    }

    #[test]
    fn same_answer_compares_status_ttl_and_header_lines_in_order() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().expect("value"));
        headers.append("x-tag", "a".parse().expect("value"));
        headers.append("x-tag", "b".parse().expect("value"));
        let stored = CachedResponse::new(
            StatusCode::OK,
            headers.clone(),
            Bytes::new(),
            Duration::from_secs(10),
            0,
            Instant::now(),
            0,
        );
        let ttl = Duration::from_secs(10);
        assert!(stored.same_answer(StatusCode::OK, &headers, ttl));
        assert!(!stored.same_answer(StatusCode::CREATED, &headers, ttl));
        assert!(!stored.same_answer(StatusCode::OK, &headers, Duration::from_secs(9)));
        let mut other = headers.clone();
        other.append("x-tag", "c".parse().expect("value"));
        assert!(!stored.same_answer(StatusCode::OK, &other, ttl));
        let mut reordered = HeaderMap::new();
        reordered.append("x-tag", "b".parse().expect("value"));
        reordered.append("x-tag", "a".parse().expect("value"));
        reordered.insert("content-type", "text/plain".parse().expect("value"));
        assert!(!stored.same_answer(StatusCode::OK, &reordered, ttl));
        let mut changed = headers.clone();
        changed.insert("content-type", "text/html".parse().expect("value"));
        assert!(!stored.same_answer(StatusCode::OK, &changed, ttl));
    }
}
