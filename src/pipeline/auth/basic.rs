//! `auth.basic`: HTTP Basic (RFC 7617) against consumers' argon2 or bcrypt password hashes.
//!
//! Hash checks are deliberately slow (tens of milliseconds), so they run on the blocking pool,
//! a few at a time process-wide, and a successful check is remembered for a minute by a
//! SHA-256 of the credentials, so a client sending the same header on every request pays once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use http::header::AUTHORIZATION;
use http::request::Parts;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::consumers::{ConsumerEntry, Consumers, PasswordHash};
use super::credential::{Head, strip_scheme};
use super::{Challenge, Outcome, Rejection};
use crate::config;

/// Password hash checks running at once, process-wide (each argon2 check holds its memory).
static HASH_CHECKS: Semaphore = Semaphore::const_new(4);
/// How long a verified username and password are remembered.
const REMEMBER: Duration = Duration::from_secs(60);
/// Remembered credentials at most (the oldest half is dropped beyond it).
const REMEMBER_MAX: usize = 10_000;

/// HTTP Basic authentication.
pub(super) struct BasicAuth {
    realm: String,
    consumers: Arc<Consumers>,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl BasicAuth {
    pub(super) fn compile(settings: &config::Basic, consumers: Arc<Consumers>) -> Self {
        Self {
            realm: settings.realm.clone(),
            consumers,
            verified: Mutex::default(),
        }
    }

    /// The realm of the `Basic` challenge.
    pub(super) fn realm(&self) -> &str {
        &self.realm
    }

    pub(super) async fn check(&self, head: Head<'_>) -> Outcome {
        let Some(encoded) = head
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| strip_scheme(v.trim(), "Basic"))
        else {
            return Outcome::Absent;
        };
        let invalid = |reason| {
            Outcome::Invalid(Rejection {
                challenge: Challenge::Basic,
                reason,
            })
        };
        let Some((user, password)) = decode(encoded) else {
            return invalid("malformed Basic credentials");
        };
        let Some(consumer) = self.consumers.get(&user) else {
            return invalid("unknown user or wrong password");
        };
        let fingerprint: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if self.remembered(&fingerprint) {
            return Outcome::Valid(consumer.identity.clone());
        }
        if verify(consumer, password).await {
            self.remember(fingerprint);
            Outcome::Valid(consumer.identity.clone())
        } else {
            invalid("unknown user or wrong password")
        }
    }

    pub(super) fn hide(&self, parts: &mut Parts) {
        super::credential::Source::Header(AUTHORIZATION).remove(parts, "Basic");
    }

    fn remembered(&self, fingerprint: &[u8; 32]) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified
            .get(fingerprint)
            .is_some_and(|at| at.elapsed() < REMEMBER)
    }

    fn remember(&self, fingerprint: [u8; 32]) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= REMEMBER_MAX {
            verified.retain(|_, at| at.elapsed() < REMEMBER / 2);
        }
        verified.insert(fingerprint, Instant::now());
    }
}

/// `user:password` from the base64 of a Basic credential.
fn decode(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `password` matches one of the consumer's hashes, checked off the worker thread.
async fn verify(consumer: &ConsumerEntry, password: String) -> bool {
    let Ok(_permit) = HASH_CHECKS.acquire().await else {
        return false;
    };
    let hashes = consumer.passwords.clone();
    tokio::task::spawn_blocking(move || hashes.iter().any(|hash| matches(hash, &password)))
        .await
        .unwrap_or(false)
}

/// Whether `password` matches `hash` (constant-time inside the hash crates).
fn matches(hash: &PasswordHash, password: &str) -> bool {
    match hash {
        PasswordHash::Argon2(phc) => {
            use argon2::password_hash::PasswordVerifier;
            argon2::password_hash::phc::PasswordHash::new(phc).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        }
        PasswordHash::Bcrypt(text) => bcrypt::verify(password, text).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_user_and_password() {
        assert_eq!(
            decode("b3BzOnMzY3I6ZXQ="),
            Some(("ops".to_owned(), "s3cr:et".to_owned()))
        );
        assert_eq!(decode("!!"), None);
        assert_eq!(decode("bm9jb2xvbg=="), None);
    }

    #[test]
    fn bcrypt_and_argon2_hashes_verify() {
        let bcrypt_hash = bcrypt::hash("pw", 4).expect("bcrypt");
        let hash = PasswordHash::parse(&bcrypt_hash).expect("parse");
        assert!(matches(&hash, "pw"));
        assert!(!matches(&hash, "nope"));

        use argon2::password_hash::PasswordHasher;
        let argon = argon2::Argon2::default()
            .hash_password(b"pw")
            .expect("argon2")
            .to_string();
        let hash = PasswordHash::parse(&argon).expect("parse");
        assert!(matches(&hash, "pw"));
        assert!(!matches(&hash, "nope"));
    }
}
