//! The client socket, watched: reads mark the connection active (see [`ConnActivity`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use bytes::{Buf, Bytes};

use super::activity::ConnActivity;
use super::framing::FramingWatch;
use super::parse_error;

pin_project! {
    /// A socket whose reads are reported to the connection's [`ConnActivity`], and whose
    /// HTTP/1.1 framing is watched for smuggling attempts once hyper serves it (the own
    /// HTTP/1.1 loop parses every head itself and serves none with a body).
    pub(super) struct WatchedIo<S> {
        #[pin]
        inner: S,
        activity: Arc<ConnActivity>,
        framing: Option<FramingWatch>,
        // A JSON error being written in place of hyper's own answer (see `parse_error`).
        replacement: Option<Bytes>,
    }
}

impl<S> WatchedIo<S> {
    /// Watches `inner`, reporting to `activity`; the framing is not followed until
    /// [`WatchedIo::watch_framing`].
    pub(super) fn new(inner: S, activity: Arc<ConnActivity>) -> Self {
        Self {
            inner,
            activity,
            framing: None,
            replacement: None,
        }
    }

    /// Starts following the framing from a request boundary: `unserved` are the bytes read
    /// from there on that are handed to hyper, every later read follows.
    pub(super) fn watch_framing(&mut self, unserved: &[u8]) {
        let mut watch = FramingWatch::new();
        if watch.feed(unserved) {
            self.activity.on_ambiguous_framing();
        } else {
            self.framing = Some(watch);
        }
    }
}

impl<S: AsyncRead> AsyncRead for WatchedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        let filled = &buf.filled()[before..];
        if !filled.is_empty() {
            this.activity.on_read();
            if let Some(watch) = this.framing
                && watch.feed(filled)
            {
                this.activity.on_ambiguous_framing();
                *this.framing = None;
            }
        }
        result
    }
}

/// Writes what is left of a replacement answer; ready once it is all written.
fn drain<S: AsyncWrite>(
    mut inner: Pin<&mut S>,
    replacement: &mut Option<Bytes>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while let Some(pending) = replacement.as_mut() {
        if pending.is_empty() {
            *replacement = None;
            break;
        }
        match inner.as_mut().poll_write(cx, pending) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => pending.advance(n),
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

impl<S: AsyncWrite> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut this = self.project();
        if this.replacement.is_some() {
            // hyper closes after its own error answer; anything more is dropped.
            return match drain(this.inner.as_mut(), this.replacement, cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.len())),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                Poll::Pending => Poll::Pending,
            };
        }
        if buf.first() == Some(&b'H')
            && let Some(json) = parse_error::replacement(buf)
        {
            *this.replacement = Some(json);
            if let Poll::Ready(Err(err)) = drain(this.inner.as_mut(), this.replacement, cx) {
                return Poll::Ready(Err(err));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        this.inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A head is always the first slice; only a possible error answer takes the slow path.
        let first = bufs.iter().find(|b| !b.is_empty());
        if self.replacement.is_some()
            || first.is_some_and(|b| b.first() == Some(&b'H') && parse_error::is_canned(b))
        {
            let flat: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            return self.poll_write(cx, &flat);
        }
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        match drain(this.inner.as_mut(), this.replacement, cx) {
            Poll::Ready(Ok(())) => this.inner.poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        match drain(this.inner.as_mut(), this.replacement, cx) {
            Poll::Ready(Ok(())) => this.inner.poll_shutdown(cx),
            other => other,
        }
    }
}
