//! Balancing (SPEC §2.2 `balance`, `hash_on`): which target of a service serves a request.
//!
//! A [`Balancer`] is built once per list of targets — when a config is compiled, and again when
//! DNS discovery changes the list — with everything an algorithm needs precomputed: the smooth
//! weighted round robin schedule, the cumulative weights of weighted draws, the consistent-hash
//! ring. Per request it reads a few atomics and draws a random number at most twice.
//!
//! Every algorithm skips targets that are not available (health checks, ejection) and those a
//! request already tried (a retry asks for another target); `None` means no target is left.

mod ewma;
mod hash;
mod round_robin;
mod weighted;

use tokio::time::Instant;

use super::registry::TargetState;
use super::service::PickKey;
use hash::Ring;
use round_robin::RoundRobin;
use weighted::Weights;

pub use ewma::PeakEwma;
pub use hash::{RequestKey, stable_hash};

/// A service's balancing algorithm, compiled from `balance` and `hash_on`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's): weights 5,1,1 give `a a b a c a a`.
    #[default]
    RoundRobin,
    /// Power of two choices: two targets drawn by weight, the one with fewer requests in
    /// flight per unit of weight wins (ties go to the first drawn).
    LeastRequest,
    /// A target drawn at random by weight.
    Random,
    /// Power of two choices on peak-EWMA latency × (requests in flight + 1), per unit of weight.
    Ewma,
    /// Consistent hash of a request attribute over a ring; round robin for requests without it.
    Hash(RequestKey),
}

impl Balance {
    /// The algorithm's name, as in the config.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastRequest => "least_request",
            Self::Random => "random",
            Self::Ewma => "ewma",
            Self::Hash(_) => "hash",
        }
    }
}

/// One list of targets' balancing state, built when the list is.
pub(super) enum Balancer {
    RoundRobin(RoundRobin),
    LeastRequest(Weights),
    Random(Weights),
    Ewma(Weights),
    Hash {
        ring: Ring,
        key: RequestKey,
        fallback: RoundRobin,
    },
}

impl Balancer {
    /// Precomputes `balance` over `targets`: each target's identity (stable across reloads and
    /// workers: its registry address) and weight, in the list's order.
    pub(super) fn new(balance: &Balance, targets: &[(&str, u32)]) -> Self {
        let weights: Vec<u32> = targets.iter().map(|&(_, w)| w.max(1)).collect();
        match balance {
            Balance::RoundRobin => Self::RoundRobin(RoundRobin::new(&weights)),
            Balance::LeastRequest => Self::LeastRequest(Weights::new(&weights)),
            Balance::Random => Self::Random(Weights::new(&weights)),
            Balance::Ewma => Self::Ewma(Weights::new(&weights)),
            Balance::Hash(key) => Self::Hash {
                ring: Ring::new(targets),
                key: key.clone(),
                fallback: RoundRobin::new(&weights),
            },
        }
    }

    /// The target for a request, by index: one that is `available(now)` and not in `tried`.
    pub(super) fn pick<'s>(
        &self,
        state: impl Fn(usize) -> &'s TargetState,
        key: &PickKey<'_>,
        tried: &[usize],
        now: Instant,
    ) -> Option<usize> {
        let usable = |i: usize| !tried.contains(&i) && state(i).available(now);
        match self {
            Self::RoundRobin(rr) => rr.pick(usable, tried.is_empty()),
            Self::Random(weights) => weights.draw(usable),
            Self::LeastRequest(weights) => weights.best_of_two(usable, |i| {
                f64::from(state(i).in_flight()) / f64::from(weights.weight(i))
            }),
            Self::Ewma(weights) => weights.best_of_two(usable, |i| {
                let target = state(i);
                let latency = target.latency.estimate_micros(now).unwrap_or(0.0);
                // The floor makes requests in flight count between targets that are both
                // unmeasured or near zero.
                (latency + 1.0) * f64::from(target.in_flight() + 1) / f64::from(weights.weight(i))
            }),
            Self::Hash {
                ring,
                key: what,
                fallback,
            } => match what.hash(key) {
                Some(hash) => ring.pick(hash, usable),
                None => fallback.pick(usable, tried.is_empty()),
            },
        }
    }
}
