//! Edge filters (SPEC §3.2, §3.3): `ip_filter` with `trusted_proxies`, and `cors` — preflights
//! answered before `auth` without reaching the service, CORS headers on every response of the
//! route (errors included) for allowed origins only, `Vary: Origin`.

mod common;

use common::{base, client, error_body, gateway, upstream};

#[tokio::test]
async fn ip_filter_allows_denies_and_believes_only_trusted_proxies() {
    let up = upstream("echo").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
trusted_proxies: [127.0.0.1/32]
services:
  echo: {{ url: "{}" }}
routes:
  - path: /office/**
    service: echo
    plugins:
      ip_filter: {{ allow: [203.0.113.0/24], deny: [203.0.113.7] }}
  - path: /open/**
    service: echo
    plugins:
      ip_filter: {{ deny: [198.51.100.0/24] }}
"#,
        up.url()
    ))
    .await;
    let get = |path: &'static str, xff: &'static str| {
        let url = format!("{}{path}", base(&gw));
        async move {
            client()
                .get(url)
                .header("x-forwarded-for", xff)
                .send()
                .await
                .expect("send")
        }
    };
    // The peer (127.0.0.1) is a trusted proxy: the right-most untrusted entry is the client.
    assert_eq!(get("/office/a", "203.0.113.9").await.status(), 200);
    assert_eq!(
        get("/office/a", "6.6.6.6, 203.0.113.9, 127.0.0.1")
            .await
            .status(),
        200
    );
    let denied = get("/office/a", "203.0.113.7").await;
    let body = error_body(denied, 403, "forbidden").await;
    assert!(
        !body.to_string().contains("203.0.113"),
        "no address echoed: {body}"
    );
    error_body(get("/office/a", "192.0.2.1").await, 403, "forbidden").await;
    // Spoofing a left-most allowed entry does not help.
    error_body(
        get("/office/a", "203.0.113.9, 192.0.2.1").await,
        403,
        "forbidden",
    )
    .await;

    assert_eq!(get("/open/a", "192.0.2.1").await.status(), 200);
    error_body(get("/open/a", "198.51.100.4").await, 403, "forbidden").await;
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn ip_filter_uses_the_peer_when_it_is_not_a_trusted_proxy() {
    let up = upstream("echo").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{}" }}
plugins:
  ip_filter: {{ allow: [10.0.0.0/8] }}
routes:
  - {{ path: /a, service: echo }}
  - path: /b
    service: echo
    plugins: {{ ip_filter: false }}
"#,
        up.url()
    ))
    .await;
    let response = client()
        .get(format!("{}/a", base(&gw)))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .expect("send");
    error_body(response, 403, "forbidden").await;
    let response = client()
        .get(format!("{}/b", base(&gw)))
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.status(),
        200,
        "`ip_filter: false` turns the global filter off"
    );
}

fn cors_config(upstream_url: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{upstream_url}" }}
consumers:
  app: {{ keys: [app-key] }}
routes:
  - path: /api/orders
    methods: [GET]
    service: echo
    plugins:
      auth: {{ api_key: {{}} }}
      cors:
        origins: [https://app.example.com, "https://*.example.org"]
        methods: [GET, POST]
        headers: [Authorization, X-API-Key]
        expose: [X-Request-Id]
        credentials: true
        max_age: 5m
  - path: /public
    service: echo
    plugins:
      cors: {{ origins: "*" }}
"#
    )
}

#[tokio::test]
async fn preflight_is_answered_before_auth_and_never_reaches_the_service() {
    let up = upstream("echo").await;
    let gw = gateway(&cors_config(&up.url())).await;
    // The route accepts only GET, the preflight is an OPTIONS: it is matched for the method
    // it asks about.
    let response = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/orders", base(&gw)),
        )
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-api-key")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET, POST");
    assert_eq!(
        h["access-control-allow-headers"],
        "Authorization, X-API-Key"
    );
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "300");
    let vary: Vec<_> = h
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert!(vary.contains(&"Origin"), "{vary:?}");
    assert!(h.contains_key("x-request-id"));

    // A wildcard-subdomain origin.
    let response = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/orders", base(&gw)),
        )
        .header("origin", "https://shop.example.org")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 204);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://shop.example.org"
    );

    // A disallowed origin gets an answer without CORS headers.
    let response = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/orders", base(&gw)),
        )
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 204);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert_eq!(up.hits(), 0, "preflights never reach the service");
}

#[tokio::test]
async fn cors_headers_on_responses_and_errors_for_allowed_origins_only() {
    let up = upstream("echo").await;
    let gw = gateway(&cors_config(&up.url())).await;
    let url = format!("{}/api/orders", base(&gw));

    let response = client()
        .get(&url)
        .header("origin", "https://app.example.com")
        .header("x-api-key", "app-key")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-expose-headers"], "X-Request-Id");
    assert_eq!(h["vary"], "Origin");

    // The gateway's own 401 carries them too, so the page can read the error.
    let response = client()
        .get(&url)
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    error_body(response, 401, "unauthorized").await;

    let response = client()
        .get(&url)
        .header("origin", "https://evil.example.com")
        .header("x-api-key", "app-key")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert_eq!(
        response.headers()["vary"],
        "Origin",
        "the answer depends on the origin"
    );

    // `origins: "*"` without credentials answers `*` and needs no Vary.
    let response = client()
        .get(format!("{}/public", base(&gw)))
        .header("origin", "https://anyone.test")
        .send()
        .await
        .expect("send");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(!response.headers().contains_key("vary"));
}

#[tokio::test]
async fn options_without_preflight_headers_is_routed_normally() {
    let up = upstream("echo").await;
    let gw = gateway(&cors_config(&up.url())).await;
    let response = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/orders", base(&gw)),
        )
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("send");
    let body = error_body(response, 405, "method_not_allowed").await;
    assert!(body.is_object());
    let response = client()
        .request(reqwest::Method::OPTIONS, format!("{}/public", base(&gw)))
        .header("origin", "https://x.test")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.status(),
        204,
        "`/public` allows every method by default route rules"
    );
}
