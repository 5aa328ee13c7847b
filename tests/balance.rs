//! Balancing, DNS targets, `split`, `sticky` and `mirror` (SPEC §2.2, §2.4) against the real
//! gateway and real upstreams. Which target answered comes from the upstream's name; counts
//! are checked within ±10% over a few hundred requests.

mod common;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{base, client, gateway, refusing_address};
use gatehouse::app::Gatehouse;
use traffic::{Named, hanging, named, named_on_loopbacks, within_ten_percent};

/// Which upstream answered a `GET` of `path` with `headers`.
async fn who(
    gw: &Gatehouse,
    client: &reqwest::Client,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut request = client.get(format!("{}{path}", base(gw)));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("response");
    assert_eq!(response.status(), 200, "{path}");
    response.headers()["x-upstream"]
        .to_str()
        .expect("name")
        .to_owned()
}

/// Answers of `n` requests to `path` sent `concurrency` at a time, counted by upstream.
async fn spread(
    gw: &Gatehouse,
    path: &str,
    n: usize,
    concurrency: usize,
) -> HashMap<String, usize> {
    let client = client();
    let per_worker = n / concurrency;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = format!("{}{path}", base(gw));
        workers.push(tokio::spawn(async move {
            let mut names = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let response = client.get(&url).send().await.expect("response");
                assert_eq!(response.status(), 200);
                names.push(
                    response.headers()["x-upstream"]
                        .to_str()
                        .expect("name")
                        .to_owned(),
                );
            }
            names
        }));
    }
    let mut counts = HashMap::new();
    for worker in workers {
        for name in worker.await.expect("worker") {
            *counts.entry(name).or_insert(0) += 1;
        }
    }
    counts
}

fn count(counts: &HashMap<String, usize>, name: &str) -> usize {
    counts.get(name).copied().unwrap_or(0)
}

/// A gateway with service `pool` over `targets` (URL, weight), balanced by `balance` (plus
/// `extra` service keys), behind a catch-all route.
async fn pool_gateway(balance: &str, extra: &str, targets: &[(&Named, u32)]) -> Gatehouse {
    gateway(&pool_config(balance, extra, targets, "")).await
}

fn pool_config(balance: &str, extra: &str, targets: &[(&Named, u32)], top: &str) -> String {
    let list: String = targets
        .iter()
        .map(|(t, w)| format!("      - {{ url: \"{}\", weight: {w} }}\n", t.url()))
        .collect();
    format!(
        "listen: 127.0.0.1:0\n{top}services:\n  pool:\n    balance: {balance}\n{extra}    targets:\n{list}routes:\n  - {{ path: /**, service: pool }}\n"
    )
}

#[tokio::test]
async fn weighted_round_robin_follows_the_weights() {
    let (a, b) = (
        named("a", Duration::ZERO).await,
        named("b", Duration::ZERO).await,
    );
    let gw = pool_gateway("round_robin", "", &[(&a, 3), (&b, 1)]).await;
    let counts = spread(&gw, "/", 400, 4).await;
    assert!(within_ten_percent(count(&counts, "a"), 300.0), "{counts:?}");
    assert!(within_ten_percent(count(&counts, "b"), 100.0), "{counts:?}");
}

#[tokio::test]
async fn random_follows_the_weights() {
    let (a, b) = (
        named("a", Duration::ZERO).await,
        named("b", Duration::ZERO).await,
    );
    let gw = pool_gateway("random", "", &[(&a, 3), (&b, 1)]).await;
    let counts = spread(&gw, "/", 600, 4).await;
    // The heavy target's count within ±10% (the light one's share is then within 7.5 points).
    assert!(within_ten_percent(count(&counts, "a"), 450.0), "{counts:?}");
    assert!(count(&counts, "b") > 0, "{counts:?}");
}

#[tokio::test]
async fn least_request_sends_less_to_a_slow_target() {
    let fast = named("fast", Duration::ZERO).await;
    let slow = named("slow", Duration::from_millis(60)).await;
    let gw = pool_gateway("least_request", "", &[(&fast, 1), (&slow, 1)]).await;
    let counts = spread(&gw, "/", 320, 8).await;
    // Round robin would give each half; the slow target holds its requests longer, so it
    // has more in flight and loses most draws.
    assert!(count(&counts, "slow") * 5 < 320, "{counts:?}");
    assert!(count(&counts, "fast") > 250, "{counts:?}");
}

#[tokio::test]
async fn ewma_sends_clearly_less_to_a_slow_target() {
    let fast = named("fast", Duration::ZERO).await;
    let slow = named("slow", Duration::from_millis(60)).await;
    let gw = pool_gateway("ewma", "", &[(&fast, 1), (&slow, 1)]).await;
    let counts = spread(&gw, "/", 200, 1).await;
    // Once measured, the slow target's latency keeps it out until its estimate decays.
    assert!(count(&counts, "slow") <= 10, "{counts:?}");
}

async fn three() -> [Named; 3] {
    [
        named("a", Duration::ZERO).await,
        named("b", Duration::ZERO).await,
        named("c", Duration::ZERO).await,
    ]
}

/// Each client (its `headers`) always gets the same target, and the clients spread over all.
async fn assert_sticky_by(gw: &Gatehouse, path: &str, clients: &[Vec<(String, String)>]) {
    let client = client();
    let mut used = HashSet::new();
    for headers in clients {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let first = who(gw, &client, path, &headers).await;
        for _ in 0..3 {
            assert_eq!(who(gw, &client, path, &headers).await, first, "{headers:?}");
        }
        used.insert(first);
    }
    assert_eq!(
        used.len(),
        3,
        "30 clients spread over the 3 targets: {used:?}"
    );
}

fn clients(header: &str, value: impl Fn(usize) -> String) -> Vec<Vec<(String, String)>> {
    (0..30)
        .map(|i| vec![(header.to_owned(), value(i))])
        .collect()
}

#[tokio::test]
async fn hash_on_a_header_keeps_each_value_on_one_target_and_falls_back_to_round_robin() {
    let [a, b, c] = three().await;
    let gw = pool_gateway(
        "hash",
        "    hash_on: header:X-User\n",
        &[(&a, 1), (&b, 1), (&c, 1)],
    )
    .await;
    assert_sticky_by(&gw, "/", &clients("x-user", |i| format!("user-{i}"))).await;
    // Without the header: round robin, exactly even.
    let counts = spread(&gw, "/", 300, 1).await;
    for name in ["a", "b", "c"] {
        assert!(
            within_ten_percent(count(&counts, name), 100.0),
            "{counts:?}"
        );
    }
}

#[tokio::test]
async fn hash_on_a_cookie_or_the_client_ip() {
    let [a, b, c] = three().await;
    let targets = [(&a, 1), (&b, 1), (&c, 1)];
    let gw = pool_gateway("hash", "    hash_on: cookie:sid\n", &targets).await;
    assert_sticky_by(
        &gw,
        "/",
        &clients("cookie", |i| format!("theme=dark; sid=s{i}")),
    )
    .await;

    let config = pool_config(
        "hash",
        "    hash_on: ip\n",
        &targets,
        "trusted_proxies: [127.0.0.1/32]\n",
    );
    let gw = gateway(&config).await;
    assert_sticky_by(
        &gw,
        "/",
        &clients("x-forwarded-for", |i| format!("10.1.2.{i}")),
    )
    .await;
}

#[tokio::test]
async fn hash_on_the_consumer() {
    let [a, b, c] = three().await;
    let consumers: String = (0..30)
        .map(|i| format!("  c{i}: {{ keys: [key-{i}] }}\n"))
        .collect();
    let gw = gateway(&format!(
        "listen: 127.0.0.1:0\nconsumers:\n{consumers}services:\n  pool:\n    balance: hash\n    hash_on: consumer\n    targets:\n      - url: \"{}\"\n      - url: \"{}\"\n      - url: \"{}\"\nroutes:\n  - path: /**\n    service: pool\n    plugins: {{ auth: {{ api_key: {{}} }} }}\n",
        a.url(),
        b.url(),
        c.url()
    ))
    .await;
    assert_sticky_by(&gw, "/", &clients("x-api-key", |i| format!("key-{i}"))).await;
}

#[tokio::test]
async fn adding_a_target_moves_only_its_share_of_hashed_clients() {
    let [a, b, c] = three().await;
    let d = named("d", Duration::ZERO).await;
    let extra = "    hash_on: header:X-User\n";
    let gw = pool_gateway("hash", extra, &[(&a, 1), (&b, 1), (&c, 1)]).await;
    let client = client();
    let mut before = Vec::new();
    for i in 0..200 {
        before.push(who(&gw, &client, "/", &[("x-user", &format!("u{i}"))]).await);
    }
    let grown = pool_config(
        "hash",
        extra,
        &[(&a, 1), (&b, 1), (&c, 1), (&d, 1)],
        "observability: { access_log: off }\n",
    );
    gw.apply(&gatehouse::config::load_str("test.yaml", &grown).expect("valid"))
        .expect("applies");
    let mut moved = 0;
    for (i, was) in before.iter().enumerate() {
        let now = who(&gw, &client, "/", &[("x-user", &format!("u{i}"))]).await;
        if &now != was {
            assert_eq!(now, "d", "a client moved between old targets");
            moved += 1;
        }
    }
    // About a quarter moves to the new target; never much more.
    assert!(moved > 0 && moved <= 75, "{moved} of 200 moved");
}

async fn split_gateway(sticky: &str, a: &Named, b: &Named) -> Gatehouse {
    gateway(&format!(
        r#"
listen: 127.0.0.1:0
consumers:
  alice: {{ keys: [alice-key] }}
  bob: {{ keys: [bob-key] }}
services:
  stable: {{ url: "{}" }}
  canary: {{ url: "{}" }}
routes:
  - path: /**
    split:
      - {{ service: canary, weight: 1 }}
      - {{ service: stable, weight: 3 }}
{sticky}
"#,
        a.url(),
        b.url()
    ))
    .await
}

#[tokio::test]
async fn split_shares_requests_by_weight() {
    let (stable, canary) = (
        named("stable", Duration::ZERO).await,
        named("canary", Duration::ZERO).await,
    );
    let gw = split_gateway("", &stable, &canary).await;
    let counts = spread(&gw, "/", 600, 4).await;
    assert!(
        within_ten_percent(count(&counts, "stable"), 450.0),
        "{counts:?}"
    );
    assert!(count(&counts, "canary") > 0, "{counts:?}");
}

/// Each client stays on one side; clients reach both sides.
async fn assert_sides(gw: &Gatehouse, clients: &[Vec<(String, String)>]) {
    let client = client();
    let mut sides = HashSet::new();
    for headers in clients {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let first = who(gw, &client, "/", &headers).await;
        for _ in 0..4 {
            assert_eq!(who(gw, &client, "/", &headers).await, first, "{headers:?}");
        }
        sides.insert(first);
    }
    assert_eq!(sides.len(), 2, "{sides:?}");
}

#[tokio::test]
async fn sticky_keeps_a_client_on_one_side_of_the_split() {
    let (stable, canary) = (
        named("stable", Duration::ZERO).await,
        named("canary", Duration::ZERO).await,
    );
    let gw = split_gateway("    sticky: header:X-User", &stable, &canary).await;
    assert_sides(&gw, &clients("x-user", |i| format!("user-{i}"))).await;
    // Without the header: weighted random, so both sides.
    let counts = spread(&gw, "/", 200, 2).await;
    assert_eq!(counts.len(), 2, "{counts:?}");

    let gw = split_gateway("    sticky: cookie:uid", &stable, &canary).await;
    assert_sides(&gw, &clients("cookie", |i| format!("uid={i}"))).await;
}

#[tokio::test]
async fn sticky_by_consumer() {
    let (stable, canary) = (
        named("stable", Duration::ZERO).await,
        named("canary", Duration::ZERO).await,
    );
    let gw = split_gateway(
        "    sticky: consumer\n    plugins: { auth: { api_key: {} } }",
        &stable,
        &canary,
    )
    .await;
    let client = client();
    for key in ["alice-key", "bob-key"] {
        let first = who(&gw, &client, "/", &[("x-api-key", key)]).await;
        for _ in 0..10 {
            assert_eq!(who(&gw, &client, "/", &[("x-api-key", key)]).await, first);
        }
    }
}

async fn mirror_gateway(main: &Named, mirror_url: &str, percent: u32) -> Gatehouse {
    gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  main: {{ url: "{}" }}
  shadow:
    url: "{mirror_url}"
    timeouts: {{ connect: 1s, request: 20s }}
routes:
  - path: /plain/**
    service: main
  - path: /**
    service: main
    mirror: {{ service: shadow, percent: {percent} }}
"#,
        main.url()
    ))
    .await
}

/// Waits until `f` holds (copies arrive after the client's answer).
async fn eventually(f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !f() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn mirror_copies_about_percent_of_requests() {
    let main = named("main", Duration::ZERO).await;
    let shadow = named("shadow", Duration::ZERO).await;
    let gw = mirror_gateway(&main, &shadow.url(), 75).await;
    let counts = spread(&gw, "/copied?x=1", 600, 4).await;
    assert_eq!(
        count(&counts, "main"),
        600,
        "the client always gets the main service"
    );
    // Copies arrive a little after the answers: wait until they stop coming.
    let mut last = usize::MAX;
    while shadow.hits() != last {
        last = shadow.hits();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        within_ten_percent(shadow.hits(), 450.0),
        "{} copies",
        shadow.hits()
    );
    let copy = &shadow.seen()[0];
    assert_eq!(
        (copy.method.as_str(), copy.path.as_str()),
        ("GET", "/copied?x=1")
    );
    assert_eq!(
        copy.host,
        shadow.addrs[0].to_string(),
        "the copy has the mirror's Host"
    );
}

#[tokio::test]
async fn mirror_copies_streamed_bodies() {
    let main = named("main", Duration::ZERO).await;
    let shadow = named("shadow", Duration::ZERO).await;
    let gw = mirror_gateway(&main, &shadow.url(), 100).await;
    let client = client();
    // One body with Content-Length, one chunked, both streamed through.
    let sized = vec![b'x'; 200 * 1024];
    let response = client
        .post(format!("{}/upload", base(&gw)))
        .body(sized)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b'y'; 10_000])).collect();
    let response = client
        .post(format!("{}/upload", base(&gw)))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    eventually(|| shadow.hits() == 2).await;
    let mut lengths: Vec<Option<usize>> = shadow.seen().iter().map(|s| s.body_len).collect();
    lengths.sort();
    assert_eq!(lengths, [Some(100_000), Some(200 * 1024)]);
    let main_lengths: Vec<Option<usize>> = main.seen().iter().map(|s| s.body_len).collect();
    assert_eq!(main_lengths, [Some(200 * 1024), Some(100_000)]);
}

/// Times `n` sequential requests to `path` (POSTs of `body` bytes, or GETs), checking each is
/// the main service's 200 with the whole body; returns the total and the slowest.
async fn timed(gw: &Gatehouse, path: &str, n: usize, body: Option<usize>) -> (Duration, Duration) {
    let client = client();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..n {
        let one = Instant::now();
        let request = match body {
            Some(len) => client
                .post(format!("{}{path}", base(gw)))
                .body(vec![b'z'; len]),
            None => client.get(format!("{}{path}", base(gw))),
        };
        let response = request.send().await.expect("response");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-upstream"], "main");
        let answer: serde_json::Value = response.json().await.expect("json");
        assert_eq!(answer["body_len"].as_u64(), Some(body.unwrap_or(0) as u64));
        slowest = slowest.max(one.elapsed());
    }
    (started.elapsed(), slowest)
}

#[tokio::test]
async fn a_hanging_or_refusing_mirror_never_slows_or_fails_the_client() {
    let main = named("main", Duration::ZERO).await;
    let (hang, accepted) = hanging().await;
    let refused = refusing_address();
    let hanging_gw = mirror_gateway(&main, &format!("http://{hang}"), 100).await;
    let refusing_gw = mirror_gateway(&main, &format!("http://{refused}"), 100).await;

    let (baseline, _) = timed(&hanging_gw, "/plain/x", 40, None).await;
    let (with_hang, slowest_hang) = timed(&hanging_gw, "/x", 40, None).await;
    let (with_refusal, slowest_refusal) = timed(&refusing_gw, "/x", 40, None).await;
    // Bodies too: the copy to a target that never reads is cut off, the client's goes through.
    let (with_bodies, slowest_body) = timed(&hanging_gw, "/x", 10, Some(1 << 20)).await;
    eventually(|| accepted.load(std::sync::atomic::Ordering::SeqCst) >= 50).await;
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) >= 50,
        "copies were sent"
    );

    let allowed = baseline * 3 + Duration::from_millis(300);
    assert!(
        with_hang < allowed,
        "hanging mirror: {with_hang:?} vs {baseline:?}"
    );
    assert!(
        with_refusal < allowed,
        "refusing mirror: {with_refusal:?} vs {baseline:?}"
    );
    assert!(
        with_bodies < Duration::from_secs(2),
        "bodies: {with_bodies:?}"
    );
    for slowest in [slowest_hang, slowest_refusal, slowest_body] {
        assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    }
}

#[tokio::test]
async fn mirror_copies_in_flight_are_bounded() {
    let main = named("main", Duration::ZERO).await;
    let (hang, accepted) = hanging().await;
    let gw = mirror_gateway(&main, &format!("http://{hang}"), 100).await;
    let counts = spread(&gw, "/x", 320, 8).await;
    assert_eq!(count(&counts, "main"), 320);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copies = accepted.load(std::sync::atomic::Ordering::SeqCst);
    // Copies of one route in flight are capped (256); the rest are not mirrored.
    assert!((200..=256).contains(&copies), "{copies} copies in flight");
}

#[tokio::test]
async fn a_localhost_target_is_each_address_localhost_resolves_to() {
    let local = named_on_loopbacks("local").await;
    let gw = gateway(&format!(
        "listen: 127.0.0.1:0\nservices:\n  local: {{ url: \"http://localhost:{}\" }}\nroutes:\n  - {{ path: /**, service: local }}\n",
        local.port
    ))
    .await;
    let resolved: HashSet<std::net::SocketAddr> =
        tokio::net::lookup_host(("localhost", local.port))
            .await
            .expect("localhost resolves")
            .filter(|addr| local.addrs.contains(addr))
            .collect();
    assert!(!resolved.is_empty());
    // Discovery resolves the name right away in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = client();
    for _ in 0..20 {
        assert_eq!(who(&gw, &client, "/", &[]).await, "local");
    }
    let seen = local.seen();
    assert!(
        seen.iter()
            .all(|s| s.host == format!("localhost:{}", local.port)),
        "Host is the name"
    );
    let reached: HashSet<std::net::SocketAddr> = seen.iter().map(|s| s.local).collect();
    assert_eq!(reached, resolved, "every address is a target");
}

#[test]
fn split_sticky_mirror_and_hash_errors_are_located() {
    let yaml = r#"listen: 127.0.0.1:0
services:
  users: { url: "http://127.0.0.1:9001" }
  hashed:
    url: "http://127.0.0.1:9002"
    balance: hash
  queried:
    url: "http://127.0.0.1:9003"
    balance: hash
    hash_on: query:id
routes:
  - path: /a
    split:
      - { service: users, weight: 0 }
      - { service: userz, weight: 1 }
  - path: /b
    service: users
    sticky: header:X-User
  - path: /c
    service: users
    mirror: { service: users, percent: 150 }
  - path: /d
    split: [{ service: users, weight: 1 }]
    sticky: ip
  - path: /e
    respond: { status: 204 }
    mirror: { service: users }
"#;
    let errors = match gatehouse::config::load_str("gw.yaml", yaml) {
        Ok(_) => panic!("expected errors"),
        Err(errors) => errors.to_string(),
    };
    for expected in [
        "gw.yaml:6:14: `balance: hash` needs `hash_on`",
        "gw.yaml:10:14: `hash_on` cannot be `query:id`",
        "gw.yaml:14:35: `weight` must be at least 1",
        "gw.yaml:15:20: unknown service `userz`, did you mean `users`?",
        "gw.yaml:18:13: `sticky` is only used with `split`",
        "gw.yaml:21:40: `percent` must be between 0 and 100",
        "gw.yaml:24:13: `sticky` cannot be `ip`",
        "gw.yaml:27:13: `mirror` copies forwarded requests: it needs `service` or `split`",
    ] {
        assert!(
            errors.contains(expected),
            "missing `{expected}` in:\n{errors}"
        );
    }
}
