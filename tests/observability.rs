//! The admin listener's `/health` and `/ready` (SPEC §5), the access log (SPEC §8), request
//! ids (SPEC §3.1) and security headers (SPEC §3.9).

mod common;

use std::time::Duration;

use common::{base, client, error_body, gateway, upstream};
use serde_json::Value;

#[tokio::test]
async fn admin_health_and_ready_with_a_token() {
    let gw = gateway(
        r#"
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, token: s3cret }
routes:
  - { path: /, respond: { status: 200 } }
"#,
    )
    .await;
    let admin = format!("http://{}", gw.admin.expect("admin listener"));
    let health: Value = client()
        .get(format!("{admin}/health"))
        .send()
        .await
        .expect("ok")
        .json()
        .await
        .expect("json");
    assert_eq!(health, serde_json::json!({"status": "ok"}));

    let response = client()
        .get(format!("{admin}/ready"))
        .send()
        .await
        .expect("ok");
    assert_eq!(response.status(), 401, "token required");
    let response = client()
        .get(format!("{admin}/ready"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("ok");
    assert_eq!(response.status(), 401);
    let response = client()
        .get(format!("{admin}/ready"))
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("ok");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn access_log_lines_have_the_spec_fields() {
    let echo = upstream("echo").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
observability: {{ access_log: "{}" }}
services:
  echo: {{ url: "{}" }}
consumers:
  web-app: {{ keys: [log-key] }}
routes:
  - name: echo-route
    path: /echo/**
    service: echo
    plugins: {{ auth: {{ api_key: {{}}, optional: true }} }}
"#,
        log.display(),
        echo.url()
    ))
    .await;
    let response = client()
        .post(format!("{}/echo/a?b=1", base(&gw)))
        .header("x-request-id", "log-test-1")
        .header("x-api-key", "log-key")
        .body("hello")
        .send()
        .await
        .expect("ok");
    assert_eq!(response.status(), 200);
    let body_len = response.bytes().await.expect("body").len();
    client()
        .get(format!("{}/missing", base(&gw)))
        .header("x-request-id", "log-test-2")
        .send()
        .await
        .expect("ok");

    let mut lines = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        lines = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("each line is JSON"))
            .collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first = lines
        .iter()
        .find(|l| l["request_id"] == "log-test-1")
        .expect("first request logged");
    for field in [
        "ts",
        "request_id",
        "client_ip",
        "method",
        "host",
        "path",
        "route",
        "service",
        "target",
        "status",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "upstream_ms",
        "consumer",
    ] {
        assert!(!first[field].is_null(), "field {field} in {first}");
    }
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/echo/a");
    assert_eq!(first["route"], "echo-route");
    assert_eq!(first["service"], "echo");
    assert_eq!(first["target"], echo.url());
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes_in"], 5);
    assert_eq!(first["bytes_out"], body_len);
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["consumer"], "web-app");
    assert!(
        !first.to_string().contains("log-key"),
        "credentials never logged"
    );
    let second = lines
        .iter()
        .find(|l| l["request_id"] == "log-test-2")
        .expect("second request logged");
    assert_eq!(second["status"], 404);
    assert_eq!(second["error"], "not_found");
}

#[tokio::test]
async fn request_ids_are_kept_generated_and_in_error_bodies() {
    let gw = gateway("listen: 127.0.0.1:0\nroutes:\n  - { path: /ok, respond: { status: 200 } }\n")
        .await;
    let response = client()
        .get(format!("{}/ok", base(&gw)))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("ok");
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let response = client()
        .get(format!("{}/ok", base(&gw)))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("ok");
    let id = response.headers()["x-request-id"].to_str().expect("ascii");
    assert_eq!(id.len(), 36, "a UUID replaces an invalid id");
    let response = client()
        .get(format!("{}/missing", base(&gw)))
        .header("x-request-id", "err-1")
        .send()
        .await
        .expect("ok");
    let body = error_body(response, 404, "not_found").await;
    assert_eq!(body["error"]["request_id"], "err-1");
}

#[tokio::test]
async fn security_headers_on_responses_and_errors_with_precedence() {
    let echo = upstream("echo").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
plugins:
  security_headers: {{ content_security_policy: "default-src 'none'" }}
services:
  echo:
    url: "{}"
    plugins:
      security_headers: {{ x_frame_options: SAMEORIGIN }}
routes:
  - {{ path: /headers, service: echo }}
  - path: /plain
    service: echo
    plugins: {{ security_headers: false }}
  - {{ path: /down, respond: {{ status: 503, body: down }} }}
  - path: /global
    methods: [GET]
    respond: {{ status: 200 }}
"#,
        echo.url()
    ))
    .await;
    let response = client()
        .get(format!("{}/headers", base(&gw)))
        .send()
        .await
        .expect("ok");
    let h = response.headers();
    assert_eq!(
        h["x-frame-options"], "SAMEORIGIN",
        "the service's settings replace the global ones"
    );
    assert!(
        h.get("content-security-policy").is_none(),
        "replaced whole, not merged"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.get("server").is_none(), "Server removed");
    assert!(h.get("x-powered-by").is_none());
    assert!(
        h.get("strict-transport-security").is_none(),
        "HSTS only on TLS"
    );

    let response = client()
        .get(format!("{}/plain", base(&gw)))
        .send()
        .await
        .expect("ok");
    assert!(
        response.headers().get("x-frame-options").is_none(),
        "`false` turns it off"
    );

    let response = client()
        .get(format!("{}/global", base(&gw)))
        .send()
        .await
        .expect("ok");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(
        response.headers()["content-security-policy"],
        "default-src 'none'"
    );

    let response = client()
        .delete(format!("{}/global", base(&gw)))
        .send()
        .await
        .expect("ok");
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["x-frame-options"],
        "DENY",
        "the gateway's own errors carry them too"
    );
}
