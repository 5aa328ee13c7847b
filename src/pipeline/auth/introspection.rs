//! `auth.introspection`: OAuth 2.0 token introspection (RFC 7662) of bearer tokens.
//!
//! The token is POSTed (`application/x-www-form-urlencoded`, `token=…&token_type_hint=
//! access_token`) to `url` with HTTP Basic `client_id:client_secret`. `"active": true` gives
//! the identity (consumer: `username`, else `sub`, else `client_id`; scopes: `scope`; claims:
//! the whole answer); `"active": false` is a 401 `inactive`. Active answers are cached for
//! `cache` but never beyond the token's `exp`; inactive answers are not cached, so a token
//! activated later is accepted at once. An unreachable provider, a non-2xx answer or one that
//! is not an RFC 7662 JSON object is a 503.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::request::Parts;
use serde_json::{Map, Value};

use super::claims::ClaimRules;
use super::credential::{Head, Source};
use super::identity::Identity;
use super::jwt::is_jwt_shaped;
use super::token_cache::TokenCache;
use super::{AuthContext, Outcome, Rejection, now_secs};
use crate::config::{self, Location};

/// How many active answers a route keeps.
const CACHE_CAPACITY: usize = 20_000;
/// The largest introspection answer accepted.
const MAX_BODY: usize = 256 * 1024;
/// `error_description` of a token the provider says is not active.
const INACTIVE: &str = "inactive";
/// `error_description` of an active token whose `exp` is past.
const EXPIRED: &str = "expired";

/// Introspection of opaque bearer tokens.
pub(super) struct IntrospectionAuth {
    url: reqwest::Url,
    client: reqwest::Client,
    client_id: String,
    client_secret: config::Secret,
    cache_for: u64,
    cache: TokenCache<Identity>,
    rules: ClaimRules,
    source: Source,
    jwt_elsewhere: bool,
}

impl IntrospectionAuth {
    pub(super) fn compile(
        settings: &config::Introspection,
        _at: Location,
        cx: &AuthContext<'_>,
        errors: &mut Vec<(Location, String)>,
    ) -> Option<Self> {
        let url = match reqwest::Url::parse(&settings.url.value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => {
                errors.push((
                    settings.url.referenced,
                    "`introspection.url` must be an http:// or https:// URL".to_owned(),
                ));
                return None;
            }
        };
        let client = match cx.state.idp_client() {
            Ok(client) => client,
            Err(e) => {
                errors.push((
                    settings.url.referenced,
                    format!("cannot build the HTTP client: {e}"),
                ));
                return None;
            }
        };
        Some(Self {
            url,
            client,
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            cache_for: settings.cache.get().as_secs(),
            cache: TokenCache::new(CACHE_CAPACITY),
            rules: ClaimRules {
                consumer_claims: vec!["username".into(), "sub".into(), "client_id".into()],
                scopes_claim: "scope".into(),
                groups_claim: None,
                headers: Vec::new(),
                consumers: cx.consumers.clone(),
            },
            source: Source::Header(AUTHORIZATION),
            jwt_elsewhere: false,
        })
    }

    /// `true`: `jwt` is configured too, so JWT-shaped bearer tokens are left to it.
    pub(super) fn jwt_tokens_elsewhere(mut self, yes: bool) -> Self {
        self.jwt_elsewhere = yes;
        self
    }

    /// Checks the bearer token of the `Authorization` header, from the cache or the provider.
    pub(super) async fn check(&self, head: Head<'_>) -> Outcome {
        let Some(token) = self.source.find(head, "Bearer") else {
            return Outcome::Absent;
        };
        if self.jwt_elsewhere && is_jwt_shaped(&token) {
            return Outcome::Absent;
        }
        let now = now_secs();
        if let Some(identity) = self.cache.get(&token, now) {
            return Outcome::Valid(identity);
        }
        // Boxed: the provider's HTTP exchange is the cache-miss path.
        let answer = match Box::pin(self.introspect(&token)).await {
            Ok(answer) => answer,
            Err(cause) => return Outcome::Unavailable(cause),
        };
        match active(answer, now) {
            Ok((claims, exp)) => {
                let identity = Arc::new(self.rules.identity(claims));
                if self.cache_for > 0 {
                    let until = now.saturating_add(self.cache_for);
                    let until = exp.map_or(until, |exp| exp.min(until));
                    self.cache.insert(&token, identity.clone(), until, now);
                }
                Outcome::Valid(identity)
            }
            Err(reason) => Outcome::Invalid(Rejection::token(reason)),
        }
    }

    /// The provider's answer for `token`, or why there is none (for the log; never the token).
    async fn introspect(&self, token: &str) -> Result<Map<String, Value>, String> {
        let response = self
            .client
            .post(self.url.clone())
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(http::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| format!("introspection request failed: {}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the introspection endpoint answered {status}"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the introspection answer failed: {e}"))?;
        if body.len() > MAX_BODY {
            return Err("the introspection answer is too large".to_owned());
        }
        match serde_json::from_slice(&body) {
            Ok(Value::Object(answer)) => Ok(answer),
            _ => Err("the introspection answer is not a JSON object".to_owned()),
        }
    }

    /// Removes the bearer token (`hide_credentials`).
    pub(super) fn hide(&self, parts: &mut Parts) {
        self.source.remove(parts, "Bearer");
    }
}

/// The claims and `exp` of an active answer, or the rejection of an inactive or expired one.
fn active(
    answer: Map<String, Value>,
    now: u64,
) -> Result<(Map<String, Value>, Option<u64>), &'static str> {
    if answer.get("active") != Some(&Value::Bool(true)) {
        return Err(INACTIVE);
    }
    let exp = answer.get("exp").and_then(Value::as_u64);
    if exp.is_some_and(|exp| exp < now) {
        return Err(EXPIRED);
    }
    Ok((answer, exp))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn active_answers() {
        let ok = active(map(json!({"active": true, "exp": 200})), 100);
        assert_eq!(ok.map(|(_, exp)| exp), Ok(Some(200)));
        let no_exp = active(map(json!({"active": true})), 100);
        assert_eq!(no_exp.map(|(_, exp)| exp), Ok(None));
        assert_eq!(
            active(map(json!({"active": false})), 100).err(),
            Some(INACTIVE)
        );
        assert_eq!(
            active(map(json!({"active": "true"})), 100).err(),
            Some(INACTIVE)
        );
        assert_eq!(active(map(json!({})), 100).err(), Some(INACTIVE));
        assert_eq!(
            active(map(json!({"active": true, "exp": 99})), 100).err(),
            Some(EXPIRED)
        );
    }
}
