//! A request body's copy for a mirror, fed as the body streams to the main target.
//!
//! The main request's body hands each chunk it passes on to a bounded channel, without
//! waiting: when the mirror falls [`BACKLOG`] chunks behind, the copy is cut off (the mirror's
//! request fails) and the main request goes on untouched. Chunks are `Bytes`, so a copy is a
//! reference count, not a second buffer of the body.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

use crate::body::BoxError;

/// Chunks a mirror may fall behind before its copy is cut off.
const BACKLOG: usize = 64;

/// Either end of a body copy, or nothing (the usual case: one pointer, no allocation).
#[derive(Default)]
pub struct BodyCopy(Option<Box<End>>);

enum End {
    /// The main body: offers each chunk.
    Feed {
        chunks: mpsc::Sender<Bytes>,
        done: Arc<AtomicBool>,
    },
    /// The mirror's body: reads the chunks.
    Read {
        chunks: mpsc::Receiver<Bytes>,
        done: Arc<AtomicBool>,
    },
}

/// The copy was cut off before the main body ended.
#[derive(Debug)]
struct CopyCutOff;

impl std::fmt::Display for CopyCutOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the mirrored body copy was cut off")
    }
}

impl std::error::Error for CopyCutOff {}

/// Whether the main body reached its end with the copy complete.
#[derive(Clone)]
pub struct CopyDone(Arc<AtomicBool>);

impl CopyDone {
    /// True once every chunk was handed to the copy and the main body ended.
    pub fn complete(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A connected pair: the main body's feeding end and the mirror's reading end.
pub(super) fn channel() -> (BodyCopy, BodyCopy, CopyDone) {
    let (tx, rx) = mpsc::channel(BACKLOG);
    let done = Arc::new(AtomicBool::new(false));
    let feed = End::Feed {
        chunks: tx,
        done: done.clone(),
    };
    let read = End::Read {
        chunks: rx,
        done: done.clone(),
    };
    (
        BodyCopy(Some(Box::new(feed))),
        BodyCopy(Some(Box::new(read))),
        CopyDone(done),
    )
}

impl BodyCopy {
    /// Whether this is a mirror's body.
    pub fn is_reader(&self) -> bool {
        matches!(self.0.as_deref(), Some(End::Read { .. }))
    }

    /// Hands a chunk of the main body to the copy; a copy that cannot take it is cut off.
    pub fn offer(&mut self, data: &Bytes) {
        if let Some(End::Feed { chunks, .. }) = self.0.as_deref()
            && chunks.try_send(data.clone()).is_err()
        {
            self.0 = None;
        }
    }

    /// The main body ended: the copy ends after the chunks it has.
    pub fn end(&mut self) {
        if let Some(End::Feed { done, .. }) = self.0.as_deref() {
            done.store(true, Ordering::Release);
        }
        self.0 = None;
    }

    /// The next chunk of a mirror's body; an error when the copy was cut off.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(End::Read { chunks, done }) = self.0.as_deref_mut() else {
            return Poll::Ready(None);
        };
        match chunks.poll_recv(cx) {
            Poll::Ready(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(None) if done.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => Poll::Ready(Some(Err(Box::new(CopyCutOff)))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    async fn read_all(copy: &mut BodyCopy) -> Result<Vec<Bytes>, BoxError> {
        let mut out = Vec::new();
        while let Some(frame) = poll_fn(|cx| copy.poll_read(cx)).await {
            if let Ok(data) = frame?.into_data() {
                out.push(data);
            }
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_complete_copy_ends_cleanly() {
        let (mut feed, mut read, done) = channel();
        assert!(read.is_reader() && !feed.is_reader());
        feed.offer(&Bytes::from_static(b"ab"));
        feed.offer(&Bytes::from_static(b"c"));
        feed.end();
        assert!(done.complete());
        let chunks = read_all(&mut read).await.expect("complete");
        assert_eq!(
            chunks,
            [Bytes::from_static(b"ab"), Bytes::from_static(b"c")]
        );
    }

    #[tokio::test]
    async fn a_copy_that_falls_behind_is_cut_off() {
        let (mut feed, mut read, done) = channel();
        for _ in 0..BACKLOG + 1 {
            feed.offer(&Bytes::from_static(b"x"));
        }
        feed.end();
        assert!(!done.complete());
        assert!(read_all(&mut read).await.is_err());
    }

    #[tokio::test]
    async fn a_main_body_dropped_midway_cuts_the_copy_off() {
        let (mut feed, mut read, _) = channel();
        feed.offer(&Bytes::from_static(b"x"));
        drop(feed);
        assert!(read_all(&mut read).await.is_err());
    }
}
