//! The body types of the request path: what the gateway sends to clients ([`GatewayBody`]) and
//! to upstreams ([`RequestBody`]). Both stream; neither boxes on the hot path.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use crate::pipeline::mirror::BodyCopy;
use crate::upstream::Http1Body;

/// A boxed error in transit through a body.
pub type BoxError = Box<dyn StdError + Send + Sync>;

pin_project! {
    /// A response body sent to a client: nothing, bytes the gateway made, or an upstream's
    /// body streamed through.
    #[project = GatewayBodyProj]
    pub enum GatewayBody {
        /// No body.
        Empty,
        /// A body the gateway made (errors, `respond` routes).
        Full { data: Option<Bytes> },
        /// An HTTP/2 upstream's response body, streamed as it arrives.
        Stream { #[pin] inner: Incoming },
        /// An HTTP/1.1 upstream's response body, read from its connection as the client
        /// takes it; the connection goes back to the pool at the body's end.
        Http1 { inner: Http1Body },
        /// A body a step began to buffer and gave up on (over its bound): the bytes read so
        /// far, then the rest as it arrives.
        Prefixed { head: Option<Bytes>, rest: Pin<Box<GatewayBody>> },
    }
}

impl GatewayBody {
    /// A body of the given bytes.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        if data.is_empty() {
            Self::Empty
        } else {
            Self::Full { data: Some(data) }
        }
    }

    /// The bytes of a body the gateway made (`None` for a streamed body).
    pub fn clone_full(&self) -> Option<Bytes> {
        match self {
            Self::Empty => Some(Bytes::new()),
            Self::Full { data } => Some(data.clone().unwrap_or_default()),
            Self::Stream { .. } | Self::Http1 { .. } | Self::Prefixed { .. } => None,
        }
    }

    /// An HTTP/2 upstream body, streamed.
    pub fn stream(inner: Incoming) -> Self {
        Self::Stream { inner }
    }

    /// An HTTP/1.1 upstream body, streamed.
    pub fn http1(inner: Http1Body) -> Self {
        Self::Http1 { inner }
    }

    /// `head` (already read from `rest`), then what remains of `rest`.
    pub fn prefixed(head: Bytes, rest: GatewayBody) -> Self {
        Self::Prefixed {
            head: (!head.is_empty()).then_some(head),
            rest: Box::pin(rest),
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            GatewayBodyProj::Empty => Poll::Ready(None),
            GatewayBodyProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            GatewayBodyProj::Stream { inner } => inner.poll_frame(cx).map_err(Into::into),
            GatewayBodyProj::Http1 { inner } => Pin::new(inner).poll_frame(cx),
            GatewayBodyProj::Prefixed { head, rest } => match head.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => rest.as_mut().poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full { data } => data.is_none(),
            Self::Stream { inner } => inner.is_end_stream(),
            Self::Http1 { inner } => inner.is_end_stream(),
            Self::Prefixed { head, rest } => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Self::Stream { inner } => inner.size_hint(),
            Self::Http1 { inner } => inner.size_hint(),
            Self::Prefixed { head, rest } => {
                let extra = head.as_ref().map_or(0, |h| h.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + extra);
                }
                hint
            }
        }
    }
}

/// The error a [`RequestBody`] raises when the client sends more than the route's `max_body`.
#[derive(Debug, Clone, Copy)]
pub struct BodyTooLarge;

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body exceeds the size limit")
    }
}

impl StdError for BodyTooLarge {}

/// True when `err` (or anything in its source chain) is a [`BodyTooLarge`].
pub fn is_body_too_large(err: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if e.is::<BodyTooLarge>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body as the client sent it: hyper's stream, or none at all (the gateway's own
/// HTTP/1.1 loop, `server::h1`, takes only requests without a body).
#[derive(Debug)]
pub enum IncomingBody {
    /// No body.
    Empty,
    /// A body hyper reads from the connection.
    Hyper(Incoming),
}

pin_project! {
    /// A client's request body on its way upstream: streamed, cut off with [`BodyTooLarge`]
    /// past the route's limit, and counted for the access log; or bytes a step buffered (and
    /// changed) before sending.
    pub struct RequestBody {
        #[pin]
        inner: Option<Incoming>,
        remaining: u64,
        counter: Option<Arc<AtomicU64>>,
        full: Option<Bytes>,
        // A mirror's copy of the body (`mirror`): fed as this body streams, or read from.
        copy: BodyCopy,
    }
}

impl RequestBody {
    /// Streams `inner`, allowing at most `limit` bytes; adds what passes to `counter`.
    pub fn new(inner: IncomingBody, limit: u64, counter: Option<Arc<AtomicU64>>) -> Self {
        let inner = match inner {
            IncomingBody::Empty => None,
            IncomingBody::Hyper(body) => Some(body),
        };
        Self {
            inner,
            remaining: limit,
            counter,
            full: None,
            copy: BodyCopy::default(),
        }
    }

    /// A request without a body.
    pub fn empty() -> Self {
        Self {
            inner: None,
            remaining: 0,
            counter: None,
            full: None,
            copy: BodyCopy::default(),
        }
    }

    /// A body of bytes already read (the buffered, transformed body of a request).
    pub fn full(data: Bytes) -> Self {
        Self {
            inner: None,
            remaining: 0,
            counter: None,
            full: (!data.is_empty()).then_some(data),
            copy: BodyCopy::default(),
        }
    }
}

impl RequestBody {
    /// The body of a mirrored request: what the main request's body hands to `copy`.
    pub fn mirrored(copy: BodyCopy) -> Self {
        Self {
            copy,
            ..Self::empty()
        }
    }

    /// Hands every chunk of this body, as it streams, to `copy` (a mirror's body).
    pub fn tee(&mut self, copy: BodyCopy) {
        self.copy = copy;
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let Some(mut inner) = this.inner.as_pin_mut() else {
            if this.copy.is_reader() {
                return this.copy.poll_read(cx);
            }
            let full = this.full.take();
            if let Some(data) = &full {
                this.copy.offer(data);
            }
            this.copy.end();
            return Poll::Ready(full.map(|data| Ok(Frame::data(data))));
        };
        match inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        *this.remaining = 0;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    *this.remaining -= len;
                    if let Some(counter) = this.counter {
                        counter.fetch_add(len, Ordering::Relaxed);
                    }
                    this.copy.offer(data);
                }
                // The sender may not poll again once the body says it has ended.
                if inner.is_end_stream() {
                    this.copy.end();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => {
                this.copy.end();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none()
            && self.inner.as_ref().is_none_or(|b| b.is_end_stream())
            && !self.copy.is_reader()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inner, &self.full) {
            (Some(inner), _) => inner.size_hint(),
            (None, _) if self.copy.is_reader() => SizeHint::default(),
            (None, full) => SizeHint::with_exact(full.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}
