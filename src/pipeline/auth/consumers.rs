//! The configured consumers (SPEC §2.3), compiled for lookups: API keys as SHA-256 digests
//! compared in constant time, password hashes parsed, groups shared.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::identity::Identity;
use crate::config::{Consumer, Location};

/// One consumer, as the auth methods need it.
#[derive(Debug)]
pub struct ConsumerEntry {
    /// The identity its credentials prove (its name and groups), built once per config.
    pub identity: Arc<Identity>,
    /// Its password hashes (argon2 or bcrypt, PHC or modular crypt strings).
    pub passwords: Vec<PasswordHash>,
}

/// A stored password hash, by scheme.
#[derive(Debug, Clone)]
pub enum PasswordHash {
    /// `$argon2id$…` (or argon2i/argon2d), PHC string.
    Argon2(String),
    /// `$2b$…` (or 2a/2x/2y).
    Bcrypt(String),
}

/// Every consumer, with an index of API-key digests.
#[derive(Debug, Default)]
pub struct Consumers {
    by_name: HashMap<Box<str>, Arc<ConsumerEntry>>,
    keys: Vec<([u8; 32], Arc<ConsumerEntry>)>,
}

impl Consumers {
    /// Compiles the `consumers:` map; a malformed key or password hash is a located error.
    pub fn compile(
        consumers: &indexmap::IndexMap<String, Consumer>,
        errors: &mut Vec<(Location, String)>,
    ) -> Self {
        let mut compiled = Self::default();
        for (name, consumer) in consumers {
            let mut passwords = Vec::new();
            for password in &consumer.passwords {
                match PasswordHash::parse(password.value.expose()) {
                    Ok(hash) => passwords.push(hash),
                    Err(message) => {
                        errors.push((password.referenced, format!("consumer `{name}`: {message}")))
                    }
                }
            }
            let groups = consumer.groups.iter().map(|g| g.as_str().into()).collect();
            let entry = Arc::new(ConsumerEntry {
                identity: Arc::new(Identity::of_consumer(name.as_str().into(), groups)),
                passwords,
            });
            for key in &consumer.keys {
                match key_digest(key.value.expose()) {
                    Ok(digest) => compiled.keys.push((digest, entry.clone())),
                    Err(message) => {
                        errors.push((key.referenced, format!("consumer `{name}`: {message}")))
                    }
                }
            }
            compiled.by_name.insert(name.as_str().into(), entry);
        }
        compiled
    }

    /// The consumer named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<ConsumerEntry>> {
        self.by_name.get(name)
    }

    /// The consumer owning API key `key`. Every stored digest is compared, in constant time,
    /// so the time taken does not depend on which key (if any) matches.
    pub fn by_key(&self, key: &str) -> Option<&Arc<ConsumerEntry>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (stored, entry) in &self.keys {
            if bool::from(stored.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        found
    }

    /// Whether any consumer has an API key.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// The SHA-256 digest an API key is compared by: decoded from `sha256:HEX`, or computed from
/// a plain key.
fn key_digest(key: &str) -> Result<[u8; 32], String> {
    match key.strip_prefix("sha256:") {
        Some(hex_digest) => {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_digest.trim(), &mut digest).map_err(|_| {
                "an API key starting with `sha256:` needs 64 hex digits (see `gatehouse hash-key`)"
                    .to_owned()
            })?;
            Ok(digest)
        }
        None if key.is_empty() => Err("an API key may not be empty".to_owned()),
        None => Ok(Sha256::digest(key.as_bytes()).into()),
    }
}

impl PasswordHash {
    /// Recognises an argon2 or bcrypt hash string.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("$argon2") {
            argon2::password_hash::phc::PasswordHash::new(text)
                .map_err(|err| format!("invalid argon2 password hash: {err}"))?;
            Ok(Self::Argon2(text.to_owned()))
        } else if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            if text.len() != 60 {
                return Err("invalid bcrypt password hash: expected 60 characters".to_owned());
            }
            Ok(Self::Bcrypt(text.to_owned()))
        } else {
            Err("`passwords` holds argon2 (`$argon2id$…`) or bcrypt (`$2b$…`) hashes, not plain passwords".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, Spanned};

    fn spanned<T>(value: T) -> Spanned<T> {
        Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
    }

    #[test]
    fn hashed_and_plain_keys_find_their_consumer() {
        let mut map = indexmap::IndexMap::new();
        map.insert(
            "web".to_owned(),
            Consumer {
                keys: vec![spanned(Secret::new(
                    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                ))],
                passwords: vec![],
                groups: vec!["premium".into()],
            },
        );
        map.insert(
            "acme".to_owned(),
            Consumer {
                keys: vec![spanned(Secret::new("plain-key"))],
                ..Consumer::default()
            },
        );
        let mut errors = Vec::new();
        let consumers = Consumers::compile(&map, &mut errors);
        assert!(errors.is_empty());
        let name = |c: &Arc<ConsumerEntry>| c.identity.consumer.clone();
        assert_eq!(
            consumers.by_key("test").and_then(name).as_deref(),
            Some("web")
        );
        assert_eq!(
            consumers.by_key("plain-key").and_then(name).as_deref(),
            Some("acme")
        );
        assert!(consumers.by_key("nope").is_none());
        assert_eq!(
            consumers.get("web").map(|c| c.identity.groups.len()),
            Some(1)
        );
    }

    #[test]
    fn malformed_hashes_are_errors() {
        let mut map = indexmap::IndexMap::new();
        map.insert(
            "web".to_owned(),
            Consumer {
                keys: vec![spanned(Secret::new("sha256:zz"))],
                passwords: vec![spanned(Secret::new("hunter2"))],
                groups: vec![],
            },
        );
        let mut errors = Vec::new();
        Consumers::compile(&map, &mut errors);
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|(_, m)| !m.contains("hunter2")));
    }
}
