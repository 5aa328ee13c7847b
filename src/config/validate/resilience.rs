//! Checks of a service's `health`, `passive` and `circuit_breaker` settings: positive
//! durations and counts, a ratio in (0, 1], a health path that is a path.

use serde_saphyr::Spanned;

use super::Checker;
use crate::config::{Duration, Service};

impl Checker<'_> {
    /// Checks the keys that keep failing targets out of the way.
    pub(super) fn resilience(&mut self, service: &Service) {
        if let Some(health) = &service.health {
            let health = &health.value;
            let path = &health.path;
            if !path.value.starts_with('/') {
                self.error(
                    path.referenced,
                    format!("`health.path` must start with `/`, not `{}`", path.value),
                );
            } else if path.value.parse::<http::uri::PathAndQuery>().is_err() {
                self.error(
                    path.referenced,
                    format!("`health.path` `{}` is not a valid path", path.value),
                );
            }
            self.positive(&health.interval, "health.interval");
            self.positive(&health.timeout, "health.timeout");
            self.at_least_one(&health.healthy_after, "health.healthy_after");
            self.at_least_one(&health.unhealthy_after, "health.unhealthy_after");
        }
        if let Some(passive) = &service.passive {
            self.at_least_one(&passive.value.failures, "passive.failures");
            self.positive(&passive.value.eject_for, "passive.eject_for");
        }
        if let Some(breaker) = &service.circuit_breaker {
            let breaker = &breaker.value;
            let ratio = &breaker.failure_ratio;
            if !(ratio.value > 0.0 && ratio.value <= 1.0) {
                self.error(
                    ratio.referenced,
                    format!(
                        "`circuit_breaker.failure_ratio` must be more than 0 and at most 1, not {}",
                        ratio.value
                    ),
                );
            }
            self.at_least_one(&breaker.min_requests, "circuit_breaker.min_requests");
            self.positive(&breaker.window, "circuit_breaker.window");
            self.positive(&breaker.open_for, "circuit_breaker.open_for");
        }
    }

    fn positive(&mut self, duration: &Spanned<Duration>, key: &str) {
        if duration.value.get().is_zero() {
            self.error(duration.referenced, format!("`{key}` must be more than 0"));
        }
    }

    fn at_least_one(&mut self, count: &Spanned<u32>, key: &str) {
        if count.value == 0 {
            self.error(count.referenced, format!("`{key}` must be at least 1"));
        }
    }
}
