//! `auth` with consumers' credentials (SPEC §2.3, §3.4): API keys (hashed and plain), HTTP
//! Basic with argon2 and bcrypt hashes, the any-one rule, `optional`, `hide_credentials`,
//! identity headers, and `authorize` by groups.

mod common;

use base64::Engine;
use common::{base, client, error_body, gateway, upstream};
use gatehouse::app::Gatehouse;
use serde_json::Value;

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn argon2_hash(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2")
        .to_string()
}

/// A gateway whose routes exercise every consumer-credential method.
async fn keyed_gateway(upstream_url: &str) -> Gatehouse {
    let bcrypt_hash = bcrypt::hash("b-secret", 4).expect("bcrypt");
    let argon_hash = argon2_hash("a-secret");
    gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{upstream_url}" }}
consumers:
  web-app:
    keys: ["{hashed}"]
    groups: [premium]
  partner:
    keys: [plain-partner-key]
    groups: [partners]
  ops:
    passwords: ["{argon_hash}"]
    groups: [admins, staff]
  robot:
    passwords: ["{bcrypt_hash}"]
routes:
  - path: /keyed/**
    service: echo
    plugins:
      auth: {{ api_key: {{}} }}
  - path: /cookie-key
    service: echo
    plugins:
      auth: {{ api_key: {{ from: ["cookie:key"] }}, hide_credentials: true }}
  - path: /hidden/**
    service: echo
    plugins:
      auth: {{ api_key: {{}}, hide_credentials: true }}
  - path: /either/**
    service: echo
    plugins:
      auth: {{ api_key: {{}}, basic: {{ realm: ops-area }} }}
  - path: /optional/**
    service: echo
    plugins:
      auth: {{ api_key: {{}}, optional: true }}
  - path: /premium/**
    service: echo
    plugins:
      auth: {{ api_key: {{}}, basic: {{}} }}
      authorize: {{ groups: [premium, admins] }}
  - path: /public/**
    service: echo
  - path: /mine/{{rest:**}}
    service: echo
    rewrite: /by/{{consumer}}/{{rest}}
    plugins:
      auth: {{ api_key: {{}} }}
"#,
        hashed = gatehouse::commands::hash_key::hash_key("web-key"),
    ))
    .await
}

async fn echo(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "expected the upstream's answer");
    response.json().await.expect("echo json")
}

#[tokio::test]
async fn api_keys_hashed_and_plain_from_header_and_query() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    let url = format!("{}/keyed/x", base(&gw));

    let e = echo(
        client()
            .get(&url)
            .header("x-api-key", "web-key")
            .header("x-consumer-id", "forged")
            .header("x-consumer-groups", "admins")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["headers"]["x-consumer-id"], "web-app");
    assert_eq!(e["headers"]["x-consumer-groups"], "premium");
    assert_eq!(
        e["repeated"],
        serde_json::json!([]),
        "each header sent once"
    );
    assert_eq!(
        e["headers"]["x-api-key"], "web-key",
        "kept without hide_credentials"
    );

    let e = echo(
        client()
            .get(format!("{url}?api_key=plain-partner-key"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["headers"]["x-consumer-id"], "partner");
    assert_eq!(e["headers"]["x-consumer-groups"], "partners");
}

#[tokio::test]
async fn missing_and_invalid_keys_are_401_without_echoing_the_key() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    let url = format!("{}/keyed/x", base(&gw));

    let response = client().get(&url).send().await.expect("send");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Key realm=\"gatehouse\""
    );
    let body = error_body(response, 401, "unauthorized").await;
    assert_eq!(body["error"]["message"], "authentication required");

    let response = client()
        .get(&url)
        .header("x-api-key", "guess-SECRET-123")
        .send()
        .await
        .expect("send");
    let text = format!("{:?}", response.headers());
    assert!(!text.contains("guess-SECRET-123"));
    let body = error_body(response, 401, "unauthorized").await;
    assert!(!body.to_string().contains("guess-SECRET-123"), "{body}");
    assert_eq!(up.hits(), 0, "refused requests never reach the service");
}

#[tokio::test]
async fn hide_credentials_strips_header_query_and_cookie() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    let e = echo(
        client()
            .get(format!("{}/hidden/x?a=1&api_key=web-key&b=2", base(&gw)))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["query"], "a=1&b=2");
    assert_eq!(e["headers"]["x-consumer-id"], "web-app");

    let e = echo(
        client()
            .get(format!("{}/hidden/x", base(&gw)))
            .header("x-api-key", "web-key")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(e["headers"].get("x-api-key").is_none());

    let e = echo(
        client()
            .get(format!("{}/cookie-key", base(&gw)))
            .header("cookie", "theme=dark; key=plain-partner-key")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["headers"]["x-consumer-id"], "partner");
    assert_eq!(e["headers"]["cookie"], "theme=dark");
}

#[tokio::test]
async fn basic_auth_with_argon2_and_bcrypt() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    let url = format!("{}/either/x", base(&gw));

    for _ in 0..2 {
        // The second round is served by the remembered verification.
        let e = echo(
            client()
                .get(&url)
                .header("authorization", basic("ops", "a-secret"))
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(e["headers"]["x-consumer-id"], "ops");
        assert_eq!(e["headers"]["x-consumer-groups"], "admins,staff");
    }
    let e = echo(
        client()
            .get(&url)
            .header("authorization", basic("robot", "b-secret"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["headers"]["x-consumer-id"], "robot");

    for (user, password) in [
        ("ops", "Wr0ng-pass"),
        ("nobody", "a-secret"),
        ("robot", "a-secret"),
    ] {
        let response = client()
            .get(&url)
            .header("authorization", basic(user, password))
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"ops-area\", charset=\"UTF-8\""
        );
        let body = error_body(response, 401, "unauthorized").await;
        assert!(!body.to_string().contains(password));
    }

    let response = client().get(&url).send().await.expect("send");
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    assert_eq!(
        challenges,
        [
            "Key realm=\"gatehouse\"",
            "Basic realm=\"ops-area\", charset=\"UTF-8\""
        ]
    );
    error_body(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_present_invalid_credential_is_401_even_when_another_is_valid() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    let response = client()
        .get(format!("{}/either/x", base(&gw)))
        .header("x-api-key", "web-key")
        .header("authorization", basic("ops", "wrong"))
        .send()
        .await
        .expect("send");
    error_body(response, 401, "unauthorized").await;
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn optional_auth_passes_anonymous_but_not_invalid() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    let url = format!("{}/optional/x", base(&gw));
    let e = echo(
        client()
            .get(&url)
            .header("x-consumer-id", "forged")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(
        e["headers"].get("x-consumer-id").is_none(),
        "anonymous, forged id removed"
    );

    let e = echo(
        client()
            .get(&url)
            .header("x-api-key", "web-key")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["headers"]["x-consumer-id"], "web-app");

    let response = client()
        .get(&url)
        .header("x-api-key", "nope")
        .send()
        .await
        .expect("send");
    error_body(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_service() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    for path in ["/keyed/x", "/public/x"] {
        let e = echo(
            client()
                .get(format!("{}{path}", base(&gw)))
                .header("x-api-key", "plain-partner-key")
                .header("x-consumer-id", "web-app")
                .header("x-consumer-groups", "admins")
                .header("x-auth-scopes", "admin")
                .header("x-user-id", "root")
                .send()
                .await
                .expect("send"),
        )
        .await;
        let headers = &e["headers"];
        assert_ne!(headers["x-consumer-id"], "web-app", "{path}");
        assert_ne!(headers["x-consumer-groups"], "admins", "{path}");
        assert!(headers.get("x-auth-scopes").is_none(), "{path}");
        assert!(headers.get("x-user-id").is_none(), "{path}");
    }
}

#[tokio::test]
async fn authorize_groups_gives_403_to_the_authenticated_and_401_to_the_anonymous() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    let url = format!("{}/premium/x", base(&gw));

    let e = echo(
        client()
            .get(&url)
            .header("x-api-key", "web-key")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["headers"]["x-consumer-id"], "web-app");
    let e = echo(
        client()
            .get(&url)
            .header("authorization", basic("ops", "a-secret"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["headers"]["x-consumer-id"], "ops");

    let response = client()
        .get(&url)
        .header("x-api-key", "plain-partner-key")
        .send()
        .await
        .expect("send");
    error_body(response, 403, "forbidden").await;
    let response = client().get(&url).send().await.expect("send");
    error_body(response, 401, "unauthorized").await;
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn the_consumer_is_a_template_variable() {
    let up = upstream("echo").await;
    let gw = keyed_gateway(&up.url()).await;
    let e = echo(
        client()
            .get(format!("{}/mine/orders/7", base(&gw)))
            .header("x-api-key", "plain-partner-key")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(e["path"], "/by/partner/orders/7");
}
