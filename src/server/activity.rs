//! What a client connection is doing, so that idle and slow-header connections can be closed
//! (`limits.idle_timeout`, `limits.header_timeout`).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

const IDLE: u8 = 0;
const READING: u8 = 1;
const BUSY: u8 = 2;

/// A connection's phase and when it began: idle, receiving a request head, or serving.
pub struct ConnActivity {
    epoch: Instant,
    phase: AtomicU8,
    since_ms: AtomicU64,
    in_flight: AtomicU32,
    ambiguous_framing: AtomicBool,
}

/// What the connection's watchdog should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check again at this instant.
    CheckAt(Instant),
    /// The connection overstayed: close it.
    Expired,
}

impl Default for ConnActivity {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnActivity {
    /// A new connection, idle from now.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            ambiguous_framing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        crate::poll_clock::now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64
    }

    /// Bytes arrived from the client: an idle connection starts receiving a request head.
    pub fn on_read(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            self.phase.store(READING, Ordering::Relaxed);
        }
    }

    /// The client sent a head with both `Content-Length` and `Transfer-Encoding`.
    pub fn on_ambiguous_framing(&self) {
        self.ambiguous_framing.store(true, Ordering::Release);
    }

    /// Whether the client sent a head with ambiguous framing: every request of this
    /// connection is then refused and the connection closed.
    pub fn has_ambiguous_framing(&self) -> bool {
        self.ambiguous_framing.load(Ordering::Acquire)
    }

    /// A request's head was received and is being served.
    pub fn on_request_start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// A response was fully sent (or abandoned).
    pub fn on_request_end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            self.phase.store(IDLE, Ordering::Relaxed);
        }
    }

    /// Whether the connection has outstayed `idle` (no request) or `header` (a request head
    /// that is taking too long); otherwise when to look again. While idle or busy the answer
    /// is at most half a header timeout away, so a head that starts arriving is noticed in
    /// time: a slow head is cut off between `header` and 1.5 × `header` after its first byte.
    pub fn check(&self, idle: Duration, header: Duration) -> Verdict {
        let now = self.now_ms();
        let since = self.since_ms.load(Ordering::Relaxed);
        let poll = (header.as_millis() as u64 / 2).max(10);
        let deadline = match self.phase.load(Ordering::Relaxed) {
            IDLE => since + idle.as_millis() as u64,
            READING => since + header.as_millis() as u64,
            _ => return Verdict::CheckAt(self.at(now + poll)),
        };
        if now >= deadline {
            Verdict::Expired
        } else {
            Verdict::CheckAt(self.at(deadline.min(now + poll)))
        }
    }

    /// The first check of a new connection.
    pub fn first_check(&self, idle: Duration, header: Duration) -> Instant {
        self.epoch + idle.min(header / 2)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_then_reading_then_busy() {
        let idle = Duration::from_secs(60);
        let header = Duration::from_secs(10);
        let a = ConnActivity::new();
        assert!(matches!(a.check(idle, header), Verdict::CheckAt(_)));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(a.check(idle, header), Verdict::Expired);

        let a = ConnActivity::new();
        tokio::time::advance(Duration::from_secs(30)).await;
        a.on_read();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(matches!(a.check(idle, header), Verdict::CheckAt(_)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(a.check(idle, header), Verdict::Expired);

        let a = ConnActivity::new();
        a.on_read();
        a.on_request_start();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(matches!(a.check(idle, header), Verdict::CheckAt(_)));
        a.on_request_end();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(matches!(a.check(idle, header), Verdict::CheckAt(_)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(a.check(idle, header), Verdict::Expired);
    }
}
