//! The command line (SPEC §1), run as a real process: exit codes, `check`, `hash-key`,
//! `token`, `run` with SIGTERM draining and SIGHUP reloads.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{client, upstream};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn write_config(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_reports_ok_with_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        &dir,
        "ok.yaml",
        "listen: 127.0.0.1:0\nservices:\n  a: { url: http://127.0.0.1:9 }\n  b: { url: http://127.0.0.1:10 }\nroutes:\n  - { path: /a/**, service: a }\n  - { path: /b/**, service: b }\n  - { path: /ping, respond: { status: 200, body: pong } }\n",
    );
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok: 3 routes, 2 services"
    );
}

#[test]
fn check_prints_every_error_with_location_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        &dir,
        "bad.yaml",
        "listen: 127.0.0.1:0\nservices:\n  users: { url: http://127.0.0.1:9 }\nroutes:\n  - path: /a\n    service: user\n  - path: /a\n    service: users\n    rewrite: /x/{nope}\n",
    );
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:6:14: unknown service `user`")),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `users`?"), "{stderr}");
}

#[test]
fn check_reads_gatehouse_config_env_var() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        &dir,
        "env.yaml",
        "routes:\n  - { path: /, respond: { status: 204 } }\n",
    );
    let out = Command::new(BIN)
        .arg("check")
        .env("GATEHOUSE_CONFIG", &path)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_config_file_is_exit_1() {
    let out = Command::new(BIN)
        .args(["check", "-c", "/nonexistent/gatehouse.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gatehouse.yaml"));
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(BIN).arg("frobnicate").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).arg("token").output().expect("run");
    assert_eq!(out.status.code(), Some(2), "--secret is required");
}

#[test]
fn hash_key_prints_the_sha256_form() {
    let out = Command::new(BIN)
        .args(["hash-key", "test"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
}

#[test]
fn token_prints_a_verifiable_jwt() {
    let out = Command::new(BIN)
        .args([
            "token",
            "--secret",
            "s3cret",
            "--sub",
            "alice",
            "--scope",
            "a b",
            "--claim",
            "role=admin",
            "--ttl",
            "2h",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .expect("valid token");
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims["scope"], "a b");
    assert_eq!(data.claims["role"], "admin");
    let ttl = data.claims["exp"].as_u64().unwrap_or(0) - data.claims["iat"].as_u64().unwrap_or(0);
    assert_eq!(ttl, 7200);

    let out = Command::new(BIN)
        .args(["token", "--secret", "s", "--ttl", "soon"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "bad --ttl is a usage error");
}

/// Starts `gatehouse run` and returns it with the address of its listener.
fn spawn_run(path: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(["run", "-c"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("gateway logs a listener line")
            .expect("line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn run_drains_in_flight_requests_on_sigterm() {
    let slow = upstream("slow").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        &dir,
        "run.yaml",
        &format!(
            "listen: 127.0.0.1:0\nobservability: {{ access_log: off }}\nservices:\n  slow: {{ url: \"{}\" }}\nroutes:\n  - {{ path: /**, service: slow }}\n",
            slow.url()
        ),
    );
    let (mut child, addr) = spawn_run(&path);
    let url = format!("http://{addr}/slow/800");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, "TERM");
    let response = in_flight
        .await
        .expect("join")
        .expect("completed during drain");
    assert_eq!(response.status(), 200);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sighup_reloads_and_a_bad_config_keeps_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        &dir,
        "reload.yaml",
        "listen: 127.0.0.1:0\nroutes:\n  - { path: /v, respond: { status: 200, body: one } }\n",
    );
    let (mut child, addr) = spawn_run(&path);
    let url = format!("http://{addr}/v");
    assert_eq!(
        client()
            .get(&url)
            .send()
            .await
            .expect("ok")
            .text()
            .await
            .expect("t"),
        "one"
    );

    std::fs::write(
        &path,
        "routes:\n  - { path: /v, respond: { status: 200, body: two } }\n",
    )
    .expect("write");
    signal(&child, "HUP");
    let mut body = String::new();
    for _ in 0..50 {
        body = client()
            .get(&url)
            .send()
            .await
            .expect("ok")
            .text()
            .await
            .expect("t");
        if body == "two" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body, "two");

    std::fs::write(&path, "routes:\n  - { path: /v, respnd: {} }\n").expect("write");
    signal(&child, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client()
            .get(&url)
            .send()
            .await
            .expect("ok")
            .text()
            .await
            .expect("t"),
        "two"
    );

    signal(&child, "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn demo_serves_its_sample_services_and_prints_curl_commands() {
    let mut child = Command::new(BIN)
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut curls = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(cmd) = line.trim().strip_prefix("curl ") {
            curls.push(cmd.to_owned());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let users = curls
        .iter()
        .find_map(|c| {
            c.split_whitespace()
                .find(|w| w.starts_with("http://") && w.ends_with("/api/users"))
        })
        .expect("a curl command for /api/users")
        .to_owned();
    let body: serde_json::Value = client()
        .get(&users)
        .send()
        .await
        .expect("demo answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body[0]["name"], "Ada Lovelace");
    let again = client().get(&users).send().await.expect("demo answers");
    assert_eq!(
        again.headers()["x-cache"],
        "HIT",
        "the users route is cached"
    );
    let base = users.trim_end_matches("/api/users").to_owned();
    let reshaped: serde_json::Value = client()
        .get(format!("{base}/api/v1/users/2"))
        .send()
        .await
        .expect("demo answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        reshaped,
        serde_json::json!({"id": 2, "fullName": "Alan Turing"})
    );
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = client()
            .get(format!("{base}/api/products/7"))
            .send()
            .await
            .expect("demo answers");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429],
        "5/10s on products"
    );

    // inventory: the flaky target's 503s are retried on the healthy one.
    for _ in 0..6 {
        let response = client()
            .get(format!("{base}/api/inventory/7"))
            .send()
            .await
            .expect("demo answers");
        assert_eq!(response.status(), 200, "retried on inventory-a");
    }
    // inventory-b alone: its own 503s, then the gateway's once the breaker opens.
    let mut breaker_open = false;
    for _ in 0..12 {
        let response = client()
            .get(format!("{base}/flaky/inventory/7"))
            .send()
            .await
            .expect("demo answers");
        let retry_after = response.headers().contains_key("retry-after");
        let body: serde_json::Value = response.json().await.expect("json");
        if body["error"]["code"] == "service_unavailable" {
            assert!(retry_after, "an open circuit says when to retry");
            breaker_open = true;
            break;
        }
    }
    assert!(breaker_open, "the breaker opens on the flaky target");

    // Every curl line with a credential works as its comment says.
    let mut checked = 0;
    for cmd in &curls {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let url = words
            .iter()
            .map(|w| w.trim_matches('\''))
            .find(|w| w.starts_with("http://"))
            .expect("a URL");
        let method = if cmd.contains("-X POST") {
            "POST"
        } else {
            "GET"
        };
        let mut request = client().request(method.parse().expect("method"), url);
        let header = cmd
            .split('\'')
            .find(|part| part.starts_with("Authorization: ") || part.starts_with("X-API-Key: "));
        let Some(header) = header else {
            continue;
        };
        let (name, value) = header.split_once(": ").expect("header");
        request = request.header(name, value);
        let status = request
            .send()
            .await
            .expect("demo answers")
            .status()
            .as_u16();
        let expected = if cmd.contains("# 403") {
            403
        } else if method == "POST" {
            201
        } else {
            200
        };
        assert_eq!(status, expected, "curl {cmd}");
        checked += 1;
    }
    assert_eq!(checked, 4, "token and key curls: {curls:?}");
    signal(&child, "INT");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}
