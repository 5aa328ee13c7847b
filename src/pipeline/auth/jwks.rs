//! JWKS (RFC 7517 key sets) fetched from an identity provider and cached per URL in the
//! [`State`](crate::runtime::State) registry, so a reload keeps the keys.
//!
//! Refresh policy:
//! - the first token that needs the set fetches it (concurrent requests share one fetch);
//! - a token whose `kid` is not in the set triggers a refresh, at most once every
//!   [`MIN_REFRESH_INTERVAL`] per URL (fetch attempts, failed ones included, count);
//! - a set older than [`MAX_AGE`] is refreshed in the background on its next use;
//! - a failed fetch keeps the keys already held. With no keys ever fetched, tokens that need
//!   the set cannot be checked: the caller answers 503.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;
use tokio::time::Instant;

/// The shortest time between two fetches of one URL prompted by unknown `kid`s.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Age after which a key set is refreshed in the background on its next use.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// The largest key set accepted.
const MAX_BODY: usize = 1 << 20;

/// Every JWKS in use, by URL. Lives in `State`, so key sets survive reloads.
#[derive(Default)]
pub struct JwksRegistry {
    sets: Mutex<HashMap<String, Arc<Jwks>>>,
}

impl JwksRegistry {
    /// The key set at `url`, created (empty, not fetched yet) on first use.
    pub fn get(&self, url: &str, client: &reqwest::Client) -> Arc<Jwks> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.entry(url.to_owned())
            .or_insert_with(|| Arc::new(Jwks::new(url, client.clone())))
            .clone()
    }
}

/// One identity provider's key set and its refresh state.
pub struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: ArcSwap<KeySet>,
    fetching: tokio::sync::Mutex<()>,
    last_attempt: Mutex<Option<Instant>>,
    attempts: AtomicU64,
}

/// The keys of one fetch.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<KeyEntry>,
    fetched_at: Option<Instant>,
}

struct KeyEntry {
    kid: Option<String>,
    /// The algorithm the key is for, when the JWK says (or its curve implies) one.
    alg: Option<Algorithm>,
    key: Arc<DecodingKey>,
}

/// Why no key was found for a token.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The set is known and has no key for this token.
    Unknown,
    /// No key set could ever be fetched (the text is for the log).
    Unavailable(String),
}

impl Jwks {
    fn new(url: &str, client: reqwest::Client) -> Self {
        Self {
            url: url.to_owned(),
            client,
            keys: ArcSwap::from_pointee(KeySet::default()),
            fetching: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
            attempts: AtomicU64::new(0),
        }
    }

    /// How many fetches were attempted (for tests and logs).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// The key for a token signed with `alg`, carrying `kid`: from the cached set, else after
    /// a refresh when one is allowed.
    pub async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<DecodingKey>, KeyError> {
        let set = self.keys.load_full();
        if let Some(key) = set.find(kid, alg) {
            if set.fetched_at.is_some_and(|at| at.elapsed() >= MAX_AGE) && self.may_attempt() {
                let this = self.clone();
                tokio::spawn(async move { this.refresh().await });
            }
            return Ok(key);
        }
        self.refresh().await;
        let set = self.keys.load_full();
        match set.find(kid, alg) {
            Some(key) => Ok(key),
            None if set.fetched_at.is_some() => Err(KeyError::Unknown),
            None => Err(KeyError::Unavailable(format!(
                "no keys could be fetched from the JWKS at {}",
                self.url
            ))),
        }
    }

    fn may_attempt(&self) -> bool {
        let last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
        last.is_none_or(|at| at.elapsed() >= MIN_REFRESH_INTERVAL)
    }

    /// Fetches the set again unless another request just did or the last attempt is too
    /// recent. Concurrent callers wait for one fetch.
    async fn refresh(&self) {
        let seen = self.attempts.load(Ordering::SeqCst);
        let _fetching = self.fetching.lock().await;
        if self.attempts.load(Ordering::SeqCst) != seen {
            return; // another request fetched while this one waited
        }
        {
            let mut last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(url = %self.url, keys = keys.len(), "JWKS fetched");
                self.keys.store(Arc::new(KeySet {
                    keys,
                    fetched_at: Some(Instant::now()),
                }));
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "JWKS fetch failed; keeping the cached keys");
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<KeyEntry>, String> {
        let response = self
            .client
            .get(&self.url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?;
        if body.len() > MAX_BODY {
            return Err("the key set is larger than 1 MiB".to_owned());
        }
        parse_jwks(&body)
    }
}

impl KeySet {
    /// The key for `kid` usable with `alg`. A token without `kid` may use the only key of a
    /// set with exactly one.
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<DecodingKey>> {
        let fits = |entry: &&KeyEntry| {
            entry.key.family() == alg.family() && entry.alg.is_none_or(|a| a == alg)
        };
        let entry = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|e| e.kid.as_deref() == Some(kid))
                .find(fits),
            None if self.keys.len() == 1 => self.keys.first().filter(fits),
            None => None,
        };
        entry.map(|e| e.key.clone())
    }
}

/// The signature keys of a JWKS document. Keys for encryption, symmetric keys, unsupported
/// types and malformed entries are skipped; a document that is not a key set is an error.
fn parse_jwks(body: &[u8]) -> Result<Vec<KeyEntry>, String> {
    let document: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWK set (no `keys` array)")?;
    let mut parsed = Vec::with_capacity(keys.len());
    for value in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
            tracing::debug!("skipping a JWK of an unsupported type");
            continue;
        };
        if let Some(entry) = key_entry(&jwk) {
            parsed.push(entry);
        }
    }
    Ok(parsed)
}

fn key_entry(jwk: &Jwk) -> Option<KeyEntry> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => None,
        // Symmetric keys have no place in a published key set.
        _ => return None,
    };
    let stated = match jwk.common.key_algorithm {
        Some(alg) => Some(alg.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if key.family() == AlgorithmFamily::Hmac {
        return None;
    }
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        alg: stated.or(implied),
        key: Arc::new(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA: &str = r#"{"kty":"RSA","kid":"r1","use":"sig","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}"#;
    const EC: &str = r#"{"kty":"EC","kid":"e1","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
    const ENC: &str = r#"{"kty":"EC","kid":"enc","use":"enc","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
    const OCT: &str = r#"{"kty":"oct","kid":"s","k":"c2VjcmV0"}"#;
    const ED: &str = r#"{"kty":"OKP","kid":"d1","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    fn set(body: &str) -> KeySet {
        KeySet {
            keys: parse_jwks(body.as_bytes()).expect("parses"),
            fetched_at: Some(Instant::now()),
        }
    }

    #[test]
    fn signature_keys_are_kept() {
        let body = format!(r#"{{"keys":[{RSA},{EC},{ENC},{OCT},{ED},{{"kty":"XYZ"}}]}}"#);
        let keys = set(&body);
        assert_eq!(keys.keys.len(), 3, "enc, oct and unknown types are skipped");
        assert!(keys.find(Some("r1"), Algorithm::RS256).is_some());
        assert!(
            keys.find(Some("r1"), Algorithm::RS384).is_none(),
            "alg stated"
        );
        assert!(keys.find(Some("r1"), Algorithm::HS256).is_none());
        assert!(keys.find(Some("e1"), Algorithm::ES256).is_some());
        assert!(
            keys.find(Some("e1"), Algorithm::ES384).is_none(),
            "curve implies ES256"
        );
        assert!(keys.find(Some("d1"), Algorithm::EdDSA).is_some());
        assert!(keys.find(Some("nope"), Algorithm::RS256).is_none());
        assert!(
            keys.find(None, Algorithm::RS256).is_none(),
            "no kid, several keys"
        );
    }

    #[test]
    fn a_lone_key_serves_tokens_without_kid() {
        let keys = set(&format!(r#"{{"keys":[{RSA}]}}"#));
        assert!(keys.find(None, Algorithm::RS256).is_some());
        assert!(keys.find(None, Algorithm::ES256).is_none());
    }

    #[test]
    fn documents_that_are_not_key_sets_fail() {
        assert!(parse_jwks(b"<html>").is_err());
        assert!(parse_jwks(b"{\"keys\": 3}").is_err());
        assert!(parse_jwks(b"{\"keys\": []}").is_ok_and(|k| k.is_empty()));
    }
}
