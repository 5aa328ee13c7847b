//! The attempts of one forwarded request (SPEC §2.2 `retries`): the first goes to the target
//! the balancer picked; after a failure the service retries, more go to other targets while
//! the policy, the method, the body and the service's retry budget allow.
//!
//! Only what happens before response headers are passed on is ever retried: a retried status
//! response is dropped unread, and once a response goes to the client it is final (a body
//! that breaks later reaches the client cut short). When the retries run out, the last
//! answer passes through unchanged, or the last failure becomes the client's 502/503/504.
//!
//! Each try is its own [`Attempt`], so the balancer, passive ejection and the circuit breaker
//! count every one.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::BodyExt;
use hyper::body::Body;
use smallvec::SmallVec;
use tokio::time::Instant;

use crate::body::{RequestBody, is_body_too_large};
use crate::error::{ErrorKind, GatewayError};
use crate::upstream::{
    self, Attempt, Endpoint, Endpoints, Failure, Outcome, PickKey, RetryPolicy, ServiceRuntime,
    UpstreamResponse,
};

/// One forwarded request's way to its service.
pub(super) struct Exchange<'a> {
    /// The service.
    pub(super) service: &'a ServiceRuntime,
    /// Its targets, loaded once for the request.
    pub(super) endpoints: &'a Endpoints,
    /// The index of the target the balancer picked first.
    pub(super) first: usize,
    /// Time each attempt has for the response headers (the route's or service's timeout).
    pub(super) timeout: Duration,
    /// Whether the client's `Host` is forwarded (else each target gets its own).
    pub(super) preserve_host: bool,
    /// The client's address, for the balancer's picks of retries.
    pub(super) client_ip: IpAddr,
    /// The authenticated consumer, for the balancer's picks of retries.
    pub(super) consumer: Option<&'a str>,
    /// The fields added to the request, sent after its own (see [`upstream::AddedHeaders`]).
    pub(super) added: &'a upstream::AddedHeaders,
    /// Where an HTTP/1.1 answer's header values live: their own copy when the cache keeps it.
    pub(super) head_bytes: upstream::HeadBytes,
}

/// How the attempts of a request ended.
pub(super) struct Tried {
    /// The last attempt's answer, or its failure.
    pub(super) result: Result<UpstreamResponse, GatewayError>,
    /// Attempts made: 1 without retries.
    pub(super) attempts: u32,
    /// The index of the target tried last.
    pub(super) target: usize,
}

/// Sends `request` (URI in origin form, headers prepared for the first target) to the
/// service, retrying as its policy says.
///
/// Not an `async fn`, which would hold the request twice, and a request without retries
/// connects and exchanges right here rather than in a nested future: futures are copied whole
/// each time one moves into its caller's.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` holds its arguments twice (rust-lang/rust#62958)"
)]
pub(super) fn run(x: Exchange<'_>, request: Request<RequestBody>) -> impl Future<Output = Tried> {
    async move {
        let Some(policy) = x.service.retry.as_ref() else {
            let endpoint = &x.endpoints.targets[x.first];
            let attempt = Attempt::start(&endpoint.state, &x.service.state);
            let started = attempt.started();
            let deadline = started + x.timeout;
            let result = match upstream::connect(x.service, endpoint, deadline).await {
                Ok(connection) => {
                    let exchanged = upstream::exchange(
                        x.service,
                        endpoint,
                        connection,
                        request,
                        x.added,
                        x.head_bytes,
                        started,
                        deadline,
                    );
                    exchanged.await
                }
                Err(failure) => Err(failure),
            };
            attempt.finish_at(outcome_of(&result), ended_at(&result));
            return Tried {
                result: result.map_err(GatewayError::from),
                attempts: 1,
                target: x.first,
            };
        };
        Box::pin(retrying(&x, policy, request)).await
    }
}

/// The request as each attempt needs it.
enum Source {
    /// Sent once, its body streamed (the method is not retried): kept while no attempt has
    /// sent it, so a connect failure may still try another target.
    Once(Option<Request<RequestBody>>),
    /// Rebuilt for each attempt from its head and its buffered body.
    Replay {
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    },
}

impl Source {
    /// Buffers the body of a request whose method is retried (within the route's `max_body`,
    /// which the body enforces: 413 beyond it); other requests stream.
    async fn of(request: Request<RequestBody>, replay: bool) -> Result<Self, GatewayError> {
        if !replay {
            return Ok(Self::Once(Some(request)));
        }
        let (parts, body) = request.into_parts();
        let body = if body.is_end_stream() {
            Bytes::new()
        } else {
            body.collect()
                .await
                .map_err(|err| {
                    if is_body_too_large(&*err) {
                        GatewayError::payload_too_large().closing()
                    } else {
                        GatewayError::bad_request("the request body could not be read")
                            .with_cause(err)
                    }
                })?
                .to_bytes()
        };
        Ok(Self::Replay {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }

    /// The request for the next attempt; `None` when it was sent already and cannot be again.
    fn next(&mut self) -> Option<Request<RequestBody>> {
        match self {
            Self::Once(held) => held.take(),
            Self::Replay {
                method,
                uri,
                headers,
                body,
            } => {
                let mut request = Request::new(RequestBody::full(body.clone()));
                *request.method_mut() = method.clone();
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers.clone();
                Some(request)
            }
        }
    }

    /// Whether another attempt can send the request.
    fn resendable(&self) -> bool {
        match self {
            Self::Once(held) => held.is_some(),
            Self::Replay { .. } => true,
        }
    }

    fn headers(&self) -> Option<&HeaderMap> {
        match self {
            Self::Once(held) => held.as_ref().map(Request::headers),
            Self::Replay { headers, .. } => Some(headers),
        }
    }
}

async fn retrying(
    x: &Exchange<'_>,
    policy: &RetryPolicy,
    mut request: Request<RequestBody>,
) -> Tried {
    // Each attempt is sent from the whole head (replayed, or given back unsent).
    x.added.insert_into(request.headers_mut());
    let method_allowed = policy.retries_method(request.method());
    let mut source = match Source::of(request, method_allowed).await {
        Ok(source) => source,
        Err(err) => {
            return Tried {
                result: Err(err),
                attempts: 0,
                target: x.first,
            };
        }
    };
    let budget = &x.service.state.retry_budget;
    budget.deposit();
    let mut tried: SmallVec<[usize; 4]> = SmallVec::new();
    let mut index = x.first;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let endpoint = &x.endpoints.targets[index];
        let Some(mut request) = source.next() else {
            // Unreachable: the loop goes on only while the request can be sent again.
            return Tried {
                result: Err(GatewayError::new(
                    ErrorKind::Internal,
                    "the request could not be resent",
                )),
                attempts,
                target: index,
            };
        };
        if attempts > 1 && !x.preserve_host {
            let host = endpoint.target.host_header().clone();
            request.headers_mut().insert(HOST, host);
        }
        let attempt = Attempt::start(&endpoint.state, &x.service.state);
        let (result, unsent) = attempt_once(x, endpoint, request, attempt.started()).await;
        let outcome = outcome_of(&result);
        attempt.finish_at(outcome, ended_at(&result));
        if let Source::Once(held) = &mut source {
            *held = unsent;
        }
        let retry = attempts <= policy.attempts
            && source.resendable()
            && policy.retries(outcome, method_allowed);
        let done = |result: Result<UpstreamResponse, Failure>| Tried {
            result: result.map_err(GatewayError::from),
            attempts,
            target: index,
        };
        if !retry {
            return done(result);
        }
        if !budget.withdraw() {
            tracing::debug!(service = %x.service.name, "retry budget spent: not retrying");
            return done(result);
        }
        tokio::time::sleep(policy.backoff(attempts)).await;
        tried.push(index);
        let next = source.headers().and_then(|headers| {
            let key = PickKey {
                client_ip: x.client_ip,
                headers,
                consumer: x.consumer,
            };
            // Another target when there is one, else any (the same one again).
            x.endpoints
                .pick(&key, &tried)
                .or_else(|| x.endpoints.pick(&key, &[]))
        });
        let Some(next) = next else {
            return done(result);
        };
        tracing::debug!(
            service = %x.service.name,
            target = %endpoint.target.url,
            ?outcome,
            attempt = attempts,
            "retrying on another attempt"
        );
        // A retried answer is dropped unread: nothing of it reached the client.
        drop(result);
        index = next;
    }
}

/// One attempt on `endpoint`, begun at `started`; a connect failure gives the request back,
/// unsent.
async fn attempt_once(
    x: &Exchange<'_>,
    endpoint: &Endpoint,
    request: Request<RequestBody>,
    started: Instant,
) -> (
    Result<UpstreamResponse, Failure>,
    Option<Request<RequestBody>>,
) {
    let deadline = started + x.timeout;
    match upstream::connect(x.service, endpoint, deadline).await {
        Err(failure) => (Err(failure), Some(request)),
        Ok(connection) => {
            let exchanged = upstream::exchange(
                x.service,
                endpoint,
                connection,
                request,
                &upstream::NO_ADDED_HEADERS,
                x.head_bytes,
                started,
                deadline,
            );
            (exchanged.await, None)
        }
    }
}

/// When an attempt ended: its answer's arrival (already read), or now.
fn ended_at(result: &Result<UpstreamResponse, Failure>) -> Instant {
    match result {
        Ok(answer) => answer.answered,
        Err(_) => crate::poll_clock::now(),
    }
}

/// How an attempt counts: the status it got, or how it failed.
fn outcome_of(result: &Result<UpstreamResponse, Failure>) -> Outcome {
    match result {
        Ok(answer) => Outcome::Status(answer.response.status().as_u16()),
        Err(failure) => failure.outcome,
    }
}
