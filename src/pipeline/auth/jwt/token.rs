//! The pure parts of checking a JWT: splitting it, reading its header and payload, and the
//! registered claims (`exp`, `nbf`, `iss`, `aud`). Signatures are jsonwebtoken's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `error_description` values (SPEC §3.4), plus `malformed token` and `algorithm not allowed`.
pub(super) mod reason {
    /// Not a JWT, undecodable, or without a numeric `exp`.
    pub(in super::super) const MALFORMED: &str = "malformed token";
    /// `alg` not listed in `algorithms` (including `none`).
    pub(in super::super) const ALGORITHM: &str = "algorithm not allowed";
    /// No key for the token's `kid`.
    pub(in super::super) const UNKNOWN_KEY: &str = "unknown key";
    /// The signature does not verify.
    pub(in super::super) const SIGNATURE: &str = "bad signature";
    /// `exp` is past (beyond the leeway).
    pub(in super::super) const EXPIRED: &str = "expired";
    /// `nbf` is ahead (beyond the leeway).
    pub(in super::super) const NOT_YET_VALID: &str = "not yet valid";
    /// `iss` is not the configured issuer.
    pub(in super::super) const ISSUER: &str = "wrong issuer";
    /// `aud` names none of the configured audiences.
    pub(in super::super) const AUDIENCE: &str = "wrong audience";
    /// The token's `jti` was revoked.
    pub(in super::super) const REVOKED: &str = "revoked";
}

/// Whether a bearer token looks like a JWS compact serialization: three dot-separated parts.
pub(in super::super) fn is_jwt_shaped(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// A token split into its parts, with its header read.
pub(super) struct Parts<'t> {
    /// `header.payload`: what the signature covers.
    pub(super) message: &'t str,
    /// The base64url payload.
    pub(super) payload: &'t str,
    /// The base64url signature.
    pub(super) signature: &'t str,
    /// The header's `alg`.
    pub(super) alg: Algorithm,
    /// The header's `kid`.
    pub(super) kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Splits `token` and reads its header; `allowed` are the configured algorithms.
pub(super) fn split<'t>(token: &'t str, allowed: &[Algorithm]) -> Result<Parts<'t>, &'static str> {
    let (message, signature) = token.rsplit_once('.').ok_or(reason::MALFORMED)?;
    let (header, payload) = message.split_once('.').ok_or(reason::MALFORMED)?;
    if payload.contains('.') || header.is_empty() || payload.is_empty() {
        return Err(reason::MALFORMED);
    }
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| reason::MALFORMED)?;
    let header: RawHeader = serde_json::from_slice(&header).map_err(|_| reason::MALFORMED)?;
    let alg = header
        .alg
        .parse::<Algorithm>()
        .ok()
        .filter(|alg| allowed.contains(alg))
        .ok_or(reason::ALGORITHM)?;
    if signature.is_empty() {
        return Err(reason::SIGNATURE);
    }
    Ok(Parts {
        message,
        payload,
        signature,
        alg,
        kid: header.kid,
    })
}

/// The payload as a JSON object.
pub(super) fn payload(encoded: &str) -> Result<Map<String, Value>, &'static str> {
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| reason::MALFORMED)?;
    serde_json::from_slice(&bytes).map_err(|_| reason::MALFORMED)
}

/// The registered claims checked on every use of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Times {
    /// `exp`, seconds since the epoch (required).
    pub(super) exp: u64,
    /// `nbf`, when present.
    pub(super) nbf: Option<u64>,
}

impl Times {
    /// `exp` (required) and `nbf` of `claims`; a non-numeric value is malformed.
    pub(super) fn of(claims: &Map<String, Value>) -> Result<Self, &'static str> {
        let exp = claims.get("exp").ok_or(reason::MALFORMED)?;
        let exp = numeric_date(exp).ok_or(reason::MALFORMED)?;
        let nbf = match claims.get("nbf") {
            None | Some(Value::Null) => None,
            Some(nbf) => Some(numeric_date(nbf).ok_or(reason::MALFORMED)?),
        };
        Ok(Self { exp, nbf })
    }

    /// `expired` or `not yet valid` at `now`, allowing `leeway` seconds of clock skew.
    pub(super) fn check(&self, now: u64, leeway: u64) -> Result<(), &'static str> {
        if self.exp.saturating_add(leeway) < now {
            return Err(reason::EXPIRED);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(reason::NOT_YET_VALID);
        }
        Ok(())
    }
}

/// A NumericDate (RFC 7519 §2): non-negative seconds, fractions allowed (and truncated).
fn numeric_date(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    if let Some(n) = number.as_u64() {
        return Some(n);
    }
    let f = number.as_f64()?;
    // Truncation is intended: NumericDates are whole seconds in practice.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (f.is_finite() && f >= 0.0).then_some(f as u64)
}

/// `wrong issuer` unless `iss` equals `issuer`.
pub(super) fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), &'static str> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        _ => Err(reason::ISSUER),
    }
}

/// `wrong audience` unless `aud` (a string or an array) names one of `audiences`.
pub(super) fn check_audience(
    claims: &Map<String, Value>,
    audiences: &[String],
) -> Result<(), &'static str> {
    let named = |aud: &str| audiences.iter().any(|a| a == aud);
    let ok = match claims.get("aud") {
        Some(Value::String(aud)) => named(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(named),
        _ => false,
    };
    if ok { Ok(()) } else { Err(reason::AUDIENCE) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn shapes() {
        assert!(is_jwt_shaped("a.b.c"));
        assert!(!is_jwt_shaped("opaque-token"));
        assert!(!is_jwt_shaped("a.b.c.d.e"));
    }

    #[test]
    fn headers() {
        let all = [Algorithm::HS256, Algorithm::RS256];
        let header = b64(&json!({"alg": "HS256", "kid": "k1"}));
        let token = format!("{header}.{}.sig", b64(&json!({})));
        let parts = split(&token, &all).expect("splits");
        assert_eq!(parts.alg, Algorithm::HS256);
        assert_eq!(parts.kid.as_deref(), Some("k1"));
        assert_eq!(parts.signature, "sig");
        assert_eq!(parts.message, token.rsplit_once('.').map_or("", |p| p.0));

        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&json!({})));
        assert_eq!(split(&none, &all).err(), Some(reason::ALGORITHM));
        let es = format!("{}.{}.s", b64(&json!({"alg": "ES256"})), b64(&json!({})));
        assert_eq!(split(&es, &all).err(), Some(reason::ALGORITHM));
        let hs_no_sig = format!("{}.{}.", b64(&json!({"alg": "HS256"})), b64(&json!({})));
        assert_eq!(split(&hs_no_sig, &all).err(), Some(reason::SIGNATURE));
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!.e30.sig",
            "e30.e30.sig",
            "..s",
        ] {
            assert_eq!(split(bad, &all).err(), Some(reason::MALFORMED), "{bad}");
        }
    }

    #[test]
    fn times() {
        let t = Times::of(&map(json!({"exp": 100, "nbf": 50}))).expect("times");
        assert_eq!(t.check(100, 0), Ok(()));
        assert_eq!(t.check(101, 0), Err(reason::EXPIRED));
        assert_eq!(t.check(130, 30), Ok(()), "leeway");
        assert_eq!(t.check(49, 0), Err(reason::NOT_YET_VALID));
        assert_eq!(t.check(45, 5), Ok(()), "leeway");
        let f = Times::of(&map(json!({"exp": 100.7}))).expect("fraction");
        assert_eq!(f.exp, 100);
        assert_eq!(Times::of(&map(json!({}))).err(), Some(reason::MALFORMED));
        assert_eq!(
            Times::of(&map(json!({"exp": "100"}))).err(),
            Some(reason::MALFORMED)
        );
        assert_eq!(
            Times::of(&map(json!({"exp": -5}))).err(),
            Some(reason::MALFORMED)
        );
        assert_eq!(
            Times::of(&map(json!({"exp": 5, "nbf": true}))).err(),
            Some(reason::MALFORMED)
        );
    }

    #[test]
    fn issuer_and_audience() {
        let claims = map(json!({"iss": "https://idp/", "aud": ["x", "api"]}));
        assert_eq!(check_issuer(&claims, "https://idp/"), Ok(()));
        assert_eq!(check_issuer(&claims, "https://other/"), Err(reason::ISSUER));
        assert_eq!(check_issuer(&map(json!({})), "i"), Err(reason::ISSUER));
        assert_eq!(check_audience(&claims, &["api".into()]), Ok(()));
        assert_eq!(
            check_audience(&claims, &["web".into()]),
            Err(reason::AUDIENCE)
        );
        let one = map(json!({"aud": "web"}));
        assert_eq!(check_audience(&one, &["api".into(), "web".into()]), Ok(()));
        assert_eq!(
            check_audience(&map(json!({})), &["api".into()]),
            Err(reason::AUDIENCE)
        );
    }
}
