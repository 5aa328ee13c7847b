//! The client socket, watched: reads mark the connection active (see [`ConnActivity`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::ConnActivity;
use super::framing::FramingWatch;

pin_project! {
    /// A socket whose reads are reported to the connection's [`ConnActivity`], and whose
    /// HTTP/1.1 framing is watched for smuggling attempts.
    pub(super) struct WatchedIo<S> {
        #[pin]
        inner: S,
        activity: Arc<ConnActivity>,
        framing: Option<FramingWatch>,
    }
}

impl<S> WatchedIo<S> {
    /// Watches `inner`, reporting to `activity`.
    pub(super) fn new(inner: S, activity: Arc<ConnActivity>) -> Self {
        Self {
            inner,
            activity,
            framing: Some(FramingWatch::new()),
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

impl<S: AsyncWrite> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
