//! A bounded cache of checked bearer tokens (JWT verifications, introspection answers).
//!
//! Entries are keyed by the token itself, as Envoy's JWT cache is: a lookup is one fast hash
//! and one comparison, where a digest would cost a SHA-256 of the token on every request. Only
//! tokens that passed their check are stored, so the keys are not chosen freely by clients.
//! Each entry lives until its own deadline (the token's `exp`, or sooner). The map is split
//! into shards behind short mutexes, each bounded in entries and in bytes; a full shard first
//! drops expired entries, then arbitrary ones.
//!
//! The JWT cache's shards are split between the worker threads ([`TokenCache::per_worker`]),
//! as Envoy keeps a JWT cache per worker: each worker looks up and stores in its own shards
//! only, so that a lookup writes (its lock, the value's count) only cache lines that stay on
//! its core; shared shards moved those lines between the cores on every request. A token used
//! on several workers is verified once on each. Introspection answers, which cost a call to
//! the identity provider, stay in one cache for all workers.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::padded::Padded;

/// How many shards the map is split into (a power of two).
const SHARDS: usize = 16;
/// Bytes of token text held per shard, at most (16 MiB in all).
const SHARD_BYTES: usize = 1 << 20;
/// Tokens longer than this are checked on every use instead of cached.
const MAX_TOKEN: usize = 8 * 1024;

/// A bounded map from tokens to values, each valid until its deadline (seconds since the Unix
/// epoch).
pub(super) struct TokenCache<V> {
    /// Each on cache lines of its own: workers using neighbouring shards share no line.
    shards: Box<[Padded<Mutex<Shard<V>>>]>,
    hasher: RandomState,
    per_shard: usize,
    /// Shards per worker: `SHARDS` split between the workers, or all of them when shared.
    per_worker: usize,
}

/// One shard: a table found by the token's hash, computed once per call for both the shard
/// and the table.
struct Shard<V> {
    table: HashTable<Entry<V>>,
    bytes: usize,
}

struct Entry<V> {
    token: Box<str>,
    value: Arc<V>,
    until: u64,
}

impl<V> Shard<V> {
    fn find(&self, hash: u64, token: &str) -> Option<&Entry<V>> {
        self.table.find(hash, |entry| *entry.token == *token)
    }

    fn remove(&mut self, hash: u64, token: &str) {
        if let Ok(found) = self.table.find_entry(hash, |entry| *entry.token == *token) {
            let (removed, _) = found.remove();
            self.bytes -= removed.token.len();
        }
    }

    /// Keeps the entries `keep` says yes to.
    fn retain(&mut self, keep: impl FnMut(&mut Entry<V>) -> bool) {
        self.table.retain(keep);
        self.bytes = self.table.iter().map(|entry| entry.token.len()).sum();
    }

    fn full(&self, per_shard: usize, adding: usize) -> bool {
        self.table.len() >= per_shard || self.bytes + adding > SHARD_BYTES
    }
}

impl<V> TokenCache<V> {
    /// A cache of at most about `capacity` entries, shared by every worker: for values that
    /// are costly to get again (an identity provider's answer).
    pub(super) fn new(capacity: usize) -> Self {
        Self::with_partitions(capacity, 1)
    }

    /// A cache of at most about `capacity` entries in all, split between the worker threads:
    /// for values each worker can cheaply compute itself (a JWT's verification).
    pub(super) fn per_worker(capacity: usize) -> Self {
        Self::with_partitions(capacity, crate::server::worker_count())
    }

    fn with_partitions(capacity: usize, partitions: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Padded(Mutex::new(Shard {
                        table: HashTable::new(),
                        bytes: 0,
                    }))
                })
                .collect(),
            hasher: RandomState::default(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            per_worker: (SHARDS / partitions.clamp(1, SHARDS)).max(1),
        }
    }

    /// The shard of a token with this hash among the calling worker's.
    fn index(&self, hash: u64) -> usize {
        // The top bits pick the shard; the table uses the hash's low bits.
        let first = crate::server::current_worker() * self.per_worker % SHARDS;
        (first + (hash >> 60) as usize % self.per_worker) % SHARDS
    }

    /// The token's hash and its shard, locked.
    fn shard(&self, token: &str) -> (u64, MutexGuard<'_, Shard<V>>) {
        let hash = self.hasher.hash_one(token);
        let shard = self.shards[self.index(hash)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        (hash, shard)
    }

    /// The value cached for `token`, unless its deadline is before `now`.
    pub(super) fn get(&self, token: &str, now: u64) -> Option<Arc<V>> {
        let (hash, mut shard) = self.shard(token);
        let (until, value) = shard
            .find(hash, token)
            .map(|entry| (entry.until, entry.value.clone()))?;
        if until < now {
            shard.remove(hash, token);
            return None;
        }
        Some(value)
    }

    /// Caches `value` for `token` until `until` (nothing when that is already past, or when
    /// the token is too long to keep).
    pub(super) fn insert(&self, token: &str, value: Arc<V>, until: u64, now: u64) {
        if until < now || token.len() > MAX_TOKEN {
            return;
        }
        let (hash, mut shard) = self.shard(token);
        shard.remove(hash, token);
        if shard.full(self.per_shard, token.len()) {
            shard.retain(|entry| entry.until >= now);
            if shard.full(self.per_shard, token.len()) {
                // Still full of live entries: forget a quarter of them (they are checked
                // again on their next use).
                let mut drop = (self.per_shard / 4).max(1);
                shard.retain(|_| {
                    if drop == 0 {
                        return true;
                    }
                    drop -= 1;
                    false
                });
            }
        }
        shard.bytes += token.len();
        let entry = Entry {
            token: token.into(),
            value,
            until,
        };
        shard
            .table
            .insert_unique(hash, entry, |entry| self.hasher.hash_one(&*entry.token));
    }

    /// How many entries are held (expired ones included until they are dropped).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).table.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_deadline() {
        let cache = TokenCache::new(100);
        let key = "a.b.c";
        cache.insert(key, Arc::new(1), 1_000, 900);
        assert_eq!(cache.get(key, 999).as_deref(), Some(&1));
        assert_eq!(cache.get(key, 1_000).as_deref(), Some(&1));
        assert_eq!(cache.get(key, 1_001), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
        cache.insert(key, Arc::new(2), 10, 11);
        assert_eq!(cache.get(key, 5), None, "already expired: not stored");
    }

    #[test]
    fn bounded_in_entries() {
        let cache = TokenCache::new(64);
        for i in 0..10_000 {
            cache.insert(&i.to_string(), Arc::new(i), 2_000, 1_000);
        }
        assert!(cache.len() <= 64 + SHARDS, "{}", cache.len());
        assert_eq!(cache.get("9999", 1_000).as_deref(), Some(&9999));
    }

    #[test]
    fn bounded_in_bytes() {
        let cache = TokenCache::new(1_000_000);
        let long = "x".repeat(MAX_TOKEN - 8);
        for i in 0..10_000 {
            cache.insert(&format!("{long}{i}"), Arc::new(i), 2_000, 1_000);
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(|p| p.into_inner());
                assert_eq!(
                    shard.bytes,
                    shard.table.iter().map(|e| e.token.len()).sum::<usize>()
                );
                shard.bytes
            })
            .sum();
        assert!(held <= SHARDS * SHARD_BYTES, "{held}");
        let last = format!("{long}9999");
        assert_eq!(cache.get(&last, 1_000).as_deref(), Some(&9999));
        let too_long = "y".repeat(MAX_TOKEN + 1);
        cache.insert(&too_long, Arc::new(0), 2_000, 1_000);
        assert_eq!(cache.get(&too_long, 1_000), None, "too long to keep");
    }

    #[test]
    fn expired_entries_go_first_when_full() {
        let cache = TokenCache::new(SHARDS);
        // One entry per shard at most: fill a shard with an expired entry, then a live one.
        let keys: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let shard_of = |k: &str| cache.index(cache.hasher.hash_one(k));
        let a = &keys[0];
        let b = keys[1..]
            .iter()
            .find(|k| shard_of(k) == shard_of(a))
            .expect("same shard");
        cache.insert(a, Arc::new("old"), 100, 50);
        cache.insert(b, Arc::new("new"), 300, 200);
        assert_eq!(cache.get(b, 200).as_deref(), Some(&"new"));
        assert_eq!(cache.get(a, 50), None);
    }

    #[test]
    fn a_per_worker_cache_keeps_a_workers_tokens() {
        // Outside the workers, the calling thread counts as worker 0.
        let cache = TokenCache::per_worker(64);
        cache.insert("t", Arc::new(1), 2_000, 1_000);
        assert_eq!(cache.get("t", 1_000).as_deref(), Some(&1));
        for i in 0..1_000 {
            cache.insert(&i.to_string(), Arc::new(i), 2_000, 1_000);
        }
        assert!(cache.len() <= 64 + SHARDS, "{}", cache.len());
    }

    #[test]
    fn storing_a_token_again_replaces_it() {
        let cache = TokenCache::new(100);
        cache.insert("t", Arc::new(1), 2_000, 1_000);
        cache.insert("t", Arc::new(2), 2_000, 1_000);
        assert_eq!(cache.get("t", 1_000).as_deref(), Some(&2));
        assert_eq!(cache.len(), 1);
    }
}
