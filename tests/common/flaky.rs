//! A test upstream that fails on command: a real TCP server speaking just enough HTTP/1.1
//! (keep-alive, `Content-Length` bodies) whose behaviour switches at run time — answer,
//! answer with a status, reset the connection, hang, or refuse connections by closing its
//! listener. Health-check requests (path starting with `/health`) have a mode of their own
//! and are counted apart from traffic.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the upstream treats a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with `{"upstream": NAME, "path": PATH}`.
    Ok,
    /// This status, with the same JSON body.
    Status(u16),
    /// Reads the request, then resets the connection (RST) without answering.
    Reset,
    /// Reads the request and never answers.
    Hang,
    /// The listener is closed and open connections are dropped: connections are refused.
    Refuse,
}

struct Shared {
    name: &'static str,
    traffic: Mutex<Mode>,
    health: Mutex<Mode>,
    traffic_hits: AtomicUsize,
    health_hits: AtomicUsize,
    health_hosts: Mutex<Vec<String>>,
    /// Cancelled to drop every open connection (on `Refuse`).
    connections: Mutex<CancellationToken>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

/// A running switchable upstream.
pub struct Flaky {
    /// Where it listens (kept while refusing, so it can listen there again).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Flaky {
    /// Starts an upstream named `name` that answers every request.
    pub async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            name,
            traffic: Mutex::new(Mode::Ok),
            health: Mutex::new(Mode::Ok),
            traffic_hits: AtomicUsize::new(0),
            health_hits: AtomicUsize::new(0),
            health_hosts: Mutex::new(Vec::new()),
            connections: Mutex::new(CancellationToken::new()),
            accept: Mutex::new(None),
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        *shared.accept.lock().expect("lock") = Some(task);
        Self { addr, shared }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the mode of every request, traffic and health checks alike.
    pub async fn set(&self, mode: Mode) {
        *self.shared.health.lock().expect("lock") = mode;
        self.set_traffic(mode).await;
    }

    /// Sets the mode of traffic (requests not under `/health`).
    pub async fn set_traffic(&self, mode: Mode) {
        *self.shared.traffic.lock().expect("lock") = mode;
        self.listen(mode != Mode::Refuse).await;
    }

    /// Sets the mode of health checks only (requests under `/health`); `Refuse` is not
    /// possible for them alone.
    pub fn set_health(&self, mode: Mode) {
        assert_ne!(mode, Mode::Refuse, "refusing applies to the whole server");
        *self.shared.health.lock().expect("lock") = mode;
    }

    /// Traffic requests received (not health checks).
    pub fn hits(&self) -> usize {
        self.shared.traffic_hits.load(Ordering::SeqCst)
    }

    /// Health-check requests received.
    pub fn health_hits(&self) -> usize {
        self.shared.health_hits.load(Ordering::SeqCst)
    }

    /// The `Host` headers of the health checks received.
    pub fn health_hosts(&self) -> Vec<String> {
        self.shared.health_hosts.lock().expect("lock").clone()
    }

    async fn listen(&self, on: bool) {
        let running = self
            .shared
            .accept
            .lock()
            .expect("lock")
            .as_ref()
            .is_some_and(|t| !t.is_finished());
        if on && !running {
            let mut tries = 0;
            let listener = loop {
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => break listener,
                    Err(err) if tries < 50 => {
                        tries += 1;
                        let _ = err;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(err) => panic!("cannot listen on {} again: {err}", self.addr),
                }
            };
            let task = tokio::spawn(accept(listener, self.shared.clone()));
            *self.shared.accept.lock().expect("lock") = Some(task);
        } else if !on {
            let task = self.shared.accept.lock().expect("lock").take();
            if let Some(task) = task {
                task.abort();
                let _ = task.await;
            }
            let mut connections = self.shared.connections.lock().expect("lock");
            connections.cancel();
            *connections = CancellationToken::new();
        }
    }
}

impl Drop for Flaky {
    fn drop(&mut self) {
        if let Some(task) = self.shared.accept.lock().expect("lock").take() {
            task.abort();
        }
        self.shared.connections.lock().expect("lock").cancel();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let stop = shared.connections.lock().expect("lock").clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = serve(stream, &shared) => {}
            }
        });
    }
}

/// One request head: its path, `Host`, body length and whether the client asked to close.
struct Head {
    path: String,
    host: String,
    length: usize,
    close: bool,
}

async fn serve(mut stream: TcpStream, shared: &Shared) {
    let mut buffer = Vec::new();
    loop {
        let Some((head, used)) = read_head(&mut stream, &mut buffer).await else {
            return;
        };
        buffer.drain(..used);
        while buffer.len() < head.length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..head.length);
        let health = head.path.starts_with("/health");
        let mode = if health {
            shared.health_hits.fetch_add(1, Ordering::SeqCst);
            shared
                .health_hosts
                .lock()
                .expect("lock")
                .push(head.host.clone());
            *shared.health.lock().expect("lock")
        } else {
            shared.traffic_hits.fetch_add(1, Ordering::SeqCst);
            *shared.traffic.lock().expect("lock")
        };
        let status = match mode {
            Mode::Ok => 200,
            Mode::Status(status) => status,
            Mode::Reset | Mode::Refuse => {
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                return;
            }
            Mode::Hang => {
                std::future::pending::<()>().await;
                return;
            }
        };
        let body = serde_json::json!({ "upstream": shared.name, "path": head.path }).to_string();
        let response = format!(
            "HTTP/1.1 {status} Flaky\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-upstream: {}\r\n\r\n{body}",
            body.len(),
            shared.name
        );
        if stream.write_all(response.as_bytes()).await.is_err() || head.close {
            return;
        }
    }
}

async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(Head, usize)> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let path = lines.next()?.split(' ').nth(1)?.to_owned();
            let mut head = Head {
                path,
                host: String::new(),
                length: 0,
                close: false,
            };
            for line in lines {
                let (name, value) = line.split_once(':')?;
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "host" => head.host = value.to_owned(),
                    "content-length" => head.length = value.parse().ok()?,
                    "connection" => head.close = value.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
            return Some((head, end + 4));
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}
