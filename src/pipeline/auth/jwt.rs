//! `auth.jwt`: JSON Web Tokens signed with a shared secret (HS*), a PEM public key or the
//! rotating keys of a JWKS (RS*, PS*, ES*, EdDSA).
//!
//! The header's `alg` must be listed, and picks the key: HS* only ever verify with `secret`,
//! the others only with a public key of their family, so a token HMAC-signed with the bytes of
//! a public key never verifies. `exp` is required (a token that never expires could neither be
//! cached for a bounded time nor revoked until its expiry); `exp` and `nbf` are checked with
//! the `leeway`. Verified tokens are cached until their `exp`; the times and the
//! revocation list are still checked on every use.

mod keys;
mod token;

use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use super::claims::ClaimRules;
use super::credential::{Head, Source};
use super::identity::Identity;
use super::jwks::{Jwks, KeyError};
use super::revocation::Revocations;
use super::token_cache::TokenCache;
use super::{AuthContext, Outcome, Rejection, now_secs};
use crate::config::{self, Location};
pub(super) use token::is_jwt_shaped;
use token::reason;

/// How many verified tokens a route keeps.
const CACHE_CAPACITY: usize = 20_000;

/// JWT validation of one route.
pub(super) struct JwtAuth {
    algorithms: Vec<Algorithm>,
    secret: Option<DecodingKey>,
    public_key: Option<DecodingKey>,
    jwks: Option<Arc<Jwks>>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway: u64,
    sources: Vec<Source>,
    rules: ClaimRules,
    revocations: Option<Arc<Revocations>>,
    cache: TokenCache<Verified>,
    opaque_elsewhere: bool,
}

/// A token whose signature, issuer and audience were checked.
struct Verified {
    identity: Arc<Identity>,
    times: token::Times,
    jti: Option<String>,
}

impl JwtAuth {
    pub(super) fn compile(
        settings: &config::Jwt,
        at: Location,
        cx: &AuthContext<'_>,
        errors: &mut Vec<(Location, String)>,
    ) -> Option<Self> {
        let before = errors.len();
        let algorithms: Vec<Algorithm> = settings.algorithms.iter().map(|a| a.value).collect();
        let secret = settings
            .secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.value.expose().as_bytes()));
        let public_key = settings.public_key.as_ref().and_then(|path| {
            let file = cx.config.resolve_path(&path.value);
            let located = |message: String| (path.referenced, format!("`public_key` {message}"));
            let pem = match std::fs::read(&file) {
                Ok(pem) => pem,
                Err(e) => {
                    errors.push(located(format!("{}: {e}", file.display())));
                    return None;
                }
            };
            keys::public_key(&pem, &algorithms, settings.jwks_url.is_some())
                .map_err(|message| errors.push(located(format!("{}: {message}", file.display()))))
                .ok()
        });
        let jwks = settings.jwks_url.as_ref().and_then(|url| {
            match reqwest::Url::parse(&url.value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    errors.push((
                        url.referenced,
                        "`jwks_url` must be an http:// or https:// URL".to_owned(),
                    ));
                    return None;
                }
            }
            match cx.state.idp_client() {
                Ok(client) => Some(cx.state.jwks.get(&url.value, &client)),
                Err(e) => {
                    errors.push((url.referenced, format!("cannot build the HTTP client: {e}")));
                    None
                }
            }
        });
        let mut headers = Vec::new();
        for (claim, header) in &settings.claims_to_headers {
            match HeaderName::from_bytes(header.0.as_bytes()) {
                Ok(name) => headers.push((claim.clone(), name)),
                Err(_) => errors.push((at, format!("`{}` is not a header name", header.0))),
            }
        }
        if errors.len() > before {
            return None;
        }
        Some(Self {
            algorithms,
            secret,
            public_key,
            jwks,
            issuer: settings.issuer.clone(),
            audiences: settings
                .audience
                .as_ref()
                .map(|a| a.as_slice().to_vec())
                .unwrap_or_default(),
            leeway: settings.leeway.get().as_secs(),
            sources: settings
                .from
                .iter()
                .filter_map(|s| Source::from_selector(&s.value))
                .collect(),
            rules: ClaimRules {
                consumer_claims: vec![settings.consumer_claim.clone()],
                scopes_claim: settings.scopes_claim.clone(),
                groups_claim: Some(settings.groups_claim.clone()),
                headers,
                consumers: cx.consumers.clone(),
            },
            revocations: settings.revocable.then(|| cx.state.revocations.clone()),
            cache: TokenCache::per_worker(CACHE_CAPACITY),
            opaque_elsewhere: false,
        })
    }

    /// `true`: introspection is configured too, so bearer tokens that are not JWT-shaped
    /// (three dot-separated parts) are left to it (count as absent here).
    pub(super) fn opaque_tokens_elsewhere(mut self, yes: bool) -> Self {
        self.opaque_elsewhere = yes;
        self
    }

    /// Checks the token of the first source that has one.
    pub(super) async fn check(&self, head: Head<'_>) -> Outcome {
        let Some(token) = self.sources.iter().find_map(|s| s.find(head, "Bearer")) else {
            return Outcome::Absent;
        };
        if self.opaque_elsewhere && !is_jwt_shaped(&token) {
            return Outcome::Absent;
        }
        let now = now_secs();
        let verified = match self.cache.get(&token, now) {
            Some(verified) => verified,
            // Boxed: verifying (a JWKS fetch, maybe) is the cache-miss path; the check of a
            // cached token stays a small future.
            None => match Box::pin(self.verify(&token)).await {
                Ok(verified) => {
                    let verified = Arc::new(verified);
                    let until = verified.times.exp.saturating_add(self.leeway);
                    self.cache.insert(&token, verified.clone(), until, now);
                    verified
                }
                Err(outcome) => return outcome,
            },
        };
        if let Err(reason) = verified.times.check(now, self.leeway) {
            return invalid(reason);
        }
        if let (Some(revocations), Some(jti)) = (&self.revocations, &verified.jti)
            && revocations.is_revoked(jti)
        {
            return invalid(reason::REVOKED);
        }
        Outcome::Valid(verified.identity.clone())
    }

    /// Verifies the signature and the claims that do not change with time.
    async fn verify(&self, token: &str) -> Result<Verified, Outcome> {
        let parts = token::split(token, &self.algorithms).map_err(invalid)?;
        let key = self.key(&parts).await?;
        match jsonwebtoken::crypto::verify(
            parts.signature,
            parts.message.as_bytes(),
            &key,
            parts.alg,
        ) {
            Ok(true) => {}
            Ok(false) => return Err(invalid(reason::SIGNATURE)),
            Err(e) => {
                tracing::debug!(error = %e, "JWT signature not checkable");
                return Err(invalid(reason::SIGNATURE));
            }
        }
        let claims = token::payload(parts.payload).map_err(invalid)?;
        let times = token::Times::of(&claims).map_err(invalid)?;
        if let Some(issuer) = &self.issuer {
            token::check_issuer(&claims, issuer).map_err(invalid)?;
        }
        if !self.audiences.is_empty() {
            token::check_audience(&claims, &self.audiences).map_err(invalid)?;
        }
        let jti = match claims.get("jti") {
            Some(serde_json::Value::String(jti)) => Some(jti.clone()),
            _ => None,
        };
        Ok(Verified {
            identity: Arc::new(self.rules.identity(claims)),
            times,
            jti,
        })
    }

    /// The key for the token's `alg`: the secret for HS*, else the PEM key of that family (for
    /// tokens without `kid` when a JWKS is configured too), else the JWKS.
    async fn key(&self, parts: &token::Parts<'_>) -> Result<KeyRef<'_>, Outcome> {
        let family = parts.alg.family();
        if family == AlgorithmFamily::Hmac {
            return self
                .secret
                .as_ref()
                .map(KeyRef::Static)
                .ok_or_else(|| invalid(reason::ALGORITHM));
        }
        if let Some(key) = &self.public_key
            && key.family() == family
            && (self.jwks.is_none() || parts.kid.is_none())
        {
            return Ok(KeyRef::Static(key));
        }
        let Some(jwks) = &self.jwks else {
            return Err(invalid(reason::UNKNOWN_KEY));
        };
        match jwks.key(parts.kid.as_deref(), parts.alg).await {
            Ok(key) => Ok(KeyRef::Fetched(key)),
            Err(KeyError::Unknown) => Err(invalid(reason::UNKNOWN_KEY)),
            Err(KeyError::Unavailable(cause)) => Err(Outcome::Unavailable(cause)),
        }
    }

    /// Removes the token from every source (`hide_credentials`).
    pub(super) fn hide(&self, parts: &mut Parts) {
        for source in &self.sources {
            source.remove(parts, "Bearer");
        }
    }

    /// The headers `claims_to_headers` sets.
    pub(super) fn claim_headers(&self) -> Vec<HeaderName> {
        self.rules.headers.iter().map(|(_, h)| h.clone()).collect()
    }
}

/// A verification key, borrowed from the step or shared with the JWKS cache.
enum KeyRef<'a> {
    Static(&'a DecodingKey),
    Fetched(Arc<DecodingKey>),
}

impl std::ops::Deref for KeyRef<'_> {
    type Target = DecodingKey;

    fn deref(&self) -> &DecodingKey {
        match self {
            KeyRef::Static(key) => key,
            KeyRef::Fetched(key) => key,
        }
    }
}

fn invalid(reason: &'static str) -> Outcome {
    Outcome::Invalid(Rejection::token(reason))
}
