//! Upstreams for balancing, split and mirror tests: named targets that answer after a fixed
//! delay and remember what they received, and targets that accept but never answer.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// What a [`Named`] upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// The address the connection came in on (which of the upstream's addresses).
    pub local: SocketAddr,
    /// Bytes of body received (`None`: the body broke off).
    pub body_len: Option<usize>,
}

/// A running upstream that answers every request, after `delay`, with
/// `{"upstream": NAME, "local": ADDR, "host": HOST, "body_len": N}` and `X-Upstream: NAME`.
pub struct Named {
    /// Its port (the same on every address it listens on).
    pub port: u16,
    /// The addresses it listens on.
    pub addrs: Vec<SocketAddr>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Named {
    /// `http://127.0.0.1:PORT` (its first address).
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.seen().len()
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

/// A named upstream on 127.0.0.1 answering after `delay`.
pub async fn named(name: &'static str, delay: Duration) -> Named {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    serve_named(name, delay, vec![listener])
}

/// A named upstream on 127.0.0.1 and, when the host has IPv6 loopback, on [::1] with the same
/// port: every address `localhost` may resolve to.
pub async fn named_on_loopbacks(name: &'static str) -> Named {
    let v4 = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = v4.local_addr().expect("addr").port();
    let mut listeners = vec![v4];
    if let Ok(v6) = TcpListener::bind(("::1", port)).await {
        listeners.push(v6);
    }
    serve_named(name, Duration::ZERO, listeners)
}

fn serve_named(name: &'static str, delay: Duration, listeners: Vec<TcpListener>) -> Named {
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for listener in listeners {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let local = stream.local_addr().expect("local addr");
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        answer(name, delay, local, request, seen.clone())
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    Named {
        port: addrs[0].port(),
        addrs,
        seen,
    }
}

async fn answer(
    name: &'static str,
    delay: Duration,
    local: SocketAddr,
    request: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body_len = body.collect().await.ok().map(|b| b.to_bytes().len());
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.lock().expect("seen").push(Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        host: host.clone(),
        local,
        body_len,
    });
    tokio::time::sleep(delay).await;
    let body =
        json!({"upstream": name, "local": local.to_string(), "host": host, "body_len": body_len});
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", name)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response"))
}

/// An upstream that accepts connections and reads from them, but never answers; counts the
/// connections it accepted.
pub async fn hanging() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                // Read the head, then nothing more: the body stays in the socket buffers.
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop(stream);
            });
        }
    });
    (addr, accepted)
}

/// The `upstream` member of each JSON answer, counted by name.
pub fn tally<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for name in names {
        *counts.entry(name.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Whether `count` is within ±10% of `expected`.
pub fn within_ten_percent(count: usize, expected: f64) -> bool {
    (count as f64 - expected).abs() <= expected * 0.10
}
