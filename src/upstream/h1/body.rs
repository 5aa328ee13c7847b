//! A response body read from an HTTP/1.1 connection as it is polled; the connection goes
//! back to its pool when the body has been read to its end and may carry another request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::chunked::{ChunkedDecoder, Decoded};
use super::response::ResponseFraming;
use super::take;
use crate::body::BoxError;
use crate::upstream::pool::Lease;

/// Where the body is.
#[derive(Debug)]
enum State {
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked.
    Chunked(ChunkedDecoder),
    /// Until the target closes.
    UntilClose,
    /// Over.
    Done,
}

/// A streamed HTTP/1.1 response body.
#[derive(Debug)]
pub struct Http1Body {
    /// The connection, held until the body ends.
    lease: Option<Lease>,
    state: State,
    /// Whether the connection may carry another request after this body.
    keep_alive: bool,
}

impl Http1Body {
    /// The body that follows a head with `framing`, on the leased connection.
    pub fn new(lease: Lease, framing: ResponseFraming, keep_alive: bool) -> Self {
        let state = match framing {
            ResponseFraming::Empty | ResponseFraming::Length(0) => State::Done,
            ResponseFraming::Length(n) => State::Length(n),
            ResponseFraming::Chunked => State::Chunked(ChunkedDecoder::default()),
            ResponseFraming::UntilClose => State::UntilClose,
        };
        let mut body = Self {
            lease: Some(lease),
            state,
            keep_alive: keep_alive && framing != ResponseFraming::UntilClose,
        };
        if matches!(body.state, State::Done) {
            body.finish();
        }
        body
    }

    /// The body has ended: the connection goes back to its pool, or is closed.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(lease) = self.lease.take()
            && self.keep_alive
        {
            lease.release();
        }
    }

    /// The body broke: the connection is closed.
    fn fail(&mut self, err: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        self.lease = None;
        Poll::Ready(Some(Err(err.into())))
    }
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(lease) = this.lease.as_mut() else {
                return Poll::Ready(None);
            };
            let conn = lease.conn();
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(remaining) => {
                    if conn.buf.is_empty() {
                        match ready!(conn.poll_fill(cx)) {
                            Ok(0) => return this.fail(closed_early()),
                            Ok(_) => continue,
                            Err(err) => return this.fail(err),
                        }
                    }
                    let n = usize::try_from(*remaining)
                        .map_or(conn.buf.len(), |r| r.min(conn.buf.len()));
                    let data = take(&mut conn.buf, n);
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::Trailers(trailers)) => {
                        this.finish();
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(Decoded::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::More) => match ready!(conn.poll_fill(cx)) {
                        Ok(0) => return this.fail(closed_early()),
                        Ok(_) => {}
                        Err(err) => return this.fail(err),
                    },
                    Err(err) => return this.fail(err),
                },
                State::UntilClose => {
                    if !conn.buf.is_empty() {
                        let all = conn.buf.len();
                        return Poll::Ready(Some(Ok(Frame::data(take(&mut conn.buf, all)))));
                    }
                    match ready!(conn.poll_fill(cx)) {
                        Ok(0) => {
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Ok(_) => {}
                        Err(err) => return this.fail(err),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            State::Chunked(_) | State::UntilClose => SizeHint::default(),
        }
    }
}

fn closed_early() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the upstream closed the connection before the end of the body",
    )
}
