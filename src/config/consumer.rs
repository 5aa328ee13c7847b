//! Consumers (SPEC §2.3): known API clients with their keys, passwords and groups.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::tokens::Secret;

/// A known client of the API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Consumer {
    /// API keys: `sha256:HEX` (from `gatehouse hash-key`) or plain keys.
    pub keys: Vec<Spanned<Secret>>,
    /// Password hashes (argon2 or bcrypt) for `auth.basic`.
    pub passwords: Vec<Spanned<Secret>>,
    /// Groups, used by `authorize.groups` and rate-limit tiers.
    pub groups: Vec<String>,
}
