//! Sending one request to one target, with the timeout, and classifying what went wrong:
//! [`connect`] (nothing sent yet when it fails) then [`exchange`], or both with [`send`].

use std::error::Error as StdError;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper::client::conn::http2;
use tokio::time::Instant;

use super::added::{AddedHeaders, NO_ADDED_HEADERS};
use super::h1::{Answer, HeadBytes, Http1Body, Http1Conn, SendError};
use super::pool::{ConnectError, Connection, Lease};
use super::registry::Outcome;
use super::service::{Endpoint, ServiceRuntime, Target};
use crate::body::{GatewayBody, RequestBody, is_body_too_large};
use crate::error::{ErrorKind, GatewayError};

/// An upstream's answer, with how long it took to arrive.
pub struct UpstreamResponse {
    /// The response head and streaming body (which gives its HTTP/1.1 connection back to the
    /// pool when read to its end).
    pub response: Response<GatewayBody>,
    /// Time from sending to response headers.
    pub elapsed: Duration,
    /// When the response headers arrived.
    pub answered: Instant,
}

/// A failed exchange: what the client is told, and how the target's record counts it.
#[derive(Debug)]
pub struct Failure {
    /// How the attempt ended.
    pub outcome: Outcome,
    /// The error for the client.
    pub error: GatewayError,
}

impl From<Failure> for GatewayError {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

/// Sends `request` to `endpoint` of `service`, waiting at most `timeout` from `started` (the
/// attempt's start) for the response headers, connecting included. The request's URI may be
/// in origin form (`/path?query`): it is put in the form the connection's protocol needs.
///
/// Not an `async fn`: one of those keeps each argument twice in its future, and the request
/// is large (see [`exchange`]).
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` holds its arguments twice (rust-lang/rust#62958)"
)]
pub fn send(
    service: &ServiceRuntime,
    endpoint: &Endpoint,
    request: Request<RequestBody>,
    timeout: Duration,
    started: Instant,
) -> impl Future<Output = Result<UpstreamResponse, Failure>> {
    async move {
        let connection = connect(service, endpoint, started + timeout).await?;
        exchange(
            service,
            endpoint,
            connection,
            request,
            &NO_ADDED_HEADERS,
            HeadBytes::Shared,
            started,
            started + timeout,
        )
        .await
    }
}

/// A connection to `endpoint` for one request: pooled, or opened within the service's connect
/// timeout and by `deadline`. Nothing has been sent when this fails, so any request may try
/// another target.
pub async fn connect(
    service: &ServiceRuntime,
    endpoint: &Endpoint,
    deadline: Instant,
) -> Result<Connection, Failure> {
    // A ready connection needs no timer.
    if let Some(connection) = endpoint.pool().ready() {
        return Ok(connection);
    }
    let url = &endpoint.target.url;
    // Connecting is the cold path: boxed, so its state does not weigh on every exchange.
    let opened = Box::pin(endpoint.pool().open(service.connect_timeout));
    match tokio::time::timeout_at(deadline, opened).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(err)) => Err(connect_error(err, url)),
        Err(_) => Err(connect_error(ConnectError::Timeout, url)),
    }
}

/// Sends `request` with the `added` fields on `connection` and waits for the response headers
/// until `deadline`; `started` is when the attempt began (for [`UpstreamResponse::elapsed`]).
/// `head_bytes`: where an HTTP/1.1 answer's header values live ([`HeadBytes::Own`] for an
/// answer that will be kept).
///
/// Only the protocol's own futures are put under the timer, in this one function: every
/// nested future holding the request would add its size to every exchange, and futures are
/// copied whole when they move. For the same reason this is not an `async fn`, which would
/// keep the request twice (its argument and its local, rust-lang/rust#62958).
#[allow(
    clippy::too_many_arguments,
    reason = "one flat function keeps the exchange future small (see above)"
)]
pub fn exchange(
    service: &ServiceRuntime,
    endpoint: &Endpoint,
    connection: Connection,
    mut request: Request<RequestBody>,
    added: &AddedHeaders,
    head_bytes: HeadBytes,
    started: Instant,
    deadline: Instant,
) -> impl Future<Output = Result<UpstreamResponse, Failure>> {
    match &connection {
        Connection::Http1(_) => origin_form(&mut request),
        Connection::Http2(_) => {
            absolute_form(&mut request, &endpoint.target);
            added.insert_into(request.headers_mut());
        }
    }
    async move {
        let url = &endpoint.target.url;
        let timed_out = || timeout_failure(url, started, deadline);
        let response = match connection {
            Connection::Http1(mut conn) => {
                let sent = conn.send(request, added, head_bytes);
                match tokio::time::timeout_at(deadline, sent).await {
                    Err(_) => return Err(timed_out()),
                    Ok(Ok(answer)) => respond_http1(endpoint, conn, answer),
                    Ok(Err(SendError::Unsent(request))) => {
                        // The cold path, boxed: a stale pooled connection gave the request back.
                        let resent = resend_fresh(
                            endpoint,
                            *request,
                            added,
                            head_bytes,
                            service.connect_timeout,
                        );
                        match Box::pin(tokio::time::timeout_at(deadline, resent)).await {
                            Err(_) => return Err(timed_out()),
                            Ok(result) => result?,
                        }
                    }
                    Ok(Err(err)) => return Err(exchange_error(&err, url)),
                }
            }
            Connection::Http2(mut sender) => {
                match tokio::time::timeout_at(deadline, sender.ready()).await {
                    Err(_) => return Err(timed_out()),
                    Ok(ready) => ready.map_err(|err| exchange_error(&err, url))?,
                }
                match tokio::time::timeout_at(deadline, sender.send_request(request)).await {
                    Err(_) => return Err(timed_out()),
                    Ok(response) => response
                        .map_err(|err| exchange_error(&err, url))?
                        .map(GatewayBody::stream),
                }
            }
        };
        let answered = crate::poll_clock::now();
        Ok(UpstreamResponse {
            response,
            elapsed: answered.saturating_duration_since(started),
            answered,
        })
    }
}

/// The 504 of an attempt that got no response headers by `deadline`.
fn timeout_failure(url: &str, started: Instant, deadline: Instant) -> Failure {
    Failure {
        outcome: Outcome::Timeout,
        error: GatewayError::new(
            ErrorKind::GatewayTimeout,
            "the upstream service did not answer in time",
        )
        .with_cause(format!(
            "{url}: no response within {:?}",
            deadline.saturating_duration_since(started)
        )),
    }
}

/// Sends the request a stale pooled connection gave back unsent on a fresh connection,
/// within the attempt's deadline too.
async fn resend_fresh(
    endpoint: &Endpoint,
    mut request: Request<RequestBody>,
    added: &AddedHeaders,
    head_bytes: HeadBytes,
    connect_timeout: Duration,
) -> Result<Response<GatewayBody>, Failure> {
    let url = &endpoint.target.url;
    let fresh = endpoint
        .pool()
        .open(connect_timeout)
        .await
        .map_err(|err| connect_error(err, url))?;
    let mut conn = match fresh {
        Connection::Http1(conn) => conn,
        Connection::Http2(sender) => {
            added.insert_into(request.headers_mut());
            return send_http2(endpoint, sender, request).await;
        }
    };
    match conn.send(request, added, head_bytes).await {
        Ok(answer) => Ok(respond_http1(endpoint, conn, answer)),
        Err(err) => Err(exchange_error(&err, url)),
    }
}

/// The response of an HTTP/1.1 exchange. A body that came whole with the head is handed on
/// as bytes, and the connection goes back to the pool at once; otherwise the body reads from
/// the connection, which it gives back at its end.
fn respond_http1(
    endpoint: &Endpoint,
    conn: Box<Http1Conn>,
    answer: Answer,
) -> Response<GatewayBody> {
    let Answer { head, body } = answer;
    let body = match body {
        Some(bytes) => {
            if head.keep_alive {
                endpoint.pool().put(conn);
            }
            GatewayBody::full(bytes)
        }
        None => {
            let lease = Lease::new(conn, endpoint.pool().clone());
            GatewayBody::http1(Http1Body::new(lease, head.framing, head.keep_alive))
        }
    };
    Response::from_parts(head.parts, body)
}

/// One HTTP/2 exchange on the worker's multiplexed connection.
async fn send_http2(
    endpoint: &Endpoint,
    mut sender: http2::SendRequest<RequestBody>,
    mut request: Request<RequestBody>,
) -> Result<Response<GatewayBody>, Failure> {
    let url = &endpoint.target.url;
    absolute_form(&mut request, &endpoint.target);
    sender
        .ready()
        .await
        .map_err(|err| exchange_error(&err, url))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| exchange_error(&err, url))?;
    Ok(response.map(GatewayBody::stream))
}

/// HTTP/1.1 sends `/path?query`.
fn origin_form(request: &mut Request<RequestBody>) {
    *request.version_mut() = Version::HTTP_11;
    if request.uri().authority().is_some()
        && let Some(path) = request.uri().path_and_query().cloned()
    {
        *request.uri_mut() = Uri::from(path);
    }
}

/// HTTP/2 sends the scheme and authority (`:scheme`, `:authority`) with the path: the target's.
fn absolute_form(request: &mut Request<RequestBody>, target: &Target) {
    *request.version_mut() = Version::HTTP_2;
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    parts.scheme = Some(target.scheme.clone());
    parts.authority = Some(target.authority.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    // Scheme, authority and path are all set, so the parts always make a URI.
    *request.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
}

fn connect_error(err: ConnectError, url: &str) -> Failure {
    let error = match err {
        ConnectError::Timeout => GatewayError::new(
            ErrorKind::GatewayTimeout,
            "the upstream service did not accept the connection in time",
        )
        .with_cause(format!("{url}: connect timed out")),
        ConnectError::Failed(err) => GatewayError::new(
            ErrorKind::BadGateway,
            "the upstream service refused the connection",
        )
        .with_cause(format!("{url}: {err}")),
        ConnectError::Tls(err) => GatewayError::new(
            ErrorKind::BadGateway,
            "a secure connection to the upstream service could not be established",
        )
        .with_cause(format!("{url}: TLS: {}", chain(&err))),
        ConnectError::Handshake(err) => GatewayError::new(
            ErrorKind::BadGateway,
            "the upstream service failed to answer",
        )
        .with_cause(format!("{url}: {}", chain(&err))),
    };
    Failure {
        outcome: Outcome::ConnectFailure,
        error,
    }
}

/// Maps a failed exchange (hyper's HTTP/2, or our HTTP/1.1 client's) to what the client is
/// told: 413 when our body limit cut the request (not the target's failure), 502 for
/// everything else (reset, closed, invalid response).
fn exchange_error(err: &(dyn StdError + 'static), url: &str) -> Failure {
    let cause = format!("{url}: {}", chain(err));
    if is_body_too_large(err) {
        return Failure {
            outcome: Outcome::Client,
            error: GatewayError::payload_too_large()
                .closing()
                .with_cause(cause),
        };
    }
    Failure {
        outcome: Outcome::Reset,
        error: GatewayError::new(
            ErrorKind::BadGateway,
            "the upstream service failed to answer",
        )
        .with_cause(cause),
    }
}

/// The error and its sources on one line, for the log.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}
