//! Serving one client connection: HTTP/1.1 or HTTP/2 (by preface: h2c on plain listeners,
//! ALPN `h2` on TLS ones), with idle and header timeouts and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::activity::{ConnActivity, Verdict};
use super::h1;
use super::io::WatchedIo;
use crate::body::IncomingBody;
use crate::pipeline::Gateway;

/// What the request pipeline knows of the connection a request came on.
pub struct ConnContext {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The peer's IP address as a header value (`X-Forwarded-For`), rendered once.
    pub peer_ip: HeaderValue,
    /// The listener's address.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The subject CN of the client certificate verified during the TLS handshake (mTLS).
    pub client_cn: Option<std::sync::Arc<str>>,
    /// The connection's activity, for idle tracking.
    pub activity: Arc<ConnActivity>,
}

/// How long a connection asked to close (idle, shutdown) may take to finish before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Where a connection came from, before its requests are served.
pub(super) struct Accepted {
    /// The peer's address.
    pub(super) peer: SocketAddr,
    /// The listener's address.
    pub(super) local: SocketAddr,
    /// Whether the stream is decrypted TLS.
    pub(super) tls: bool,
    /// The subject CN of the verified client certificate.
    pub(super) client_cn: Option<Arc<str>>,
}

/// Serves `stream` (plain TCP, or TLS after its handshake) until the client leaves, it idles
/// out, or `shutdown` has drained it.
pub(super) async fn serve_connection<S>(
    stream: S,
    accepted: Accepted,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(ConnActivity::new());
    let peer = accepted.peer;
    let context = Arc::new(ConnContext {
        peer,
        peer_ip: HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
        local: accepted.local,
        tls: accepted.tls,
        client_cn: accepted.client_cn,
        activity: activity.clone(),
    });
    let mut io = WatchedIo::new(stream, activity.clone());
    // Ordinary HTTP/1.1 requests are served by the gateway's own loop; hyper takes the
    // connection at the first request that loop leaves to it, with the bytes read so far.
    let read = match h1::serve(&mut io, &gateway, &context, &shutdown).await {
        h1::Outcome::Closed => return,
        h1::Outcome::Handoff(read) => read,
    };
    // The loop served only heads without a body: the bytes handed over start a request.
    io.watch_framing(&read);
    // Boxed: each connection's task is as large as its future, and hyper's connection state
    // (about 2.5 KB) is needed only by connections the own loop hands over.
    let io = h1::Rewind::new(read, io);
    Box::pin(serve_with_hyper(io, gateway, context, shutdown)).await;
}

/// Serves a connection the own HTTP/1.1 loop handed over (`io` gives back the bytes it read
/// and did not serve) with hyper-util's `auto` builder (HTTP/1.1, or h2c by its preface)
/// until the client leaves, it idles out, or `shutdown` has drained it.
async fn serve_with_hyper<S>(
    io: h1::Rewind<WatchedIo<S>>,
    gateway: Arc<Gateway>,
    context: Arc<ConnContext>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = gateway.limits();
    let peer = context.peer;
    let activity = context.activity.clone();
    let io = TokioIo::new(io);

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Header timeouts are ours (`activity`, below); hyper's own (30 s by default once a
        // timer is set) would re-arm a timer on every request for nothing.
        .header_read_timeout(None)
        .keep_alive(true)
        .max_headers(1024)
        // Header blocks past this get hyper's own bare 431; up to it, the pipeline answers
        // the JSON 431 of SPEC §4.2 for anything over `max_header_bytes`.
        .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);

    let service = service_fn(move |request| {
        let gateway = gateway.clone();
        let context = context.clone();
        let request = request.map(IncomingBody::Hyper);
        async move { Ok::<_, Infallible>(gateway.handle(request, context).await.into_response()) }
    });
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);

    let watchdog =
        tokio::time::sleep_until(activity.first_check(limits.idle_timeout, limits.header_timeout));
    tokio::pin!(watchdog);
    let mut closing = false;
    loop {
        tokio::select! {
            // The connection first: the other branches are rare.
            biased;
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, %err, "client connection ended with an error");
                }
                return;
            }
            () = &mut watchdog, if !closing => {
                match activity.check(limits.idle_timeout, limits.header_timeout) {
                    Verdict::Expired => {
                        connection.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(CLOSE_GRACE, connection.as_mut()).await;
                        return;
                    }
                    Verdict::CheckAt(at) => watchdog.as_mut().reset(at),
                }
            }
            () = shutdown.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}
