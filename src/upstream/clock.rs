//! Times kept in atomics: milliseconds since one process-wide base instant.
//!
//! Ejection ends, breaker deadlines and window buckets are stored as `u64` milliseconds so a
//! request can read them with one Relaxed load. The base is a `tokio::time::Instant`, so a test
//! that pauses and advances tokio's clock moves these times too.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// The base: an hour before the first use (when the clock allows), so that instants taken a
/// little before the first use — a paused test clock started earlier — still count from it,
/// and no stored time is ever 0 (0 means "none" in the atomics).
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::Instant::now();
        let early = [3600, 60, 1]
            .into_iter()
            .find_map(|secs| now.checked_sub(Duration::from_secs(secs)))
            .unwrap_or(now);
        Instant::from_std(early)
    })
}

/// `now` as milliseconds since the base (at least 1).
pub(crate) fn millis(now: Instant) -> u64 {
    let elapsed = now.saturating_duration_since(base()).as_millis();
    u64::try_from(elapsed).unwrap_or(u64::MAX).max(1)
}

/// A duration in whole milliseconds (at least 1, so a configured duration never reads as 0).
pub(crate) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Whole seconds from `now_ms` until `until_ms`, rounded up, at least 1 (for `Retry-After`).
pub(crate) fn secs_until(now_ms: u64, until_ms: u64) -> u64 {
    until_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn millis_follow_the_paused_clock() {
        let start = millis(Instant::now());
        assert!(start >= 1);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(millis(Instant::now()) - start, 1500);
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(secs_until(1000, 1000), 1);
        assert_eq!(secs_until(1000, 1001), 1);
        assert_eq!(secs_until(1000, 3001), 3);
        assert_eq!(secs_until(5000, 1000), 1);
        assert_eq!(duration_millis(Duration::ZERO), 1);
    }
}
