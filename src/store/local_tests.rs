use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn spec(limits: &[(u64, u64)], algorithm: RateAlgorithm, burst: u32) -> LimitSpec {
    LimitSpec {
        scope: "route:test".into(),
        limits: limits
            .iter()
            .map(|&(n, ms)| (n, Duration::from_millis(ms)))
            .collect(),
        algorithm,
        burst,
    }
}

fn ip(last: u8) -> CounterKey<'static> {
    CounterKey::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
}

const ALGORITHMS: [RateAlgorithm; 4] = [
    RateAlgorithm::SlidingWindow,
    RateAlgorithm::TokenBucket,
    RateAlgorithm::FixedWindow,
    RateAlgorithm::LeakyBucket,
];

#[test]
fn each_algorithm_admits_exactly_the_limit_at_once() {
    for algorithm in ALGORITHMS {
        let store = LocalStore::default();
        let burst = if algorithm == RateAlgorithm::LeakyBucket {
            4
        } else {
            0
        };
        let set = store.prepare(&spec(&[(5, 60_000)], algorithm, burst));
        let now = store.epoch + Duration::from_secs(1);
        let admitted = (0..8)
            .filter(|_| store.check_now(&set, &ip(1), now).allowed)
            .count();
        assert_eq!(admitted, 5, "{algorithm:?}");
        let refused = store.check_now(&set, &ip(1), now);
        assert_eq!(refused.remaining, 0);
        assert!(refused.reset > Duration::ZERO, "{algorithm:?}");
        // Another key has its own counter.
        assert!(store.check_now(&set, &ip(2), now).allowed);
    }
}

#[test]
fn a_request_refused_by_one_limit_consumes_none_of_the_others() {
    let store = LocalStore::default();
    let set = store.prepare(&spec(
        &[(10, 60_000), (2, 1_000)],
        RateAlgorithm::FixedWindow,
        0,
    ));
    let start = store.epoch;
    for _ in 0..2 {
        assert!(store.check_now(&set, &ip(1), start).allowed);
    }
    for _ in 0..5 {
        let refused = store.check_now(&set, &ip(1), start);
        assert!(!refused.allowed);
        assert_eq!(refused.limit, 1);
    }
    // 2 more per second: the minute limit counted 2 + 2 + 2 + 2 + 2 = 10, not 10 + refusals.
    for second in 1..5 {
        let at = start + Duration::from_secs(second);
        assert!(store.check_now(&set, &ip(1), at).allowed);
        let d = store.check_now(&set, &ip(1), at);
        assert!(d.allowed);
        // Ties (both used up at 4 s) go to the one that resets last.
        let tightest = if second < 4 { 1 } else { 0 };
        assert_eq!((d.limit, d.remaining), (tightest, 0));
    }
    let at = start + Duration::from_secs(5);
    let refused = store.check_now(&set, &ip(1), at);
    assert!(!refused.allowed);
    assert_eq!(refused.limit, 0, "the minute limit is used up");
    assert_eq!(refused.reset, Duration::from_secs(55));
}

#[test]
fn the_tightest_limit_is_the_one_with_the_fewest_left() {
    let store = LocalStore::default();
    let set = store.prepare(&spec(
        &[(100, 60_000), (3, 1_000)],
        RateAlgorithm::SlidingWindow,
        0,
    ));
    let d = store.check_now(&set, &ip(1), store.epoch);
    assert_eq!((d.limit, d.remaining), (1, 2));
}

#[test]
fn the_same_spec_finds_the_same_counters_and_a_changed_limit_starts_fresh() {
    let store = LocalStore::default();
    let first = store.prepare(&spec(&[(2, 60_000)], RateAlgorithm::SlidingWindow, 0));
    let now = store.epoch;
    assert!(store.check_now(&first, &ip(1), now).allowed);
    assert!(store.check_now(&first, &ip(1), now).allowed);
    let again = store.prepare(&spec(&[(2, 60_000)], RateAlgorithm::SlidingWindow, 0));
    assert!(!store.check_now(&again, &ip(1), now).allowed);
    let changed = store.prepare(&spec(&[(3, 60_000)], RateAlgorithm::SlidingWindow, 0));
    assert!(store.check_now(&changed, &ip(1), now).allowed);
    let other_algorithm = store.prepare(&spec(&[(2, 60_000)], RateAlgorithm::FixedWindow, 0));
    assert!(store.check_now(&other_algorithm, &ip(1), now).allowed);
    // Dropped sets free their tables.
    drop((first, again));
    let fresh = store.prepare(&spec(&[(2, 60_000)], RateAlgorithm::SlidingWindow, 0));
    assert!(store.check_now(&fresh, &ip(1), now).allowed);
}

#[test]
fn keys_of_different_kinds_never_share_a_counter() {
    let store = LocalStore::default();
    let set = store.prepare(&spec(&[(1, 60_000)], RateAlgorithm::FixedWindow, 0));
    let now = store.epoch;
    for key in [
        CounterKey::Consumer("10.0.0.1"),
        CounterKey::Header(b"10.0.0.1"),
        CounterKey::Route("10.0.0.1"),
        ip(1),
        CounterKey::Global,
    ] {
        assert!(store.check_now(&set, &key, now).allowed, "{key:?}");
        assert!(!store.check_now(&set, &key, now).allowed, "{key:?}");
    }
}

#[test]
fn idle_keys_are_swept() {
    for algorithm in ALGORITHMS {
        let store = LocalStore::default();
        let set = store.prepare(&spec(&[(5, 1_000)], algorithm, 2));
        let now = store.epoch + Duration::from_secs(1);
        for i in 0..=255 {
            store.check_now(&set, &ip(i), now);
        }
        assert_eq!(store.keys(&set), 256);
        // Each shard sweeps when it is next used after its windows are over.
        let later = now + Duration::from_secs(3);
        for i in 0..2000 {
            store.check_now(&set, &CounterKey::Consumer(&format!("c{i}")), later);
        }
        let left = store.keys(&set);
        assert!(left <= 2000 + 5, "{algorithm:?}: {left} keys left");
        assert!(left >= 2000, "{algorithm:?}: new keys are kept");
    }
}

#[test]
fn concurrent_checks_never_overshoot() {
    let store = Arc::new(LocalStore::default());
    let set = Arc::new(store.prepare(&spec(
        &[(1000, 60_000), (700, 60_000)],
        RateAlgorithm::SlidingWindow,
        0,
    )));
    let now = store.epoch;
    let admitted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, set, admitted) = (store.clone(), set.clone(), admitted.clone());
            std::thread::spawn(move || {
                for _ in 0..500 {
                    if store.check_now(&set, &CounterKey::Global, now).allowed {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 700);
}

/// 1,000,000 distinct keys of the default algorithm (the largest state, 48 bytes; the
/// others hold 16): prints the resident memory they take. Run with
/// `cargo test --lib store::local::tests::memory -- --ignored --nocapture`.
#[test]
#[ignore = "measurement: allocates a million keys"]
fn memory_of_a_million_keys() {
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
    let store = LocalStore::default();
    let set = store.prepare(&spec(&[(100, 60_000)], RateAlgorithm::SlidingWindow, 0));
    let before = rss_kib();
    let now = store.epoch;
    for i in 0..1_000_000u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(i.wrapping_add(0x0a00_0000)));
        store.check_now(&set, &CounterKey::Ip(addr), now);
    }
    let after = rss_kib();
    assert_eq!(store.keys(&set), 1_000_000);
    let mib = (after.saturating_sub(before)) as f64 / 1024.0;
    println!("1,000,000 sliding_window keys take {mib:.1} MiB");
    assert!(mib < 200.0);
}

#[test]
fn sweep_frees_idle_keys_in_every_shard() {
    for algorithm in ALGORITHMS {
        let store = LocalStore::default();
        let set = store.prepare(&spec(&[(5, 1_000)], algorithm, 0));
        let start = store.epoch + Duration::from_secs(1);
        for last in 0..=255 {
            store.check_now(&set, &ip(last), start);
        }
        assert_eq!(store.keys(&set), 256, "{algorithm:?}");
        assert_eq!(store.sweep(start), 0, "nothing is over yet");
        assert_eq!(store.keys(&set), 256);
        // Well past every window, with no request at all: every key goes.
        assert_eq!(
            store.sweep(start + Duration::from_secs(5)),
            256,
            "{algorithm:?}"
        );
        assert_eq!(store.keys(&set), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn the_background_sweep_runs_until_shutdown() {
    let store = Arc::new(LocalStore::default());
    let set = store.prepare(&spec(&[(5, 1_000)], RateAlgorithm::SlidingWindow, 0));
    store.check_now(&set, &ip(1), Instant::now());
    assert_eq!(store.keys(&set), 1);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(store.clone().sweep_every(shutdown.clone()));
    tokio::time::sleep(SWEEP_EVERY * 2).await;
    assert_eq!(store.keys(&set), 0, "swept without any request");
    shutdown.cancel();
    task.await.expect("the sweep stops");
}
