//! The four counting algorithms as pure functions of a compact per-key state and an explicit
//! time (microseconds since the store's epoch), so they can be tested without a clock and
//! ported to one Lua script for the cluster store.
//!
//! - [`FixedWindow`]: a count per aligned window of the period.
//! - [`SlidingWindow`]: the period split into [`BUCKETS`] buckets; a request is admitted when
//!   the buckets that may hold a request of the last period hold fewer than the limit. It
//!   counts conservatively (a whole bucket stays counted until its last instant has left the
//!   window), so it never admits more than the limit in any window of the period's length; a
//!   request stops counting between one period and one period plus a bucket after it came.
//! - [`Gcra`]: the generic cell rate algorithm, used for `token_bucket` (capacity
//!   `limit + burst`, refilled at `limit/period`) and `leaky_bucket` (a queue-less meter that
//!   holds `1 + burst` requests and drains at `limit/period`).

/// Buckets per period of the sliding window.
pub const BUCKETS: u64 = 8;
/// Slots in the sliding window's ring: a window of the period overlaps at most `BUCKETS + 1`.
const SLOTS: usize = BUCKETS as usize + 1;

/// One limit in store units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    /// Requests per period (at least 1).
    pub count: u64,
    /// The period in microseconds (at least 1).
    pub period: u64,
    /// How many requests a full bucket holds (GCRA only; `count` for windows).
    pub capacity: u64,
}

/// The answer of a meter to one request.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<S> {
    /// The new state when the request is admitted; `None` when refused.
    pub admitted: Option<S>,
    /// Requests left after this one (0 when refused).
    pub remaining: u64,
    /// When the limit gives capacity back (µs since the epoch): see each algorithm. When
    /// refused, the time a request would next be admitted.
    pub reset: u64,
}

/// A per-key counting state.
pub trait Meter: Default + Copy + Send + 'static {
    /// Whether one request at `now` is admitted, and the state after it.
    fn check(&self, p: &Params, now: u64) -> Verdict<Self>;
    /// The time from which the state counts nothing (it may then be forgotten).
    fn expires(&self, p: &Params) -> u64;
}

/// Fixed window: `window` is the window's index plus one (0: nothing counted).
#[derive(Debug, Default, Clone, Copy)]
pub struct FixedWindow {
    window: u64,
    count: u64,
}

impl Meter for FixedWindow {
    fn check(&self, p: &Params, now: u64) -> Verdict<Self> {
        // A request timed before the newest one counted (clocks read before the lock) is
        // counted in the newest window.
        let window = (now / p.period + 1).max(self.window);
        let count = if self.window == window { self.count } else { 0 };
        let reset = window.saturating_mul(p.period);
        if count < p.count {
            Verdict {
                admitted: Some(Self {
                    window,
                    count: count + 1,
                }),
                remaining: p.count - count - 1,
                reset,
            }
        } else {
            Verdict {
                admitted: None,
                remaining: 0,
                reset,
            }
        }
    }

    fn expires(&self, p: &Params) -> u64 {
        self.window.saturating_mul(p.period)
    }
}

/// Sliding window over [`BUCKETS`] buckets: `newest` is the index of the newest bucket
/// counted, `counts` a ring of bucket counts indexed by bucket index modulo the slots.
#[derive(Debug, Default, Clone, Copy)]
pub struct SlidingWindow {
    newest: u64,
    counts: [u32; SLOTS],
}

impl SlidingWindow {
    fn bucket_len(p: &Params) -> u64 {
        p.period.div_ceil(BUCKETS).max(1)
    }

    /// The state moved on to bucket `current`: buckets between are emptied.
    fn advanced(&self, current: u64) -> Self {
        let mut next = *self;
        if current > self.newest {
            if current - self.newest >= SLOTS as u64 {
                next.counts = [0; SLOTS];
            } else {
                for index in self.newest + 1..=current {
                    next.counts[(index % SLOTS as u64) as usize] = 0;
                }
            }
            next.newest = current;
        }
        next
    }

    fn count(&self, index: u64) -> u64 {
        u64::from(self.counts[(index % SLOTS as u64) as usize])
    }

    /// The time bucket `index` stops counting: its last instant is a period old.
    fn leaves(index: u64, bucket: u64, p: &Params) -> u64 {
        (index + 1)
            .saturating_mul(bucket)
            .saturating_add(p.period - 1)
    }
}

impl Meter for SlidingWindow {
    fn check(&self, p: &Params, now: u64) -> Verdict<Self> {
        let bucket = Self::bucket_len(p);
        // A request timed before the newest one counted (clocks read before the lock) is
        // counted as if it came at the start of the newest bucket.
        let now = now.max(self.newest.saturating_mul(bucket));
        let current = now / bucket;
        // The window is the instants (now - period, now]; every bucket that overlaps it counts.
        let oldest = (now + 1).saturating_sub(p.period) / bucket;
        let mut state = self.advanced(current);
        let used: u64 = (oldest..=current).map(|i| state.count(i)).sum();
        if used < p.count {
            let slot = (current % SLOTS as u64) as usize;
            state.counts[slot] = state.counts[slot].saturating_add(1);
            let first = (oldest..=current)
                .find(|&i| state.count(i) > 0)
                .unwrap_or(current);
            return Verdict {
                admitted: Some(state),
                remaining: p.count - used - 1,
                reset: Self::leaves(first, bucket, p),
            };
        }
        // Refused: admitted again once enough old buckets have left the window.
        let mut left = used;
        let mut reset = Self::leaves(current, bucket, p);
        for index in oldest..=current {
            left -= state.count(index);
            if left < p.count {
                reset = Self::leaves(index, bucket, p);
                break;
            }
        }
        Verdict {
            admitted: None,
            remaining: 0,
            reset,
        }
    }

    fn expires(&self, p: &Params) -> u64 {
        Self::leaves(self.newest, Self::bucket_len(p), p)
    }
}

/// Generic cell rate algorithm in time scaled by the limit (one request costs one period):
/// `tat` is the theoretical arrival time, the instant the bucket is full again.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gcra {
    tat: u128,
}

impl Meter for Gcra {
    fn check(&self, p: &Params, now: u64) -> Verdict<Self> {
        let scale = u128::from(p.count);
        let cost = u128::from(p.period);
        let depth = u128::from(p.capacity) * cost;
        let now_scaled = u128::from(now) * scale;
        let tat = self.tat.max(now_scaled);
        let next = tat + cost;
        let unscale = |t: u128| u64::try_from(t.div_ceil(scale)).unwrap_or(u64::MAX);
        if next - now_scaled <= depth {
            Verdict {
                admitted: Some(Self { tat: next }),
                remaining: u64::try_from((depth - (next - now_scaled)) / cost).unwrap_or(0),
                reset: unscale(next),
            }
        } else {
            Verdict {
                admitted: None,
                remaining: 0,
                reset: unscale(next - depth),
            }
        }
    }

    fn expires(&self, p: &Params) -> u64 {
        u64::try_from(self.tat.div_ceil(u128::from(p.count))).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
#[path = "meter_tests.rs"]
mod tests;
