//! From verified claims (a JWT payload or an introspection answer) to an [`Identity`].

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::consumers::Consumers;
use super::identity::Identity;

/// Claims read for scopes when the configured one is absent (Azure AD's `scp`, Auth0's
/// `permissions`).
const FALLBACK_SCOPE_CLAIMS: [&str; 2] = ["scp", "permissions"];

/// How a method reads an identity out of claims.
pub(super) struct ClaimRules {
    /// Claims tried in order for the consumer's name (the first string wins).
    pub(super) consumer_claims: Vec<String>,
    /// The scopes claim; `scp` and `permissions` are read when it is absent.
    pub(super) scopes_claim: String,
    /// The groups claim, if any.
    pub(super) groups_claim: Option<String>,
    /// `claims_to_headers`: claim → request header.
    pub(super) headers: Vec<(String, HeaderName)>,
    /// The configured consumers, whose groups join the identity's.
    pub(super) consumers: Arc<Consumers>,
}

impl ClaimRules {
    /// The identity these claims prove.
    pub(super) fn identity(&self, claims: Map<String, Value>) -> Identity {
        let consumer: Option<Arc<str>> = self
            .consumer_claims
            .iter()
            .find_map(|name| text(claims.get(name)?))
            .map(|c| Arc::from(c.as_ref()));
        let user_id = claims.get("sub").and_then(text).map(Cow::into_owned);
        let scopes = match claims.get(&self.scopes_claim) {
            Some(value) => scopes(value),
            None => FALLBACK_SCOPE_CLAIMS
                .iter()
                .find_map(|name| claims.get(*name))
                .map(scopes)
                .unwrap_or_default(),
        };
        let mut groups: Vec<Arc<str>> = self
            .groups_claim
            .as_ref()
            .and_then(|name| claims.get(name))
            .map(groups)
            .unwrap_or_default();
        if let Some(entry) = consumer.as_deref().and_then(|c| self.consumers.get(c)) {
            for group in &entry.identity.groups {
                if !groups.contains(group) {
                    groups.push(group.clone());
                }
            }
        }
        let headers = self
            .headers
            .iter()
            .filter_map(|(claim, header)| {
                let value = text(claims.get(claim)?)?;
                Some((header.clone(), HeaderValue::from_str(&value).ok()?))
            })
            .collect();
        Identity {
            consumer,
            user_id,
            groups,
            scopes,
            claims: Some(Arc::new(claims)),
            headers,
            ..Identity::default()
        }
    }
}

/// A claim as text: strings as they are, other values (but `null`) as JSON.
fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        Value::String(_) | Value::Null => None,
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// Scopes from a space-separated string or an array of strings.
pub(super) fn scopes(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Groups from a string (one group) or an array of strings.
pub(super) fn groups(value: &Value) -> Vec<Arc<str>> {
    let one = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| Arc::from(s))
    };
    match value {
        Value::String(s) => one(s).into_iter().collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(one)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules() -> ClaimRules {
        let mut errors = Vec::new();
        let consumers: indexmap::IndexMap<String, crate::config::Consumer> =
            serde_saphyr::from_str("web-app: { groups: [premium] }\n").expect("consumers");
        ClaimRules {
            consumer_claims: vec!["sub".into()],
            scopes_claim: "scope".into(),
            groups_claim: Some("groups".into()),
            headers: vec![
                ("role".into(), HeaderName::from_static("x-user-role")),
                ("level".into(), HeaderName::from_static("x-level")),
            ],
            consumers: Arc::new(Consumers::compile(&consumers, &mut errors)),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn scopes_from_strings_and_arrays() {
        assert_eq!(scopes(&json!("a  b\tc")), ["a", "b", "c"]);
        assert_eq!(scopes(&json!(["a", "b c", 3])), ["a", "b", "c"]);
        assert!(scopes(&json!(3)).is_empty());
        assert!(scopes(&json!("")).is_empty());
    }

    #[test]
    fn groups_from_strings_and_arrays() {
        assert_eq!(groups(&json!("admins")), vec![Arc::<str>::from("admins")]);
        assert_eq!(groups(&json!(["a", " ", "b", 1])).len(), 2);
        assert!(groups(&json!({"a": 1})).is_empty());
    }

    #[test]
    fn identity_from_claims() {
        let identity = rules().identity(claims(json!({
            "sub": "web-app", "scope": "orders:read", "groups": ["beta", "premium"],
            "role": "admin", "level": 3, "other": null,
        })));
        assert_eq!(identity.consumer.as_deref(), Some("web-app"));
        assert_eq!(identity.user_id.as_deref(), Some("web-app"));
        assert_eq!(identity.scopes, ["orders:read"]);
        let groups: Vec<&str> = identity.groups.iter().map(|g| &**g).collect();
        assert_eq!(
            groups,
            ["beta", "premium"],
            "the consumer's groups join, once"
        );
        assert_eq!(identity.headers.len(), 2);
        assert_eq!(identity.headers[1].1, "3", "non-string claims as JSON");
        assert_eq!(identity.claim_text("role").as_deref(), Some("admin"));
    }

    #[test]
    fn scope_fallbacks() {
        let identity = rules().identity(claims(json!({"sub": "u", "scp": ["a", "b"]})));
        assert_eq!(identity.scopes, ["a", "b"]);
        let identity = rules().identity(claims(json!({"permissions": ["p"]})));
        assert_eq!(identity.scopes, ["p"]);
        assert_eq!(identity.consumer, None);
        let identity = rules().identity(claims(json!({"scope": "s", "scp": "t"})));
        assert_eq!(identity.scopes, ["s"], "the configured claim wins");
    }
}
