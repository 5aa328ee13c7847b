//! TLS termination (SPEC §2.1 `tls`): HTTPS listeners with HTTP/1.1 and HTTP/2 by ALPN,
//! certificates by SNI, client certificates (mTLS) feeding `auth.mtls`, `redirect_http`,
//! certificates re-read on reload, HSTS only on TLS, the handshake timeout, session
//! resumption, and located errors for bad certificate files. Every certificate is made at run
//! time.

#[path = "common/certs.rs"]
mod certs;
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certs::{Ca, Leaf};
use common::{Upstream, upstream};
use gatehouse::app::Gatehouse;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A temp dir holding a CA and the server certificate `api.test` (+ `www.api.test`).
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    server: Leaf,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Ca::new("Gatehouse Test CA");
        let server = ca.server(&["api.test", "www.api.test"]);
        server.write(dir.path(), "server");
        Self { dir, ca, server }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `certificates:` entries for the named files written into the dir.
    fn certificates(&self, names: &[&str]) -> String {
        names
            .iter()
            .map(|n| {
                format!(
                    "    - {{ cert: \"{}\", key: \"{}\" }}\n",
                    self.path(&format!("{n}.pem")),
                    self.path(&format!("{n}.key"))
                )
            })
            .collect()
    }
}

/// The gateway with a TLS listener serving `certs`, extra `tls` keys, and a catch-all route
/// (plus `/private/**` with `auth: {mtls: true}` when `client_ca` is among the extras).
async fn tls_gateway(pki: &Pki, certs: &[&str], extra_tls: &str, up: &Upstream) -> Gatehouse {
    let mtls_route = if extra_tls.contains("client_ca") {
        "  - path: /private/**\n    service: svc\n    plugins:\n      auth: { mtls: true }\n"
    } else {
        ""
    };
    common::gateway(&format!(
        "listen: 127.0.0.1:0\ntls:\n  listen: 127.0.0.1:0\n  certificates:\n{}{extra_tls}\
         services:\n  svc: {{ url: \"{}\" }}\nconsumers:\n  svc-a: {{}}\n\
         routes:\n  - {{ path: /**, service: svc }}\n{mtls_route}",
        pki.certificates(certs),
        up.url()
    ))
    .await
}

/// A client trusting the test CA that resolves `api.test` (and friends) to `addr`.
fn https_client(pki: &Pki, addr: SocketAddr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(pki.ca.root())
        .redirect(reqwest::redirect::Policy::none())
        .resolve("api.test", addr)
        .resolve("www.api.test", addr)
}

fn url(gateway: &Gatehouse, path: &str) -> String {
    format!("https://api.test:{}{path}", gateway.tls_listeners[0].port())
}

#[tokio::test]
async fn https_serves_http1_and_http2_by_alpn() {
    let up = upstream("a").await;
    let pki = Pki::new();
    let gw = tls_gateway(&pki, &["server"], "", &up).await;
    assert_eq!(gw.tls_listeners.len(), 1);

    let h1 = https_client(&pki, gw.tls_listeners[0])
        .http1_only()
        .build()
        .expect("client");
    let response = h1.get(url(&gw, "/x?y=1")).send().await.expect("https");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["path"], "/x");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");

    // The default client offers h2 and http/1.1 by ALPN; the gateway picks h2.
    let h2 = https_client(&pki, gw.tls_listeners[0])
        .build()
        .expect("client");
    let response = h2.get(url(&gw, "/y")).send().await.expect("https h2");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);

    // The plain listener still serves plain HTTP.
    assert_eq!(common::get(&gw, "/z").await.status(), 200);
}

/// The DER of the certificate the gateway presents for `sni` (`None`: connect by IP, so
/// no SNI is sent), verification off so that any certificate can be seen.
async fn presented(addr: SocketAddr, sni: Option<&str>) -> Vec<u8> {
    let mut builder = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .tls_info(true);
    let target = match sni {
        Some(name) => {
            builder = builder.resolve(name, addr);
            format!("https://{name}:{}/", addr.port())
        }
        None => format!("https://{addr}/"),
    };
    let response = builder
        .build()
        .expect("client")
        .get(target)
        .send()
        .await
        .expect("https");
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("peer certificate")
        .to_vec()
}

#[tokio::test]
async fn certificates_are_picked_by_sni_with_the_first_as_default() {
    let up = upstream("a").await;
    let pki = Pki::new();
    let wild = pki.ca.server(&["*.wild.test"]);
    wild.write(pki.dir.path(), "wild");
    let cn_only = pki.ca.server_cn_only("cn-only.test");
    cn_only.write(pki.dir.path(), "cn");
    let gw = tls_gateway(&pki, &["server", "wild", "cn"], "", &up).await;
    let addr = gw.tls_listeners[0];

    assert_eq!(presented(addr, Some("api.test")).await, pki.server.der);
    assert_eq!(presented(addr, Some("www.api.test")).await, pki.server.der);
    assert_eq!(presented(addr, Some("x.wild.test")).await, wild.der);
    assert_eq!(presented(addr, Some("CN-only.test")).await, cn_only.der);
    // A wildcard matches one label only; unknown names and no SNI get the default.
    assert_eq!(presented(addr, Some("a.b.wild.test")).await, pki.server.der);
    assert_eq!(presented(addr, Some("unknown.test")).await, pki.server.der);
    assert_eq!(presented(addr, None).await, pki.server.der);
}

/// `client_ca` set to a CA that signs `svc-a` and `stranger`; returns the gateway, the
/// client CA, and the upstream.
async fn mtls_gateway(pki: &Pki, client_auth: &str) -> (Gatehouse, Ca, Upstream) {
    let up = upstream("a").await;
    let clients = Ca::new("Clients CA");
    let ca_path = clients.write(pki.dir.path(), "clients-ca");
    let extra = format!(
        "  client_ca: \"{}\"\n  client_auth: {client_auth}\n",
        ca_path.display()
    );
    let gw = tls_gateway(pki, &["server"], &extra, &up).await;
    (gw, clients, up)
}

async fn get_with(
    pki: &Pki,
    gw: &Gatehouse,
    identity: Option<&Leaf>,
    path: &str,
) -> reqwest::Result<reqwest::Response> {
    let mut builder = https_client(pki, gw.tls_listeners[0]);
    if let Some(leaf) = identity {
        builder = builder.identity(leaf.identity());
    }
    builder
        .build()
        .expect("client")
        .get(url(gw, path))
        .send()
        .await
}

#[tokio::test]
async fn required_client_certificates_are_verified_and_name_the_consumer() {
    let pki = Pki::new();
    let (gw, clients, _up) = mtls_gateway(&pki, "required").await;

    let svc_a = clients.client("svc-a");
    let response = get_with(&pki, &gw, Some(&svc_a), "/private/x")
        .await
        .expect("a valid client certificate is accepted");
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["headers"]["x-consumer-id"], "svc-a");

    let stranger = clients.client("stranger");
    let response = get_with(&pki, &gw, Some(&stranger), "/private/x")
        .await
        .expect("verified, but no such consumer");
    assert_eq!(response.status(), 401);
    // Routes without `auth` serve any verified client.
    let response = get_with(&pki, &gw, Some(&stranger), "/public")
        .await
        .expect("ok");
    assert_eq!(response.status(), 200);

    assert!(
        get_with(&pki, &gw, None, "/public").await.is_err(),
        "no client certificate: the handshake fails"
    );
    let other_ca = Ca::new("Another CA").client("svc-a");
    assert!(
        get_with(&pki, &gw, Some(&other_ca), "/public")
            .await
            .is_err(),
        "a certificate from another CA fails the handshake"
    );
}

#[tokio::test]
async fn optional_client_certificates() {
    let pki = Pki::new();
    let (gw, clients, _up) = mtls_gateway(&pki, "optional").await;

    let response = get_with(&pki, &gw, None, "/public")
        .await
        .expect("no cert is fine");
    assert_eq!(response.status(), 200);
    let response = get_with(&pki, &gw, None, "/private/x")
        .await
        .expect("answered");
    assert_eq!(response.status(), 401, "auth is not optional");

    let svc_a = clients.client("svc-a");
    let response = get_with(&pki, &gw, Some(&svc_a), "/private/x")
        .await
        .expect("ok");
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["headers"]["x-consumer-id"], "svc-a");

    let other_ca = Ca::new("Another CA").client("svc-a");
    assert!(
        get_with(&pki, &gw, Some(&other_ca), "/public")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn redirect_http_answers_308_to_the_https_listener() {
    let up = upstream("a").await;
    let pki = Pki::new();
    let gw = tls_gateway(&pki, &["server"], "  redirect_http: true\n", &up).await;
    let plain = gw.listeners[0];
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("api.test", plain)
        .build()
        .expect("client");
    let response = client
        .post(format!("http://api.test:{}/a/b?x=1&y=2", plain.port()))
        .body("ignored")
        .send()
        .await
        .expect("plain");
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!(
            "https://api.test:{}/a/b?x=1&y=2",
            gw.tls_listeners[0].port()
        )
        .as_str()
    );
    assert_eq!(up.hits(), 0, "nothing reaches the upstream over plain HTTP");

    // HTTPS is served as usual.
    let https = https_client(&pki, gw.tls_listeners[0])
        .build()
        .expect("client");
    let response = https.get(url(&gw, "/a")).send().await.expect("https");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn hsts_only_on_https() {
    let up = upstream("a").await;
    let pki = Pki::new();
    let gw = common::gateway(&format!(
        "listen: 127.0.0.1:0\ntls:\n  listen: 127.0.0.1:0\n  certificates:\n{}\
         services:\n  svc: {{ url: \"{}\" }}\nplugins:\n  security_headers: true\n\
         routes:\n  - {{ path: /**, service: svc }}\n",
        pki.certificates(&["server"]),
        up.url()
    ))
    .await;
    let https = https_client(&pki, gw.tls_listeners[0])
        .build()
        .expect("client");
    let response = https.get(url(&gw, "/x")).send().await.expect("https");
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let response = common::get(&gw, "/x").await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn a_reload_serves_new_certificates_to_new_connections() {
    let up = upstream("a").await;
    let pki = Pki::new();
    let config_path = pki.dir.path().join("gatehouse.yaml");
    // Relative paths: from the config file's directory.
    std::fs::write(
        &config_path,
        format!(
            "listen: 127.0.0.1:0\nobservability: {{ access_log: off }}\ntls:\n  listen: 127.0.0.1:0\n  \
             certificates:\n    - {{ cert: server.pem, key: server.key }}\n\
             services:\n  svc: {{ url: \"{}\" }}\nroutes:\n  - {{ path: /**, service: svc }}\n",
            up.url()
        ),
    )
    .expect("write config");
    let gw = Gatehouse::start_file(&config_path).await.expect("starts");
    let addr = gw.tls_listeners[0];
    assert_eq!(presented(addr, Some("api.test")).await, pki.server.der);

    let renewed = pki.ca.server(&["api.test"]);
    renewed.write(pki.dir.path(), "server");
    assert_eq!(
        presented(addr, Some("api.test")).await,
        pki.server.der,
        "nothing changes before the reload"
    );
    gw.reload().expect("reload");
    assert_eq!(presented(addr, Some("api.test")).await, renewed.der);

    // A broken key is refused by the reload and the running certificate keeps serving.
    std::fs::write(pki.dir.path().join("server.key"), "not a key").expect("write");
    let errors = gw.reload().expect_err("a bad key is refused").to_string();
    assert!(errors.contains("no PEM private key"), "{errors}");
    assert_eq!(presented(addr, Some("api.test")).await, renewed.der);
}

#[tokio::test]
async fn a_stalled_handshake_is_cut_at_the_header_timeout() {
    let up = upstream("a").await;
    let pki = Pki::new();
    let gw = common::gateway(&format!(
        "listen: 127.0.0.1:0\nlimits: {{ header_timeout: 300ms }}\ntls:\n  listen: 127.0.0.1:0\n  \
         certificates:\n{}services:\n  svc: {{ url: \"{}\" }}\nroutes:\n  - {{ path: /**, service: svc }}\n",
        pki.certificates(&["server"]),
        up.url()
    ))
    .await;
    let mut stream = tokio::net::TcpStream::connect(gw.tls_listeners[0])
        .await
        .expect("connect");
    stream.write_all(&[0x16, 0x03, 0x01]).await.expect("write"); // half a record header
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the gateway closes the connection: {read:?}"
    );
}

/// A rustls client trusting the test CA; it keeps sessions for resumption.
fn rustls_client(pki: &Pki) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from(pem_der(&pki.ca.pem));
    roots.add(der).expect("root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .to_vec()
}

/// One HTTP/1.1 request on a new TLS connection; returns how the handshake went.
async fn one_request(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> rustls::HandshakeKind {
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("api.test").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    tls.get_ref().1.handshake_kind().expect("handshake done")
}

#[tokio::test]
async fn tls13_sessions_resume() {
    let up = upstream("a").await;
    let pki = Pki::new();
    let gw = tls_gateway(&pki, &["server"], "", &up).await;
    let config = rustls_client(&pki);
    let addr = gw.tls_listeners[0];
    assert_eq!(
        one_request(&config, addr).await,
        rustls::HandshakeKind::Full
    );
    assert_eq!(
        one_request(&config, addr).await,
        rustls::HandshakeKind::Resumed
    );
}

/// The errors of compiling `yaml` (as `check` does), one per line.
fn compile_errors(yaml: &str) -> String {
    let config = gatehouse::config::load_str("gatehouse.yaml", yaml)
        .unwrap_or_else(|errors| panic!("loads:\n{errors}"));
    let state = gatehouse::runtime::State::dry_run();
    match gatehouse::runtime::compile(&config, &state) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(errors) => errors.to_string(),
    }
}

fn tls_yaml(certificates: &str) -> String {
    format!(
        "tls:\n  listen: 127.0.0.1:8443\n  certificates:\n{certificates}routes:\n  - path: /\n    respond: {{ status: 200 }}\n"
    )
}

#[test]
fn certificate_errors_point_at_the_file_value() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let text = compile_errors(&tls_yaml(&format!(
        "    - cert: \"{missing}\"\n      key: \"{}\"\n",
        pki.path("server.key")
    )));
    assert!(
        text.starts_with(&format!(
            "gatehouse.yaml:4:13: cannot read the certificate file `{missing}`:"
        )),
        "{text}"
    );

    // A certificate file without a certificate, and a key file without a key.
    let text = compile_errors(&tls_yaml(&format!(
        "    - cert: \"{}\"\n      key: \"{}\"\n",
        pki.path("server.key"),
        pki.path("server.pem")
    )));
    assert!(
        text.contains("gatehouse.yaml:4:13: no PEM certificate in"),
        "{text}"
    );
    assert!(
        text.contains("gatehouse.yaml:5:12: no PEM private key in"),
        "{text}"
    );

    // A key that belongs to another certificate.
    let other = pki.ca.server(&["api.test"]);
    other.write(pki.dir.path(), "other");
    let text = compile_errors(&tls_yaml(&format!(
        "    - cert: \"{}\"\n      key: \"{}\"\n",
        pki.path("server.pem"),
        pki.path("other.key")
    )));
    assert!(
        text.contains("gatehouse.yaml:5:12: the private key") && text.contains("does not match"),
        "{text}"
    );
}

#[test]
fn a_missing_client_ca_is_located() {
    let pki = Pki::new();
    let yaml = tls_yaml(&pki.certificates(&["server"])).replace(
        "routes:",
        &format!("  client_ca: \"{}\"\nroutes:", pki.path("nope.pem")),
    );
    let text = compile_errors(&yaml);
    assert!(
        text.starts_with("gatehouse.yaml:5:14: cannot read the certificate file"),
        "{text}"
    );
    assert!(gatehouse::check_str("gatehouse.yaml", &yaml).is_err());
    let _ = Path::new(&pki.path("x"));
}

#[test]
fn required_client_auth_needs_a_client_ca() {
    let yaml = tls_yaml("    - { cert: a.pem, key: a.key }\n")
        .replace("routes:", "  client_auth: required\nroutes:");
    let errors = gatehouse::config::load_str("gatehouse.yaml", &yaml)
        .expect_err("refused")
        .to_string();
    assert_eq!(
        errors,
        "gatehouse.yaml:2:3: `client_auth: required` needs `client_ca` (the CAs to verify clients against)"
    );
}
