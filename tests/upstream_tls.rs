//! Upstream protocols (SPEC §2.2 `protocol`, `tls`): `https://` targets verified against a
//! CA file, `verify: false`, `sni`, HTTP/2 chosen by ALPN, h2c; CA files read at compile time
//! with located errors, and re-read by a reload.

#[path = "common/certs.rs"]
mod certs;
mod common;
#[path = "common/faulty.rs"]
mod faulty;

use certs::Ca;
use common::{base, client, error_body, gateway, get};
use faulty::{Faulty, Mode, faulty, faulty_tls, self_signed};
use serde_json::Value;

const BOTH: [&[u8]; 2] = [b"h2", b"http/1.1"];
const HTTP1: [&[u8]; 1] = [b"http/1.1"];

async fn get_json(gw: &gatehouse::app::Gatehouse, path: &str) -> Value {
    get_json_with(&client(), gw, path).await
}

/// `GET` on one client connection, so the same gateway worker (and pool) serves each call.
async fn get_json_with(
    http: &reqwest::Client,
    gw: &gatehouse::app::Gatehouse,
    path: &str,
) -> Value {
    let response = http
        .get(format!("{}{path}", base(gw)))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "status");
    response.json().await.expect("json")
}

/// A gateway with the service `svc` at `url` with `extra` service lines, behind `/**`.
async fn one_service(url: &str, extra: &str) -> gatehouse::app::Gatehouse {
    gateway(&format!(
        "listen: 127.0.0.1:0\nservices:\n  svc:\n    url: \"{url}\"\n{extra}routes:\n  - {{ path: /**, service: svc }}\n"
    ))
    .await
}

/// An https upstream `name` on `localhost`, its certificate from a fresh CA, offering `alpn`;
/// and a gateway whose service `svc` trusts that CA (`tls.ca`, the file in the returned
/// directory) with the `extra` service lines.
async fn trusted_localhost(
    name: &'static str,
    alpn: &[&[u8]],
    extra: &str,
) -> (tempfile::TempDir, Faulty, gatehouse::app::Gatehouse) {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("Upstream CA");
    let leaf = ca.server(&["localhost"]);
    let upstream = faulty_tls(name, Mode::Echo, &leaf.cert_pem, &leaf.key_pem, alpn).await;
    let ca_path = ca.write(dir.path(), "ca");
    let url = format!("https://localhost:{}", upstream.addr.port());
    let gw = one_service(
        &url,
        &format!("    tls: {{ ca: \"{}\" }}\n{extra}", ca_path.display()),
    )
    .await;
    (dir, upstream, gw)
}

#[tokio::test]
async fn https_target_verified_by_the_ca_file() {
    let (_dir, upstream, gw) = trusted_localhost("secure", &HTTP1, "").await;
    let http = client();
    for _ in 0..10 {
        let echo = get_json_with(&http, &gw, "/a").await;
        assert_eq!(echo["upstream"], "secure");
        assert_eq!(
            echo["version"], "HTTP/1.1",
            "the upstream offered only http/1.1"
        );
        assert_eq!(
            echo["sni"], "localhost",
            "the URL's host is the server name"
        );
        assert_eq!(
            echo["host"],
            "localhost:".to_owned() + &upstream.addr.port().to_string()
        );
    }
    // `localhost` is a DNS name: until discovery's first resolution lands, the target is the
    // name (one pool); then it is the address (another pool). So at most two connections.
    assert!(
        upstream.connections() <= 2,
        "the TLS connection is kept alive and reused: {} connections",
        upstream.connections()
    );
}

#[tokio::test]
async fn http2_is_chosen_by_alpn() {
    let (_dir, upstream, gw) = trusted_localhost("h2", &BOTH, "").await;
    let http = client();
    for path in ["/one", "/two?x=1"] {
        let echo = get_json_with(&http, &gw, path).await;
        assert_eq!(echo["version"], "HTTP/2.0", "h2 by ALPN");
        assert_eq!(echo["path"], path.split('?').next().expect("path"));
    }
    // A POST with a body goes over the same HTTP/2 connection.
    let response = http
        .post(format!("{}/p", base(&gw)))
        .body(vec![1u8; 70_000])
        .send()
        .await
        .expect("send");
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["body_len"], 70_000);
    assert_eq!(echo["version"], "HTTP/2.0");
    // At most one per pool: the name's until discovery first resolves it, then the address's.
    assert!(
        upstream.connections() <= 2,
        "one multiplexed connection per pool: {}",
        upstream.connections()
    );
}

#[tokio::test]
async fn health_checks_probe_https_targets_over_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("Upstream CA");
    let leaf = ca.server(&["localhost"]);
    let good = faulty_tls("good", Mode::Echo, &leaf.cert_pem, &leaf.key_pem, &BOTH).await;
    let bad = faulty_tls(
        "bad",
        Mode::Status(503),
        &leaf.cert_pem,
        &leaf.key_pem,
        &HTTP1,
    )
    .await;
    let ca_path = ca.write(dir.path(), "ca");
    let gw = gateway(&format!(
        "listen: 127.0.0.1:0
services:
  svc:
    targets:
      - url: https://localhost:{}
      - url: https://localhost:{}
    tls: {{ ca: \"{}\" }}
    health: {{ path: /health, interval: 100ms, timeout: 1s, unhealthy_after: 1 }}
routes:
  - {{ path: /**, service: svc }}
",
        good.addr.port(),
        bad.addr.port(),
        ca_path.display()
    ))
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // Probes over TLS find the good target healthy (h2 by ALPN) and the bad one failing; a
    // probe in plain text would fail both.
    for _ in 0..6 {
        let echo = get_json(&gw, "/a").await;
        assert_eq!(echo["upstream"], "good");
    }
}

#[tokio::test]
async fn verify_false_accepts_a_self_signed_certificate() {
    let (cert, key) = self_signed(&["whatever.invalid"]);
    let upstream = faulty_tls("self", Mode::Echo, &cert, &key, &BOTH).await;
    let gw = one_service(&upstream.url(), "    tls: { verify: false }\n").await;
    let echo = get_json(&gw, "/a").await;
    assert_eq!(echo["upstream"], "self");

    // Verified (against the platform's roots), the same certificate is refused.
    let gw = one_service(&upstream.url(), "").await;
    let response = get(&gw, "/a").await;
    error_body(response, 502, "bad_gateway").await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_502_without_detail() {
    let dir = tempfile::tempdir().expect("dir");
    let real = Ca::new("Real CA");
    let other = Ca::new("Other CA");
    let leaf = real.server(&["localhost"]);
    let upstream = faulty_tls("secure", Mode::Echo, &leaf.cert_pem, &leaf.key_pem, &BOTH).await;
    let other_path = other.write(dir.path(), "other");
    let url = format!("https://localhost:{}", upstream.addr.port());
    let gw = one_service(
        &url,
        &format!("    tls: {{ ca: \"{}\" }}\n", other_path.display()),
    )
    .await;
    let response = get(&gw, "/a").await;
    let body = error_body(response, 502, "bad_gateway").await;
    let text = body.to_string();
    for leak in ["UnknownIssuer", "certificate", "localhost", "rustls"] {
        assert!(!text.contains(leak), "error body leaks {leak}: {text}");
    }
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn sni_overrides_the_server_name_sent_and_verified() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("Upstream CA");
    let leaf = ca.server(&["users.internal"]);
    let upstream = faulty_tls("users", Mode::Echo, &leaf.cert_pem, &leaf.key_pem, &BOTH).await;
    let ca_path = ca.write(dir.path(), "ca");
    // The URL names an IP address the certificate does not list.
    let url = upstream.url();
    let gw = one_service(
        &url,
        &format!(
            "    tls: {{ ca: \"{}\", sni: users.internal }}\n",
            ca_path.display()
        ),
    )
    .await;
    let echo = get_json(&gw, "/a").await;
    assert_eq!(echo["sni"], "users.internal");

    // Without `sni` the IP address is verified, and the certificate does not name it.
    let gw = one_service(
        &url,
        &format!("    tls: {{ ca: \"{}\" }}\n", ca_path.display()),
    )
    .await;
    let response = get(&gw, "/a").await;
    error_body(response, 502, "bad_gateway").await;
}

#[tokio::test]
async fn h2c_targets_speak_http2_in_cleartext() {
    let upstream = faulty("h2c", Mode::Echo).await;
    let gw = one_service(&upstream.url(), "    protocol: h2c\n").await;
    for _ in 0..3 {
        let echo = get_json(&gw, "/a?b=c").await;
        assert_eq!(echo["version"], "HTTP/2.0");
        assert_eq!(echo["path"], "/a");
    }
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test]
async fn retries_work_over_https_and_h2() {
    let retries = "    retries: { attempts: 2, backoff: 1ms, methods: [POST] }\n";
    let (_dir, upstream, gw) = trusted_localhost("h2", &BOTH, retries).await;
    upstream.script(&[Mode::Status(503), Mode::Status(502)]);
    let response = client()
        .post(format!("{}/p", base(&gw)))
        .body("hello")
        .send()
        .await
        .expect("send");
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["body_len"], 5);
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test]
async fn a_reload_re_reads_the_ca_file() {
    let dir = tempfile::tempdir().expect("dir");
    let real = Ca::new("Real CA");
    let leaf = real.server(&["localhost"]);
    let upstream = faulty_tls("secure", Mode::Echo, &leaf.cert_pem, &leaf.key_pem, &BOTH).await;
    // The CA file first holds the wrong CA.
    let ca_path = Ca::new("Other CA").write(dir.path(), "ca");
    let yaml = format!(
        "listen: 127.0.0.1:0\nobservability: {{ access_log: off }}\nservices:\n  svc:\n    url: \"https://localhost:{}\"\n    tls: {{ ca: \"{}\" }}\nroutes:\n  - {{ path: /**, service: svc }}\n",
        upstream.addr.port(),
        ca_path.display()
    );
    let gw = gateway(&yaml).await;
    let response = get(&gw, "/a").await;
    assert_eq!(response.status(), 502);

    real.write(dir.path(), "ca");
    let config = gatehouse::config::load_str("test.yaml", &yaml).expect("config");
    gw.apply(&config).expect("reload");
    let echo = get_json(&gw, "/a").await;
    assert_eq!(echo["upstream"], "secure");
}

fn check(text: &str) -> String {
    match gatehouse::check_str("gatehouse.yaml", text) {
        Ok(summary) => summary,
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn ca_file_errors_point_at_the_ca_key() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let yaml = format!(
        "services:\n  a:\n    url: https://a.internal\n    tls:\n      ca: \"{}\"\n  b:\n    url: https://b.internal\n    tls: {{ verify: true, ca: \"{}\" }}\nroutes:\n  - {{ path: /a, service: a }}\n  - {{ path: /b, service: b }}\n",
        missing.display(),
        garbage.display()
    );
    let errors = check(&yaml);
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 2, "{errors}");
    assert!(
        lines[0].starts_with("gatehouse.yaml:5:11: cannot read the certificate file"),
        "{errors}"
    );
    assert!(
        lines[1].starts_with("gatehouse.yaml:8:30: no PEM certificate in"),
        "{errors}"
    );
}

#[test]
fn tls_and_protocol_are_checked_against_the_targets() {
    let errors = check(
        "services:\n  a:\n    url: http://a.internal\n    tls: { verify: false }\n  b:\n    url: https://b.internal\n    protocol: h2c\n  c:\n    url: https://c.internal\n    tls: { sni: \"not a name\" }\n    retries: { attempts: 11 }\nroutes:\n  - { path: /a, service: a }\n  - { path: /b, service: b }\n  - { path: /c, service: c }\n",
    );
    assert!(
        errors.contains("gatehouse.yaml:4:10: `tls` applies to https:// targets"),
        "{errors}"
    );
    assert!(
        errors.contains("gatehouse.yaml:6:10: `protocol: h2c` is HTTP/2 in cleartext"),
        "{errors}"
    );
    assert!(
        errors.contains("gatehouse.yaml:10:17: `sni` `not a name` is not a valid server name"),
        "{errors}"
    );
    assert!(
        errors.contains("gatehouse.yaml:11:14: `retries.attempts` is at most 10"),
        "{errors}"
    );
}
