//! `auth.introspection` against a real RFC 7662 endpoint that checks the gateway's client
//! credentials and form body, counts calls, and can fail.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use base64::Engine;
use common::{base, client, error_body, gateway, refusing_address, upstream};
use http::StatusCode;
use serde_json::{Value, json};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The introspection endpoint: answers per token from `answers` (unknown tokens are
/// inactive); `status` overrides the answer with a bare status; `garbage` answers non-JSON.
#[derive(Clone, Default)]
struct Idp {
    answers: Arc<Mutex<HashMap<String, Value>>>,
    calls: Arc<AtomicUsize>,
    status: Arc<Mutex<Option<StatusCode>>>,
}

impl Idp {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn answer(&self, token: &str, answer: Value) {
        self.answers
            .lock()
            .expect("answers")
            .insert(token.to_owned(), answer);
    }
}

async fn introspect(
    State(idp): State<Idp>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    idp.calls.fetch_add(1, Ordering::SeqCst);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("gateway:s3cret")
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "bad client credentials").into_response();
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok())
        != Some("application/x-www-form-urlencoded")
    {
        return (StatusCode::BAD_REQUEST, "not a form").into_response();
    }
    let form: HashMap<String, String> = url_decode(&body);
    if form.get("token_type_hint").map(String::as_str) != Some("access_token") {
        return (StatusCode::BAD_REQUEST, "no hint").into_response();
    }
    let Some(token) = form.get("token") else {
        return (StatusCode::BAD_REQUEST, "no token").into_response();
    };
    if let Some(status) = *idp.status.lock().expect("status") {
        return (status, "failing").into_response();
    }
    if token == "garbage" {
        return (StatusCode::OK, "<html>").into_response();
    }
    let answer = idp
        .answers
        .lock()
        .expect("answers")
        .get(token)
        .cloned()
        .unwrap_or(json!({"active": false}));
    axum::Json(answer).into_response()
}

fn url_decode(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

async fn idp() -> (Idp, String) {
    let idp = Idp::default();
    let app = axum::Router::new()
        .route("/introspect", axum::routing::post(introspect))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (idp, format!("http://{addr}/introspect"))
}

fn config(upstream: &str, routes: &[(&str, Value)]) -> String {
    let routes: Vec<Value> = routes
        .iter()
        .map(|(path, auth)| json!({"path": path, "service": "svc", "plugins": {"auth": auth}}))
        .collect();
    json!({
        "listen": "127.0.0.1:0",
        "observability": {"access_log": "off"},
        "services": {"svc": {"url": upstream}},
        "consumers": {"web-app": {"groups": ["premium"]}},
        "routes": routes,
    })
    .to_string()
}

fn introspection(url: &str) -> Value {
    json!({"url": url, "client_id": "gateway", "client_secret": "s3cret"})
}

async fn get(gw: &gatehouse::app::Gatehouse, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", base(gw)))
        .bearer_auth(token)
        .send()
        .await
        .expect("response")
}

async fn echoed(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK, "accepted");
    let body: Value = response.json().await.expect("echo");
    body["headers"].clone()
}

#[tokio::test]
async fn active_tokens_pass_and_are_cached() {
    let up = upstream("api").await;
    let (idp, url) = idp().await;
    idp.answer(
        "opaque-1",
        json!({"active": true, "username": "web-app", "sub": "u-1", "scope": "orders:read profile",
               "client_id": "spa", "exp": now() + 3600}),
    );
    idp.answer(
        "opaque-2",
        json!({"active": true, "client_id": "batch", "exp": now() + 3600}),
    );
    let gw = gateway(&config(
        &up.url(),
        &[("/**", json!({"introspection": introspection(&url)}))],
    ))
    .await;
    let h = echoed(get(&gw, "/x", "opaque-1").await).await;
    assert_eq!(h["x-consumer-id"], "web-app");
    assert_eq!(h["x-user-id"], "u-1");
    assert_eq!(h["x-auth-scopes"], "orders:read profile");
    assert_eq!(h["x-consumer-groups"], "premium");
    assert_eq!(idp.calls(), 1);
    echoed(get(&gw, "/x", "opaque-1").await).await;
    assert_eq!(
        idp.calls(),
        1,
        "the second request is served from the cache"
    );

    let h = echoed(get(&gw, "/x", "opaque-2").await).await;
    assert_eq!(
        h["x-consumer-id"], "batch",
        "client_id when there is no username or sub"
    );
    assert!(h.get("x-user-id").is_none());
}

#[tokio::test]
async fn inactive_tokens_are_refused_and_not_cached() {
    let up = upstream("api").await;
    let (idp, url) = idp().await;
    let gw = gateway(&config(
        &up.url(),
        &[("/**", json!({"introspection": introspection(&url)}))],
    ))
    .await;
    for calls in 1..=2 {
        let response = get(&gw, "/x", "revoked-token").await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"inactive\""
        );
        let body = error_body(response, 401, "unauthorized").await;
        assert_eq!(body["error"]["message"], "invalid token: inactive");
        assert!(!body.to_string().contains("revoked-token"));
        assert_eq!(idp.calls(), calls, "inactive answers are not cached");
    }
    // Activated later: accepted at once.
    idp.answer("revoked-token", json!({"active": true, "sub": "u-9"}));
    let h = echoed(get(&gw, "/x", "revoked-token").await).await;
    assert_eq!(h["x-consumer-id"], "u-9");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn the_cache_never_outlives_the_token() {
    let up = upstream("api").await;
    let (idp, url) = idp().await;
    idp.answer(
        "short",
        json!({"active": true, "sub": "u-1", "exp": now() + 1}),
    );
    let gw = gateway(&config(
        &up.url(),
        &[("/**", json!({"introspection": introspection(&url)}))],
    ))
    .await;
    echoed(get(&gw, "/x", "short").await).await;
    assert_eq!(idp.calls(), 1);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let response = get(&gw, "/x", "short").await;
    assert_eq!(idp.calls(), 2, "asked again once the token expired");
    let body = error_body(response, 401, "unauthorized").await;
    assert_eq!(body["error"]["message"], "invalid token: expired");
}

#[tokio::test]
async fn a_failing_provider_is_503() {
    let up = upstream("api").await;
    let (idp, url) = idp().await;
    idp.answer("t", json!({"active": true, "sub": "u-1"}));
    let mut wrong_secret = introspection(&url);
    wrong_secret["client_secret"] = json!("nope");
    let gw = gateway(&config(
        &up.url(),
        &[
            ("/ok/**", json!({"introspection": introspection(&url)})),
            ("/creds/**", json!({"introspection": wrong_secret})),
            (
                "/gone/**",
                json!({"introspection": introspection(&format!("http://{}/i", refusing_address()))}),
            ),
        ],
    ))
    .await;
    let unavailable = |response: reqwest::Response| async move {
        assert_eq!(response.headers()["retry-after"], "5");
        error_body(response, 503, "service_unavailable").await;
    };
    unavailable(get(&gw, "/gone/x", "t").await).await;
    unavailable(get(&gw, "/creds/x", "t").await).await;
    unavailable(get(&gw, "/ok/x", "garbage").await).await;
    *idp.status.lock().expect("status") = Some(StatusCode::INTERNAL_SERVER_ERROR);
    unavailable(get(&gw, "/ok/x", "t").await).await;
    *idp.status.lock().expect("status") = None;
    echoed(get(&gw, "/ok/x", "t").await).await;
}

#[tokio::test]
async fn with_jwt_too_each_token_goes_to_its_method() {
    let up = upstream("api").await;
    let (idp, url) = idp().await;
    idp.answer("opaque", json!({"active": true, "username": "web-app"}));
    let gw = gateway(&config(
        &up.url(),
        &[(
            "/**",
            json!({"hide_credentials": true, "introspection": introspection(&url),
                   "jwt": {"algorithms": ["HS256"], "secret": "s3cret"}}),
        )],
    ))
    .await;
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "jwt-user", "exp": now() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"s3cret"),
    )
    .expect("sign");
    let h = echoed(get(&gw, "/x", &jwt).await).await;
    assert_eq!(h["x-consumer-id"], "jwt-user");
    assert_eq!(idp.calls(), 0, "JWTs are not introspected");
    assert!(h.get("authorization").is_none(), "hide_credentials");
    let h = echoed(get(&gw, "/x", "opaque").await).await;
    assert_eq!(h["x-consumer-id"], "web-app");
    assert_eq!(idp.calls(), 1);
    // A bad JWT is the jwt method's to refuse, without asking the provider.
    let response = get(&gw, "/x", "a.b.c").await;
    error_body(response, 401, "unauthorized").await;
    assert_eq!(idp.calls(), 1);
}
