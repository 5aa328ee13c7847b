//! The caches of every route, kept in [`State`](crate::runtime::State) by route name so that
//! a reload with the same settings keeps the entries; and purging.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::RouteCache;
use super::store::CacheStore;

/// What to purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachePurge {
    /// Every entry of every route.
    All,
    /// Every entry of the route of this name.
    Route(String),
    /// Every entry of this normalized path, in every route.
    Path(String),
}

/// Entries of one route's cache and the bytes they weigh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    /// Live entries.
    pub entries: u64,
    /// Their weight in bytes (bounded by `max_memory`).
    pub bytes: u64,
}

/// The route caches by route name, each with the settings it was made for (unnamed routes
/// are named by their pattern, which several may share: their hosts and methods are part of
/// the fingerprint). A runtime holds its caches; the registry only refers to them, so the
/// cache of a route removed from the config goes when the last runtime using it does.
#[derive(Default)]
pub struct Caches {
    routes: Mutex<HashMap<Arc<str>, Vec<Made>>>,
}

/// A route's cache and the settings (fingerprint) it was made for.
type Made = (String, Weak<RouteCache>);

impl Caches {
    /// The cache of `route`: the existing one when it was made for the same `fingerprint`
    /// (the route's settings), else a new, empty one from `make`.
    pub fn route_cache(
        &self,
        route: &str,
        fingerprint: &str,
        make: impl FnOnce() -> RouteCache,
    ) -> Arc<RouteCache> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let made = routes.entry(route.into()).or_default();
        made.retain(|(_, cache)| cache.strong_count() > 0);
        if let Some(cache) = made
            .iter()
            .find(|(made_for, _)| made_for == fingerprint)
            .and_then(|(_, cache)| cache.upgrade())
        {
            return cache;
        }
        let cache = Arc::new(make());
        made.push((fingerprint.to_owned(), Arc::downgrade(&cache)));
        cache
    }

    /// The live caches with their route names (forgetting those no runtime uses).
    fn live(&self) -> Vec<(Arc<str>, Arc<RouteCache>)> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.retain(|_, made| {
            made.retain(|(_, cache)| cache.strong_count() > 0);
            !made.is_empty()
        });
        routes
            .iter()
            .flat_map(|(name, made)| {
                made.iter()
                    .filter_map(|(_, cache)| cache.upgrade().map(|c| (name.clone(), c)))
            })
            .collect()
    }

    /// Purges entries; returns how many were removed.
    pub async fn purge(&self, purge: &CachePurge) -> usize {
        let mut removed = 0;
        for (name, cache) in self.live() {
            let store = cache.store();
            removed += match purge {
                CachePurge::All => store.purge_all().await,
                CachePurge::Route(route) if **route == *name => store.purge_all().await,
                CachePurge::Route(_) => 0,
                CachePurge::Path(path) => store.purge_path(path).await,
            };
        }
        removed
    }

    /// The usage of the caches of `route` (summed), if it has one.
    pub async fn usage(&self, route: &str) -> Option<CacheUsage> {
        let mut usage: Option<CacheUsage> = None;
        for (name, cache) in self.live() {
            if &*name == route {
                let (entries, bytes) = cache.store().usage().await;
                let sum = usage.get_or_insert(CacheUsage {
                    entries: 0,
                    bytes: 0,
                });
                sum.entries += entries;
                sum.bytes += bytes;
            }
        }
        usage
    }
}
