//! `auth.api_key`: a key from the configured sources that belongs to a consumer.

use std::sync::Arc;

use http::request::Parts;

use super::consumers::Consumers;
use super::credential::{Head, Source};
use super::{Challenge, Outcome, Rejection};
use crate::config;

/// API-key authentication against consumers' `keys`.
pub(super) struct ApiKeyAuth {
    sources: Vec<Source>,
    consumers: Arc<Consumers>,
}

impl ApiKeyAuth {
    pub(super) fn compile(settings: &config::ApiKey, consumers: Arc<Consumers>) -> Self {
        Self {
            sources: settings
                .from
                .iter()
                .filter_map(|s| Source::from_selector(&s.value))
                .collect(),
            consumers,
        }
    }

    /// The first key found in the sources decides.
    pub(super) fn check(&self, head: Head<'_>) -> Outcome {
        let Some(key) = self.sources.iter().find_map(|s| s.find(head, "ApiKey")) else {
            return Outcome::Absent;
        };
        match self.consumers.by_key(&key) {
            Some(consumer) => Outcome::Valid(consumer.identity.clone()),
            None => Outcome::Invalid(Rejection {
                challenge: Challenge::Key,
                reason: "unknown key",
            }),
        }
    }

    pub(super) fn hide(&self, parts: &mut Parts) {
        for source in &self.sources {
            source.remove(parts, "ApiKey");
        }
    }
}
