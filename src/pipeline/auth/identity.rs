//! Who a request is from, once `auth` has accepted a credential.

use std::sync::{Arc, OnceLock};

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::upstream::AddedHeaders;

/// `X-Consumer-Id`: the consumer's name.
pub static X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
/// `X-Consumer-Groups`: the consumer's groups, comma-separated.
pub static X_CONSUMER_GROUPS: HeaderName = HeaderName::from_static("x-consumer-groups");
/// `X-Auth-Scopes`: the granted scopes, space-separated.
pub static X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
/// `X-User-Id`: the token's subject.
pub static X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");

/// Every identity header: only the gateway sets them, client copies are always removed.
pub static IDENTITY_HEADERS: [&HeaderName; 4] = [
    &X_CONSUMER_ID,
    &X_CONSUMER_GROUPS,
    &X_AUTH_SCOPES,
    &X_USER_ID,
];

/// An authenticated identity: what `authorize`, rate limits, cache keys, templates and the
/// upstream (through the identity headers) learn about the client.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The consumer's name (`X-Consumer-Id`, `{consumer}`), when the credential names one.
    pub consumer: Option<Arc<str>>,
    /// The token's subject (`X-User-Id`).
    pub user_id: Option<String>,
    /// Groups: the configured consumer's and those of the token's groups claim.
    pub groups: Vec<Arc<str>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The verified claims (JWT payload or introspection answer), for `authorize.claims` and
    /// `{claim.NAME}`.
    pub claims: Option<Arc<Map<String, Value>>>,
    /// Headers from `claims_to_headers`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The identity headers for the upstream, rendered on first use: a cached token's
    /// identity renders them once, not on every request.
    pub(crate) forwarded: OnceLock<Box<[(HeaderName, HeaderValue)]>>,
}

impl Identity {
    /// The identity of a configured consumer (API key, password, certificate), named `name`
    /// and in `groups`.
    pub fn of_consumer(name: Arc<str>, groups: Vec<Arc<str>>) -> Self {
        Self {
            consumer: Some(name),
            groups,
            ..Self::default()
        }
    }

    /// A claim as text: strings as they are, other JSON values as JSON.
    pub fn claim_text(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self.claims.as_ref()?.get(name)? {
            Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
            Value::Null => None,
            other => Some(std::borrow::Cow::Owned(other.to_string())),
        }
    }

    /// Adds the identity headers to a request going upstream (client copies are already
    /// removed by the forwarding step).
    pub fn apply(&self, added: &mut AddedHeaders) {
        for (name, value) in self.forwarded.get_or_init(|| self.render()).iter() {
            added.set(name.clone(), value.clone());
        }
    }

    /// The identity headers, in the order [`Identity::apply`] sets them.
    fn render(&self) -> Box<[(HeaderName, HeaderValue)]> {
        let mut out = Vec::with_capacity(4 + self.headers.len());
        if let Some(value) = self
            .consumer
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            out.push((X_CONSUMER_ID.clone(), value));
        }
        if !self.groups.is_empty() {
            let joined = self
                .groups
                .iter()
                .map(|g| &**g)
                .collect::<Vec<_>>()
                .join(",");
            if let Ok(value) = HeaderValue::from_str(&joined) {
                out.push((X_CONSUMER_GROUPS.clone(), value));
            }
        }
        if !self.scopes.is_empty()
            && let Ok(value) = HeaderValue::from_str(&self.scopes.join(" "))
        {
            out.push((X_AUTH_SCOPES.clone(), value));
        }
        if let Some(value) = self
            .user_id
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok())
        {
            out.push((X_USER_ID.clone(), value));
        }
        out.extend(self.headers.iter().cloned());
        out.into_boxed_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers() {
        let identity = Identity {
            consumer: Some("web-app".into()),
            user_id: Some("u-1".into()),
            groups: vec!["premium".into(), "beta".into()],
            scopes: vec!["orders:read".into(), "orders:write".into()],
            claims: None,
            headers: vec![(
                HeaderName::from_static("x-user-role"),
                HeaderValue::from_static("admin"),
            )],
            ..Identity::default()
        };
        let mut added = AddedHeaders::default();
        identity.apply(&mut added);
        let mut headers = http::HeaderMap::new();
        added.insert_into(&mut headers);
        assert_eq!(headers["x-consumer-id"], "web-app");
        assert_eq!(headers["x-consumer-groups"], "premium,beta");
        assert_eq!(headers["x-auth-scopes"], "orders:read orders:write");
        assert_eq!(headers["x-user-id"], "u-1");
        assert_eq!(headers["x-user-role"], "admin");
    }
}
