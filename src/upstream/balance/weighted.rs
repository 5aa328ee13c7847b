//! Weighted random draws over one list of targets, and the power of two choices built on them
//! (`least_request`, `ewma`).

/// The targets' weights, with their running sums for a draw by binary search.
pub(crate) struct Weights {
    weights: Vec<u32>,
    /// `cumulative[i]`: the sum of the weights of targets `0..=i`.
    cumulative: Vec<u64>,
    total: u64,
}

impl Weights {
    /// Weights of the targets, in order (each at least 1).
    pub(crate) fn new(weights: &[u32]) -> Self {
        let weights: Vec<u32> = weights.iter().map(|&w| w.max(1)).collect();
        let mut total = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                total += u64::from(w);
                total
            })
            .collect();
        Self {
            weights,
            cumulative,
            total,
        }
    }

    /// Target `i`'s weight.
    pub(crate) fn weight(&self, i: usize) -> u32 {
        self.weights.get(i).copied().unwrap_or(1)
    }

    /// A usable target drawn at random, each with a chance proportional to its weight among
    /// the usable ones.
    pub(crate) fn draw(&self, usable: impl Fn(usize) -> bool) -> Option<usize> {
        match self.weights.len() {
            0 => return None,
            1 => return usable(0).then_some(0),
            _ => {}
        }
        // Most of the time every target is usable: one draw over all of them.
        let point = fastrand::u64(..self.total);
        let index = self.cumulative.partition_point(|&c| c <= point);
        if usable(index) {
            return Some(index);
        }
        // Otherwise draw again over the usable ones only.
        let usable_total: u64 = (0..self.weights.len())
            .filter(|&i| usable(i))
            .map(|i| u64::from(self.weights[i]))
            .sum();
        if usable_total == 0 {
            return None;
        }
        let mut point = fastrand::u64(..usable_total);
        for (i, &weight) in self.weights.iter().enumerate() {
            if !usable(i) {
                continue;
            }
            let weight = u64::from(weight);
            if point < weight {
                return Some(i);
            }
            point -= weight;
        }
        None
    }

    /// Power of two choices: two different usable targets drawn by weight; the one with the
    /// lower `cost` wins, the first drawn on a tie. One usable target wins alone.
    pub(crate) fn best_of_two(
        &self,
        usable: impl Fn(usize) -> bool,
        cost: impl Fn(usize) -> f64,
    ) -> Option<usize> {
        let first = self.draw(&usable)?;
        let Some(second) = self.draw(|i| i != first && usable(i)) else {
            return Some(first);
        };
        if cost(second) < cost(first) {
            Some(second)
        } else {
            Some(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shares(weights: &[u32], draws: usize, pick: impl Fn(&Weights) -> Option<usize>) -> Vec<f64> {
        let w = Weights::new(weights);
        let mut counts = vec![0usize; weights.len()];
        for _ in 0..draws {
            counts[pick(&w).expect("a target")] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn draws_follow_the_weights() {
        let got = shares(&[5, 3, 2], 20_000, |w| w.draw(|_| true));
        for (share, expected) in got.iter().zip([0.5, 0.3, 0.2]) {
            assert!((share - expected).abs() < 0.02, "{got:?}");
        }
    }

    #[test]
    fn draws_skip_unusable_targets_and_keep_the_others_proportions() {
        let got = shares(&[5, 3, 2], 20_000, |w| w.draw(|i| i != 0));
        assert_eq!(got[0], 0.0);
        assert!((got[1] - 0.6).abs() < 0.02, "{got:?}");
        assert_eq!(Weights::new(&[1, 1]).draw(|_| false), None);
        assert_eq!(Weights::new(&[]).draw(|_| true), None);
    }

    #[test]
    fn two_choices_prefer_the_cheaper_target() {
        // Target 1 is always cheaper: it wins whenever it is one of the two, which with two
        // targets is always.
        let got = shares(&[1, 1], 1000, |w| {
            w.best_of_two(|_| true, |i| [5.0, 1.0][i])
        });
        assert_eq!(got[1], 1.0);
        // Of three, the dearest loses every pair it is drawn in.
        let got = shares(&[1, 1, 1], 3000, |w| {
            w.best_of_two(|_| true, |i| [9.0, 1.0, 2.0][i])
        });
        assert_eq!(got[0], 0.0);
        assert!((got[1] - 2.0 / 3.0).abs() < 0.05, "{got:?}");
        // Ties go to the first drawn, so idle targets share by weight.
        let got = shares(&[3, 1], 20_000, |w| w.best_of_two(|_| true, |_| 0.0));
        assert!((got[0] - 0.75).abs() < 0.02, "{got:?}");
        assert_eq!(
            Weights::new(&[1, 1]).best_of_two(|i| i == 1, |_| 0.0),
            Some(1)
        );
    }

    proptest! {
        #[test]
        fn never_an_unusable_target(weights in prop::collection::vec(1u32..10, 1..8), down in any::<u8>()) {
            let w = Weights::new(&weights);
            let usable = |i: usize| down & (1 << i) == 0;
            let any_usable = (0..weights.len()).any(usable);
            for _ in 0..20 {
                match w.draw(usable) {
                    Some(i) => prop_assert!(usable(i)),
                    None => prop_assert!(!any_usable),
                }
                match w.best_of_two(usable, |i| i as f64) {
                    Some(i) => prop_assert!(usable(i)),
                    None => prop_assert!(!any_usable),
                }
            }
        }
    }
}
