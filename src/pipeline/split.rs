//! `split` and `sticky` (SPEC §2.4): a route's traffic shared among services by weight (a
//! canary), optionally keeping each client on one side.
//!
//! With `sticky`, the client's value (a header, a cookie, the consumer) is hashed to a point of
//! `[0, total weight)` and the sides own consecutive ranges in the order they are listed: the
//! same value always lands on the same side, and raising the first side's weight (a canary
//! growing from 10 to 20) only moves clients onto it. A request without the value is sent by
//! weighted random, as are all requests of a split without `sticky`.

use std::sync::Arc;

use crate::upstream::{PickKey, RequestKey, ServiceRuntime};

/// Where a forwarding route sends its requests: one service, or a split among several.
pub enum ServiceChoice {
    /// `service`.
    One(Arc<ServiceRuntime>),
    /// `split` (and `sticky`).
    Split(Split),
}

impl ServiceChoice {
    /// The service for this request.
    pub fn choose(&self, key: &PickKey<'_>) -> &Arc<ServiceRuntime> {
        match self {
            Self::One(service) => service,
            Self::Split(split) => split.choose(key),
        }
    }

    /// Every service the route may send to.
    pub fn services(&self) -> impl Iterator<Item = &Arc<ServiceRuntime>> {
        let (one, split) = match self {
            Self::One(service) => (Some(service), None),
            Self::Split(split) => (None, Some(split)),
        };
        one.into_iter().chain(
            split
                .into_iter()
                .flat_map(|s| s.sides.iter().map(|(svc, _)| svc)),
        )
    }
}

/// A weighted split among services.
pub struct Split {
    /// Each side with the end of its range of `[0, total)`.
    sides: Vec<(Arc<ServiceRuntime>, u64)>,
    total: u64,
    sticky: Option<RequestKey>,
}

impl Split {
    /// A split over `sides` (service, weight ≥ 1), in the order listed; `None` without sides.
    pub fn new(sides: Vec<(Arc<ServiceRuntime>, u32)>, sticky: Option<RequestKey>) -> Option<Self> {
        let mut total = 0u64;
        let sides: Vec<(Arc<ServiceRuntime>, u64)> = sides
            .into_iter()
            .map(|(service, weight)| {
                total += u64::from(weight.max(1));
                (service, total)
            })
            .collect();
        (!sides.is_empty()).then_some(Self {
            sides,
            total,
            sticky,
        })
    }

    /// The side of this request.
    pub fn choose(&self, key: &PickKey<'_>) -> &Arc<ServiceRuntime> {
        let point = match self.sticky.as_ref().and_then(|s| s.hash(key)) {
            Some(hash) => scale(decorrelate(hash), self.total),
            None => fastrand::u64(..self.total),
        };
        let index = side_of(&self.sides, point);
        &self.sides[index].0
    }
}

/// The index of the side whose range holds `point`.
fn side_of<T>(sides: &[(T, u64)], point: u64) -> usize {
    sides
        .partition_point(|(_, end)| *end <= point)
        .min(sides.len().saturating_sub(1))
}

/// Maps a 64-bit hash onto `[0, total)` evenly.
fn scale(hash: u64, total: u64) -> u64 {
    ((u128::from(hash) * u128::from(total)) >> 64) as u64
}

/// A bijective mix (splitmix64's finalizer), so a split keyed on the same value as a service's
/// hash ring does not send the canary's clients to one arc of that ring.
fn decorrelate(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::stable_hash;
    use proptest::prelude::*;

    fn ends(weights: &[u64]) -> Vec<((), u64)> {
        let mut total = 0;
        weights
            .iter()
            .map(|w| {
                total += w;
                ((), total)
            })
            .collect()
    }

    #[test]
    fn ranges_follow_the_weights() {
        let sides = ends(&[10, 90]);
        assert_eq!(side_of(&sides, 0), 0);
        assert_eq!(side_of(&sides, 9), 0);
        assert_eq!(side_of(&sides, 10), 1);
        assert_eq!(side_of(&sides, 99), 1);
        let mut canary = 0;
        for i in 0..20_000u64 {
            let point = scale(decorrelate(stable_hash(&i.to_le_bytes())), 100);
            if side_of(&sides, point) == 0 {
                canary += 1;
            }
        }
        assert!((1_700..2_300).contains(&canary), "{canary}");
    }

    proptest! {
        /// Growing the first side only moves clients onto it.
        #[test]
        fn growing_the_canary_only_moves_clients_onto_it(small in 1u64..50, more in 1u64..50, value in any::<u64>()) {
            let before = ends(&[small, 100]);
            let after = ends(&[small + more, 100]);
            let hash = decorrelate(stable_hash(&value.to_le_bytes()));
            let was = side_of(&before, scale(hash, small + 100));
            let is = side_of(&after, scale(hash, small + more + 100));
            if was == 0 {
                prop_assert_eq!(is, 0);
            }
        }
    }
}
