//! The rate-limit response headers: `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//! `X-RateLimit-Reset` (Unix seconds) for the tightest limit, and the IETF fields of
//! draft-ietf-httpapi-ratelimit-headers (RFC 8941 structured fields): `RateLimit-Policy` lists
//! every limit of the set as `"NAME";q=QUOTA;w=WINDOW_SECONDS`, `RateLimit` reports the
//! tightest as `"NAME";r=REMAINING;t=SECONDS_TO_RESET`. NAME is the limit as written
//! (`"100/1m"`).

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use http::HeaderValue;

use super::Tier;
use crate::pipeline::added_fields::RateFields;
use crate::store::Decision;

/// A duration in whole seconds, rounded up.
pub(super) fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The `RateLimit-Policy` value of a set of limits (windows under a second count as 1 s).
pub(super) fn policy(names: &[Box<str>], limits: &[(u64, Duration)]) -> HeaderValue {
    let mut value = String::new();
    for (name, (count, period)) in names.iter().zip(limits) {
        if !value.is_empty() {
            value.push_str(", ");
        }
        let window = whole_seconds(*period).max(1);
        let _ = write!(value, "\"{name}\";q={count};w={window}");
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `X-RateLimit-Limit` value of each limit, compiled once.
pub(super) fn limit_values(limits: &[(u64, Duration)]) -> Vec<HeaderValue> {
    limits
        .iter()
        .map(|&(count, _)| HeaderValue::from(count))
        .collect()
}

/// The start of each limit's `RateLimit` item: its name, quoted (`"100/1m"`), compiled once.
pub(super) fn items(names: &[Box<str>]) -> Vec<HeaderValue> {
    names
        .iter()
        .map(|name| {
            HeaderValue::from_str(&format!("\"{name}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
        })
        .collect()
}

/// The fields of `decision` for its answer; `None` when the decision names no limit of
/// the tier. The numbers stay numbers until the answer's head is written (see
/// [`RateFields`]).
pub(super) fn fields(tier: &Tier, decision: &Decision) -> Option<RateFields> {
    let values = tier.values.here();
    let limit = values.limits.get(decision.limit)?;
    let item = values.items.get(decision.limit)?;
    let remaining = if decision.allowed {
        decision.remaining
    } else {
        0
    };
    let now = crate::poll_clock::system_now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Some(RateFields {
        limit: limit.clone(),
        remaining,
        reset_at: whole_seconds(now + decision.reset),
        policy: values.policy.clone(),
        item: item.clone(),
        reset_in: whole_seconds(decision.reset),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
    }

    #[test]
    fn policy_lists_every_limit() {
        let names: Vec<Box<str>> = vec!["100/1m".into(), "10/500ms".into()];
        let limits = [
            (100, Duration::from_secs(60)),
            (10, Duration::from_millis(500)),
        ];
        assert_eq!(
            policy(&names, &limits),
            "\"100/1m\";q=100;w=60, \"10/500ms\";q=10;w=1"
        );
    }
}
