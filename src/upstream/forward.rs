//! Sending one request to one target, with the timeout, and classifying what went wrong.

use std::error::Error as StdError;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::{Body, Incoming};

use super::UpstreamProtocol;
use super::pool::{ConnectError, Lease};
use super::registry::Outcome;
use super::service::{Endpoint, ServiceRuntime};
use crate::body::{RequestBody, is_body_too_large};
use crate::error::{ErrorKind, GatewayError};

/// An upstream's answer, with how long it took to arrive.
pub struct UpstreamResponse {
    /// The response head and streaming body.
    pub response: Response<Incoming>,
    /// The HTTP/1.1 connection, to give back when the body has been read to its end.
    pub lease: Option<Lease>,
    /// Time from sending to response headers.
    pub elapsed: Duration,
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

/// Sends `request` to `endpoint` of `service`, waiting at most `timeout` for the response
/// headers. For HTTP/1.1 the request's URI must be in origin form (`/path?query`); for h2c it
/// must be absolute.
pub async fn send(
    service: &ServiceRuntime,
    endpoint: &Endpoint,
    request: Request<RequestBody>,
    timeout: Duration,
) -> Result<UpstreamResponse, Failure> {
    let started = Instant::now();
    let url = &endpoint.target.url;
    let exchange = async {
        match service.protocol {
            UpstreamProtocol::Http1 => send_http1(service, endpoint, request).await,
            UpstreamProtocol::H2c => {
                let mut sender = Box::pin(endpoint.pool().h2c(service.connect_timeout))
                    .await
                    .map_err(|err| connect_error(err, url))?;
                sender
                    .ready()
                    .await
                    .map_err(|err| exchange_error(&err, url))?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|err| exchange_error(&err, url))?;
                Ok((response, None))
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((response, lease))) => Ok(UpstreamResponse {
            response,
            lease,
            elapsed: started.elapsed(),
        }),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(Failure {
            outcome: Outcome::Timeout,
            error: GatewayError::new(
                ErrorKind::GatewayTimeout,
                "the upstream service did not answer in time",
            )
            .with_cause(format!("{url}: no response within {timeout:?}")),
        }),
    }
}

/// One HTTP/1.1 exchange on a pooled connection; a request that a stale pooled connection
/// could not take (it was never sent) goes once more on a fresh connection.
async fn send_http1(
    service: &ServiceRuntime,
    endpoint: &Endpoint,
    request: Request<RequestBody>,
) -> Result<(Response<Incoming>, Option<Lease>), Failure> {
    let pool = endpoint.pool();
    let url = &endpoint.target.url;
    // Connecting is the cold path: boxed, so its state does not weigh on every exchange.
    let fresh = || async {
        Box::pin(pool.connect_http1(service.connect_timeout))
            .await
            .map_err(|err| connect_error(err, url))
    };
    let mut sender = match pool.take() {
        Some(mut pooled) => match pooled.ready().await {
            Ok(()) => pooled,
            Err(_) => fresh().await?,
        },
        None => fresh().await?,
    };
    let response = match sender.try_send_request(request).await {
        Ok(response) => response,
        Err(mut err) => match err.take_message() {
            Some(request) => {
                sender = fresh().await?;
                sender.ready().await.map_err(|e| exchange_error(&e, url))?;
                sender
                    .send_request(request)
                    .await
                    .map_err(|e| exchange_error(&e, url))?
            }
            None => return Err(exchange_error(err.error(), url)),
        },
    };
    let lease = Lease::new(sender, pool.clone());
    if response.body().is_end_stream() {
        lease.release();
        return Ok((response, None));
    }
    Ok((response, Some(lease)))
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

/// Maps a failed exchange to what the client is told: 413 when our body limit cut the
/// request (not the target's failure), 502 for everything else (reset, closed, invalid
/// response).
fn exchange_error(err: &hyper::Error, url: &str) -> Failure {
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
