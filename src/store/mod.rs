//! Where rate-limit counters live, behind one interface: [`RateStore`]. The local store keeps
//! them in this process ([`local::LocalStore`]); the cluster store (Redis, SPEC §7) will
//! implement the same trait with one Lua script per check, with the same algorithms
//! ([`meter`]) and the same answers.
//!
//! The contract: one call per request and limit set checks every limit of the set for a key
//! and, only when all of them admit the request, counts it in all of them — atomically, so
//! concurrent requests never overshoot and a request refused by one limit consumes none.

pub mod local;
pub mod meter;

use std::future::Future;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateAlgorithm;

/// A set of limits checked together: the counters it names are identified by the scope, the
/// limit and the algorithm, so a config with the same settings finds the same counters.
#[derive(Debug, Clone)]
pub struct LimitSpec {
    /// Who shares the counters: `route:NAME`, `service:NAME` or `global`.
    pub scope: String,
    /// The limits, `(requests, period)`; all must admit a request.
    pub limits: Vec<(u64, Duration)>,
    /// How requests are counted.
    pub algorithm: RateAlgorithm,
    /// Extra capacity of `token_bucket` and `leaky_bucket`.
    pub burst: u32,
}

/// What a request is counted by within a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterKey<'a> {
    /// A client address.
    Ip(IpAddr),
    /// An authenticated consumer.
    Consumer(&'a str),
    /// The value of a request header.
    Header(&'a [u8]),
    /// A route (all its clients together).
    Route(&'a str),
    /// Everything in the scope together.
    Global,
}

/// The answer to a check, about the tightest limit of the set: when admitted, the one with
/// the fewest requests left; when refused, the refusing one that frees up last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was admitted (and counted).
    pub allowed: bool,
    /// The index in [`LimitSpec::limits`] of the tightest limit.
    pub limit: usize,
    /// Requests left under that limit (0 when refused).
    pub remaining: u64,
    /// When admitted: time until the limit gives capacity back. When refused: time until a
    /// request would be admitted.
    pub reset: Duration,
}

/// The store could not be reached (cluster store only).
#[derive(Debug, thiserror::Error)]
#[error("the rate-limit store is unavailable")]
pub struct StoreUnavailable;

/// A place where rate-limit counters live.
pub trait RateStore: Send + Sync {
    /// A limit set made ready for this store (tables, script keys…).
    type Limits: Send + Sync;

    /// Makes a limit set ready; called once per config, not per request.
    fn prepare(&self, spec: &LimitSpec) -> Self::Limits;

    /// Checks one request against every limit of `limits` for `key` at `now` and counts it
    /// in all of them when all admit it; atomically.
    fn check(
        &self,
        limits: &Self::Limits,
        key: &CounterKey<'_>,
        now: Instant,
    ) -> impl Future<Output = Result<Decision, StoreUnavailable>> + Send;
}

/// A limit set prepared in the store a route uses.
pub enum PreparedLimits {
    /// In this process.
    Local(Arc<local::LocalStore>, local::LocalLimits),
}

impl PreparedLimits {
    /// Checks and counts one request (see [`RateStore::check`]).
    pub async fn check(
        &self,
        key: &CounterKey<'_>,
        now: Instant,
    ) -> Result<Decision, StoreUnavailable> {
        match self {
            Self::Local(store, limits) => store.check(limits, key, now).await,
        }
    }
}
