//! The gateway's HTTP/1.1 client: one upstream connection, run by the request that holds it.
//!
//! hyper's client runs each connection as a task of its own, fed through a channel: every
//! exchange wakes that task, and is woken back through a second channel, with the body
//! through a third. At proxy rates that machinery cost about 1.3 µs of the ~8 µs of user CPU
//! the gateway spent per request on the stacked bench route. Here the exchange runs inside the
//! request's own task, as in nginx or Pingora: [`Http1Conn::send`] writes the request and
//! reads the response head; the body ([`Http1Body`]) reads the rest as the client takes it,
//! and gives the connection back to its pool at the end. A body that was already read with
//! the head (most API answers) comes back whole, and the connection is free at once.
//!
//! Parsing is httparse's (the parser under hyper): heads, chunk sizes and trailers. Framing
//! follows RFC 9112: see `request` for what is sent, `response` and `chunked` for what is
//! read. HTTP/2 upstreams stay on hyper.
//!
//! An idle connection in a pool is polled by nobody: [`Http1Conn::ready_now`] checks it when
//! it is taken, and the pools' sweep checks them all every few seconds, so one the target
//! closed (or sent something unasked on) is closed too.

mod body;
mod chunked;
mod request;
mod response;
mod stream;

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request};
use http_body::{Body, Frame};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use body::Http1Body;
pub(super) use response::{Head, ResponseFraming};
pub(super) use stream::Stream;

use crate::body::{BoxError, RequestBody};
use crate::http1::{self, ChunkSize, NameMemo};
use crate::upstream::AddedHeaders;
use request::BodyFraming;

/// Where an HTTP/1.1 response's header values live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadBytes {
    /// In the connection's read buffer, split off without a copy: for answers passed on
    /// and dropped.
    Shared,
    /// In a copy of the head of their own: for answers that are kept (the cache's fills),
    /// which must not keep the connection's buffer alive, and need not copy them again.
    Own,
}

/// Room kept free in the read buffer before each read.
const READ_ROOM: usize = 4096;
/// The read buffer's size when it has to grow.
const READ_BUFFER: usize = 8192;
/// Request body bytes queued for writing, at most, before the body is polled again.
const QUEUE_LIMIT: usize = 64 * 1024;

/// An HTTP/1.1 connection to a target.
pub struct Http1Conn {
    io: Stream,
    /// Bytes read from the target and not yet taken.
    buf: BytesMut,
    /// The request head being written (kept to reuse its allocation).
    out: Vec<u8>,
    /// The header names of the last response (the next mostly repeats them).
    names: NameMemo,
}

impl fmt::Debug for Http1Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1Conn")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// The answer to a request: its head, and the body that follows.
pub struct Answer {
    /// Status, headers, framing and whether the connection may be reused.
    pub head: Head,
    /// The whole body when it came with the head (or there is none); else it is to be read
    /// from the connection with [`Http1Body`].
    pub body: Option<Bytes>,
}

/// Why an exchange failed.
pub enum SendError {
    /// The connection turned out closed before any of the request was written: the request
    /// is given back, to be sent on another connection.
    Unsent(Box<Request<RequestBody>>),
    /// The client's request body failed (or went over the route's `max_body`).
    Body(BoxError),
    /// The connection failed or closed before the answer, or the answer was malformed.
    Failed(BoxError),
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsent(_) => f.write_str("the connection was closed before the request"),
            Self::Body(err) => write!(f, "request body: {err}"),
            Self::Failed(err) => err.fmt(f),
        }
    }
}

impl StdError for SendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Unsent(_) => None,
            Self::Body(err) | Self::Failed(err) => Some(err.as_ref()),
        }
    }
}

/// A response the gateway cannot take.
#[derive(Debug)]
pub(super) enum Invalid {
    /// The head does not parse.
    Head(httparse::Error),
    /// The head is over `MAX_HEAD_BYTES`.
    HeadTooLarge,
    /// More than `MAX_HEADERS` header lines.
    TooManyHeaders,
    /// A status outside 100–999.
    Status(u16),
    /// `101 Switching Protocols`, which the gateway never asks for.
    UnaskedUpgrade,
    /// A header name `http` refuses.
    HeaderName,
    /// A header value `http` refuses.
    HeaderValue,
    /// A `Content-Length` that is not one number.
    ContentLength,
    /// A malformed chunk-size line.
    ChunkSize,
    /// A chunk not followed by CRLF.
    ChunkEnd,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Head(err) => write!(f, "invalid response head: {err}"),
            Self::HeadTooLarge => f.write_str("response head too large"),
            Self::TooManyHeaders => f.write_str("too many response headers"),
            Self::Status(code) => write!(f, "invalid response status {code}"),
            Self::UnaskedUpgrade => f.write_str("unrequested 101 Switching Protocols"),
            Self::HeaderName => f.write_str("invalid response header name"),
            Self::HeaderValue => f.write_str("invalid response header value"),
            Self::ContentLength => f.write_str("invalid Content-Length"),
            Self::ChunkSize => f.write_str("invalid chunk size line"),
            Self::ChunkEnd => f.write_str("chunk not terminated by CRLF"),
        }
    }
}

impl StdError for Invalid {}

impl Http1Conn {
    /// A connection over `io`, with nothing sent yet.
    pub fn new(io: Stream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            names: NameMemo::default(),
        }
    }

    /// True when the connection can take a request now: the target has neither closed it
    /// nor sent anything unasked. Reads without a waker (nobody waits on an idle connection)
    /// and without a system call unless the socket has something.
    pub fn ready_now(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }

    /// Reads what the target sent into the buffer; `Ok(0)` when it closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_ROOM {
            self.buf.reserve(READ_BUFFER);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// Sends `request` (its URI in origin form) with the `added` fields and reads the
    /// response head, with the body too when it is already in. The caller bounds the time.
    ///
    /// The head is encoded before the future is made, so that the future holds only what
    /// the exchange needs (futures are copied whole each time they move into their caller).
    pub fn send(
        &mut self,
        request: Request<RequestBody>,
        added: &AddedHeaders,
        head_bytes: HeadBytes,
    ) -> impl Future<Output = Result<Answer, SendError>> {
        let (mut parts, body) = request.into_parts();
        let framing = request::frame(&mut parts.headers, body.is_end_stream(), &body.size_hint());
        self.out.clear();
        request::encode_head(
            &mut self.out,
            &parts.method,
            &parts.uri,
            &parts.headers,
            added,
        );
        let head_request = parts.method == Method::HEAD;
        // A request without a body is kept whole until it is written, to be given back if
        // the connection turns out closed.
        let (body, unsent) = match framing {
            BodyFraming::Empty => (None, Some(Request::from_parts(parts, body))),
            _ => (Some(body), None),
        };
        let mut writer = Writer {
            head_sent: 0,
            queue: VecDeque::new(),
            queued: 0,
            body,
            framing,
            body_sent: 0,
            trailers: None,
            done: false,
            broken: None,
        };
        async move {
            let exchanged =
                poll_fn(|cx| self.poll_exchange(cx, &mut writer, head_request, head_bytes)).await;
            match exchanged {
                Ok(mut answer) => {
                    if !writer.done {
                        // The target answered before the whole request was sent: it will not
                        // read the rest, so the connection cannot carry another request.
                        answer.head.keep_alive = false;
                    }
                    Ok(answer)
                }
                Err(Failure::Unsent) => match unsent {
                    Some(request) => Err(SendError::Unsent(Box::new(request))),
                    None => Err(SendError::Failed("the connection closed".into())),
                },
                Err(Failure::Body(err)) => Err(SendError::Body(err)),
                Err(Failure::Failed(err)) => Err(SendError::Failed(err)),
            }
        }
    }

    /// Writes the request while reading for the answer: a target may answer (and close)
    /// before it has read the whole request.
    fn poll_exchange(
        &mut self,
        cx: &mut Context<'_>,
        writer: &mut Writer,
        head_request: bool,
        head_bytes: HeadBytes,
    ) -> Poll<Result<Answer, Failure>> {
        if !writer.done && writer.broken.is_none() {
            match writer.poll_write(cx, &mut self.io, &self.out) {
                Poll::Ready(Ok(())) => writer.done = true,
                Poll::Ready(Err(Failure::Failed(err))) => writer.broken = Some(err),
                Poll::Ready(Err(other)) => return Poll::Ready(Err(other)),
                Poll::Pending => {}
            }
        }
        loop {
            match ready!(self.poll_fill(cx)) {
                Ok(0) => {
                    let err = match writer.broken.take() {
                        Some(err) => err,
                        None if self.buf.is_empty() => io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the upstream closed the connection without answering",
                        )
                        .into(),
                        None => io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the upstream closed the connection in the response head",
                        )
                        .into(),
                    };
                    return Poll::Ready(Err(Failure::Failed(err)));
                }
                Ok(_) => {}
                Err(err) => return Poll::Ready(Err(Failure::Failed(err.into()))),
            }
            let head =
                match response::parse(&mut self.buf, &mut self.names, head_request, head_bytes) {
                    Ok(Some(head)) => head,
                    Ok(None) => continue,
                    Err(err) => return Poll::Ready(Err(Failure::Failed(err.into()))),
                };
            let body = match head.framing {
                ResponseFraming::Empty => Some(Bytes::new()),
                ResponseFraming::Length(n) if n <= self.buf.len() as u64 => {
                    // n fits in the buffer, so in a usize.
                    Some(take(&mut self.buf, n as usize))
                }
                _ => None,
            };
            return Poll::Ready(Ok(Answer { head, body }));
        }
    }
}

/// Takes the first `n` bytes of `buf`, without copying: they share the read buffer, which is
/// read into again (not reallocated) once they are gone, as in hyper. Whoever keeps bytes
/// long (the cache) copies them.
fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    buf.split_to(n).freeze()
}

/// How the exchange's poll ended badly.
enum Failure {
    /// Nothing was written, and the request has no body: it can go elsewhere.
    Unsent,
    /// The request body failed.
    Body(BoxError),
    /// The connection failed.
    Failed(BoxError),
}

/// The request's write side: the head, then the body with its framing.
struct Writer {
    /// Bytes of the head written.
    head_sent: usize,
    /// Body bytes (with chunk framing) to write, in order.
    queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    queued: usize,
    /// The body, until it ended.
    body: Option<RequestBody>,
    framing: BodyFraming,
    /// Body bytes taken from the client so far.
    body_sent: u64,
    /// Trailers to send after the last chunk.
    trailers: Option<http::HeaderMap>,
    /// Everything was written.
    done: bool,
    /// Writing failed; the answer may still be read (a target may answer, then close).
    broken: Option<BoxError>,
}

impl Writer {
    /// Writes as much as can be written now; ready when the whole request is out.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Stream,
        head: &[u8],
    ) -> Poll<Result<(), Failure>> {
        loop {
            // Take what the client's body has ready, so the head and the first bytes of the
            // body go out in one write.
            if self.queued < QUEUE_LIMIT
                && let Some(body) = self.body.as_mut()
            {
                match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        self.queue_frame(frame)?;
                        continue;
                    }
                    Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(Failure::Body(err))),
                    Poll::Ready(None) => {
                        self.body = None;
                        self.queue_end()?;
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            let head_left = &head[self.head_sent..];
            if head_left.is_empty() && self.queue.is_empty() {
                ready!(Pin::new(&mut *io).poll_flush(cx))
                    .map_err(|err| Failure::Failed(err.into()))?;
                if self.body.is_none() {
                    return Poll::Ready(Ok(()));
                }
                // Waiting for more of the client's body (its waker is registered).
                return Poll::Pending;
            }
            let mut slices: SmallVec<[IoSlice<'_>; 8]> = SmallVec::new();
            if !head_left.is_empty() {
                slices.push(IoSlice::new(head_left));
            }
            slices.extend(self.queue.iter().take(7).map(|piece| IoSlice::new(piece)));
            // One piece goes by a plain write, which takes the kernel less than a vectored one.
            let written = if let [single] = &slices[..] {
                ready!(Pin::new(&mut *io).poll_write(cx, single))
            } else {
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices))
            };
            let written = match written {
                Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero)),
                other => other,
            };
            drop(slices);
            let n = match written {
                Ok(n) => n,
                Err(_) if self.head_sent == 0 && self.framing == BodyFraming::Empty => {
                    return Poll::Ready(Err(Failure::Unsent));
                }
                Err(err) => return Poll::Ready(Err(Failure::Failed(err.into()))),
            };
            self.advance(n, head.len());
        }
    }

    /// Marks `n` bytes written: of the head first, then of the queue.
    fn advance(&mut self, mut n: usize, head_len: usize) {
        let from_head = n.min(head_len - self.head_sent);
        self.head_sent += from_head;
        n -= from_head;
        while n > 0 {
            let Some(piece) = self.queue.front_mut() else {
                break;
            };
            if n < piece.len() {
                piece.advance(n);
                self.queued -= n;
                break;
            }
            n -= piece.len();
            self.queued -= piece.len();
            self.queue.pop_front();
        }
    }

    fn push(&mut self, piece: Bytes) {
        self.queued += piece.len();
        self.queue.push_back(piece);
    }

    /// Queues one frame of the client's body, framed.
    fn queue_frame(&mut self, frame: Frame<Bytes>) -> Result<(), Failure> {
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                // Trailers travel only in a chunked body.
                if let Ok(trailers) = frame.into_trailers() {
                    self.trailers = Some(trailers);
                }
                return Ok(());
            }
        };
        if data.is_empty() {
            return Ok(());
        }
        self.body_sent += data.len() as u64;
        match self.framing {
            BodyFraming::Length(len) if self.body_sent > len => {
                return Err(Failure::Body(
                    "the request body is longer than its length".into(),
                ));
            }
            BodyFraming::Chunked => {
                self.push(Bytes::copy_from_slice(
                    ChunkSize::new(data.len()).as_bytes(),
                ));
                self.push(data);
                self.push(Bytes::from_static(b"\r\n"));
            }
            _ => self.push(data),
        }
        Ok(())
    }

    /// The client's body ended: checks its length, or queues the last chunk.
    fn queue_end(&mut self) -> Result<(), Failure> {
        match self.framing {
            BodyFraming::Length(len) if self.body_sent != len => Err(Failure::Body(
                "the request body is shorter than its length".into(),
            )),
            BodyFraming::Chunked => {
                let mut last = b"0\r\n".to_vec();
                for (name, value) in self.trailers.iter().flatten() {
                    http1::push_field(&mut last, name, value);
                }
                last.extend_from_slice(b"\r\n");
                self.push(Bytes::from(last));
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
