//! Consistent hashing (`balance: hash`): a ring of virtual nodes, as many per target as its
//! weight asks for, so adding or removing a target moves only about its share of keys.
//!
//! Keys come from clients, but the ring is a sorted list searched by binary search, not a hash
//! table: a client choosing values that collide only sends itself to one target. The hash is
//! SipHash-1-3 with a fixed key (std's `DefaultHasher::new()`), so every worker of the process
//! and every reload map a key to the same target.

use std::hash::{DefaultHasher, Hasher};
use std::net::IpAddr;

use http::HeaderName;

use super::super::service::PickKey;
use crate::config::Selector;

/// Virtual nodes per unit of weight.
const POINTS_PER_WEIGHT: u64 = 160;
/// Most virtual nodes on one ring; heavier lists are scaled down.
const MAX_POINTS: u64 = 1 << 16;

/// The request attribute a hash is taken of (`hash_on`, a split's `sticky`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKey {
    /// The first value of a request header.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(Box<str>),
    /// The client's address.
    Ip,
    /// The authenticated consumer's name.
    Consumer,
}

impl RequestKey {
    /// The key a selector names; only `header:`, `cookie:`, `ip` and `consumer` are keys
    /// (validation reports the others).
    pub fn compile(selector: &Selector) -> Result<Self, String> {
        match selector {
            Selector::Header(name) => HeaderName::from_bytes(name.0.as_bytes())
                .map(Self::Header)
                .map_err(|_| format!("invalid header name `{}`", name.0)),
            Selector::Cookie(name) => Ok(Self::Cookie(name.as_str().into())),
            Selector::Ip => Ok(Self::Ip),
            Selector::Consumer => Ok(Self::Consumer),
            other => Err(format!("`{other}` cannot be hashed")),
        }
    }

    /// The hash of the request's value, or `None` when the request has none (no such header
    /// or cookie, an empty value, no consumer).
    pub fn hash(&self, key: &PickKey<'_>) -> Option<u64> {
        match self {
            Self::Header(name) => key
                .headers
                .get(name)
                .map(|v| v.as_bytes())
                .filter(|v| !v.is_empty())
                .map(stable_hash),
            Self::Cookie(name) => crate::pipeline::auth::credential::cookie(key.headers, name)
                .map(|v| stable_hash(v.as_bytes())),
            Self::Ip => Some(match key.client_ip.to_canonical() {
                IpAddr::V4(ip) => stable_hash(&ip.octets()),
                IpAddr::V6(ip) => stable_hash(&ip.octets()),
            }),
            Self::Consumer => key
                .consumer
                .filter(|c| !c.is_empty())
                .map(|c| stable_hash(c.as_bytes())),
        }
    }
}

/// The process-stable hash of `bytes`: the same in every worker and across reloads.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

fn point_hash(identity: &str, replica: u64) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(identity.as_bytes());
    hasher.write(&[0xff]);
    hasher.write(&replica.to_le_bytes());
    hasher.finish()
}

/// A hash ring: points sorted by hash, each naming the target it belongs to.
pub(crate) struct Ring {
    points: Vec<(u64, u32)>,
    targets: usize,
}

impl Ring {
    /// The ring of `targets` (identity, weight). A target's points depend only on its identity
    /// and weight (unless the list is so heavy it is scaled down), so other targets keep theirs
    /// when one comes or goes.
    pub(crate) fn new(targets: &[(&str, u32)]) -> Self {
        let total: u64 = targets
            .iter()
            .map(|&(_, w)| u64::from(w.max(1)) * POINTS_PER_WEIGHT)
            .sum();
        let mut points = Vec::with_capacity(total.min(MAX_POINTS) as usize);
        for (index, &(identity, weight)) in targets.iter().enumerate() {
            let wanted = u64::from(weight.max(1)) * POINTS_PER_WEIGHT;
            let count = if total > MAX_POINTS {
                (wanted * MAX_POINTS / total).max(1)
            } else {
                wanted
            };
            for replica in 0..count {
                points.push((point_hash(identity, replica), index as u32));
            }
        }
        points.sort_unstable();
        Self {
            points,
            targets: targets.len(),
        }
    }

    /// The first usable target at or after `hash` on the ring.
    pub(crate) fn pick(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.points.partition_point(|&(h, _)| h < hash);
        let owner = self.points.get(start).or(self.points.first())?.1 as usize;
        if usable(owner) {
            return Some(owner);
        }
        // Walking the whole ring to learn that nothing is usable would be slow: ask first.
        if !(0..self.targets).any(&usable) {
            return None;
        }
        let (before, after) = self.points.split_at(start);
        after
            .iter()
            .chain(before)
            .map(|&(_, target)| target as usize)
            .find(|&target| usable(target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.0.{}.{}:8080", i / 200, i % 200))
            .collect()
    }

    fn ring(ids: &[String], weights: &[u32]) -> Ring {
        let targets: Vec<(&str, u32)> = ids
            .iter()
            .zip(weights)
            .map(|(id, &w)| (id.as_str(), w))
            .collect();
        Ring::new(&targets)
    }

    fn key(i: u64) -> u64 {
        stable_hash(format!("user-{i}").as_bytes())
    }

    #[test]
    fn keys_are_stable_and_spread_by_weight() {
        let ids = ids(3);
        let ring = ring(&ids, &[1, 2, 3]);
        let again = self::ring(&ids, &[1, 2, 3]);
        let mut counts = [0usize; 3];
        for i in 0..12_000 {
            let target = ring.pick(key(i), |_| true).expect("a target");
            assert_eq!(again.pick(key(i), |_| true), Some(target));
            counts[target] += 1;
        }
        for (count, expected) in counts.iter().zip([2000.0, 4000.0, 6000.0]) {
            let ratio = *count as f64 / expected;
            assert!((0.8..1.2).contains(&ratio), "{counts:?}");
        }
    }

    #[test]
    fn heavy_lists_are_scaled_down_but_keep_every_target() {
        let ids = ids(2);
        let ring = ring(&ids, &[1_000_000, 1]);
        assert!(ring.points.len() as u64 <= MAX_POINTS + 1);
        assert!(ring.points.iter().any(|&(_, t)| t == 1));
    }

    #[test]
    fn nothing_usable_is_none() {
        let ids = ids(3);
        let ring = ring(&ids, &[1, 1, 1]);
        assert_eq!(ring.pick(1, |_| false), None);
        assert_eq!(Ring::new(&[]).pick(1, |_| true), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Adding a target moves keys only to it, and about its share of them.
        #[test]
        fn adding_a_target_moves_only_its_share(n in 2usize..12, seed in any::<u64>()) {
            let ids = ids(n + 1);
            let before = ring(&ids[..n], &vec![1; n]);
            let after = ring(&ids, &vec![1; n + 1]);
            let keys = 4000u64;
            let mut moved = 0u64;
            for i in 0..keys {
                let k = key(seed.wrapping_add(i));
                let (old, new) = (before.pick(k, |_| true), after.pick(k, |_| true));
                if old != new {
                    prop_assert_eq!(new, Some(n), "a key moved between old targets");
                    moved += 1;
                }
            }
            let limit = keys as f64 / (n + 1) as f64 * 1.5;
            prop_assert!((moved as f64) <= limit, "moved {} of {} keys, limit {}", moved, keys, limit);
        }

        /// A target that cannot be used sends its keys to the next targets on the ring; keys
        /// of the other targets stay where they were.
        #[test]
        fn skipping_keeps_the_other_keys_in_place(n in 2usize..10, down in 0usize..10, seed in any::<u64>()) {
            let down = down % n;
            let ids = ids(n);
            let ring = ring(&ids, &vec![1; n]);
            for i in 0..500 {
                let k = key(seed.wrapping_add(i));
                let all = ring.pick(k, |_| true).expect("a target");
                let some = ring.pick(k, |t| t != down).expect("a target");
                prop_assert_ne!(some, down);
                if all != down {
                    prop_assert_eq!(all, some);
                }
            }
        }
    }
}
