//! Forwarding (SPEC §4.1): streaming, pooling, hop-by-hop headers, X-Forwarded-*, Host,
//! identity headers, h2c both ways, weighted targets.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{base, client, gateway, proxy_all, upstream};
use serde_json::{Value, json};

#[tokio::test]
async fn forwards_with_strip_prefix_and_forwarded_headers() {
    let users = upstream("users").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
observability: {{ access_log: off }}
services:
  users: {{ url: "{}" }}
routes:
  - path: /api/v1/users/**
    service: users
    strip_prefix: /api/v1
"#,
        users.url()
    ))
    .await;
    let response = client()
        .get(format!("{}/api/v1/users/42?x=1&y=%20", base(&gw)))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-consumer-id", "admin")
        .header("x-user-id", "root")
        .header("connection", "x-private")
        .header("x-private", "secret")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["path"], "/users/42");
    assert_eq!(echo["query"], "x=1&y=%20");
    let headers = &echo["headers"];
    assert_eq!(echo["repeated"], json!([]), "each header sent once");
    assert_eq!(headers["host"], users.addr.to_string());
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "spoofed chain replaced"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], gw.listeners[0].to_string());
    assert_eq!(headers["x-request-id"], request_id.as_str());
    assert!(
        headers.get("x-consumer-id").is_none(),
        "identity headers stripped"
    );
    assert!(headers.get("x-user-id").is_none());
    assert!(
        headers.get("x-private").is_none(),
        "Connection-named header removed"
    );
    assert!(headers.get("connection").is_none());
}

#[tokio::test]
async fn trusted_proxy_chain_is_extended() {
    let users = upstream("users").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
trusted_proxies: [127.0.0.0/8]
observability: {{ access_log: off }}
services:
  users: {{ url: "{}" }}
routes:
  - {{ path: /echo, service: users, preserve_host: true }}
"#,
        users.url()
    ))
    .await;
    let echo: Value = client()
        .get(format!("{}/echo", base(&gw)))
        .header("x-forwarded-for", "203.0.113.9")
        .header("host", "api.example.com")
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(echo["headers"]["host"], "api.example.com", "preserve_host");
}

#[tokio::test]
async fn response_hop_by_hop_removed_and_request_id_kept() {
    let users = upstream("users").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  users: {{ url: "{}" }}
routes:
  - {{ path: /headers, service: users }}
"#,
        users.url()
    ))
    .await;
    let response = client()
        .get(format!("{}/headers", base(&gw)))
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .expect("response");
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id");
    assert!(response.headers().get("x-hop").is_none());
    assert_eq!(response.headers()["server"], "test-upstream");
}

#[tokio::test]
async fn streams_response_bodies_and_large_request_bodies() {
    let users = upstream("users").await;
    let gw = proxy_all(&users.url()).await;
    // The first chunk arrives long before the last one is produced.
    let started = std::time::Instant::now();
    let mut response = client()
        .get(format!("{}/stream/20", base(&gw)))
        .send()
        .await
        .expect("response");
    let first = response.chunk().await.expect("chunk").expect("some");
    assert!(!first.is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "first chunk streamed"
    );
    let mut total = first.len();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        total += chunk.len();
    }
    assert_eq!(total, 20 * 1024);

    // A 4 MiB chunked upload streams through.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b'a'; 64 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let echo: Value = client()
        .post(format!("{}/upload", base(&gw)))
        .body(body)
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["body_len"], 4 * 1024 * 1024);
}

#[tokio::test]
async fn upstream_connections_are_pooled() {
    let users = upstream("users").await;
    let gw = proxy_all(&users.url()).await;
    let c = client();
    for _ in 0..20 {
        let response = c.get(format!("{}/x", base(&gw))).send().await.expect("ok");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
    }
    assert_eq!(users.hits(), 20);
    assert_eq!(
        users.connections(),
        1,
        "one keep-alive upstream connection reused"
    );
}

#[tokio::test]
async fn h2c_clients_and_h2c_upstreams() {
    let users = upstream("users").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  users: {{ url: "{}", protocol: h2c }}
  plain: {{ url: "{}" }}
routes:
  - {{ path: /h2/**, service: users, strip_prefix: /h2 }}
  - {{ path: /h1/**, service: plain, strip_prefix: /h1 }}
"#,
        users.url(),
        users.url()
    ))
    .await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = h2
        .get(format!("{}/h2/a", base(&gw)))
        .send()
        .await
        .expect("ok");
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "h2c from the client"
    );
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["version"], "HTTP/2.0", "h2c to the upstream");
    assert_eq!(echo["path"], "/a");
    let echo: Value = h2
        .get(format!("{}/h1/b", base(&gw)))
        .send()
        .await
        .expect("ok")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["version"], "HTTP/1.1", "h2 client, HTTP/1.1 upstream");
}

#[tokio::test]
async fn weighted_round_robin_across_targets() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  svc:
    targets:
      - {{ url: "{}", weight: 3 }}
      - {{ url: "{}" }}
routes:
  - {{ path: /**, service: svc }}
"#,
        a.url(),
        b.url()
    ))
    .await;
    let c = client();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..400 {
        let echo: Value = c
            .get(format!("{}/x", base(&gw)))
            .send()
            .await
            .expect("ok")
            .json()
            .await
            .expect("json");
        *seen
            .entry(echo["upstream"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    assert_eq!(seen["a"], 300);
    assert_eq!(seen["b"], 100);
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let users = upstream("users").await;
    let gw = proxy_all(&users.url()).await;
    let response = client()
        .get(format!("{}/status/503", base(&gw)))
        .send()
        .await
        .expect("ok");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["upstream"], "users", "the upstream's own body");
}

#[tokio::test]
async fn connections_the_upstream_closed_are_not_reused() {
    let users = common::upstream_closing_idle("users", Duration::from_millis(100)).await;
    let gw = proxy_all(&users.url()).await;
    let c = client();
    for _ in 0..3 {
        let response = c.get(format!("{}/x", base(&gw))).send().await.expect("ok");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(users.hits(), 3);
    assert_eq!(
        users.connections(),
        3,
        "a new connection after each idle close"
    );
}

#[tokio::test]
async fn several_listeners_serve_the_same_routes() {
    let gw = gateway(
        "listen: [127.0.0.1:0, 127.0.0.1:0]\nroutes:\n  - { path: /, respond: { status: 200, body: hi } }\n",
    )
    .await;
    assert_eq!(gw.listeners.len(), 2);
    assert_ne!(gw.listeners[0], gw.listeners[1]);
    for addr in &gw.listeners {
        let body = client()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect("ok")
            .text()
            .await
            .expect("text");
        assert_eq!(body, "hi");
    }
}
