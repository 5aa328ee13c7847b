//! Revoked tokens (`jwt.revocable`): `jti`s revoked until their token expires. Kept in the
//! [`State`](crate::runtime::State) registry so revocations survive reloads; filled by
//! `POST /revocations` on the admin API.

use std::collections::HashMap;
use std::sync::RwLock;

use super::now_secs;

/// The revocation list.
#[derive(Debug, Default)]
pub struct Revocations {
    /// `jti` → the revoked token's `exp` (seconds since the epoch).
    revoked: RwLock<HashMap<String, u64>>,
}

impl Revocations {
    /// Revokes the token with `jti` until `exp` (seconds since the Unix epoch); after that the
    /// token is expired anyway and the entry is dropped.
    pub fn revoke(&self, jti: &str, exp: u64) {
        let now = now_secs();
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.retain(|_, until| *until >= now);
        if exp >= now {
            revoked.insert(jti.to_owned(), exp);
        }
    }

    /// Whether the token with `jti` is revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        revoked.get(jti).is_some_and(|until| *until >= now_secs())
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.revoked.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no revocation is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_until_expiry() {
        let list = Revocations::default();
        let now = now_secs();
        list.revoke("a", now + 60);
        list.revoke("old", now.saturating_sub(10));
        assert!(list.is_revoked("a"));
        assert!(!list.is_revoked("b"));
        assert!(!list.is_revoked("old"));
        assert_eq!(list.len(), 1);
    }
}
