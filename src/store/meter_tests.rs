use proptest::prelude::*;

use super::*;

const SECOND: u64 = 1_000_000;

fn params(count: u64, period: u64, capacity: u64) -> Params {
    Params {
        count,
        period,
        capacity,
    }
}

/// Runs `arrivals` (sorted times) through a meter; the times of the admitted ones.
fn admitted<M: Meter>(p: &Params, arrivals: &[u64]) -> Vec<u64> {
    let mut state = M::default();
    let mut out = Vec::new();
    for &t in arrivals {
        if let Some(next) = state.check(p, t).admitted {
            state = next;
            out.push(t);
        }
    }
    out
}

/// The most admitted requests in any half-open window `[s, s + len)`.
fn most_in_window(times: &[u64], len: u64) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, &t) in times.iter().enumerate() {
        while times[start] + len <= t {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

fn sorted(mut times: Vec<u64>) -> Vec<u64> {
    times.sort_unstable();
    times
}

#[test]
fn fixed_window_admits_the_limit_per_window() {
    let p = params(3, SECOND, 3);
    let times = [0, 1, 2, 3, SECOND - 1, SECOND, SECOND + 1];
    assert_eq!(
        admitted::<FixedWindow>(&p, &times),
        [0, 1, 2, SECOND, SECOND + 1]
    );
    let v = FixedWindow::default().check(&p, 10);
    assert_eq!((v.remaining, v.reset), (2, SECOND));
}

#[test]
fn sliding_window_admits_the_limit_then_frees_old_buckets() {
    let p = params(2, 8 * SECOND, 2);
    let mut state = SlidingWindow::default();
    for t in [0, SECOND] {
        state = state.check(&p, t).admitted.expect("admitted");
    }
    let refused = state.check(&p, 2 * SECOND);
    assert!(refused.admitted.is_none());
    // The request at 0 (bucket 0, [0, 1s)) stops counting when 1s - 1µs is 8s old.
    assert_eq!(refused.reset, 9 * SECOND - 1);
    assert!(state.check(&p, 9 * SECOND - 2).admitted.is_none());
    let v = state.check(&p, 9 * SECOND - 1);
    assert_eq!(v.remaining, 0);
    assert!(v.admitted.is_some());
}

#[test]
fn sliding_window_forgets_everything_after_an_idle_period() {
    let p = params(5, SECOND, 5);
    let mut state = SlidingWindow::default();
    for t in 0..5 {
        state = state.check(&p, t).admitted.expect("admitted");
    }
    assert!(state.check(&p, 10).admitted.is_none());
    let later = state.expires(&p);
    assert!(later <= 2 * SECOND);
    assert_eq!(state.check(&p, later).remaining, 4);
    assert_eq!(state.check(&p, 100 * SECOND).remaining, 4);
}

#[test]
fn token_bucket_holds_limit_plus_burst_and_refills_at_the_rate() {
    // 10/1s with burst 5: 15 at once, then one every 100 ms.
    let p = params(10, SECOND, 15);
    let mut state = Gcra::default();
    for i in 0..15 {
        let v = state.check(&p, 0);
        assert_eq!(v.remaining, 14 - i);
        state = v.admitted.expect("admitted");
    }
    let refused = state.check(&p, 0);
    assert!(refused.admitted.is_none());
    assert_eq!(refused.reset, SECOND / 10);
    assert!(state.check(&p, SECOND / 10 - 1).admitted.is_none());
    assert!(state.check(&p, SECOND / 10).admitted.is_some());
    // Full again 1.5 s after the burst.
    assert_eq!(state.expires(&p), 3 * SECOND / 2);
}

#[test]
fn leaky_bucket_spaces_requests_with_burst_slack() {
    // 2/1s, burst 1: a meter of 2 requests draining one per 500 ms.
    let p = params(2, SECOND, 2);
    let mut state = Gcra::default();
    for _ in 0..2 {
        state = state.check(&p, 0).admitted.expect("admitted");
    }
    let refused = state.check(&p, 0);
    assert!(refused.admitted.is_none());
    assert_eq!(refused.reset, SECOND / 2);
}

#[test]
fn older_timestamps_than_the_newest_count_in_the_newest_window() {
    let p = params(1, SECOND, 1);
    let fixed = FixedWindow::default()
        .check(&p, SECOND + 5)
        .admitted
        .expect("admitted");
    assert!(fixed.check(&p, SECOND - 5).admitted.is_none());
    let sliding = SlidingWindow::default()
        .check(&p, SECOND + 5)
        .admitted
        .expect("admitted");
    assert!(sliding.check(&p, SECOND - 5).admitted.is_none());
}

fn arrivals() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0..20 * SECOND, 1..300).prop_map(sorted)
}

fn bursty_arrivals() -> impl Strategy<Value = Vec<u64>> {
    // Clusters of simultaneous requests stress the window edges.
    prop::collection::vec((0..40u64, 1..20usize), 1..40).prop_map(|groups| {
        sorted(
            groups
                .into_iter()
                .flat_map(|(at, n)| std::iter::repeat_n(at * SECOND / 4, n))
                .collect(),
        )
    })
}

proptest! {
    #[test]
    fn sliding_window_never_admits_more_than_the_limit_in_any_window(
        count in 1..30u64,
        period in 1..5 * SECOND,
        times in prop_oneof![arrivals(), bursty_arrivals()],
    ) {
        let p = params(count, period, count);
        let ok = admitted::<SlidingWindow>(&p, &times);
        prop_assert!(most_in_window(&ok, period) as u64 <= count);
        // And it is not starved: the first `count` requests always pass.
        prop_assert!(ok.len() as u64 >= count.min(times.len() as u64));
    }

    #[test]
    fn fixed_window_admits_the_limit_per_aligned_window_and_twice_it_in_any_window(
        count in 1..30u64,
        period in 1..5 * SECOND,
        times in prop_oneof![arrivals(), bursty_arrivals()],
    ) {
        let p = params(count, period, count);
        let ok = admitted::<FixedWindow>(&p, &times);
        let mut per_window = std::collections::HashMap::new();
        for t in &ok {
            *per_window.entry(t / period).or_insert(0u64) += 1;
        }
        prop_assert!(per_window.values().all(|&n| n <= count));
        prop_assert!(most_in_window(&ok, period) as u64 <= 2 * count);
    }

    #[test]
    fn gcra_admits_at_most_capacity_plus_the_rate_over_any_interval(
        count in 1..30u64,
        period in 1000..5 * SECOND,
        capacity_extra in 0..10u64,
        leaky in any::<bool>(),
        times in prop_oneof![arrivals(), bursty_arrivals()],
    ) {
        // token_bucket: capacity = limit + burst; leaky_bucket: 1 + burst.
        let capacity = if leaky { 1 + capacity_extra } else { count + capacity_extra };
        let p = params(count, period, capacity);
        let ok = admitted::<Gcra>(&p, &times);
        for i in 0..ok.len() {
            for j in i..ok.len() {
                let span = u128::from(ok[j] - ok[i]);
                let bound = u128::from(capacity) + span * u128::from(count) / u128::from(period);
                prop_assert!((j - i + 1) as u128 <= bound, "{} admitted in {span}µs", j - i + 1);
            }
        }
        // With the default burst, a token bucket never admits more than the limit plus what
        // refills in any window of the period.
        prop_assert!(most_in_window(&ok, period) as u64 <= capacity + count);
    }
}
