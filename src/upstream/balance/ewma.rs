//! Peak EWMA latency (Finagle, Linkerd): a target's latency estimate jumps up to any slower
//! answer at once, follows faster answers as an exponentially weighted moving average, and
//! decays toward zero while the target gets no answers, so a target the balancer avoided is
//! tried again after a while.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Time constant of the average and of the decay while idle.
const DECAY_MS: f64 = 10_000.0;
/// The packed value before the first answer.
const NONE: u64 = u64::MAX;

/// A target's latency estimate, updated without locks: the estimate in microseconds (an `f32`)
/// and the time of the last update (milliseconds since `base`, wrapping after 49 days) packed
/// in one atomic word.
#[derive(Debug)]
pub struct PeakEwma {
    packed: AtomicU64,
    base: Instant,
}

impl Default for PeakEwma {
    fn default() -> Self {
        Self {
            packed: AtomicU64::new(NONE),
            base: Instant::now(),
        }
    }
}

fn pack(micros: f64, at: u32) -> u64 {
    (u64::from((micros as f32).to_bits()) << 32) | u64::from(at)
}

fn unpack(packed: u64) -> (f64, u32) {
    (
        f64::from(f32::from_bits((packed >> 32) as u32)),
        packed as u32,
    )
}

/// The weight left to an estimate `elapsed_ms` old.
fn decay(elapsed_ms: u32) -> f64 {
    (-f64::from(elapsed_ms) / DECAY_MS).exp()
}

impl PeakEwma {
    fn millis(&self, now: Instant) -> u32 {
        // Wrapping on purpose: only differences between stamps are used.
        now.saturating_duration_since(self.base).as_millis() as u32
    }

    /// Adds one answer's latency, observed at `now`.
    pub fn record(&self, latency: Duration, now: Instant) {
        let sample = latency.as_secs_f64() * 1e6;
        let at = self.millis(now);
        let _ = self
            .packed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
                let next = if packed == NONE {
                    sample
                } else {
                    let (estimate, stamp) = unpack(packed);
                    let weight = decay(at.wrapping_sub(stamp));
                    if sample > estimate * weight {
                        // Peak: a slower answer counts in full at once.
                        sample
                    } else {
                        estimate * weight + sample * (1.0 - weight)
                    }
                };
                Some(pack(next, at))
            });
    }

    /// The estimate at `now`, in microseconds; `None` before the first answer.
    pub fn estimate_micros(&self, now: Instant) -> Option<f64> {
        let packed = self.packed.load(Ordering::Relaxed);
        if packed == NONE {
            return None;
        }
        let (estimate, stamp) = unpack(packed);
        Some(estimate * decay(self.millis(now).wrapping_sub(stamp)))
    }

    /// The estimate at `now`; `None` before the first answer.
    pub fn estimate(&self, now: Instant) -> Option<Duration> {
        self.estimate_micros(now)
            .map(|micros| Duration::from_secs_f64(micros.max(0.0) / 1e6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(estimate: Option<Duration>) -> f64 {
        estimate.expect("an estimate").as_secs_f64() * 1000.0
    }

    #[tokio::test(start_paused = true)]
    async fn peaks_count_at_once_and_fade() {
        let ewma = PeakEwma::default();
        assert_eq!(ewma.estimate(Instant::now()), None);
        ewma.record(Duration::from_millis(10), Instant::now());
        assert!((ms(ewma.estimate(Instant::now())) - 10.0).abs() < 0.01);

        // A slow answer is the estimate at once.
        ewma.record(Duration::from_millis(100), Instant::now());
        assert!((ms(ewma.estimate(Instant::now())) - 100.0).abs() < 0.01);

        // Fast answers pull it down over the decay time, not at once.
        for _ in 0..10 {
            tokio::time::advance(Duration::from_millis(100)).await;
            ewma.record(Duration::from_millis(10), Instant::now());
        }
        let after_a_second = ms(ewma.estimate(Instant::now()));
        assert!(
            after_a_second > 60.0 && after_a_second < 95.0,
            "{after_a_second}"
        );
        for _ in 0..600 {
            tokio::time::advance(Duration::from_millis(100)).await;
            ewma.record(Duration::from_millis(10), Instant::now());
        }
        let settled = ms(ewma.estimate(Instant::now()));
        assert!((settled - 10.0).abs() < 1.0, "{settled}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_estimate_decays_toward_zero() {
        let ewma = PeakEwma::default();
        ewma.record(Duration::from_millis(50), Instant::now());
        tokio::time::advance(Duration::from_secs(10)).await;
        let decayed = ms(ewma.estimate(Instant::now()));
        assert!(
            (decayed - 50.0 / std::f64::consts::E).abs() < 0.5,
            "{decayed}"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(ms(ewma.estimate(Instant::now())) < 0.2);
    }

    #[test]
    fn packing_round_trips() {
        let (micros, at) = unpack(pack(1234.5, 77));
        assert!((micros - 1234.5).abs() < 0.01);
        assert_eq!(at, 77);
        assert_ne!(pack(f64::from(f32::MAX), u32::MAX), NONE);
    }
}
