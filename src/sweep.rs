//! Periodic sweeps of long-lived state (idle rate-limit keys, idle upstream connections): one
//! background loop, stopped by shutdown.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Runs `sweep` every `period` (the first at once) until `shutdown`; `sweep` gets the time
/// and returns how many things it removed, logged at debug as `what`.
pub async fn every(
    period: Duration,
    shutdown: CancellationToken,
    what: &'static str,
    sweep: impl Fn(Instant) -> usize,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let removed = sweep(Instant::now());
                if removed > 0 {
                    tracing::debug!(removed, "{what}");
                }
            }
        }
    }
}
