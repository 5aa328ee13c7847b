//! Upstream failures (SPEC §4.1, §4.2): refused, reset, hanging past the timeout, slow to
//! accept — each a JSON 502/504 that leaks no internal detail.

mod common;

use std::time::{Duration, Instant};

use common::{
    base, client, error_body, gateway, get, proxy_all, refusing_address, resetting_upstream,
    stuck_listener, upstream,
};

fn assert_no_leak(body: &serde_json::Value, secrets: &[String]) {
    let text = body.to_string();
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "error body leaks {secret}: {text}"
        );
    }
    for word in ["refused (os error", "hyper", "tcp connect", "error trying"] {
        assert!(!text.contains(word), "error body leaks internals: {text}");
    }
}

#[tokio::test]
async fn refused_connection_is_502() {
    let addr = refusing_address();
    let gw = proxy_all(&format!("http://{addr}")).await;
    let response = get(&gw, "/x").await;
    let body = error_body(response, 502, "bad_gateway").await;
    assert_no_leak(&body, &[addr.to_string(), addr.port().to_string()]);
}

#[tokio::test]
async fn reset_connection_is_502() {
    let addr = resetting_upstream().await;
    let gw = proxy_all(&format!("http://{addr}")).await;
    let response = get(&gw, "/x").await;
    let body = error_body(response, 502, "bad_gateway").await;
    assert_no_leak(&body, &[addr.to_string()]);
}

#[tokio::test]
async fn hanging_upstream_is_504_after_the_route_timeout() {
    let slow = upstream("slow").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  slow:
    url: "{}"
    timeouts: {{ request: 5s }}
routes:
  - {{ path: /hang, service: slow, timeout: 300ms }}
  - {{ path: /slow/**, service: slow }}
"#,
        slow.url()
    ))
    .await;
    let started = Instant::now();
    let response = client()
        .get(format!("{}/hang", base(&gw)))
        .send()
        .await
        .expect("response");
    let elapsed = started.elapsed();
    error_body(response, 504, "gateway_timeout").await;
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

    // Within the service timeout, a slow answer is fine.
    let response = client()
        .get(format!("{}/slow/200", base(&gw)))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn service_request_timeout_applies_without_route_override() {
    let slow = upstream("slow").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  slow:
    url: "{}"
    timeouts: {{ request: 250ms }}
routes:
  - {{ path: /**, service: slow }}
"#,
        slow.url()
    ))
    .await;
    let response = client()
        .get(format!("{}/slow/2000", base(&gw)))
        .send()
        .await
        .expect("response");
    error_body(response, 504, "gateway_timeout").await;
}

#[tokio::test]
async fn upstream_that_never_accepts_is_a_connect_timeout_504() {
    let (listener, _fillers) = stuck_listener().await;
    let addr = listener.local_addr().expect("addr");
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  stuck:
    url: "http://{addr}"
    timeouts: {{ connect: 300ms }}
routes:
  - {{ path: /**, service: stuck }}
"#
    ))
    .await;
    let started = Instant::now();
    let response = client()
        .get(format!("{}/x", base(&gw)))
        .send()
        .await
        .expect("response");
    error_body(response, 504, "gateway_timeout").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(listener);
}
