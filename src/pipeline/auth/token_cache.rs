//! A bounded cache of checked bearer tokens (JWT verifications, introspection answers).
//!
//! Entries are keyed by the SHA-256 digest of the token, so the cache never holds a token's
//! text, and two tokens can only share an entry by a SHA-256 collision. Each entry lives until
//! its own deadline (the token's `exp`, or sooner). The map is split into shards behind short
//! mutexes; a full shard first drops expired entries, then arbitrary ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// How many shards the map is split into (a power of two).
const SHARDS: usize = 16;

/// The SHA-256 digest of a token: the cache key.
pub(super) type TokenDigest = [u8; 32];

/// The digest a token is cached under.
pub(super) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A bounded map from token digests to values, each valid until its deadline (seconds since
/// the Unix epoch).
pub(super) struct TokenCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    per_shard: usize,
}

type Shard<V> = HashMap<TokenDigest, Entry<V>>;

struct Entry<V> {
    value: Arc<V>,
    until: u64,
}

impl<V> TokenCache<V> {
    /// A cache of at most about `capacity` entries.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &TokenDigest) -> &Mutex<Shard<V>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The value cached for `key`, unless its deadline is before `now`.
    pub(super) fn get(&self, key: &TokenDigest, now: u64) -> Option<Arc<V>> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        match shard.get(key) {
            Some(entry) if entry.until >= now => Some(entry.value.clone()),
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches `value` under `key` until `until` (nothing when that is already past).
    pub(super) fn insert(&self, key: TokenDigest, value: Arc<V>, until: u64, now: u64) {
        if until < now {
            return;
        }
        let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, entry| entry.until >= now);
            if shard.len() >= self.per_shard {
                // Still full of live entries: forget a quarter of them (they are verified
                // again on their next use).
                let drop = (self.per_shard / 4).max(1);
                let victims: Vec<TokenDigest> = shard.keys().take(drop).copied().collect();
                for victim in victims {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(key, Entry { value, until });
    }

    /// How many entries are held (expired ones included until they are dropped).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_deadline() {
        let cache = TokenCache::new(100);
        let key = digest("a.b.c");
        cache.insert(key, Arc::new(1), 1_000, 900);
        assert_eq!(cache.get(&key, 999).as_deref(), Some(&1));
        assert_eq!(cache.get(&key, 1_000).as_deref(), Some(&1));
        assert_eq!(cache.get(&key, 1_001), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
        cache.insert(key, Arc::new(2), 10, 11);
        assert_eq!(cache.get(&key, 5), None, "already expired: not stored");
    }

    #[test]
    fn bounded() {
        let cache = TokenCache::new(64);
        for i in 0..10_000 {
            cache.insert(digest(&i.to_string()), Arc::new(i), 2_000, 1_000);
        }
        assert!(cache.len() <= 64 + SHARDS, "{}", cache.len());
        let last = digest("9999");
        assert_eq!(cache.get(&last, 1_000).as_deref(), Some(&9999));
    }

    #[test]
    fn expired_entries_go_first_when_full() {
        let cache = TokenCache::new(SHARDS);
        // One entry per shard at most: fill a shard with an expired entry, then a live one.
        let keys: Vec<TokenDigest> = (0..1000).map(|i| digest(&i.to_string())).collect();
        let a = keys[0];
        let b = *keys[1..]
            .iter()
            .find(|k| k[0] as usize % SHARDS == a[0] as usize % SHARDS)
            .expect("same shard");
        cache.insert(a, Arc::new("old"), 100, 50);
        cache.insert(b, Arc::new("new"), 300, 200);
        assert_eq!(cache.get(&b, 200).as_deref(), Some(&"new"));
        assert_eq!(cache.get(&a, 50), None);
    }

    #[test]
    fn digests_differ_and_hide_the_token() {
        assert_ne!(digest("a"), digest("b"));
        assert_eq!(digest("a").len(), 32);
    }
}
