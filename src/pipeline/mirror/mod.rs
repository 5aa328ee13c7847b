//! `mirror` (SPEC §2.4): a copy of a share of a route's requests sent to another service,
//! fire-and-forget.
//!
//! The copy is what the main target gets (method, forwarded path and query, headers with
//! `X-Forwarded-*`), except `Host`, which is the mirror target's unless `preserve_host`. It is
//! sent from its own task, so it never delays or fails the client's request: the client's
//! answer comes from the main service alone, and the mirror's answer is read and discarded.
//! A body is copied as it streams to the main target, never buffered (see [`tee`]); a mirror
//! that falls behind is cut off. At most [`MAX_IN_FLIGHT`] copies of a route are in flight;
//! beyond that, requests are not mirrored. A copy has the mirror service's request timeout.

mod tee;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::header::HOST;
use http::request::Parts;
use http::{Request, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;

use crate::body::{GatewayBody, RequestBody};
use crate::runtime::ForwardPlan;
use crate::upstream::{
    self, Attempt, Endpoints, Outcome, PickKey, ServiceRuntime, UpstreamProtocol,
};
pub use tee::{BodyCopy, CopyDone};

/// Copies of one route's requests in flight at most.
pub const MAX_IN_FLIGHT: usize = 256;
/// Bytes of a mirror's answer read (and discarded) to keep its connection; a longer answer
/// closes the connection instead.
const MAX_DRAIN: usize = 1 << 20;

/// A route's `mirror`, compiled.
pub struct Mirror {
    service: Arc<ServiceRuntime>,
    /// Share of requests copied, 0–1.
    share: f64,
    in_flight: Arc<AtomicUsize>,
}

/// What a copy needs to know of the request besides its head.
pub struct Source<'a> {
    /// The client's address (for the mirror service's balancer).
    pub client_ip: IpAddr,
    /// The authenticated consumer (for the mirror service's balancer).
    pub consumer: Option<&'a str>,
    /// Keep the `Host` the main request has.
    pub preserve_host: bool,
}

impl<'a> Source<'a> {
    /// What a copy needs of a request on its way to `plan`'s service.
    pub(super) fn of(ctx: &'a super::RequestContext<'_>, plan: &ForwardPlan) -> Self {
        Self {
            client_ip: ctx.client_ip,
            consumer: ctx.identity.as_ref().and_then(|i| i.consumer.as_deref()),
            preserve_host: plan.preserve_host,
        }
    }
}

impl Mirror {
    /// Copies `percent` (0–100) of requests to `service`.
    pub fn new(service: Arc<ServiceRuntime>, percent: f64) -> Self {
        Self {
            service,
            share: (percent / 100.0).clamp(0.0, 1.0),
            in_flight: Arc::default(),
        }
    }

    /// Sends a copy of the request about to go to the main target (`parts`, ready to send,
    /// and `body`) when this request is in the mirrored share, and returns the body for the
    /// main request (feeding the copy as it streams).
    pub fn copy(&self, parts: &Parts, mut body: RequestBody, source: &Source<'_>) -> RequestBody {
        if self.share < 1.0 && fastrand::f64() >= self.share {
            return body;
        }
        let Some(slot) = Slot::take(&self.in_flight) else {
            tracing::debug!(service = %self.service.name, "mirror skipped: too many copies in flight");
            return body;
        };
        let endpoints = self.service.endpoints();
        let key = PickKey {
            client_ip: source.client_ip,
            headers: &parts.headers,
            consumer: source.consumer,
        };
        let Some(index) = endpoints.pick(&key, &[]) else {
            return body;
        };
        let Some(head) = self.head(parts, &endpoints, index, source) else {
            return body;
        };
        let (copy, done) = if body.is_end_stream() {
            (RequestBody::empty(), None)
        } else {
            let (feed, read, done) = tee::channel();
            body.tee(feed);
            (RequestBody::mirrored(read), Some(done))
        };
        let request = Request::from_parts(head, copy);
        tokio::spawn(send(
            self.service.clone(),
            endpoints,
            index,
            request,
            done,
            slot,
        ));
        body
    }

    /// The copy's head: the main request's, addressed to the mirror target.
    fn head(
        &self,
        parts: &Parts,
        endpoints: &Endpoints,
        index: usize,
        source: &Source<'_>,
    ) -> Option<Parts> {
        let target = &endpoints.targets[index].target;
        let path = parts.uri.path_and_query()?.clone();
        let (uri, version) = match self.service.protocol {
            UpstreamProtocol::Http1 => (Uri::from(path), Version::HTTP_11),
            UpstreamProtocol::H2c => (
                Uri::builder()
                    .scheme(target.scheme.clone())
                    .authority(target.authority.clone())
                    .path_and_query(path)
                    .build()
                    .ok()?,
                Version::HTTP_2,
            ),
        };
        let (mut head, ()) = Request::new(()).into_parts();
        head.method = parts.method.clone();
        head.uri = uri;
        head.version = version;
        head.headers = parts.headers.clone();
        if !source.preserve_host {
            head.headers.insert(HOST, target.host_header().clone());
        }
        Some(head)
    }
}

/// One place among a route's copies in flight, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(in_flight: &Arc<AtomicUsize>) -> Option<Self> {
        in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_IN_FLIGHT).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(in_flight.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends a copy and reads its answer to the end (or drops it), recording the attempt in the
/// mirror target's state like any other.
async fn send(
    service: Arc<ServiceRuntime>,
    endpoints: Arc<Endpoints>,
    index: usize,
    request: Request<RequestBody>,
    done: Option<CopyDone>,
    _slot: Slot,
) {
    let endpoint = &endpoints.targets[index];
    let attempt = Attempt::start(&endpoint.state, &service.state);
    let sent = upstream::send(
        &service,
        endpoint,
        request,
        service.request_timeout,
        attempt.started(),
    );
    match sent.await {
        Ok(answer) => {
            attempt.finish_at(
                Outcome::Status(answer.response.status().as_u16()),
                answer.answered,
            );
            let (_, body) = answer.response.into_parts();
            let _ = tokio::time::timeout(service.request_timeout, drain(body)).await;
        }
        Err(failure) => {
            // A copy cut off on our side is not the mirror target's failure.
            let cut_off = done.is_some_and(|d| !d.complete());
            let outcome = match failure.outcome {
                Outcome::Reset if cut_off => Outcome::Client,
                outcome => outcome,
            };
            attempt.finish(outcome);
            tracing::debug!(
                service = %service.name,
                error = %failure.error.log_text(),
                "mirrored request failed"
            );
        }
    }
}

/// Reads a body to its end, up to [`MAX_DRAIN`] bytes.
async fn drain(body: GatewayBody) {
    let mut body = std::pin::pin!(body);
    let mut read = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |d| d.len());
        if read > MAX_DRAIN {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let slots: Vec<Slot> = (0..MAX_IN_FLIGHT)
            .map(|_| Slot::take(&in_flight).expect("a slot"))
            .collect();
        assert!(Slot::take(&in_flight).is_none());
        drop(slots);
        assert_eq!(in_flight.load(Ordering::Relaxed), 0);
        assert!(Slot::take(&in_flight).is_some());
    }
}
