//! `auth.jwt` against the real gateway: every algorithm family, every rejection with its exact
//! challenge, token sources, identity headers, revocation, and a real JWKS server whose keys
//! rotate and which goes down.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{base, client, error_body, gateway, refusing_address, upstream};
use http::StatusCode;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde_json::{Value, json};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A signing key generated for the test, with its public PEM and JWK.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    public_pem: String,
    public_raw: Vec<u8>,
}

fn signer(alg: Algorithm) -> Signer {
    let rc = match alg {
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::ES384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Algorithm::EdDSA => &rcgen::PKCS_ED25519,
        _ => &rcgen::PKCS_RSA_SHA256,
    };
    let pair = rcgen::KeyPair::generate_for(rc).expect("key pair");
    let private = pair.serialize_pem();
    let key = match alg.family() {
        AlgorithmFamily::Ec => EncodingKey::from_ec_pem(private.as_bytes()),
        AlgorithmFamily::Ed => EncodingKey::from_ed_pem(private.as_bytes()),
        _ => EncodingKey::from_rsa_pem(private.as_bytes()),
    }
    .expect("encoding key");
    Signer {
        alg,
        key,
        public_pem: pair.public_key_pem(),
        public_raw: pair.public_key_raw().to_vec(),
    }
}

impl Signer {
    fn jwk(&self, kid: &str) -> Value {
        if self.alg == Algorithm::EdDSA {
            let x = URL_SAFE_NO_PAD.encode(&self.public_raw);
            return json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid});
        }
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("jwk");
        jwk.common.key_id = Some(kid.to_owned());
        serde_json::to_value(jwk).expect("jwk json")
    }

    fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }

    fn sign_as(&self, alg: Algorithm, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &self.key).expect("sign")
    }
}

fn hs(secret: &str, alg: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn claims() -> Value {
    json!({
        "sub": "web-app", "exp": now() + 3600, "iat": now(),
        "scope": "orders:read orders:write", "groups": ["beta"],
        "role": "admin", "level": 3, "jti": "t-1",
        "iss": "https://idp.test/", "aud": "api",
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    if let Some(map) = claims.as_object_mut() {
        map.remove(key);
    }
    claims
}

/// A gateway config (JSON is YAML) with one route per `(path, auth)` to the echo upstream.
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

async fn get(gw: &gatehouse::app::Gatehouse, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", base(gw)))
        .bearer_auth(token)
        .send()
        .await
        .expect("response")
}

/// The upstream's echo of the request headers.
async fn echoed(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), StatusCode::OK, "accepted");
    let body: Value = response.json().await.expect("echo");
    body["headers"].clone()
}

/// Checks the 401 of a refused token: the exact challenge, the JSON body, no token text.
async fn refused(response: reqwest::Response, reason: &str, token: &str) {
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"{reason}\""
        )
    );
    let body = error_body(response, 401, "unauthorized").await;
    assert_eq!(body["error"]["message"], format!("invalid token: {reason}"));
    let text = body.to_string();
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!text.contains(part), "the token leaks into the error body");
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write key");
    path.display().to_string()
}

#[tokio::test]
async fn every_algorithm_family_verifies_and_forwards_the_identity() {
    let up = upstream("api").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rs = signer(Algorithm::RS256);
    let es = signer(Algorithm::ES256);
    let es384 = signer(Algorithm::ES384);
    let ed = signer(Algorithm::EdDSA);
    let public = |name: &str, s: &Signer| write(&dir, name, &s.public_pem);
    let headers = json!({"role": "X-User-Role", "level": "X-Level"});
    let routes = [
        (
            "/hs/**",
            json!({"jwt": {"algorithms": ["HS256", "HS384", "HS512"], "secret": "s3cret", "claims_to_headers": headers}}),
        ),
        (
            "/rs/**",
            json!({"jwt": {"algorithms": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"], "public_key": public("rs.pem", &rs), "claims_to_headers": headers}}),
        ),
        (
            "/es/**",
            json!({"jwt": {"algorithms": ["ES256"], "public_key": public("es.pem", &es), "claims_to_headers": headers}}),
        ),
        (
            "/es384/**",
            json!({"jwt": {"algorithms": ["ES384"], "public_key": public("es384.pem", &es384)}}),
        ),
        (
            "/ed/**",
            json!({"jwt": {"algorithms": ["EdDSA"], "public_key": public("ed.pem", &ed), "claims_to_headers": headers}}),
        ),
    ];
    let gw = gateway(&config(&up.url(), &routes)).await;
    let claims = claims();
    let mut cases = vec![
        ("/hs/x", hs("s3cret", Algorithm::HS256, &claims)),
        ("/hs/x", hs("s3cret", Algorithm::HS384, &claims)),
        ("/hs/x", hs("s3cret", Algorithm::HS512, &claims)),
        ("/es/x", es.sign(None, &claims)),
        ("/ed/x", ed.sign(None, &claims)),
    ];
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        cases.push(("/rs/x", rs.sign_as(alg, &claims)));
    }
    for (path, token) in &cases {
        let h = echoed(get(&gw, path, token).await).await;
        assert_eq!(h["x-consumer-id"], "web-app", "{path}");
        assert_eq!(h["x-user-id"], "web-app");
        assert_eq!(h["x-auth-scopes"], "orders:read orders:write");
        assert_eq!(
            h["x-consumer-groups"], "beta,premium",
            "claim + consumer groups"
        );
        assert_eq!(h["x-user-role"], "admin");
        assert_eq!(h["x-level"], "3", "non-string claims as JSON");
    }
    let h = echoed(get(&gw, "/es384/x", &es384.sign(None, &claims)).await).await;
    assert_eq!(h["x-consumer-id"], "web-app");
    // A second use is served from the cache, with the same identity.
    let h = echoed(get(&gw, "/es/x", &cases[3].1).await).await;
    assert_eq!(h["x-auth-scopes"], "orders:read orders:write");
}

#[tokio::test]
async fn refused_tokens_get_the_exact_challenge() {
    let up = upstream("api").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rs = signer(Algorithm::RS256);
    let pem = write(&dir, "rs.pem", &rs.public_pem);
    let strict = json!({"algorithms": ["HS256"], "secret": "s3cret", "issuer": "https://idp.test/",
        "audience": ["api", "web"], "leeway": "30s"});
    let routes = [
        ("/hs/**", json!({"jwt": strict})),
        (
            "/rs/**",
            json!({"jwt": {"algorithms": ["RS256"], "public_key": pem}}),
        ),
        (
            "/both/**",
            json!({"jwt": {"algorithms": ["RS256", "HS256"], "public_key": pem, "secret": "other"}}),
        ),
    ];
    let gw = gateway(&config(&up.url(), &routes)).await;
    let c = claims();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());

    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&c)
    );
    refused(
        get(&gw, "/hs/x", &none).await,
        "algorithm not allowed",
        &none,
    )
    .await;
    let unlisted = hs("s3cret", Algorithm::HS384, &c);
    refused(
        get(&gw, "/hs/x", &unlisted).await,
        "algorithm not allowed",
        &unlisted,
    )
    .await;
    // HS256 signed with the RSA public key's PEM as the secret: the classic confusion.
    let confused = hs(&rs.public_pem, Algorithm::HS256, &c);
    refused(
        get(&gw, "/rs/x", &confused).await,
        "algorithm not allowed",
        &confused,
    )
    .await;
    refused(
        get(&gw, "/both/x", &confused).await,
        "bad signature",
        &confused,
    )
    .await;
    let ok = rs.sign(None, &c);
    echoed(get(&gw, "/both/x", &ok).await).await;
    echoed(get(&gw, "/both/x", &hs("other", Algorithm::HS256, &c)).await).await;

    let expired = hs(
        "s3cret",
        Algorithm::HS256,
        &with(c.clone(), "exp", json!(now() - 100)),
    );
    refused(get(&gw, "/hs/x", &expired).await, "expired", &expired).await;
    let in_leeway = hs(
        "s3cret",
        Algorithm::HS256,
        &with(c.clone(), "exp", json!(now() - 10)),
    );
    echoed(get(&gw, "/hs/x", &in_leeway).await).await;
    let early = hs(
        "s3cret",
        Algorithm::HS256,
        &with(c.clone(), "nbf", json!(now() + 100)),
    );
    refused(get(&gw, "/hs/x", &early).await, "not yet valid", &early).await;
    let nearly = hs(
        "s3cret",
        Algorithm::HS256,
        &with(c.clone(), "nbf", json!(now() + 10)),
    );
    echoed(get(&gw, "/hs/x", &nearly).await).await;
    let issuer = hs(
        "s3cret",
        Algorithm::HS256,
        &with(c.clone(), "iss", json!("https://evil/")),
    );
    refused(get(&gw, "/hs/x", &issuer).await, "wrong issuer", &issuer).await;
    let no_issuer = hs("s3cret", Algorithm::HS256, &without(c.clone(), "iss"));
    refused(
        get(&gw, "/hs/x", &no_issuer).await,
        "wrong issuer",
        &no_issuer,
    )
    .await;
    let audience = hs(
        "s3cret",
        Algorithm::HS256,
        &with(c.clone(), "aud", json!(["other"])),
    );
    refused(
        get(&gw, "/hs/x", &audience).await,
        "wrong audience",
        &audience,
    )
    .await;
    let listed = hs(
        "s3cret",
        Algorithm::HS256,
        &with(c.clone(), "aud", json!(["x", "web"])),
    );
    echoed(get(&gw, "/hs/x", &listed).await).await;
    let forged = hs("wrong", Algorithm::HS256, &c);
    refused(get(&gw, "/hs/x", &forged).await, "bad signature", &forged).await;
    // A valid signature over another payload.
    let good = hs("s3cret", Algorithm::HS256, &c);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = b64(&with(c.clone(), "role", json!("root")));
    let tampered = parts.join(".");
    refused(
        get(&gw, "/hs/x", &tampered).await,
        "bad signature",
        &tampered,
    )
    .await;
    for malformed in ["abc.def.ghi", "not-a-jwt", "a.b.c.d"] {
        refused(
            get(&gw, "/hs/x", malformed).await,
            "malformed token",
            malformed,
        )
        .await;
    }
    // Tokens without `exp` are refused (documented decision).
    let no_exp = hs("s3cret", Algorithm::HS256, &without(c.clone(), "exp"));
    refused(get(&gw, "/hs/x", &no_exp).await, "malformed token", &no_exp).await;

    // No token at all: the plain challenge.
    let response = client()
        .get(format!("{}/hs/x", base(&gw)))
        .send()
        .await
        .expect("response");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"gatehouse\""
    );
    error_body(response, 401, "unauthorized").await;
    assert_eq!(up.hits(), 5, "only accepted requests reach the upstream");
}

#[tokio::test]
async fn cookie_and_query_sources() {
    let up = upstream("api").await;
    let routes = [
        (
            "/default/**",
            json!({"jwt": {"algorithms": ["HS256"], "secret": "s3cret"}}),
        ),
        (
            "/custom/**",
            json!({"jwt": {"algorithms": ["HS256"], "secret": "s3cret", "from": ["query:jwt", "cookie:session"]}}),
        ),
    ];
    let gw = gateway(&config(&up.url(), &routes)).await;
    let token = hs("s3cret", Algorithm::HS256, &claims());
    let url = |p: &str| format!("{}{p}", base(&gw));

    let r = client()
        .get(url("/default/x"))
        .header("cookie", format!("a=1; access_token={token}"))
        .send()
        .await
        .expect("response");
    assert_eq!(echoed(r).await["x-consumer-id"], "web-app");
    let r = client()
        .get(url(&format!("/custom/x?jwt={token}")))
        .send()
        .await
        .expect("response");
    assert_eq!(echoed(r).await["x-consumer-id"], "web-app");
    let r = client()
        .get(url("/custom/x"))
        .header("cookie", format!("session={token}"))
        .send()
        .await
        .expect("response");
    assert_eq!(echoed(r).await["x-consumer-id"], "web-app");
    // The first present source wins: a bad query token is refused even with a good cookie.
    let r = client()
        .get(url("/custom/x?jwt=bad.to.ken"))
        .header("cookie", format!("session={token}"))
        .send()
        .await
        .expect("response");
    refused(r, "malformed token", "bad.to.ken").await;
    // The Authorization header is not a source of this route.
    let r = get(&gw, "/custom/x", &token).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forged_identity_headers_are_replaced_and_credentials_hidden() {
    let up = upstream("api").await;
    let routes = [
        (
            "/hide/**",
            json!({"hide_credentials": true, "jwt": {"algorithms": ["HS256"], "secret": "s3cret",
                "from": ["header:Authorization", "cookie:access_token"],
                "claims_to_headers": {"role": "X-User-Role"}}}),
        ),
        (
            "/keep/**",
            json!({"jwt": {"algorithms": ["HS256"], "secret": "s3cret", "claims_to_headers": {"role": "X-User-Role"}}}),
        ),
    ];
    let gw = gateway(&config(&up.url(), &routes)).await;
    let token = hs(
        "s3cret",
        Algorithm::HS256,
        &without(without(claims(), "role"), "groups"),
    );
    let forged = |path: &str| {
        client()
            .get(format!("{}{path}", base(&gw)))
            .bearer_auth(&token)
            .header("x-consumer-id", "admin")
            .header("x-user-id", "root")
            .header("x-auth-scopes", "everything")
            .header("x-consumer-groups", "admins")
            .header("x-user-role", "superuser")
            .header("cookie", "theme=dark")
    };
    let h = echoed(forged("/keep/x").send().await.expect("response")).await;
    assert_eq!(h["x-consumer-id"], "web-app");
    assert_eq!(h["x-user-id"], "web-app");
    assert_eq!(h["x-auth-scopes"], "orders:read orders:write");
    assert_eq!(h["x-consumer-groups"], "premium");
    assert!(
        h.get("x-user-role").is_none(),
        "no claim: the forged copy is removed"
    );
    assert_eq!(h["authorization"], format!("Bearer {token}"));

    let h = echoed(forged("/hide/x").send().await.expect("response")).await;
    assert!(h.get("authorization").is_none(), "hide_credentials");
    assert_eq!(h["cookie"], "theme=dark");
    assert_eq!(h["x-consumer-id"], "web-app");
    let r = client()
        .get(format!("{}/hide/x", base(&gw)))
        .header("cookie", format!("theme=dark; access_token={token}"))
        .send()
        .await
        .expect("response");
    assert_eq!(
        echoed(r).await["cookie"],
        "theme=dark",
        "cookie credential hidden"
    );
}

#[tokio::test]
async fn revoked_tokens_are_refused_even_when_cached() {
    let up = upstream("api").await;
    let routes = [(
        "/**",
        json!({"jwt": {"algorithms": ["HS256"], "secret": "s3cret", "revocable": true}}),
    )];
    let gw = gateway(&config(&up.url(), &routes)).await;
    let exp = now() + 3600;
    let one = hs(
        "s3cret",
        Algorithm::HS256,
        &with(claims(), "exp", json!(exp)),
    );
    let two = hs(
        "s3cret",
        Algorithm::HS256,
        &with(claims(), "jti", json!("t-2")),
    );
    echoed(get(&gw, "/x", &one).await).await;
    echoed(get(&gw, "/x", &two).await).await;
    gw.gateway().state().revocations.revoke("t-1", exp);
    refused(get(&gw, "/x", &one).await, "revoked", &one).await;
    echoed(get(&gw, "/x", &two).await).await;
}

/// A JWKS endpoint whose keys can change and which can go down; it counts fetches.
#[derive(Clone, Default)]
struct Idp {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

async fn jwks(State(idp): State<Idp>) -> axum::response::Response {
    idp.fetches.fetch_add(1, Ordering::SeqCst);
    // Slow enough that concurrent misses overlap.
    tokio::time::sleep(Duration::from_millis(50)).await;
    if idp.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let keys = idp.keys.lock().expect("keys").clone();
    axum::Json(json!({ "keys": keys })).into_response()
}

async fn idp() -> (Idp, String) {
    let idp = Idp::default();
    let app = axum::Router::new()
        .route("/jwks.json", axum::routing::get(jwks))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (idp, format!("http://{addr}/jwks.json"))
}

#[tokio::test]
async fn jwks_keys_rotate_refreshes_are_rate_limited_and_survive_an_outage() {
    let up = upstream("api").await;
    let (idp, url) = idp().await;
    let one = signer(Algorithm::RS256);
    let two = signer(Algorithm::ES256);
    idp.keys.lock().expect("keys").push(one.jwk("k1"));
    let routes = [(
        "/**",
        json!({"jwt": {"algorithms": ["RS256", "ES256"], "jwks_url": url}}),
    )];
    let gw = gateway(&config(&up.url(), &routes)).await;
    let c = claims();

    // Concurrent first requests share one fetch.
    let first: Vec<_> = (0..8)
        .map(|i| {
            let token = one.sign(Some("k1"), &with(c.clone(), "jti", json!(i)));
            let url = format!("{}/x", base(&gw));
            tokio::spawn(async move { client().get(url).bearer_auth(token).send().await })
        })
        .collect();
    for request in first {
        let response = request.await.expect("task").expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    // A new key appears; within 10 s of the last fetch its kid is unknown and not fetched.
    idp.keys.lock().expect("keys").push(two.jwk("k2"));
    let rotated = two.sign(Some("k2"), &c);
    for _ in 0..5 {
        refused(get(&gw, "/x", &rotated).await, "unknown key", &rotated).await;
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "rate-limited");

    tokio::time::sleep(Duration::from_millis(10_200)).await;
    echoed(get(&gw, "/x", &rotated).await).await;
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2, "refreshed once");

    // The IdP goes down: the cached keys keep serving (new tokens, so not from the token cache).
    idp.down.store(true, Ordering::SeqCst);
    echoed(
        get(
            &gw,
            "/x",
            &one.sign(Some("k1"), &with(c.clone(), "jti", json!("a"))),
        )
        .await,
    )
    .await;
    echoed(
        get(
            &gw,
            "/x",
            &two.sign(Some("k2"), &with(c.clone(), "jti", json!("b"))),
        )
        .await,
    )
    .await;
    let unknown = one.sign(Some("k9"), &c);
    refused(get(&gw, "/x", &unknown).await, "unknown key", &unknown).await;
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // A kid whose key is of another family is no match either.
    let wrong_family = one.sign(Some("k2"), &c);
    refused(
        get(&gw, "/x", &wrong_family).await,
        "unknown key",
        &wrong_family,
    )
    .await;
}

#[tokio::test]
async fn a_lone_jwks_key_serves_tokens_without_kid() {
    let up = upstream("api").await;
    let (idp, url) = idp().await;
    let key = signer(Algorithm::EdDSA);
    idp.keys.lock().expect("keys").push(key.jwk("only"));
    let routes = [(
        "/**",
        json!({"jwt": {"algorithms": ["EdDSA"], "jwks_url": url}}),
    )];
    let gw = gateway(&config(&up.url(), &routes)).await;
    echoed(get(&gw, "/x", &key.sign(None, &claims())).await).await;
}

#[tokio::test]
async fn no_keys_and_the_idp_down_is_503() {
    let up = upstream("api").await;
    let (idp, url) = idp().await;
    idp.down.store(true, Ordering::SeqCst);
    let routes = [
        (
            "/down/**",
            json!({"jwt": {"algorithms": ["RS256"], "jwks_url": url}}),
        ),
        (
            "/refused/**",
            json!({"jwt": {"algorithms": ["RS256"], "jwks_url": format!("http://{}/jwks", refusing_address())}}),
        ),
    ];
    let gw = gateway(&config(&up.url(), &routes)).await;
    let token = signer(Algorithm::RS256).sign(Some("k1"), &claims());
    for path in ["/down/x", "/refused/x"] {
        let response = get(&gw, path, &token).await;
        assert_eq!(response.headers()["retry-after"], "5");
        let body = error_body(response, 503, "service_unavailable").await;
        assert!(!body.to_string().contains("127.0.0.1"), "no IdP address");
    }
    assert_eq!(up.hits(), 0);
}

#[test]
fn key_files_are_checked_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ec = signer(Algorithm::ES256);
    let ec_pem = write(&dir, "ec.pem", &ec.public_pem);
    let junk = write(&dir, "junk.pem", "hello");
    let check = |jwt: Value| {
        let text = json!({
            "services": {"svc": {"url": "http://127.0.0.1:9"}},
            "routes": [{"path": "/", "service": "svc", "plugins": {"auth": {"jwt": jwt}}}],
        })
        .to_string();
        match gatehouse::check_str("gatehouse.yaml", &text) {
            Ok(summary) => summary,
            Err(errors) => errors.to_string(),
        }
    };
    let missing = check(json!({"algorithms": ["RS256"], "public_key": "/nonexistent/k.pem"}));
    assert!(
        missing.contains("`public_key` /nonexistent/k.pem"),
        "{missing}"
    );
    let junk = check(json!({"algorithms": ["RS256"], "public_key": junk}));
    assert!(junk.contains("is not a PEM file"), "{junk}");
    let mismatch = check(json!({"algorithms": ["RS256"], "public_key": ec_pem}));
    assert!(mismatch.contains("is an EC key"), "{mismatch}");
    let ok = check(json!({"algorithms": ["ES256"], "public_key": ec_pem}));
    assert!(ok.starts_with("ok"), "{ok}");
    let url = check(json!({"algorithms": ["ES256"], "jwks_url": "ftp://x"}));
    assert!(url.contains("`jwks_url` must be an http"), "{url}");
    assert!(missing.contains("gatehouse.yaml:1:"), "located: {missing}");
}

#[tokio::test]
async fn authorize_by_scopes_claims_groups_and_method() {
    let up = upstream("echo").await;
    let secret = "authorize-secret";
    let jwt = json!({"algorithms": ["HS256"], "secret": secret});
    let config = json!({
        "listen": "127.0.0.1:0",
        "observability": {"access_log": "off"},
        "services": {"svc": {"url": up.url()}},
        "consumers": {"web-app": {"groups": ["premium"]}},
        "routes": [
            {"path": "/orders", "methods": ["GET", "POST"], "service": "svc", "plugins": {
                "auth": {"jwt": jwt},
                "authorize": {
                    "scopes": ["orders:read"],
                    "claims": {"role": "admin"},
                    "methods": {"POST": {"scopes": ["orders:write"]}},
                },
            }},
            {"path": "/premium", "service": "svc", "plugins": {
                "auth": {"jwt": jwt, "optional": true},
                "authorize": {"groups": ["premium"], "any_scope": ["a", "orders:read"]},
            }},
        ],
    });
    let gw = gateway(&config.to_string()).await;
    let token = |claims: &Value| hs(secret, Algorithm::HS256, claims);
    let reader = with(claims(), "scope", json!("orders:read"));

    let send = |method: reqwest::Method, path: &str, token: Option<String>| {
        let mut request = client().request(method, format!("{}{path}", base(&gw)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    // GET needs orders:read and role=admin; POST also orders:write.
    let response = send(reqwest::Method::GET, "/orders", Some(token(&reader)))
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let response = send(reqwest::Method::POST, "/orders", Some(token(&reader)))
        .await
        .expect("send");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"orders:write\""
    );
    error_body(response, 403, "forbidden").await;
    let response = send(reqwest::Method::POST, "/orders", Some(token(&claims())))
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    // The scope claim as an array, and `scp` when `scope` is absent.
    let listed = with(without(claims(), "scope"), "scp", json!(["orders:read"]));
    let response = send(reqwest::Method::GET, "/orders", Some(token(&listed)))
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let user = with(claims(), "role", json!("user"));
    let response = send(reqwest::Method::GET, "/orders", Some(token(&user)))
        .await
        .expect("send");
    error_body(response, 403, "forbidden").await;
    let response = send(reqwest::Method::GET, "/orders", None)
        .await
        .expect("send");
    error_body(response, 401, "unauthorized").await;

    // Groups come from the configured consumer named by `sub`; anonymous on an optional
    // route is still 401 when authorize asks for something.
    let response = send(reqwest::Method::GET, "/premium", Some(token(&reader)))
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let stranger = with(claims(), "sub", json!("someone-else"));
    let response = send(reqwest::Method::GET, "/premium", Some(token(&stranger)))
        .await
        .expect("send");
    error_body(response, 403, "forbidden").await;
    let response = send(reqwest::Method::GET, "/premium", None)
        .await
        .expect("send");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"gatehouse\""
    );
    error_body(response, 401, "unauthorized").await;
    assert_eq!(up.hits(), 4);
}
