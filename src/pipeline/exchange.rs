//! The end of an exchange: the body sent to the client, which, once sent (or abandoned),
//! frees the connection for idle tracking and writes the access log line.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::body::{BoxError, GatewayBody};
use crate::observability::access_log::{AccessEntry, AccessLog};
use crate::server::ConnActivity;

/// An access log line waiting for the response to finish.
pub struct PendingLog {
    /// Where the line goes.
    pub log: AccessLog,
    /// The entry, complete but for sizes and duration.
    pub entry: AccessEntry,
    /// When the request arrived.
    pub started: Instant,
    /// Request body bytes, counted as they stream upstream.
    pub bytes_in: Option<Arc<AtomicU64>>,
}

/// What happens when the response is done.
pub struct Finish {
    activity: Arc<ConnActivity>,
    bytes_out: u64,
    log: Option<Box<PendingLog>>,
}

impl Finish {
    /// Finishing work for a request on the connection of `activity`.
    pub fn new(activity: Arc<ConnActivity>, log: Option<Box<PendingLog>>) -> Self {
        Self {
            activity,
            bytes_out: 0,
            log,
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.activity.on_request_end();
        if let Some(pending) = self.log.take() {
            let PendingLog {
                log,
                mut entry,
                started,
                bytes_in,
            } = *pending;
            entry.bytes_out = self.bytes_out;
            if let Some(counter) = bytes_in {
                entry.bytes_in = counter.load(Ordering::Relaxed);
            }
            entry.duration_ms = crate::poll_clock::now()
                .saturating_duration_since(started)
                .as_secs_f64()
                * 1000.0;
            log.write(&entry);
        }
    }
}

pin_project! {
    /// The response body as sent to the client.
    pub struct ClientBody {
        #[pin]
        inner: GatewayBody,
        finish: Finish,
    }
}

impl ClientBody {
    /// Sends `inner`, running `finish` when it is done.
    pub fn new(inner: GatewayBody, finish: Finish) -> Self {
        Self { inner, finish }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.finish.bytes_out += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
