//! Upstream connections, pooled per target and per worker thread, kept in the state registry so
//! that a reload keeps warm connections.
//!
//! Each worker keeps its own connections (see `server::workers`): a request is sent on a
//! connection owned by the thread that serves it, so no lock is ever contended and no wake-up
//! crosses threads. HTTP/1.1 connections are leased for one exchange and come back to the pool
//! when the response body has been read to its end ([`Lease`]); an h2c target has one
//! multiplexed connection per worker.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::RequestBody;

/// How the gateway speaks to a service's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 over cleartext, prior knowledge.
    H2c,
}

/// Idle HTTP/1.1 connections kept per target and worker, at most (nginx's `keepalive`); the
/// oldest is closed when one more comes back.
const MAX_IDLE: usize = 128;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why no connection could be had.
#[derive(Debug)]
pub enum ConnectError {
    /// The target did not accept within the connect timeout.
    Timeout,
    /// The target's name did not resolve, refused, or the handshake failed.
    Failed(io::Error),
    /// The HTTP handshake failed.
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("connect timed out"),
            Self::Failed(err) => write!(f, "connect failed: {err}"),
            Self::Handshake(err) => write!(f, "handshake failed: {err}"),
        }
    }
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// One worker's connections to one target.
pub struct TargetPool {
    authority: Authority,
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<http2::SendRequest<RequestBody>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TargetPool {
    fn new(authority: Authority) -> Self {
        Self {
            authority,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
        }
    }

    /// Idle HTTP/1.1 connections now.
    pub fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }

    /// The most recently used idle HTTP/1.1 connection that is still open.
    pub(super) fn take(&self) -> Option<http1::SendRequest<RequestBody>> {
        let mut idle = lock(&self.idle);
        while let Some(entry) = idle.pop() {
            if !entry.sender.is_closed() && entry.since.elapsed() < IDLE_TIMEOUT {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Returns an HTTP/1.1 connection after its exchange.
    pub(super) fn put(&self, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
    }

    /// Opens a new HTTP/1.1 connection.
    pub(super) async fn connect_http1(
        &self,
        connect_timeout: Duration,
    ) -> Result<http1::SendRequest<RequestBody>, ConnectError> {
        let stream = connect(&self.authority, connect_timeout).await?;
        let (sender, connection) = http1::Builder::new()
            .max_headers(256)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// The worker's HTTP/2 connection to the target, opened when there is none (or it closed).
    pub(super) async fn h2c(
        &self,
        connect_timeout: Duration,
    ) -> Result<http2::SendRequest<RequestBody>, ConnectError> {
        if let Some(sender) = lock(&self.h2).as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let stream = connect(&self.authority, connect_timeout).await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .adaptive_window(true)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "upstream h2 connection ended with an error");
            }
        });
        *lock(&self.h2) = Some(sender.clone());
        Ok(sender)
    }
}

async fn connect(authority: &Authority, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let attempt = async {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in tokio::net::lookup_host((host, port)).await? {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last = err,
            }
        }
        Err(last)
    };
    let stream = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ConnectError::Timeout)?
        .map_err(ConnectError::Failed)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// An HTTP/1.1 connection lent to one exchange; give it back when the response body ended.
pub struct Lease {
    sender: http1::SendRequest<RequestBody>,
    pool: Arc<TargetPool>,
}

impl Lease {
    pub(super) fn new(sender: http1::SendRequest<RequestBody>, pool: Arc<TargetPool>) -> Self {
        Self { sender, pool }
    }

    /// The exchange is complete: the connection may serve another request.
    pub fn release(self) {
        self.pool.put(self.sender);
    }
}

/// One target's pools, one per worker thread.
pub type WorkerPools = Arc<[Arc<TargetPool>]>;

/// Every target's pools, one per worker, by target address and protocol; lives in the state
/// registry across reloads.
pub struct ClientPools {
    workers: usize,
    targets: Mutex<HashMap<(Authority, UpstreamProtocol), WorkerPools>>,
}

impl Default for ClientPools {
    fn default() -> Self {
        Self::new(crate::server::worker_count())
    }
}

impl ClientPools {
    /// Pools for `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            targets: Mutex::default(),
        }
    }

    /// The pools of one target, one per worker, made on first use and shared after.
    pub fn target(
        &self,
        authority: &Authority,
        protocol: UpstreamProtocol,
    ) -> Arc<[Arc<TargetPool>]> {
        lock(&self.targets)
            .entry((authority.clone(), protocol))
            .or_insert_with(|| {
                (0..self.workers)
                    .map(|_| Arc::new(TargetPool::new(authority.clone())))
                    .collect()
            })
            .clone()
    }
}
