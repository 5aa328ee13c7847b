//! `gatehouse token`: a signed JWT for testing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

/// What goes into the token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The HMAC secret.
    pub secret: String,
    /// The `sub` claim.
    pub sub: Option<String>,
    /// The `scope` claim (space-separated).
    pub scope: Option<String>,
    /// Extra claims, `key=value`; a value that parses as JSON is kept as JSON.
    pub claims: Vec<String>,
    /// Lifetime (`exp` = now + ttl).
    pub ttl: Duration,
    /// `HS256`, `HS384` or `HS512`.
    pub alg: String,
}

/// Signs the token described by `request`, or says what is wrong with it.
pub fn sign(request: &TokenRequest) -> Result<String, String> {
    let alg = match request.alg.to_ascii_uppercase().as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        other => {
            return Err(format!(
                "unsupported --alg `{other}`: `token` signs with a shared secret (HS256, HS384, HS512)"
            ));
        }
    };
    if request.secret.is_empty() {
        return Err("--secret must not be empty".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut claims = Map::new();
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + request.ttl.as_secs()).into());
    if let Some(sub) = &request.sub {
        claims.insert("sub".into(), sub.clone().into());
    }
    if let Some(scope) = &request.scope {
        claims.insert("scope".into(), scope.clone().into());
    }
    for claim in &request.claims {
        let (key, value) = claim
            .split_once('=')
            .ok_or_else(|| format!("--claim `{claim}` must be key=value"))?;
        if key.is_empty() {
            return Err(format!("--claim `{claim}` has an empty key"));
        }
        let value = serde_json::from_str::<Value>(value).unwrap_or_else(|_| value.into());
        claims.insert(key.into(), value);
    }
    jsonwebtoken::encode(
        &Header::new(alg),
        &Value::Object(claims),
        &EncodingKey::from_secret(request.secret.as_bytes()),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    #[test]
    fn signs_verifiable_tokens_with_claims() {
        let token = sign(&TokenRequest {
            secret: "s3cret".into(),
            sub: Some("alice".into()),
            scope: Some("orders:read orders:write".into()),
            claims: vec!["role=admin".into(), "level=3".into()],
            ttl: Duration::from_secs(3600),
            alg: "HS256".into(),
        })
        .expect("signed");
        let data = decode::<Value>(
            &token,
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::new(Algorithm::HS256),
        )
        .expect("valid");
        assert_eq!(data.claims["sub"], "alice");
        assert_eq!(data.claims["scope"], "orders:read orders:write");
        assert_eq!(data.claims["role"], "admin");
        assert_eq!(data.claims["level"], 3);
    }

    #[test]
    fn refuses_asymmetric_algorithms() {
        let request = TokenRequest {
            secret: "s".into(),
            sub: None,
            scope: None,
            claims: vec![],
            ttl: Duration::from_secs(1),
            alg: "RS256".into(),
        };
        assert!(sign(&request).is_err());
    }
}
