//! Routing on the wire (SPEC §2.4, §2.5): patterns, specificity, conditions, 404/405,
//! normalization (traversal attempts), rewrite and respond routes.

mod common;

use std::time::Duration;

use common::{base, client, error_body, gateway, raw, upstream};
use serde_json::Value;

async fn routed_gateway() -> (
    gatehouse::app::Gatehouse,
    common::Upstream,
    common::Upstream,
) {
    let public = upstream("public").await;
    let admin = upstream("admin").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  public: {{ url: "{}" }}
  admin: {{ url: "{}" }}
routes:
  - name: public
    path: /public/**
    service: public
  - name: admin-internal-only
    path: /admin/**
    hosts: [internal.example.com]
    service: admin
  - name: user
    path: /users/{{id}}
    methods: [GET, PUT]
    service: public
    rewrite: /v2/people/{{id}}?via=gw
  - name: files
    path: /files/{{rest:**}}
    service: public
    rewrite: /storage/{{rest}}
  - name: exact
    path: /users/me
    service: admin
  - name: star
    path: /things/*
    service: public
  - name: regex
    path_regex: ^/v[0-9]+/items$
    service: admin
  - name: v1-header
    path: /versioned
    headers: {{ Accept-Version: v1 }}
    service: admin
  - name: versioned
    path: /versioned
    service: public
  - name: query
    path: /q
    query: {{ version: "2" }}
    service: admin
  - name: ok
    path: /healthz
    respond: {{ status: 200, body: "ok" }}
"#,
        public.url(),
        admin.url()
    ))
    .await;
    (gw, public, admin)
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.expect("response")
}

#[tokio::test]
async fn patterns_and_specificity() {
    let (gw, _public, _admin) = routed_gateway().await;
    let b = base(&gw);
    let echo: Value = get(&format!("{b}/users/7"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(echo["path"], "/v2/people/7");
    assert_eq!(echo["query"], "via=gw");
    let echo: Value = get(&format!("{b}/users/me"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(echo["upstream"], "admin", "exact beats {{id}}");
    let echo: Value = get(&format!("{b}/files/a/b/c.txt"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(echo["path"], "/storage/a/b/c.txt");
    let echo: Value = get(&format!("{b}/things/x"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(echo["upstream"], "public");
    assert_eq!(get(&format!("{b}/things/x/y")).await.status(), 404);
    let echo: Value = get(&format!("{b}/v12/items"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(echo["upstream"], "admin", "regex route");
    let echo: Value = get(&format!("{b}/public"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(echo["upstream"], "public", "/** matches the prefix itself");
}

#[tokio::test]
async fn header_query_and_host_conditions() {
    let (gw, _public, _admin) = routed_gateway().await;
    let b = base(&gw);
    let c = client();
    let echo: Value = c
        .get(format!("{b}/versioned"))
        .header("accept-version", "v1")
        .send()
        .await
        .expect("ok")
        .json()
        .await
        .expect("json");
    assert_eq!(echo["upstream"], "admin");
    let echo: Value = get(&format!("{b}/versioned"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(echo["upstream"], "public");
    let echo: Value = get(&format!("{b}/q?version=2"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(echo["upstream"], "admin");
    assert_eq!(get(&format!("{b}/q?version=3")).await.status(), 404);
    let response = c
        .get(format!("{b}/admin/panel"))
        .header("host", "internal.example.com")
        .send()
        .await
        .expect("ok");
    assert_eq!(response.status(), 200);
    let response = get(&format!("{b}/admin/panel")).await;
    error_body(response, 404, "not_found").await;
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let (gw, _public, _admin) = routed_gateway().await;
    let b = base(&gw);
    error_body(get(&format!("{b}/nowhere")).await, 404, "not_found").await;
    let response = client()
        .delete(format!("{b}/users/7"))
        .send()
        .await
        .expect("ok");
    assert_eq!(response.headers()["allow"], "GET, HEAD, PUT");
    error_body(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn traversal_cannot_reach_a_protected_path() {
    let (gw, public, admin) = routed_gateway().await;
    let addr = gw.listeners[0];
    for path in [
        "/public/../admin/panel",
        "/public/%2e%2e/admin/panel",
        "/public/%2E%2E/admin/panel",
        "/public/./../admin/panel",
        "/public//..//admin/panel",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw(addr, request.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("HTTP/1.1 404"),
            "{path} must resolve to /admin/panel (host-restricted): {answer}"
        );
    }
    assert_eq!(admin.hits(), 0);
    assert_eq!(public.hits(), 0);

    // Above the root is a 400.
    let answer = raw(
        addr,
        b"GET /public/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"bad_request\""));

    // An encoded slash is not a separator: it stays inside one segment, forwarded as is.
    let answer = raw(
        addr,
        b"GET /public/..%2fadmin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"path\":\"/public/..%2Fadmin\""),
        "{answer}"
    );
}

#[tokio::test]
async fn normalized_path_is_forwarded() {
    let (gw, _public, _admin) = routed_gateway().await;
    let addr = gw.listeners[0];
    let answer = raw(
        addr,
        b"GET //public///a/./b/%7Euser HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        answer.contains("\"path\":\"/public/a/b/~user\""),
        "{answer}"
    );
}

#[tokio::test]
async fn respond_routes_answer_without_upstream() {
    let (gw, public, admin) = routed_gateway().await;
    let response = get(&format!("{}/healthz", base(&gw))).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.expect("text"), "ok");
    assert_eq!(public.hits() + admin.hits(), 0);
}
