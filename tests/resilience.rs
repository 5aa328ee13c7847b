//! Keeping failing targets out of the way (SPEC §2.2, §4.2, §6): active health checks,
//! passive ejection, the circuit breaker, the 503 when no target is left, and health state
//! across reloads. Upstreams here fail on command (`common/flaky.rs`). The gateway serves on
//! its own runtimes and health checks run on the test's, next to real sockets, so time here is
//! real: intervals and durations are a few hundred milliseconds.

mod common;
#[path = "common/flaky.rs"]
mod flaky;

use std::time::Duration;

use common::{base, client, error_body, gateway, get};
use flaky::{Flaky, Mode};
use gatehouse::app::Gatehouse;
use gatehouse::upstream::breaker::CircuitState;
use gatehouse::upstream::status::{Health, ServiceStatus};

/// Waits up to `within` for `condition`, checking every 20 ms.
async fn eventually(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `GET /services` snapshot of `service`.
fn status(gw: &Gatehouse, service: &str) -> ServiceStatus {
    gw.gateway()
        .runtime()
        .current()
        .services_status()
        .into_iter()
        .find(|s| s.name == service)
        .expect("service in the snapshot")
}

fn health_of(gw: &Gatehouse, service: &str, target: &Flaky) -> Health {
    status(gw, service)
        .targets
        .into_iter()
        .find(|t| t.url == target.url())
        .expect("target in the snapshot")
        .health
}

/// Sends `n` requests one after the other; returns their statuses.
async fn statuses(gw: &Gatehouse, n: usize) -> Vec<u16> {
    let client = client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let response = client
            .get(format!("{}/api", base(gw)))
            .send()
            .await
            .expect("response");
        out.push(response.status().as_u16());
    }
    out
}

fn config(targets: &[&Flaky], service_extra: &str) -> String {
    let targets: String = targets
        .iter()
        .map(|t| format!("      - url: \"{}\"\n", t.url()))
        .collect();
    format!(
        "listen: 127.0.0.1:0\nservices:\n  api:\n    targets:\n{targets}{service_extra}routes:\n  - {{ path: /**, service: api }}\n"
    )
}

const HEALTH: &str = "    health: { path: /health, interval: 100ms, timeout: 200ms, healthy_after: 2, unhealthy_after: 2 }\n";

#[tokio::test]
async fn a_target_failing_its_health_checks_gets_no_traffic_until_it_recovers() {
    let (a, b) = (Flaky::start("a").await, Flaky::start("b").await);
    let gw = gateway(&config(&[&a, &b], HEALTH)).await;
    assert!(statuses(&gw, 10).await.iter().all(|&s| s == 200));
    assert_eq!((a.hits(), b.hits()), (5, 5), "both targets serve at first");

    // Only the health checks fail: traffic would still be answered, so it is the checks
    // that take b out.
    b.set_health(Mode::Status(500));
    eventually("b unhealthy", Duration::from_secs(2), || {
        health_of(&gw, "api", &b) == Health::Unhealthy
    })
    .await;
    let before = b.hits();
    let got = statuses(&gw, 20).await;
    assert!(
        got.iter().all(|&s| s == 200),
        "{got:?} {:?}",
        status(&gw, "api")
    );
    assert_eq!(b.hits(), before, "an unhealthy target gets no traffic");
    assert_eq!(a.hits(), 25);
    let snapshot = status(&gw, "api");
    assert!(snapshot.health_checks);
    let b_status = snapshot
        .targets
        .iter()
        .find(|t| t.url == b.url())
        .expect("b");
    assert!(!b_status.available && !b_status.ejected);

    b.set_health(Mode::Ok);
    eventually("b healthy again", Duration::from_secs(2), || {
        health_of(&gw, "api", &b) == Health::Healthy
    })
    .await;
    assert!(statuses(&gw, 10).await.iter().all(|&s| s == 200));
    assert_eq!(
        b.hits(),
        before + 5,
        "a recovered target is back in rotation"
    );

    let hosts = b.health_hosts();
    assert!(!hosts.is_empty());
    assert!(
        hosts.iter().all(|h| *h == b.addr.to_string()),
        "probes carry the target's Host: {hosts:?}"
    );
    assert!(a.health_hits() > 0, "every target is probed");
}

#[tokio::test]
async fn refused_and_hanging_probes_fail_too() {
    let (a, b) = (Flaky::start("a").await, Flaky::start("b").await);
    let gw = gateway(&config(&[&a, &b], HEALTH)).await;
    b.set_health(Mode::Hang);
    eventually(
        "b unhealthy on probe timeouts",
        Duration::from_secs(2),
        || health_of(&gw, "api", &b) == Health::Unhealthy,
    )
    .await;
    b.set(Mode::Refuse).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health_of(&gw, "api", &b), Health::Unhealthy);
    assert!(statuses(&gw, 6).await.iter().all(|&s| s == 200), "a serves");
    b.set(Mode::Ok).await;
    eventually(
        "b healthy once it listens again",
        Duration::from_secs(2),
        || health_of(&gw, "api", &b) == Health::Healthy,
    )
    .await;
}

#[tokio::test]
async fn no_healthy_target_is_a_503_with_retry_after() {
    let only = Flaky::start("only").await;
    let gw = gateway(&config(&[&only], HEALTH)).await;
    only.set_health(Mode::Status(503));
    eventually("unhealthy", Duration::from_secs(2), || {
        health_of(&gw, "api", &only) == Health::Unhealthy
    })
    .await;
    let response = get(&gw, "/api").await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    let body = error_body(response, 503, "service_unavailable").await;
    let text = body.to_string();
    assert!(!text.contains(&only.addr.port().to_string()), "{text}");
    assert_eq!(only.hits(), 0, "the upstream is not contacted");
}

const PASSIVE: &str = "    passive: { failures: 3, eject_for: 600ms }\n";

#[tokio::test]
async fn consecutive_failures_eject_a_target_for_eject_for() {
    let (a, b) = (Flaky::start("a").await, Flaky::start("b").await);
    let gw = gateway(&config(&[&a, &b], PASSIVE)).await;
    b.set(Mode::Status(502)).await;
    // Round robin alternates: b answers 502 (passed through) three times, then is ejected.
    let got = statuses(&gw, 6).await;
    assert_eq!(got, [200, 502, 200, 502, 200, 502]);
    let target = |gw: &Gatehouse| {
        status(gw, "api")
            .targets
            .into_iter()
            .find(|t| t.url == b.url())
            .expect("b")
    };
    let ejected = target(&gw);
    assert!(ejected.ejected && !ejected.available);
    assert_eq!(ejected.health, Health::Healthy, "ejection is not health");
    assert_eq!(ejected.ejected_for_secs, Some(1));
    assert!(statuses(&gw, 10).await.iter().all(|&s| s == 200));
    assert_eq!(b.hits(), 3, "an ejected target gets no traffic");

    b.set(Mode::Ok).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!target(&gw).ejected);
    assert!(statuses(&gw, 10).await.iter().all(|&s| s == 200));
    assert_eq!(b.hits(), 8, "back after eject_for");
}

#[tokio::test]
async fn resets_and_refusals_count_and_a_success_breaks_the_run() {
    let only = Flaky::start("only").await;
    let gw = gateway(&config(&[&only], PASSIVE)).await;
    only.set(Mode::Reset).await;
    assert_eq!(statuses(&gw, 2).await, [502, 502]);
    only.set(Mode::Ok).await;
    assert_eq!(statuses(&gw, 1).await, [200], "a success resets the count");
    only.set(Mode::Refuse).await;
    assert_eq!(statuses(&gw, 2).await, [502, 502]);
    assert!(!status(&gw, "api").targets[0].ejected, "two in a row only");
    assert_eq!(statuses(&gw, 1).await, [502]);
    assert!(status(&gw, "api").targets[0].ejected);
    only.set(Mode::Ok).await;
    let hits = only.hits();
    let response = get(&gw, "/api").await;
    assert!(response.headers().contains_key("retry-after"));
    error_body(response, 503, "service_unavailable").await;
    assert_eq!(
        only.hits(),
        hits,
        "every target ejected: 503 without contacting it"
    );
}

const BREAKER: &str =
    "    circuit_breaker: { failure_ratio: 0.5, min_requests: 4, window: 10s, open_for: 500ms }\n";

#[tokio::test]
async fn the_breaker_opens_refuses_without_contacting_the_upstream_and_a_probe_closes_it() {
    let only = Flaky::start("only").await;
    let gw = gateway(&config(&[&only], BREAKER)).await;
    assert_eq!(statuses(&gw, 2).await, [200, 200]);
    only.set(Mode::Status(500)).await;
    assert_eq!(statuses(&gw, 1).await, [500], "1 of 3 failed");
    assert_eq!(status(&gw, "api").circuit.state, CircuitState::Closed);
    assert_eq!(statuses(&gw, 1).await, [500], "2 of 4 failed: opens");
    let circuit = status(&gw, "api").circuit;
    assert_eq!(circuit.state, CircuitState::Open);
    assert_eq!(circuit.half_open_in_secs, Some(1));

    let response = get(&gw, "/api").await;
    assert_eq!(response.headers()["retry-after"], "1");
    error_body(response, 503, "service_unavailable").await;
    assert_eq!(statuses(&gw, 5).await, [503; 5]);
    assert_eq!(
        only.hits(),
        4,
        "an open circuit never contacts the upstream"
    );

    only.set(Mode::Ok).await;
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(status(&gw, "api").circuit.state, CircuitState::HalfOpen);
    assert_eq!(
        statuses(&gw, 1).await,
        [200],
        "the half-open probe goes through"
    );
    let circuit = status(&gw, "api").circuit;
    assert_eq!(circuit.state, CircuitState::Closed);
    assert_eq!(circuit.window_requests, 0, "closing starts a fresh window");
    assert_eq!(statuses(&gw, 5).await, [200; 5]);
    assert_eq!(only.hits(), 10);
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again() {
    let only = Flaky::start("only").await;
    let gw = gateway(&config(&[&only], BREAKER)).await;
    only.set(Mode::Reset).await;
    assert_eq!(statuses(&gw, 4).await, [502; 4]);
    assert_eq!(statuses(&gw, 1).await, [503]);
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(
        statuses(&gw, 2).await,
        [502, 503],
        "probe fails, open again"
    );
    assert_eq!(only.hits(), 5);
    assert_eq!(status(&gw, "api").circuit.state, CircuitState::Open);
}

#[tokio::test]
async fn half_open_lets_at_most_three_probes_through_at_once() {
    let only = Flaky::start("only").await;
    let gw = gateway(&config(
        &[&only],
        &format!("{BREAKER}    timeouts: {{ request: 400ms }}\n"),
    ))
    .await;
    only.set(Mode::Status(503)).await;
    assert_eq!(statuses(&gw, 4).await, [503; 4]);
    assert_eq!(status(&gw, "api").circuit.state, CircuitState::Open);
    tokio::time::sleep(Duration::from_millis(550)).await;
    only.set(Mode::Hang).await;
    let url = format!("{}/api", base(&gw));
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut got = Vec::new();
    for request in requests {
        got.push(request.await.expect("task").expect("response"));
    }
    got.sort_unstable();
    assert_eq!(
        got,
        [503, 503, 503, 504, 504, 504],
        "3 probes time out, 3 refused"
    );
    assert_eq!(only.hits(), 7);
    assert_eq!(status(&gw, "api").circuit.state, CircuitState::Open);
}

#[tokio::test]
async fn health_state_and_checker_survive_a_reload_of_an_unchanged_service() {
    let (a, b) = (Flaky::start("a").await, Flaky::start("b").await);
    let yaml = config(&[&a, &b], HEALTH);
    let gw = gateway(&yaml).await;
    b.set_health(Mode::Status(500));
    eventually("b unhealthy", Duration::from_secs(2), || {
        health_of(&gw, "api", &b) == Health::Unhealthy
    })
    .await;

    // The same service in a config with another route: the state and the task carry over.
    let checker = |gw: &Gatehouse| gw.gateway().runtime().current().health_checks[0].clone();
    let first = checker(&gw);
    let same = format!("{yaml}  - {{ path: /other, respond: {{ status: 200 }} }}\n");
    gw.apply(&gatehouse::config::load_str("t.yaml", &same).expect("config"))
        .expect("reload");
    assert!(
        std::sync::Arc::ptr_eq(&first, &checker(&gw)),
        "the task is adopted"
    );
    assert_eq!(health_of(&gw, "api", &b), Health::Unhealthy, "carried over");
    let before = b.hits();
    assert!(statuses(&gw, 6).await.iter().all(|&s| s == 200));
    assert_eq!(b.hits(), before, "still out of rotation after the reload");
    let probes = b.health_hits();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let probed = b.health_hits() - probes;
    assert!(
        (4..=8).contains(&probed),
        "one checker probing every 100ms, not two: {probed} probes in 600ms"
    );

    // Changed settings: a new checker replaces the old one, which stops probing.
    let slower = yaml.replace("interval: 100ms", "interval: 300ms");
    gw.apply(&gatehouse::config::load_str("t.yaml", &slower).expect("config"))
        .expect("reload");
    let second = checker(&gw);
    assert!(!std::sync::Arc::ptr_eq(&first, &second), "a new task");
    drop(first);
    assert_eq!(
        health_of(&gw, "api", &b),
        Health::Unhealthy,
        "health carries over"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let probes = b.health_hits();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let probed = b.health_hits() - probes;
    assert!(
        (1..=3).contains(&probed),
        "only the new checker probes (every 300ms): {probed} probes in 600ms"
    );

    // No health checks any more: the checker is dropped with the last runtime using it,
    // its task stops, and every target is healthy again.
    let weak = std::sync::Arc::downgrade(&second);
    drop(second);
    let none = config(&[&a, &b], "");
    gw.apply(&gatehouse::config::load_str("t.yaml", &none).expect("config"))
        .expect("reload");
    assert!(weak.upgrade().is_none(), "no runtime holds the checker");
    assert_eq!(health_of(&gw, "api", &b), Health::Healthy);
    assert!(!status(&gw, "api").health_checks);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let probes = b.health_hits();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.health_hits(), probes, "no more probes");
}

#[tokio::test]
async fn the_breaker_state_carries_over_a_reload_that_keeps_its_settings() {
    let only = Flaky::start("only").await;
    let slow_breaker = BREAKER.replace("open_for: 500ms", "open_for: 1m");
    let yaml = config(&[&only], &slow_breaker);
    let gw = gateway(&yaml).await;
    only.set(Mode::Status(500)).await;
    assert_eq!(statuses(&gw, 5).await, [500, 500, 500, 500, 503]);
    gw.apply(&gatehouse::config::load_str("t.yaml", &yaml).expect("config"))
        .expect("reload");
    assert_eq!(statuses(&gw, 1).await, [503], "still open");
    let changed = slow_breaker.replace("min_requests: 4", "min_requests: 5");
    gw.apply(&gatehouse::config::load_str("t.yaml", &config(&[&only], &changed)).expect("config"))
        .expect("reload");
    assert_eq!(statuses(&gw, 1).await, [500], "new settings start closed");
}

#[tokio::test]
async fn the_status_snapshot_serializes_for_the_admin_api() {
    let (a, b) = (Flaky::start("a").await, Flaky::start("b").await);
    let gw = gateway(&config(&[&a, &b], &format!("{PASSIVE}{BREAKER}"))).await;
    let all = gw.gateway().runtime().current().services_status();
    let json = serde_json::to_value(&all).expect("serializes");
    assert_eq!(json[0]["name"], "api");
    assert_eq!(json[0]["balance"], "round_robin");
    assert_eq!(json[0]["passive"], true);
    assert_eq!(json[0]["health_checks"], false);
    assert_eq!(json[0]["circuit"]["enabled"], true);
    assert_eq!(json[0]["circuit"]["state"], "closed");
    let target = &json[0]["targets"][0];
    assert_eq!(target["url"], a.url());
    assert_eq!(target["address"], a.addr.to_string());
    assert_eq!(target["weight"], 1);
    assert_eq!(target["health"], "healthy");
    assert_eq!(target["ejected"], false);
    assert_eq!(target["available"], true);
    assert_eq!(target["in_flight"], 0);
    assert!(target["latency_ms"].is_null());
    assert!(target.get("ejected_for_secs").is_none());
}

#[test]
fn resilience_settings_are_checked_with_their_location() {
    let yaml = "listen: 127.0.0.1:0
services:
  api:
    url: http://127.0.0.1:9
    health: { path: health, interval: 0s, timeout: 1s, healthy_after: 0, unhealthy_after: 3 }
    passive: { failures: 0, eject_for: 0ms }
    circuit_breaker: { failure_ratio: 1.5, min_requests: 0, window: 0s, open_for: 0s }
routes:
  - { path: /, service: api }
";
    let errors = gatehouse::check_str("t.yaml", yaml)
        .expect_err("refused")
        .to_string();
    for expected in [
        "t.yaml:5:21: `health.path` must start with `/`, not `health`",
        "t.yaml:5:39: `health.interval` must be more than 0",
        "t.yaml:5:71: `health.healthy_after` must be at least 1",
        "t.yaml:6:26: `passive.failures` must be at least 1",
        "t.yaml:6:40: `passive.eject_for` must be more than 0",
        "t.yaml:7:39: `circuit_breaker.failure_ratio` must be more than 0 and at most 1, not 1.5",
        "t.yaml:7:58: `circuit_breaker.min_requests` must be at least 1",
        "t.yaml:7:69: `circuit_breaker.window` must be more than 0",
        "t.yaml:7:83: `circuit_breaker.open_for` must be more than 0",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected} in:\n{errors}"
        );
    }
}

#[test]
fn the_resilience_keys_are_supported() {
    let yaml = format!(
        "listen: 127.0.0.1:0\nservices:\n  api:\n    url: http://127.0.0.1:9\n{HEALTH}{PASSIVE}{BREAKER}routes:\n  - {{ path: /, service: api }}\n"
    );
    let summary = gatehouse::check_str("t.yaml", &yaml).expect("valid");
    let _ = summary;
}

#[tokio::test]
async fn a_dry_run_starts_no_health_checks() {
    let yaml = format!(
        "listen: 127.0.0.1:0\nservices:\n  api:\n    url: http://127.0.0.1:9\n{HEALTH}routes:\n  - {{ path: /, service: api }}\n"
    );
    let config = gatehouse::config::load_str("t.yaml", &yaml).expect("config");
    let dry = gatehouse::runtime::compile(&config, &gatehouse::runtime::State::dry_run())
        .expect("compiles");
    assert!(dry.health_checks.is_empty());
    let live = gatehouse::runtime::compile(&config, &gatehouse::runtime::State::default())
        .expect("compiles");
    assert_eq!(live.health_checks.len(), 1);
    assert!(live.services_status()[0].health_checks);
    let weak = std::sync::Arc::downgrade(&live.health_checks[0]);
    drop(live);
    assert!(
        weak.upgrade().is_none(),
        "the checker goes with its runtime"
    );
}

/// An upstream speaking only HTTP/2 with prior knowledge: `/ok` answers 200, anything else
/// 500. Returns its URL and the count of requests it answered.
async fn h2_only_upstream() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hits = counted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: http::Request<_>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let _: &hyper::body::Incoming = request.body();
                    let status = if request.uri().path() == "/ok" {
                        200
                    } else {
                        500
                    };
                    let response = http::Response::builder()
                        .status(status)
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .expect("response");
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    (url, hits)
}

#[tokio::test]
async fn h2c_services_are_probed_over_http2() {
    let (url, hits) = h2_only_upstream().await;
    let yaml = format!(
        "listen: 127.0.0.1:0
services:
  good:
    url: \"{url}\"
    protocol: h2c
    health: {{ path: /ok, interval: 50ms, timeout: 500ms, healthy_after: 1, unhealthy_after: 1 }}
  bad:
    url: \"{url}\"
    protocol: h2c
    health: {{ path: /status/500, interval: 50ms, timeout: 500ms, healthy_after: 1, unhealthy_after: 1 }}
routes:
  - {{ path: /**, service: good }}
"
    );
    let gw = gateway(&yaml).await;
    let health = |service: &str| status(&gw, service).targets[0].health;
    eventually("bad unhealthy", Duration::from_secs(2), || {
        health("bad") == Health::Unhealthy
    })
    .await;
    eventually("several rounds", Duration::from_secs(2), || {
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 6
    })
    .await;
    assert_eq!(
        health("good"),
        Health::Healthy,
        "HTTP/2 probes reach an h2-only target"
    );
}
