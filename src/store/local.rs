//! The in-process store: one table per (scope, limit, algorithm, burst), each a sharded map
//! from a keyed hash of the counter key (std `RandomState`: SipHash with a per-process random
//! key, so clients cannot aim keys at one bucket) to a compact state of a few words. No key
//! string is kept. Entries whose windows are over are swept from a shard when it is next used,
//! at most once per period (between 1 s and 60 s), and from every shard by [`LocalStore::sweep`],
//! which the gateway runs every [`SWEEP_EVERY`], so that keys never seen again are freed even in
//! shards no request touches any more.
//!
//! A check locks the key's shard in every table of the set, in table-id order (so sets
//! sharing tables never deadlock), decides, and writes only when every limit admits.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use smallvec::SmallVec;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::meter::{FixedWindow, Gcra, Meter, Params, SlidingWindow, Verdict};
use super::{CounterKey, Decision, LimitSpec, RateStore, StoreUnavailable};
use crate::config::RateAlgorithm;
use crate::padded::Padded;

/// Shards per table.
const SHARDS: usize = 128;
/// Bounds of the sweep interval of a shard.
const SWEEP_MIN: u64 = 1_000_000;
const SWEEP_MAX: u64 = 60_000_000;
/// How often every table is swept in the background ([`LocalStore::sweep_every`]).
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Rate-limit counters of this process, kept across reloads in [`crate::runtime::State`].
pub struct LocalStore {
    epoch: Instant,
    hasher: RandomState,
    tables: Mutex<HashMap<TableKey, WeakTable>>,
    next_id: AtomicU64,
}

impl Default for LocalStore {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            hasher: RandomState::new(),
            tables: Mutex::default(),
            next_id: AtomicU64::new(0),
        }
    }
}

/// What identifies a table: configs that agree on it share the counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TableKey {
    scope: String,
    params: Params,
    algorithm: RateAlgorithm,
}

#[derive(Clone)]
enum WeakTable {
    Fixed(Weak<Table<FixedWindow>>),
    Sliding(Weak<Table<SlidingWindow>>),
    Gcra(Weak<Table<Gcra>>),
}

/// A limit set prepared in the local store.
pub struct LocalLimits(Tables);

enum Tables {
    Fixed(Vec<Slot<FixedWindow>>),
    Sliding(Vec<Slot<SlidingWindow>>),
    Gcra(Vec<Slot<Gcra>>),
}

/// A table and the position of its limit in the spec.
struct Slot<M> {
    table: Arc<Table<M>>,
    index: usize,
}

/// The counters of one limit.
struct Table<M> {
    id: u64,
    params: Params,
    /// Each on cache lines of its own, so that workers counting keys of neighbouring shards
    /// do not take the lines from each other.
    shards: Box<[Padded<Mutex<Shard<M>>>]>,
}

struct Shard<M> {
    map: HashMap<u64, M, BuildHasherDefault<PassThrough>>,
    next_sweep: u64,
}

/// The map's hasher: keys are already keyed SipHash values.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<M: Meter> Table<M> {
    fn new(id: u64, params: Params) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    map: HashMap::default(),
                    next_sweep: 0,
                }))
            })
            .collect();
        Self { id, params, shards }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard<M>> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keys held (for tests and measurements).
    fn len(&self) -> usize {
        (0..SHARDS).map(|s| self.lock(s).map.len()).sum()
    }

    /// Drops the entries whose windows are over at `now`, shard by shard; returns how many.
    fn sweep(&self, now: u64) -> usize {
        (0..SHARDS)
            .map(|s| self.lock(s).sweep(&self.params, now))
            .sum()
    }
}

impl<M: Meter> Shard<M> {
    fn verdict(&mut self, params: &Params, key: u64, now: u64) -> Verdict<M> {
        if now >= self.next_sweep {
            self.sweep(params, now);
        }
        self.map
            .get(&key)
            .copied()
            .unwrap_or_default()
            .check(params, now)
    }
}

impl<M: Meter> Shard<M> {
    /// Drops the entries whose windows are over; returns how many.
    fn sweep(&mut self, params: &Params, now: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, state| state.expires(params) > now);
        self.next_sweep = now + params.period.clamp(SWEEP_MIN, SWEEP_MAX);
        before - self.map.len()
    }
}

/// The shard of a key: bits that the map's own bucket index and tag do not use.
fn shard_of(key: u64) -> usize {
    ((key >> 40) as usize) % SHARDS
}

/// Store units for a limit of `algorithm`.
fn params(count: u64, period: Duration, algorithm: RateAlgorithm, burst: u32) -> Params {
    let period = u64::try_from(period.as_micros()).unwrap_or(u64::MAX).max(1);
    let capacity = match algorithm {
        RateAlgorithm::SlidingWindow | RateAlgorithm::FixedWindow => count,
        RateAlgorithm::TokenBucket => count.saturating_add(u64::from(burst)),
        RateAlgorithm::LeakyBucket => 1 + u64::from(burst),
    };
    Params {
        count: count.max(1),
        period,
        capacity,
    }
}

impl LocalStore {
    /// Microseconds from the store's epoch to `now`.
    fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// The table for `key`, shared with any live set that uses it.
    fn table<M: Meter>(
        &self,
        key: TableKey,
        wrap: fn(Weak<Table<M>>) -> WeakTable,
        unwrap: fn(&WeakTable) -> Option<&Weak<Table<M>>>,
    ) -> Arc<Table<M>> {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(table) = tables.get(&key).and_then(unwrap).and_then(Weak::upgrade) {
            return table;
        }
        tables.retain(|_, t| match t {
            WeakTable::Fixed(w) => w.strong_count() > 0,
            WeakTable::Sliding(w) => w.strong_count() > 0,
            WeakTable::Gcra(w) => w.strong_count() > 0,
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let table = Arc::new(Table::new(id, key.params));
        tables.insert(key, wrap(Arc::downgrade(&table)));
        table
    }

    fn slots<M: Meter>(
        &self,
        spec: &LimitSpec,
        wrap: fn(Weak<Table<M>>) -> WeakTable,
        unwrap: fn(&WeakTable) -> Option<&Weak<Table<M>>>,
    ) -> Vec<Slot<M>> {
        let mut slots: Vec<Slot<M>> = Vec::with_capacity(spec.limits.len());
        for (index, &(count, period)) in spec.limits.iter().enumerate() {
            let params = params(count, period, spec.algorithm, spec.burst);
            if slots.iter().any(|s| s.table.params == params) {
                continue;
            }
            let key = TableKey {
                scope: spec.scope.clone(),
                params,
                algorithm: spec.algorithm,
            };
            let table = self.table(key, wrap, unwrap);
            slots.push(Slot { table, index });
        }
        // Lock order.
        slots.sort_by_key(|s| s.table.id);
        slots
    }

    /// Distinct keys counted by a prepared set, summed over its tables.
    pub fn keys(&self, limits: &LocalLimits) -> usize {
        match &limits.0 {
            Tables::Fixed(s) => s.iter().map(|s| s.table.len()).sum(),
            Tables::Sliding(s) => s.iter().map(|s| s.table.len()).sum(),
            Tables::Gcra(s) => s.iter().map(|s| s.table.len()).sum(),
        }
    }

    /// Drops, from every live table, the counters whose windows are over at `now`; returns
    /// how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let now = self.micros(now);
        let tables: Vec<WeakTable> = {
            let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
            tables.values().map(WeakTable::clone).collect()
        };
        tables
            .iter()
            .map(|table| match table {
                WeakTable::Fixed(w) => w.upgrade().map_or(0, |t| t.sweep(now)),
                WeakTable::Sliding(w) => w.upgrade().map_or(0, |t| t.sweep(now)),
                WeakTable::Gcra(w) => w.upgrade().map_or(0, |t| t.sweep(now)),
            })
            .sum()
    }

    /// Sweeps every [`SWEEP_EVERY`] until `shutdown`.
    pub async fn sweep_every(self: Arc<Self>, shutdown: CancellationToken) {
        let what = "rate-limit counters of idle keys dropped";
        crate::sweep::every(SWEEP_EVERY, shutdown, what, |now| self.sweep(now)).await;
    }

    /// Checks synchronously (the local store never waits).
    pub fn check_now(&self, limits: &LocalLimits, key: &CounterKey<'_>, now: Instant) -> Decision {
        let key = self.hasher.hash_one(key);
        let now = self.micros(now);
        match &limits.0 {
            Tables::Fixed(slots) => check_slots(slots, key, now),
            Tables::Sliding(slots) => check_slots(slots, key, now),
            Tables::Gcra(slots) => check_slots(slots, key, now),
        }
    }
}

impl RateStore for LocalStore {
    type Limits = LocalLimits;

    fn prepare(&self, spec: &LimitSpec) -> LocalLimits {
        LocalLimits(match spec.algorithm {
            RateAlgorithm::FixedWindow => {
                Tables::Fixed(self.slots(spec, WeakTable::Fixed, |t| match t {
                    WeakTable::Fixed(w) => Some(w),
                    _ => None,
                }))
            }
            RateAlgorithm::SlidingWindow => {
                Tables::Sliding(self.slots(spec, WeakTable::Sliding, |t| match t {
                    WeakTable::Sliding(w) => Some(w),
                    _ => None,
                }))
            }
            RateAlgorithm::TokenBucket | RateAlgorithm::LeakyBucket => {
                Tables::Gcra(self.slots(spec, WeakTable::Gcra, |t| match t {
                    WeakTable::Gcra(w) => Some(w),
                    _ => None,
                }))
            }
        })
    }

    async fn check(
        &self,
        limits: &LocalLimits,
        key: &CounterKey<'_>,
        now: Instant,
    ) -> Result<Decision, StoreUnavailable> {
        Ok(self.check_now(limits, key, now))
    }
}

/// One atomic check of a set: every shard locked, all decided, all written or none.
fn check_slots<M: Meter>(slots: &[Slot<M>], key: u64, now: u64) -> Decision {
    let shard = shard_of(key);
    let mut guards: SmallVec<[MutexGuard<'_, Shard<M>>; 4]> =
        slots.iter().map(|s| s.table.lock(shard)).collect();
    let verdicts: SmallVec<[Verdict<M>; 4]> = slots
        .iter()
        .zip(guards.iter_mut())
        .map(|(slot, guard)| guard.verdict(&slot.table.params, key, now))
        .collect();
    let allowed = verdicts.iter().all(|v| v.admitted.is_some());
    if allowed {
        for (guard, verdict) in guards.iter_mut().zip(&verdicts) {
            if let Some(state) = verdict.admitted {
                guard.map.insert(key, state);
            }
        }
    }
    drop(guards);
    // The tightest limit: fewest left when admitted; the last to free up when refused.
    let mut best: Option<(usize, &Verdict<M>)> = None;
    for (slot, verdict) in slots.iter().zip(&verdicts) {
        if !allowed && verdict.admitted.is_some() {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, b)) if allowed => (verdict.remaining, b.reset) < (b.remaining, verdict.reset),
            Some((_, b)) => verdict.reset > b.reset,
        };
        if better {
            best = Some((slot.index, verdict));
        }
    }
    let (limit, verdict) = best.map_or((0, None), |(i, v)| (i, Some(v)));
    Decision {
        allowed,
        limit,
        remaining: verdict.map_or(0, |v| v.remaining),
        reset: Duration::from_micros(verdict.map_or(0, |v| v.reset.saturating_sub(now))),
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
