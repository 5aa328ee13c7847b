//! Upstream connections, pooled per target and per worker thread, kept in the state registry so
//! that a reload keeps warm connections.
//!
//! Each worker keeps its own connections (see `server::workers`): a request is sent on a
//! connection owned by the thread that serves it, so no lock is ever contended and no wake-up
//! crosses threads. HTTP/1.1 connections are leased for one exchange, run by the request that
//! holds them (see `http1_conn`), and come back to the pool when the response body has been
//! read to its end ([`Lease`]); an h2c target, or an https target that chose HTTP/2 by ALPN,
//! has one multiplexed connection per worker, run by a task of its own.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::h1::{Http1Conn, Stream};
use super::lock;
use super::tls::{TargetTls, TlsKey};
use crate::body::RequestBody;

/// How the gateway speaks to a service's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive; on `https` targets, HTTP/2 when the target picks it by ALPN.
    Http1,
    /// HTTP/2 over cleartext, prior knowledge.
    H2c,
}

/// Idle HTTP/1.1 connections kept per target and worker, at most (nginx's `keepalive`); the
/// oldest is closed when one more comes back.
const MAX_IDLE: usize = 128;
/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often idle connections are checked for a close by the target.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Why no connection could be had.
#[derive(Debug)]
pub enum ConnectError {
    /// The target did not accept (and finish the TLS handshake) within the connect timeout.
    Timeout,
    /// The target's name did not resolve, or it refused.
    Failed(io::Error),
    /// The TLS handshake failed (untrusted certificate, wrong name, no common protocol).
    Tls(io::Error),
    /// The HTTP handshake failed.
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("connect timed out"),
            Self::Failed(err) => write!(f, "connect failed: {err}"),
            Self::Tls(err) => write!(f, "TLS handshake failed: {err}"),
            Self::Handshake(err) => write!(f, "handshake failed: {err}"),
        }
    }
}

/// A connection ready to take one request.
pub enum Connection {
    /// HTTP/1.1: one exchange at a time; back to the pool when the response has been read.
    Http1(Box<Http1Conn>),
    /// HTTP/2: multiplexed, shared by the worker's requests to the target.
    Http2(http2::SendRequest<RequestBody>),
}

struct Idle {
    conn: Box<Http1Conn>,
    since: Instant,
}

/// One worker's connections to one target.
///
/// Aligned to 128 bytes (two cache lines, fetched in pairs): the workers' pools of a target
/// are made one after the other on the main thread, and a worker takes and returns a
/// connection on every request, which would take the line from a neighbour sharing it.
#[repr(align(128))]
pub struct TargetPool {
    authority: Authority,
    protocol: UpstreamProtocol,
    tls: Option<TargetTls>,
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<http2::SendRequest<RequestBody>>>,
}

impl TargetPool {
    fn new(authority: Authority, protocol: UpstreamProtocol, tls: Option<TargetTls>) -> Self {
        Self {
            authority,
            protocol,
            tls,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
        }
    }

    /// Idle HTTP/1.1 connections now.
    pub fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }

    /// A connection to use at once, without connecting: the worker's HTTP/2 connection to
    /// the target, or the most recently used idle HTTP/1.1 one that is still open.
    pub(super) fn ready(&self) -> Option<Connection> {
        // Only h2c and https targets can have an HTTP/2 connection: plain HTTP/1.1 skips
        // the look.
        let may_be_h2 = self.protocol == UpstreamProtocol::H2c || self.tls.is_some();
        if may_be_h2 && let Some(sender) = self.h2_sender() {
            return Some(Connection::Http2(sender));
        }
        if self.protocol == UpstreamProtocol::Http1
            && let Some(pooled) = self.take()
        {
            return Some(Connection::Http1(pooled));
        }
        None
    }

    /// The worker's open HTTP/2 connection to the target, if it has one.
    fn h2_sender(&self) -> Option<http2::SendRequest<RequestBody>> {
        lock(&self.h2)
            .as_ref()
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    /// The most recently used idle HTTP/1.1 connection that is still open and ready; the
    /// ones found closed (or too old) on the way are dropped.
    fn take(&self) -> Option<Box<Http1Conn>> {
        let now = crate::poll_clock::now();
        let mut idle = lock(&self.idle);
        while let Some(mut entry) = idle.pop() {
            if now.saturating_duration_since(entry.since) < IDLE_TIMEOUT && entry.conn.ready_now() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Returns an HTTP/1.1 connection after its exchange.
    pub(super) fn put(&self, conn: Box<Http1Conn>) {
        let mut idle = lock(&self.idle);
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(Idle {
            conn,
            since: crate::poll_clock::now(),
        });
    }

    /// Closes the idle connections the target closed, or that were idle too long; returns how
    /// many. Nobody runs an idle connection, so without this a connection the target closed
    /// would wait in the pool (its socket half-closed) until it is taken.
    fn sweep(&self, now: Instant) -> usize {
        let mut idle = lock(&self.idle);
        let before = idle.len();
        idle.retain_mut(|entry| {
            now.saturating_duration_since(entry.since) < IDLE_TIMEOUT && entry.conn.ready_now()
        });
        before - idle.len()
    }

    /// Opens a new connection: TCP, then TLS for an `https` target, then HTTP/2 (h2c, or
    /// `h2` chosen by ALPN; kept as the worker's connection) or HTTP/1.1. The connect timeout
    /// covers the TCP and TLS handshakes.
    pub(super) async fn open(&self, connect_timeout: Duration) -> Result<Connection, ConnectError> {
        let opened = open_transport(&self.authority, self.protocol, self.tls.as_ref());
        let (transport, h2) = tokio::time::timeout(connect_timeout, opened)
            .await
            .map_err(|_| ConnectError::Timeout)??;
        if !h2 {
            let stream = match transport {
                Transport::Plain(io) => Stream::Plain(io),
                Transport::Tls(io) => Stream::Tls(io),
            };
            return Ok(Connection::Http1(Box::new(Http1Conn::new(stream))));
        }
        let sender = match transport {
            Transport::Plain(io) => http2_handshake(TokioIo::new(io)).await?,
            Transport::Tls(io) => http2_handshake(TokioIo::new(io)).await?,
        };
        *lock(&self.h2) = Some(sender.clone());
        Ok(Connection::Http2(sender))
    }
}

/// A connected stream, before the HTTP handshake.
pub(super) enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, for an `https` target.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Opens the stream to `authority`: TCP, then TLS when `tls` is given (an `https` target).
/// The flag tells whether the connection speaks HTTP/2: h2c by `protocol`, or `h2` chosen by
/// ALPN. Traffic connections and health-check probes open theirs this one way.
pub(super) async fn open_transport(
    authority: &Authority,
    protocol: UpstreamProtocol,
    tls: Option<&TargetTls>,
) -> Result<(Transport, bool), ConnectError> {
    let stream = connect(authority).await.map_err(ConnectError::Failed)?;
    match tls {
        None => Ok((Transport::Plain(stream), protocol == UpstreamProtocol::H2c)),
        Some(tls) => {
            let stream = tls.handshake(stream).await.map_err(ConnectError::Tls)?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok((Transport::Tls(Box::new(stream)), h2))
        }
    }
}

async fn http2_handshake<I>(io: I) -> Result<http2::SendRequest<RequestBody>, ConnectError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .adaptive_window(true)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .handshake(io)
        .await
        .map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "upstream h2 connection ended with an error");
        }
    });
    Ok(sender)
}

/// A TCP connection to the first address of `authority` that accepts.
async fn connect(authority: &Authority) -> io::Result<TcpStream> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// An HTTP/1.1 connection lent to one exchange; the response body reads from it and gives it
/// back when it ended.
pub struct Lease {
    conn: Box<Http1Conn>,
    pool: Arc<TargetPool>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Lease {
    pub(super) fn new(conn: Box<Http1Conn>, pool: Arc<TargetPool>) -> Self {
        Self { conn, pool }
    }

    /// The connection, to read the body from.
    pub(super) fn conn(&mut self) -> &mut Http1Conn {
        &mut self.conn
    }

    /// The exchange is complete: the connection may serve another request.
    pub fn release(self) {
        self.pool.put(self.conn);
    }
}

/// One target's pools, one per worker thread.
pub type WorkerPools = Arc<[Arc<TargetPool>]>;

/// What connections may be shared by: the address, the protocol and the TLS settings.
type PoolKey = (Authority, UpstreamProtocol, Option<TlsKey>);

/// Every target's pools, one per worker, by target address, protocol and TLS settings; lives
/// in the state registry across reloads.
pub struct ClientPools {
    workers: usize,
    targets: Mutex<HashMap<PoolKey, WorkerPools>>,
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

    /// The pools of one target, one per worker, made on first use and shared after by every
    /// target with the same address, protocol and TLS settings (`tls` for `https` targets).
    pub fn target(
        &self,
        authority: &Authority,
        protocol: UpstreamProtocol,
        tls: Option<&TargetTls>,
    ) -> Arc<[Arc<TargetPool>]> {
        let key = (authority.clone(), protocol, tls.map(|t| t.key().clone()));
        lock(&self.targets)
            .entry(key)
            .or_insert_with(|| {
                (0..self.workers)
                    .map(|_| Arc::new(TargetPool::new(authority.clone(), protocol, tls.cloned())))
                    .collect()
            })
            .clone()
    }

    /// Closes every pool's idle connections that the target closed or that were idle too
    /// long; returns how many.
    pub fn sweep(&self, now: Instant) -> usize {
        let pools: Vec<WorkerPools> = lock(&self.targets).values().cloned().collect();
        pools
            .iter()
            .flat_map(|pools| pools.iter())
            .map(|pool| pool.sweep(now))
            .sum()
    }

    /// Sweeps the pools every [`SWEEP_EVERY`] until `shutdown`.
    pub async fn sweep_every(self: Arc<Self>, shutdown: CancellationToken) {
        let what = "idle upstream connections closed";
        crate::sweep::every(SWEEP_EVERY, shutdown, what, |now| self.sweep(now)).await;
    }
}
