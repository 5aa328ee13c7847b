//! One active health-check probe: `GET path` on a connection of its own, closed after the
//! response head. Probes never use the traffic pools, so they neither take a connection a
//! request could use nor count as traffic for passive ejection or the circuit breaker.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::upstream::pool::{Transport, open_transport};
use crate::upstream::{ConnectError, Target, UpstreamProtocol};

/// The `User-Agent` of probes, so upstream logs can tell them from traffic.
const PROBE_AGENT: &str = concat!("gatehouse-health-check/", env!("CARGO_PKG_VERSION"));

/// Why a probe failed.
#[derive(Debug)]
pub(super) enum ProbeFailure {
    /// No answer within the check's timeout.
    Timeout,
    /// The connection could not be opened (TCP or TLS).
    Connect(ConnectError),
    /// The connection broke, or the answer was not HTTP.
    Exchange(String),
    /// The target answered with a status other than 2xx or 3xx.
    Status(StatusCode),
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer in time"),
            Self::Connect(err) => write!(f, "{err}"),
            Self::Exchange(err) => write!(f, "exchange failed: {err}"),
            Self::Status(status) => write!(f, "answered {status}"),
        }
    }
}

/// Probes `target` with `GET path`: passes on a 2xx or 3xx answer within `timeout`
/// (connecting included).
pub(super) async fn probe(
    target: &Target,
    protocol: UpstreamProtocol,
    path: &str,
    timeout: Duration,
) -> Result<StatusCode, ProbeFailure> {
    let status = tokio::time::timeout(timeout, exchange(target, protocol, path))
        .await
        .map_err(|_| ProbeFailure::Timeout)??;
    if status.is_success() || status.is_redirection() {
        Ok(status)
    } else {
        Err(ProbeFailure::Status(status))
    }
}

async fn exchange(
    target: &Target,
    protocol: UpstreamProtocol,
    path: &str,
) -> Result<StatusCode, ProbeFailure> {
    // Opened like traffic's connections: for an https target the same CA, server name and ALPN.
    let (transport, h2) = open_transport(&target.authority, protocol, target.tls.as_ref())
        .await
        .map_err(ProbeFailure::Connect)?;
    match transport {
        Transport::Plain(io) => exchange_on(TokioIo::new(io), h2, target, path).await,
        Transport::Tls(io) => exchange_on(TokioIo::new(io), h2, target, path).await,
    }
}

/// `GET path` over an open connection, in HTTP/2 when `h2`, else HTTP/1.1.
async fn exchange_on<I>(
    io: I,
    h2: bool,
    target: &Target,
    path: &str,
) -> Result<StatusCode, ProbeFailure>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let failed = |err: hyper::Error| ProbeFailure::Exchange(err.to_string());
    let request = Request::builder()
        .method(Method::GET)
        .header(USER_AGENT, HeaderValue::from_static(PROBE_AGENT));
    if !h2 {
        let (mut sender, connection) = http1::handshake(io).await.map_err(failed)?;
        let request = request
            .uri(path)
            .header(HOST, target.host_header().clone())
            .header(CONNECTION, HeaderValue::from_static("close"))
            .body(Empty::<Bytes>::new())
            .map_err(|err| ProbeFailure::Exchange(err.to_string()))?;
        let response = sender.send_request(request);
        return Ok(drive(response, connection).await.map_err(failed)?.status());
    }
    let (mut sender, connection) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(failed)?;
    let authority = http::uri::Authority::try_from(target.host_header().as_bytes())
        .unwrap_or_else(|_| target.authority.clone());
    let uri = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|err| ProbeFailure::Exchange(err.to_string()))?;
    let request = request
        .uri(uri)
        .body(Empty::<Bytes>::new())
        .map_err(|err| ProbeFailure::Exchange(err.to_string()))?;
    let response = sender.send_request(request);
    Ok(drive(response, connection).await.map_err(failed)?.status())
}

/// Waits for the answer while driving the connection; a connection that ends first (the
/// target closed it right after answering, as asked) has settled the answer either way.
async fn drive<T>(
    response: impl Future<Output = Result<T, hyper::Error>>,
    connection: impl Future,
) -> Result<T, hyper::Error> {
    tokio::pin!(response);
    tokio::pin!(connection);
    tokio::select! {
        biased;
        answer = &mut response => answer,
        _ = &mut connection => response.await,
    }
}
