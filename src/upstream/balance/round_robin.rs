//! Smooth weighted round robin (nginx's): one cycle of the schedule computed per target list,
//! a shared counter walking it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest schedule kept; longer cycles are scaled down.
const MAX_SCHEDULE: u64 = 4096;

/// A weighted round robin over one list of targets.
pub(crate) struct RoundRobin {
    schedule: Vec<u32>,
    targets: usize,
    next: AtomicUsize,
}

impl RoundRobin {
    /// The schedule for targets of these weights.
    pub(crate) fn new(weights: &[u32]) -> Self {
        Self {
            schedule: smooth_schedule(weights),
            targets: weights.len(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next usable target of the schedule; when the schedule's next ones are not usable,
    /// the following ones in schedule order. A retry (`advance: false`) looks from the
    /// schedule's current position without moving it, so retries do not shift which target
    /// the next requests start on (two targets, one failing: every request would otherwise
    /// start on the failing one).
    pub(crate) fn pick(&self, usable: impl Fn(usize) -> bool, advance: bool) -> Option<usize> {
        if self.targets <= 1 {
            return (self.targets == 1 && usable(0)).then_some(0);
        }
        let len = self.schedule.len();
        let base = if advance {
            None
        } else {
            Some(self.next.load(Ordering::Relaxed))
        };
        for step in 0..len {
            let n = match base {
                Some(base) => base.wrapping_add(step),
                None => self.next.fetch_add(1, Ordering::Relaxed),
            };
            let index = self.schedule[n % len] as usize;
            if usable(index) {
                return Some(index);
            }
        }
        (0..self.targets).find(|&i| usable(i))
    }
}

/// One cycle of nginx's smooth weighted round robin: each target appears `weight` times,
/// spread out rather than in runs.
pub(crate) fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return vec![0];
    }
    let total: u64 = weights.iter().map(|&w| u64::from(w.max(1))).sum();
    // Scale very long cycles down, keeping every target at least once.
    let weights: Vec<i64> = if total > MAX_SCHEDULE {
        weights
            .iter()
            .map(|&w| ((u64::from(w.max(1)) * MAX_SCHEDULE / total).max(1)) as i64)
            .collect()
    } else {
        weights.iter().map(|&w| i64::from(w.max(1))).collect()
    };
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..weights.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        schedule.push(best as u32);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn smooth_schedule_spreads_weights() {
        assert_eq!(smooth_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_schedule(&[1, 1]), vec![0, 1]);
    }

    #[test]
    fn long_cycles_are_scaled_but_keep_every_target() {
        let schedule = smooth_schedule(&[1_000_000, 1]);
        assert!(schedule.len() as u64 <= MAX_SCHEDULE + 1);
        assert!(schedule.contains(&1));
    }

    #[test]
    fn unusable_targets_are_skipped() {
        let rr = RoundRobin::new(&[1, 1, 1]);
        for _ in 0..10 {
            assert_eq!(rr.pick(|i| i == 2, true), Some(2));
        }
        assert_eq!(rr.pick(|_| false, true), None);
        assert_eq!(RoundRobin::new(&[1]).pick(|_| false, true), None);
        assert_eq!(RoundRobin::new(&[]).pick(|_| true, true), None);
    }

    proptest! {
        #[test]
        fn one_cycle_gives_each_target_its_weight(weights in prop::collection::vec(1u32..20, 1..8)) {
            let rr = RoundRobin::new(&weights);
            let total: u32 = weights.iter().sum();
            let mut counts = vec![0u32; weights.len()];
            for _ in 0..total {
                counts[rr.pick(|_| true, true).expect("a target")] += 1;
            }
            prop_assert_eq!(counts, weights);
        }

        #[test]
        fn skipping_spreads_over_the_usable_ones(
            weights in prop::collection::vec(1u32..6, 2..8),
            down in any::<u8>(),
        ) {
            let rr = RoundRobin::new(&weights);
            let usable = |i: usize| down & (1 << i) == 0;
            let any_usable = (0..weights.len()).any(usable);
            for _ in 0..50 {
                match rr.pick(usable, true) {
                    Some(i) => prop_assert!(usable(i)),
                    None => prop_assert!(!any_usable),
                }
            }
        }
    }

    #[test]
    fn retries_do_not_move_the_schedule() {
        let rr = RoundRobin::new(&[1, 1]);
        assert_eq!(rr.pick(|_| true, true), Some(0));
        // A retry of that request, 0 excluded: 1, and the next request still gets 1.
        assert_eq!(rr.pick(|i| i != 0, false), Some(1));
        assert_eq!(rr.pick(|_| true, true), Some(1));
        assert_eq!(rr.pick(|_| true, true), Some(0));
    }
}
