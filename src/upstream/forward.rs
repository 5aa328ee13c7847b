//! Sending one request to one target, with the timeout, and classifying what went wrong.

use std::error::Error as StdError;
use std::io;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;

use super::service::{ServiceRuntime, Target};
use crate::body::{RequestBody, is_body_too_large};
use crate::error::{ErrorKind, GatewayError};

/// An upstream's answer, with how long it took to arrive.
pub struct UpstreamResponse {
    /// The response head and streaming body.
    pub response: Response<Incoming>,
    /// Time from sending to response headers.
    pub elapsed: Duration,
}

/// Sends `request` (its URI already `scheme://authority/path`) to `target` of `service`,
/// waiting at most `timeout` for the response headers.
pub async fn send(
    service: &ServiceRuntime,
    target: &Target,
    request: Request<RequestBody>,
    timeout: Duration,
) -> Result<UpstreamResponse, GatewayError> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, service.client().request(request)).await {
        Ok(Ok(response)) => Ok(UpstreamResponse {
            response,
            elapsed: started.elapsed(),
        }),
        Ok(Err(err)) => Err(classify(&err, target)),
        Err(_) => Err(GatewayError::new(
            ErrorKind::GatewayTimeout,
            "the upstream service did not answer in time",
        )
        .with_cause(format!("{}: no response within {timeout:?}", target.url))),
    }
}

/// Maps a client error to what the client is told: 413 when our body limit cut the request,
/// 504 for a connect timeout, 502 for everything else (refused, reset, invalid response).
fn classify(err: &hyper_util::client::legacy::Error, target: &Target) -> GatewayError {
    let cause = format!("{}: {}", target.url, chain(err));
    if is_body_too_large(err) {
        return GatewayError::payload_too_large()
            .closing()
            .with_cause(cause);
    }
    if err.is_connect() {
        if has_io_kind(err, io::ErrorKind::TimedOut) {
            return GatewayError::new(
                ErrorKind::GatewayTimeout,
                "the upstream service did not accept the connection in time",
            )
            .with_cause(cause);
        }
        return GatewayError::new(
            ErrorKind::BadGateway,
            "the upstream service refused the connection",
        )
        .with_cause(cause);
    }
    GatewayError::new(
        ErrorKind::BadGateway,
        "the upstream service failed to answer",
    )
    .with_cause(cause)
}

fn has_io_kind(err: &(dyn StdError + 'static), kind: io::ErrorKind) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.kind() == kind
        {
            return true;
        }
        current = e.source();
    }
    false
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
