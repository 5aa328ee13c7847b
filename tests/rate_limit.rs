//! `rate_limit` (SPEC §3.6) end to end: every algorithm, several limits, every key kind, the
//! scopes, group tiers, the headers, refusals that never reach the service, no overshoot
//! under concurrency, and counters across reloads. The gateway runs on its own runtimes, so
//! windows here are real (a minute when a test must not see a reset, a second when it must).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Upstream, base, client, error_body, gateway, upstream};
use gatehouse::app::Gatehouse;

/// A gateway with service `echo` at `up` and the given `routes:` block (YAML, indented 2).
async fn limited(up: &Upstream, extra: &str, routes: &str) -> Gatehouse {
    gateway(&config(up, extra, routes)).await
}

fn config(up: &Upstream, extra: &str, routes: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\n{extra}\nservices:\n  echo: {{ url: \"{}\" }}\n  other: {{ url: \"{}\" }}\nroutes:\n{routes}",
        up.url(),
        up.url()
    )
}

async fn send(gw: &Gatehouse, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().get(format!("{}{path}", base(gw)));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("response")
}

/// Sends `n` requests; the statuses.
async fn statuses(gw: &Gatehouse, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(send(gw, path, headers).await.status().as_u16());
    }
    out
}

fn passed(statuses: &[u16]) -> usize {
    statuses.iter().filter(|&&s| s == 200).count()
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing {name}"))
}

#[tokio::test]
async fn each_algorithm_admits_exactly_the_limit_then_refuses_with_429() {
    let up = upstream("api").await;
    let routes = [
        ("sliding", "limits: [3/1m]"),
        ("fixed", "limits: [3/1m], algorithm: fixed_window"),
        ("token", "limits: [3/1m], algorithm: token_bucket"),
        (
            "token-burst",
            "limits: [2/1m], algorithm: token_bucket, burst: 1",
        ),
        ("leaky", "limits: [1/1m], algorithm: leaky_bucket, burst: 2"),
    ];
    let mut yaml = String::new();
    for (name, settings) in routes {
        yaml.push_str(&format!(
            "  - {{ path: /{name}/**, service: echo, plugins: {{ rate_limit: {{ {settings}, key: ip }} }} }}\n"
        ));
    }
    let gw = limited(&up, "", &yaml).await;
    for (name, _) in routes {
        let before = up.hits();
        let got = statuses(&gw, &format!("/{name}/x"), &[], 3).await;
        assert_eq!(got, [200, 200, 200], "{name}");
        let refused = send(&gw, &format!("/{name}/x"), &[]).await;
        let retry: u64 = header(&refused, "retry-after").parse().expect("seconds");
        assert!(retry >= 1, "{name}: Retry-After {retry}");
        assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
        error_body(refused, 429, "rate_limited").await;
        assert_eq!(
            up.hits() - before,
            3,
            "{name}: refused requests never reach the service"
        );
    }
}

#[tokio::test]
async fn short_windows_give_capacity_back() {
    let up = upstream("api").await;
    let mut yaml = String::new();
    for (name, algorithm) in [
        ("sliding", "sliding_window"),
        ("fixed", "fixed_window"),
        ("token", "token_bucket"),
        ("leaky", "leaky_bucket"),
    ] {
        yaml.push_str(&format!(
            "  - {{ path: /{name}/**, service: echo, plugins: {{ rate_limit: {{ limits: [2/1s], algorithm: {algorithm}, burst: 1, key: ip }} }} }}\n"
        ));
    }
    let gw = limited(&up, "", &yaml).await;
    for name in ["sliding", "fixed", "token", "leaky"] {
        let first = statuses(&gw, &format!("/{name}/x"), &[], 5).await;
        let refused = first.iter().filter(|&&s| s == 429).count();
        assert!(refused >= 1, "{name}: {first:?}");
        // A fixed window may start between two requests: at most twice the limit.
        assert!(passed(&first) <= 4, "{name}: {first:?}");
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for name in ["sliding", "fixed", "token", "leaky"] {
        let later = send(&gw, &format!("/{name}/x"), &[]).await;
        assert_eq!(
            later.status(),
            200,
            "{name}: capacity is back after the window"
        );
    }
}

#[tokio::test]
async fn allowed_responses_carry_the_headers_of_the_tightest_limit() {
    let up = upstream("api").await;
    let gw = limited(
        &up,
        "",
        "  - { path: /h/**, service: echo, plugins: { rate_limit: { limits: [100/1m, 3/1h], key: ip } } }\n\
           \x20\x20- { path: /quiet/**, service: echo, plugins: { rate_limit: { limits: [1/1m], key: ip, headers: false } } }\n\
           \x20\x20- { path: /err/**, service: echo, strip_prefix: /err, plugins: { rate_limit: { limits: [5/1m], key: ip } } }\n",
    )
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let first = send(&gw, "/h/x", &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit"), "3");
    assert_eq!(header(&first, "x-ratelimit-remaining"), "2");
    let reset: u64 = header(&first, "x-ratelimit-reset").parse().expect("unix");
    // The sliding window frees a request between one period and one period plus 1/8 after it.
    assert!(
        reset > now && reset <= now + 4050 + 2,
        "reset {reset} vs now {now}"
    );
    assert_eq!(
        header(&first, "ratelimit-policy"),
        "\"100/1m\";q=100;w=60, \"3/1h\";q=3;w=3600"
    );
    let field = header(&first, "ratelimit");
    assert!(field.starts_with("\"3/1h\";r=2;t="), "{field}");
    let t: u64 = field
        .rsplit("t=")
        .next()
        .and_then(|t| t.parse().ok())
        .expect("t");
    assert!((3599..=4051).contains(&t), "{field}");

    let second = send(&gw, "/h/x", &[]).await;
    assert_eq!(header(&second, "x-ratelimit-remaining"), "1");
    send(&gw, "/h/x", &[]).await;
    let refused = send(&gw, "/h/x", &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-limit"), "3");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    assert!(header(&refused, "ratelimit").contains(";r=0;"));
    let retry: u64 = header(&refused, "retry-after").parse().expect("seconds");
    assert!((3599..=4051).contains(&retry), "{retry}");

    let quiet = send(&gw, "/quiet/x", &[]).await;
    assert_eq!(quiet.status(), 200);
    assert!(quiet.headers().get("x-ratelimit-limit").is_none());
    assert!(quiet.headers().get("ratelimit").is_none());
    let quiet_refused = send(&gw, "/quiet/x", &[]).await;
    assert_eq!(quiet_refused.status(), 429);
    assert!(quiet_refused.headers().get("retry-after").is_some());

    // Upstream errors pass through with the headers.
    let upstream_error = send(&gw, "/err/status/503", &[]).await;
    assert_eq!(upstream_error.status(), 503);
    assert_eq!(header(&upstream_error, "x-ratelimit-remaining"), "4");
}

#[tokio::test]
async fn several_limits_all_apply_and_refusals_consume_none() {
    let up = upstream("api").await;
    let gw = limited(
        &up,
        "",
        "  - { path: /**, service: echo, plugins: { rate_limit: { limits: [5/1m, 2/1s], key: ip, algorithm: fixed_window } } }\n",
    )
    .await;
    // 2 per second pass, the rest of the second is refused by the second limit…
    let first = statuses(&gw, "/x", &[], 6).await;
    assert_eq!(first, [200, 200, 429, 429, 429, 429]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(statuses(&gw, "/x", &[], 2).await, [200, 200]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // …and the refusals did not count against the minute: 4 counted, one more passes.
    let third = send(&gw, "/x", &[]).await;
    assert_eq!(third.status(), 200);
    let refused = send(&gw, "/x", &[]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-limit"), "5");
    assert_eq!(up.hits(), 5);
}

#[tokio::test]
async fn each_key_kind_counts_separately() {
    let up = upstream("api").await;
    let extra = "trusted_proxies: [127.0.0.1/32]\nconsumers:\n  alice: { keys: [alice-key] }\n  bob: { keys: [bob-key] }";
    let routes = "  - { path: /consumer/**, service: echo, plugins: { auth: { api_key: {}, optional: true }, rate_limit: { limits: [2/1m] } } }\n\
                    \x20\x20- { path: /ip/**, service: echo, plugins: { rate_limit: { limits: [2/1m], key: ip } } }\n\
                    \x20\x20- { path: /header/**, service: echo, plugins: { rate_limit: { limits: [2/1m], key: \"header:X-Tenant\" } } }\n\
                    \x20\x20- { path: /route/**, service: echo, plugins: { rate_limit: { limits: [2/1m], key: route } } }\n\
                    \x20\x20- { path: /global/**, service: echo, plugins: { rate_limit: { limits: [2/1m], key: global } } }\n";
    let gw = limited(&up, extra, routes).await;
    let xff = |ip| [("x-forwarded-for", ip)];

    // consumer: each API key its own counter; anonymous clients by IP.
    assert_eq!(
        passed(&statuses(&gw, "/consumer/x", &[("x-api-key", "alice-key")], 3).await),
        2
    );
    assert_eq!(
        passed(&statuses(&gw, "/consumer/x", &[("x-api-key", "bob-key")], 3).await),
        2
    );
    assert_eq!(
        passed(&statuses(&gw, "/consumer/x", &xff("10.0.0.1"), 3).await),
        2
    );
    assert_eq!(
        passed(&statuses(&gw, "/consumer/x", &xff("10.0.0.2"), 3).await),
        2
    );

    // ip: the client address from a trusted proxy's X-Forwarded-For.
    assert_eq!(
        passed(&statuses(&gw, "/ip/x", &xff("10.0.0.1"), 3).await),
        2
    );
    assert_eq!(
        passed(&statuses(&gw, "/ip/x", &xff("10.0.0.2"), 3).await),
        2
    );

    // header: by value; without the header, by IP.
    assert_eq!(
        passed(&statuses(&gw, "/header/x", &[("x-tenant", "a")], 3).await),
        2
    );
    assert_eq!(
        passed(&statuses(&gw, "/header/x", &[("x-tenant", "b")], 3).await),
        2
    );
    assert_eq!(
        passed(&statuses(&gw, "/header/x", &xff("10.0.0.1"), 3).await),
        2
    );
    assert_eq!(
        passed(&statuses(&gw, "/header/x", &xff("10.0.0.2"), 3).await),
        2
    );

    // route and global: every client shares one counter.
    assert_eq!(
        passed(&statuses(&gw, "/route/x", &xff("10.0.0.1"), 1).await),
        1
    );
    assert_eq!(
        passed(&statuses(&gw, "/route/x", &xff("10.0.0.2"), 2).await),
        1
    );
    assert_eq!(
        passed(&statuses(&gw, "/global/x", &xff("10.0.0.1"), 1).await),
        1
    );
    assert_eq!(
        passed(&statuses(&gw, "/global/x", &xff("10.0.0.2"), 2).await),
        1
    );
}

#[tokio::test]
async fn scopes_share_counters_across_routes_of_a_service_or_everywhere() {
    let up = upstream("api").await;
    let routes = "  - { path: /r1/**, service: echo, plugins: { rate_limit: { limits: [2/1m], key: ip } } }\n\
                    \x20\x20- { path: /r2/**, service: echo, plugins: { rate_limit: { limits: [2/1m], key: ip } } }\n\
                    \x20\x20- { path: /s1/**, service: echo, plugins: { rate_limit: { limits: [3/1m], key: ip, scope: service } } }\n\
                    \x20\x20- { path: /s2/**, service: echo, plugins: { rate_limit: { limits: [3/1m], key: ip, scope: service } } }\n\
                    \x20\x20- { path: /s3/**, service: other, plugins: { rate_limit: { limits: [3/1m], key: ip, scope: service } } }\n\
                    \x20\x20- { path: /g1/**, service: echo, plugins: { rate_limit: { limits: [4/1m], key: ip, scope: global } } }\n\
                    \x20\x20- { path: /g2/**, service: other, plugins: { rate_limit: { limits: [4/1m], key: ip, scope: global } } }\n";
    let gw = limited(&up, "", routes).await;
    // route (default): each route its own counter.
    assert_eq!(passed(&statuses(&gw, "/r1/x", &[], 3).await), 2);
    assert_eq!(passed(&statuses(&gw, "/r2/x", &[], 3).await), 2);
    // service: shared by the routes of `echo`, not by `other`'s.
    assert_eq!(passed(&statuses(&gw, "/s1/x", &[], 2).await), 2);
    assert_eq!(passed(&statuses(&gw, "/s2/x", &[], 2).await), 1);
    assert_eq!(passed(&statuses(&gw, "/s3/x", &[], 4).await), 3);
    // global: shared by every route with the same limit.
    assert_eq!(passed(&statuses(&gw, "/g1/x", &[], 3).await), 3);
    assert_eq!(passed(&statuses(&gw, "/g2/x", &[], 3).await), 1);
}

#[tokio::test]
async fn the_first_group_of_the_consumer_picks_its_tier() {
    let up = upstream("api").await;
    let extra = "consumers:\n  basic: { keys: [basic-key] }\n  gold: { keys: [gold-key], groups: [staff, premium] }\n  silver: { keys: [silver-key], groups: [partner] }";
    let routes = "  - path: /**\n    service: echo\n    plugins:\n      auth: { api_key: {} }\n      rate_limit: { limits: [1/1m], groups: { premium: [4/1m], partner: [2/1m], staff: [9/1m] } }\n";
    let gw = limited(&up, extra, routes).await;
    let key = |k| [("x-api-key", k)];
    assert_eq!(passed(&statuses(&gw, "/x", &key("basic-key"), 3).await), 1);
    // gold is in staff and premium: premium comes first in the config.
    let gold = statuses(&gw, "/x", &key("gold-key"), 6).await;
    assert_eq!(passed(&gold), 4);
    assert_eq!(passed(&statuses(&gw, "/x", &key("silver-key"), 3).await), 2);
    let premium = send(&gw, "/x", &key("gold-key")).await;
    assert_eq!(header(&premium, "x-ratelimit-limit"), "4");
}

#[tokio::test]
async fn fifty_concurrent_requests_against_twenty_pass_exactly_twenty() {
    let up = upstream("api").await;
    let gw = limited(
        &up,
        "",
        "  - { path: /**, service: echo, plugins: { rate_limit: { limits: [20/1m], key: global } } }\n",
    )
    .await;
    let url = format!("{}/slow/300", base(&gw));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            // A client each: 50 connections at once.
            tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.expect("task").expect("response"));
    }
    assert_eq!(got.iter().filter(|&&s| s == 200).count(), 20, "{got:?}");
    assert_eq!(got.iter().filter(|&&s| s == 429).count(), 30);
    assert_eq!(up.hits(), 20);
}

#[tokio::test]
async fn counters_survive_a_reload_with_the_same_limit_and_reset_when_it_changes() {
    let up = upstream("api").await;
    let route = |limit: &str| {
        format!(
            "  - {{ path: /**, service: echo, plugins: {{ rate_limit: {{ limits: [{limit}], key: ip }} }} }}\n"
        )
    };
    let gw = limited(&up, "", &route("3/1m")).await;
    assert_eq!(passed(&statuses(&gw, "/x", &[], 2).await), 2);
    let same =
        gatehouse::config::load_str("t.yaml", &config(&up, "", &route("3/1m"))).expect("config");
    gw.apply(&same).expect("reload");
    assert_eq!(
        statuses(&gw, "/x", &[], 2).await,
        [200, 429],
        "counters carried over"
    );
    let changed =
        gatehouse::config::load_str("t.yaml", &config(&up, "", &route("4/1m"))).expect("config");
    gw.apply(&changed).expect("reload");
    assert_eq!(
        passed(&statuses(&gw, "/x", &[], 5).await),
        4,
        "a changed limit starts fresh"
    );
}

#[test]
fn the_cluster_store_needs_cluster_redis() {
    let yaml = "listen: 127.0.0.1:0\nroutes:\n  - path: /\n    respond: { status: 200 }\n    plugins:\n      rate_limit: { limits: [1/1s], store: cluster }\n";
    let errors = gatehouse::check_str("t.yaml", yaml)
        .expect_err("refused")
        .to_string();
    assert!(
        errors.contains("t.yaml:6:7: `rate_limit.store: cluster` needs `cluster.redis`"),
        "{errors}"
    );
    let local = yaml.replace("cluster", "local");
    assert!(gatehouse::check_str("t.yaml", &local).is_ok());
    let big = "listen: 127.0.0.1:0\nroutes:\n  - path: /\n    respond: { status: 200 }\n    plugins:\n      rate_limit: { limits: [5000000000/1s] }\n";
    let errors = gatehouse::check_str("t.yaml", big)
        .expect_err("refused")
        .to_string();
    assert!(errors.contains("at most 4294967295"), "{errors}");
}
