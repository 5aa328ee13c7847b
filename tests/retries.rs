//! Retries and timeouts (SPEC §2.2 `retries`, `timeouts`, §2.4 route `timeout`): retried
//! failures land on another target, only idempotent methods are retried unless `methods`
//! says otherwise (a connect failure is retried for any method), bodies are replayed intact,
//! nothing is retried once the response started, backoff is waited, the retry budget caps
//! retries during an outage, and exhausted retries pass the last answer through.

mod common;
#[path = "common/faulty.rs"]
mod faulty;

use std::time::{Duration, Instant};

use common::{base, client, error_body, gateway, get, refusing_address, stuck_listener};
use faulty::{Mode, checksum, faulty};
use serde_json::Value;

async fn json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "status");
    response.json().await.expect("json")
}

/// A gateway with one service over `targets` (URLs), `extra` YAML lines under the service,
/// and a catch-all route.
async fn service(targets: &[String], extra: &str) -> gatehouse::app::Gatehouse {
    let targets: String = targets
        .iter()
        .map(|url| format!("      - url: \"{url}\"\n"))
        .collect();
    gateway(&format!(
        "listen: 127.0.0.1:0\nservices:\n  svc:\n    targets:\n{targets}{extra}routes:\n  - {{ path: /**, service: svc }}\n"
    ))
    .await
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_another_target() {
    let good = faulty("good", Mode::Echo).await;
    let refused = refusing_address();
    let gw = service(
        &[format!("http://{refused}"), good.url()],
        "    retries: { attempts: 1, backoff: 1ms }\n",
    )
    .await;
    for _ in 0..6 {
        let echo = json(get(&gw, "/a").await).await;
        assert_eq!(echo["upstream"], "good");
    }
    assert_eq!(good.hits(), 6);
}

#[tokio::test]
async fn a_connect_failure_is_retried_even_for_post_with_its_streamed_body() {
    // POST is not in `methods`: its body streams, but a request that never left may go to
    // another target.
    let good = faulty("good", Mode::Echo).await;
    let refused = refusing_address();
    let gw = service(
        &[format!("http://{refused}"), good.url()],
        "    retries: { attempts: 1, backoff: 1ms }\n",
    )
    .await;
    let body = vec![7u8; 50_000];
    for _ in 0..4 {
        let echo = json(
            client()
                .post(format!("{}/p", base(&gw)))
                .body(body.clone())
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["body_len"], body.len());
        assert_eq!(echo["body_sum"], checksum(&body));
    }
    assert_eq!(good.hits(), 4);
}

#[tokio::test]
async fn a_503_is_retried_on_the_other_target() {
    let failing = faulty("failing", Mode::Status(503)).await;
    let good = faulty("good", Mode::Echo).await;
    let gw = service(
        &[failing.url(), good.url()],
        "    retries: { attempts: 1, backoff: 1ms }\n",
    )
    .await;
    // Ten requests: within the retry budget's floor (see the budget test for more).
    for _ in 0..10 {
        let response = get(&gw, "/r").await;
        let echo = json(response).await;
        assert_eq!(echo["upstream"], "good", "never the retried 503");
    }
    assert_eq!(good.hits(), 10, "every request ends on the good target");
    // A retry goes to the other target, never back to the one that failed: each request
    // was tried at most once on the failing one.
    assert!((1..=10).contains(&failing.hits()), "{}", failing.hits());
}

#[tokio::test]
async fn post_is_not_retried_by_default() {
    let failing = faulty("failing", Mode::Status(503)).await;
    let gw = service(
        &[failing.url()],
        "    retries: { attempts: 2, backoff: 1ms }\n",
    )
    .await;
    let response = client()
        .post(format!("{}/p", base(&gw)))
        .body("payload")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 503);
    assert_eq!(failing.hits(), 1, "POST went once");

    // The same failure on a GET is retried twice.
    let response = get(&gw, "/g").await;
    assert_eq!(response.status(), 503);
    assert_eq!(failing.hits(), 1 + 3);
}

#[tokio::test]
async fn post_is_retried_when_methods_lists_it_and_its_body_is_replayed_intact() {
    let flaky = faulty("flaky", Mode::Echo).await;
    let gw = service(
        &[flaky.url()],
        "    retries: { attempts: 2, backoff: 1ms, methods: [POST], on: [reset, 503] }\n",
    )
    .await;
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();

    // A sized body, failed once with a 503 and once by a closed connection.
    flaky.script(&[Mode::Status(503), Mode::Close]);
    let echo = json(
        client()
            .post(format!("{}/p", base(&gw)))
            .body(body.clone())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["body_sum"], checksum(&body));
    assert_eq!(flaky.hits(), 3);

    // A chunked body arriving in pieces is replayed whole too.
    flaky.script(&[Mode::Status(503)]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(16_384).map(|c| Ok(c.to_vec())).collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let echo = json(
        client()
            .post(format!("{}/p", base(&gw)))
            .body(streamed)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["body_sum"], checksum(&body));
    assert_eq!(flaky.hits(), 5);
}

#[tokio::test]
async fn a_replayed_body_over_max_body_is_413() {
    let flaky = faulty("flaky", Mode::Echo).await;
    let gw = gateway(&format!(
        "listen: 127.0.0.1:0\nservices:\n  svc:\n    url: \"{}\"\n    retries: {{ attempts: 1 }}\nroutes:\n  - {{ path: /**, service: svc, max_body: 1KiB }}\n",
        flaky.url()
    ))
    .await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![1u8; 1024])).collect();
    let response = client()
        .put(format!("{}/p", base(&gw)))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("send");
    error_body(response, 413, "payload_too_large").await;
    assert_eq!(flaky.hits(), 0, "nothing was sent");
}

#[tokio::test]
async fn nothing_is_retried_once_the_response_started() {
    let broken = faulty("broken", Mode::Truncate).await;
    let gw = service(
        &[broken.url()],
        "    retries: { attempts: 2, backoff: 1ms, on: [reset, 502, 503, 504] }\n",
    )
    .await;
    let response = get(&gw, "/t").await;
    assert_eq!(response.status(), 200, "the headers were passed on");
    let body = response.bytes().await;
    assert!(body.is_err(), "the client sees the body break: {body:?}");
    assert_eq!(broken.hits(), 1, "not retried");
}

#[tokio::test]
async fn backoff_is_waited_and_doubles() {
    let flaky = faulty("flaky", Mode::Echo).await;
    let gw = service(
        &[flaky.url()],
        "    retries: { attempts: 2, backoff: 100ms }\n",
    )
    .await;
    flaky.script(&[Mode::Status(503), Mode::Status(503)]);
    let started = Instant::now();
    let echo = json(get(&gw, "/b").await).await;
    let elapsed = started.elapsed();
    assert_eq!(echo["upstream"], "flaky");
    assert_eq!(flaky.hits(), 3);
    // Equal jitter: at least half of 100ms, then half of 200ms.
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn the_retry_budget_caps_retries_during_an_outage() {
    let down = faulty("down", Mode::Status(503)).await;
    let gw = service(
        &[down.url()],
        "    retries: { attempts: 3, backoff: 1ms }\n",
    )
    .await;
    let requests = 300;
    let started = Instant::now();
    let url = format!("{}/o", base(&gw));
    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..requests / 10 {
                let response = http.get(&url).send().await.expect("send");
                assert_eq!(response.status(), 503);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let seconds = started.elapsed().as_secs_f64().ceil();
    let attempts = down.hits() as f64;
    // 20% extra, the floor's first second and its refill; without the budget, 4×.
    let bound = 1.2 * f64::from(requests) + 10.0 + 10.0 * seconds;
    assert!(
        attempts <= bound,
        "{attempts} attempts for {requests} requests (bound {bound})"
    );
    assert!(attempts > f64::from(requests), "some were retried");
}

#[tokio::test]
async fn exhausted_retries_pass_the_last_answer_through_unchanged() {
    let a = faulty("a", Mode::Status(503)).await;
    let b = faulty("b", Mode::Status(502)).await;
    let gw = service(
        &[a.url(), b.url()],
        "    retries: { attempts: 1, backoff: 1ms }\n",
    )
    .await;
    let response = get(&gw, "/x").await;
    // Round robin starts with `a`; the retry goes to `b`, whose answer is the client's.
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-upstream"], "b");
    let body: Value = response.json().await.expect("upstream body");
    assert_eq!(body, serde_json::json!({"upstream": "b", "status": 502}));
    assert_eq!(a.hits() + b.hits(), 2);
}

#[tokio::test]
async fn exhausted_retries_of_failures_are_the_gateway_error() {
    let gw = service(
        &[
            format!("http://{}", refusing_address()),
            format!("http://{}", refusing_address()),
        ],
        "    retries: { attempts: 3, backoff: 1ms }\n",
    )
    .await;
    let response = get(&gw, "/x").await;
    error_body(response, 502, "bad_gateway").await;
}

#[tokio::test]
async fn a_timeout_is_retried_when_listed_and_each_attempt_has_the_whole_timeout() {
    let hanging = faulty("hanging", Mode::Hang).await;
    let good = faulty("good", Mode::Slow(150)).await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  svc:
    targets: [{{ url: "{}" }}, {{ url: "{}" }}]
    timeouts: {{ request: 250ms }}
    retries: {{ attempts: 1, backoff: 1ms, on: [timeout] }}
  plain:
    url: "{}"
    timeouts: {{ request: 250ms }}
routes:
  - {{ path: /svc/**, service: svc }}
  - {{ path: /plain/**, service: plain }}
"#,
        hanging.url(),
        good.url(),
        hanging.url()
    ))
    .await;
    let started = Instant::now();
    let echo = json(get(&gw, "/svc/x").await).await;
    assert_eq!(echo["upstream"], "good");
    // Round robin starts on the hanging target: 250ms lost, then 150ms on the good one.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(hanging.hits(), 1);

    // Without retries, the timeout is the client's 504.
    let response = get(&gw, "/plain/x").await;
    error_body(response, 504, "gateway_timeout").await;
}

#[tokio::test]
async fn a_connect_timeout_is_504_or_retried_on_another_target() {
    let (stuck, _fillers) = stuck_listener().await;
    let stuck_url = format!("http://{}", stuck.local_addr().expect("addr"));
    let good = faulty("good", Mode::Echo).await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  stuck:
    url: "{stuck_url}"
    timeouts: {{ connect: 200ms }}
  both:
    targets: [{{ url: "{stuck_url}" }}, {{ url: "{}" }}]
    timeouts: {{ connect: 200ms }}
    retries: {{ attempts: 1, backoff: 1ms }}
routes:
  - {{ path: /stuck/**, service: stuck }}
  - {{ path: /both/**, service: both }}
"#,
        good.url()
    ))
    .await;
    let started = Instant::now();
    let response = get(&gw, "/stuck/x").await;
    error_body(response, 504, "gateway_timeout").await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    for _ in 0..2 {
        let echo = json(get(&gw, "/both/x").await).await;
        assert_eq!(echo["upstream"], "good");
    }
}

#[tokio::test]
async fn the_route_timeout_overrides_the_service_timeout_both_ways() {
    let slow = faulty("slow", Mode::Slow(400)).await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  slow:
    url: "{}"
    timeouts: {{ request: 200ms }}
routes:
  - {{ path: /longer/**, service: slow, timeout: 2s }}
  - {{ path: /service/**, service: slow }}
"#,
        slow.url()
    ))
    .await;
    let response = get(&gw, "/service/x").await;
    error_body(response, 504, "gateway_timeout").await;
    let echo = json(get(&gw, "/longer/x").await).await;
    assert_eq!(echo["upstream"], "slow");
}

#[tokio::test]
async fn a_retry_sends_the_new_target_its_own_host() {
    let failing = faulty("failing", Mode::Status(503)).await;
    let good = faulty("good", Mode::Echo).await;
    let gw = service(
        &[failing.url(), good.url()],
        "    retries: { attempts: 1, backoff: 1ms }\n",
    )
    .await;
    for _ in 0..2 {
        let echo = json(get(&gw, "/h").await).await;
        assert_eq!(echo["host"], good.addr.to_string());
    }
}

#[tokio::test]
async fn the_access_log_shows_the_attempts_and_the_last_target() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("access.log");
    let failing = faulty("failing", Mode::Status(503)).await;
    let good = faulty("good", Mode::Echo).await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
observability: {{ access_log: "{}" }}
services:
  svc:
    targets: [{{ url: "{}" }}, {{ url: "{}" }}]
    retries: {{ attempts: 1, backoff: 1ms }}
routes:
  - {{ path: /**, service: svc }}
"#,
        log.display(),
        failing.url(),
        good.url()
    ))
    .await;
    let response = get(&gw, "/logged").await;
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("body");
    let mut line = Value::Null;
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(first) = text.lines().next() {
            line = serde_json::from_str(first).expect("JSON line");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(line["attempts"], 2, "{line}");
    assert_eq!(line["target"], good.url(), "{line}");
    assert_eq!(line["status"], 200);
}
