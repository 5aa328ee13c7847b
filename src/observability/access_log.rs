//! The access log: one JSON line per request (SPEC §8), written by a background thread so the
//! request path never waits on stdout or a disk.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use serde::Serialize;

/// Lines that may wait for the writer before new ones are dropped (and counted).
const QUEUE: usize = 65_536;

/// One request's entry, with the fields of SPEC §8.
#[derive(Debug, Default, Serialize)]
pub struct AccessEntry {
    /// When the request arrived, RFC 3339 UTC.
    pub ts: String,
    /// The request id (§3.1).
    pub request_id: String,
    /// The client IP (§3.2).
    pub client_ip: String,
    /// The request method.
    pub method: String,
    /// The `Host` (or `:authority`) the client sent.
    pub host: String,
    /// The normalized path (the raw one when it could not be normalized).
    pub path: String,
    /// The route's name, when one matched.
    pub route: Option<String>,
    /// The service forwarded to.
    pub service: Option<String>,
    /// The target URL forwarded to.
    pub target: Option<String>,
    /// The status sent to the client.
    pub status: u16,
    /// Request body bytes received.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Time from request to the end of the response.
    pub duration_ms: f64,
    /// Time the upstream took to answer with headers (the last attempt's).
    pub upstream_ms: Option<f64>,
    /// Attempts made on the service, when it was retried (absent: one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// The authenticated consumer.
    pub consumer: Option<String>,
    /// The cache's verdict (HIT, MISS, BYPASS).
    pub cache: Option<String>,
    /// What went wrong, when the gateway answered with an error.
    pub error: Option<String>,
}

/// Where access log lines go; cheap to clone.
#[derive(Clone)]
pub struct AccessLog {
    sender: SyncSender<String>,
    dropped: std::sync::Arc<AtomicU64>,
}

impl AccessLog {
    /// Starts a writer to stdout.
    pub fn stdout() -> Self {
        Self::start(Box::new(io::stdout()))
    }

    /// Starts a writer appending to the file at `path`.
    pub fn file(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::start(Box::new(file)))
    }

    fn start(out: Box<dyn Write + Send>) -> Self {
        let (sender, receiver) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver, out))
            .map_or_else(
                |err| tracing::error!(%err, "cannot start the access log writer"),
                drop,
            );
        Self {
            sender,
            dropped: Default::default(),
        }
    }

    /// Queues `entry`; when the writer is too far behind the line is dropped and counted.
    pub fn write(&self, entry: &AccessEntry) {
        let Ok(mut line) = serde_json::to_string(entry) else {
            return;
        };
        line.push('\n');
        match self.sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_lines(receiver: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = receiver.recv() {
        if out.write_all(line.as_bytes()).is_err() {
            continue;
        }
        // Drain what is queued, then flush once.
        while let Ok(line) = receiver.try_recv() {
            let _ = out.write_all(line.as_bytes());
        }
        let _ = out.flush();
    }
}
