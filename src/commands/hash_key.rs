//! `gatehouse hash-key KEY`: the `sha256:…` form of an API key for the config file.

use sha2::{Digest, Sha256};

/// The `sha256:<hex>` form of `key`.
pub fn hash_key(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_spec_example() {
        // SPEC §2.3's example is the hash of "test".
        assert_eq!(
            super::hash_key("test"),
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
