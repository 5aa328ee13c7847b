//! `authorize` (SPEC §3.5): what an authenticated identity must hold — scopes, groups, claims,
//! with extra requirements per method. Not authenticated is 401, lacking is 403.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Method};
use serde_json::Value;

use super::auth::Identity;
use crate::config;
use crate::error::{ErrorKind, GatewayError};

/// One set of requirements.
#[derive(Debug, Clone, Default)]
struct Requirements {
    scopes: Vec<String>,
    any_scope: Vec<String>,
    groups: Vec<String>,
    claims: Vec<(String, String)>,
}

/// The compiled `authorize` step.
#[derive(Debug, Clone, Default)]
pub struct Authorize {
    all: Requirements,
    by_method: Vec<(Method, Requirements)>,
}

impl Authorize {
    /// Compiles the settings (methods are validated by the config loader).
    pub fn compile(settings: &config::Authorize) -> Self {
        let requirements =
            |scopes: &[String],
             any: &[String],
             groups: &[String],
             claims: &indexmap::IndexMap<String, String>| Requirements {
                scopes: scopes.to_vec(),
                any_scope: any.to_vec(),
                groups: groups.to_vec(),
                claims: claims.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
        Self {
            all: requirements(
                &settings.scopes,
                &settings.any_scope,
                &settings.groups,
                &settings.claims,
            ),
            by_method: settings
                .methods
                .iter()
                .filter_map(|(method, r)| {
                    let method =
                        Method::from_bytes(method.0.to_ascii_uppercase().as_bytes()).ok()?;
                    Some((
                        method,
                        requirements(&r.scopes, &r.any_scope, &r.groups, &r.claims),
                    ))
                })
                .collect(),
        }
    }

    /// `Ok` when `identity` meets the requirements for `method`; 403 when it does not.
    /// (An anonymous request is refused by the caller with the auth step's 401.)
    pub fn check(&self, method: &Method, identity: &Identity) -> Result<(), GatewayError> {
        check(&self.all, identity)?;
        for (m, requirements) in &self.by_method {
            if m == method || (method == Method::HEAD && m == Method::GET) {
                check(requirements, identity)?;
            }
        }
        Ok(())
    }
}

fn check(req: &Requirements, identity: &Identity) -> Result<(), GatewayError> {
    let has = |scope: &String| identity.scopes.iter().any(|s| s == scope);
    let missing: Vec<&str> = req
        .scopes
        .iter()
        .filter(|s| !has(s))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(insufficient_scope(&missing.join(" ")));
    }
    if !req.any_scope.is_empty() && !req.any_scope.iter().any(has) {
        return Err(insufficient_scope(&req.any_scope.join(" ")));
    }
    if !req.groups.is_empty()
        && !req
            .groups
            .iter()
            .any(|g| identity.groups.iter().any(|have| &**have == g))
    {
        return Err(GatewayError::new(
            ErrorKind::Forbidden,
            "the consumer is not in a group allowed here",
        ));
    }
    for (name, wanted) in &req.claims {
        if !claim_matches(identity, name, wanted) {
            return Err(GatewayError::new(
                ErrorKind::Forbidden,
                format!("the credential's `{name}` claim does not allow this"),
            ));
        }
    }
    Ok(())
}

/// Whether claim `name` equals `wanted`: a string equal to it, a number or boolean written
/// the same, or an array holding it.
fn claim_matches(identity: &Identity, name: &str, wanted: &str) -> bool {
    let Some(value) = identity.claims.as_ref().and_then(|c| c.get(name)) else {
        return false;
    };
    let equal = |v: &Value| match v {
        Value::String(s) => s == wanted,
        Value::Number(n) => n.to_string() == wanted,
        Value::Bool(b) => b.to_string() == wanted,
        _ => false,
    };
    match value {
        Value::Array(items) => items.iter().any(equal),
        other => equal(other),
    }
}

/// 403 with RFC 6750's `insufficient_scope` challenge naming the scopes needed.
fn insufficient_scope(scopes: &str) -> GatewayError {
    let mut error = GatewayError::new(
        ErrorKind::Forbidden,
        format!("insufficient scope: requires {scopes}"),
    );
    let challenge = format!(
        "Bearer realm=\"gatehouse\", error=\"insufficient_scope\", scope=\"{}\"",
        scopes.replace('"', "")
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        error = error.with_header(WWW_AUTHENTICATE, value);
    }
    error
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::ErrorKind;

    fn identity(scopes: &[&str], groups: &[&str], claims: Value) -> Identity {
        Identity {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|g| Arc::from(*g)).collect(),
            claims: claims.as_object().cloned().map(Arc::new),
            ..Identity::default()
        }
    }

    fn authorize(yaml: &str) -> Authorize {
        let settings: config::Authorize = serde_saphyr::from_str(yaml).expect("yaml");
        Authorize::compile(&settings)
    }

    #[test]
    fn scopes_all_and_any() {
        let rule = authorize("{scopes: [orders:read], any_scope: [admin, orders:write]}");
        let id = identity(&["orders:read", "orders:write"], &[], Value::Null);
        assert!(rule.check(&Method::GET, &id).is_ok());
        let id = identity(&["orders:read"], &[], Value::Null);
        let err = rule.check(&Method::GET, &id).expect_err("403");
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        let id = identity(&["admin"], &[], Value::Null);
        assert!(rule.check(&Method::GET, &id).is_err());
    }

    #[test]
    fn groups_claims_and_methods() {
        let rule = authorize(
            "{groups: [premium, staff], claims: {role: admin}, methods: {POST: {scopes: [orders:write]}}}",
        );
        let id = identity(
            &[],
            &["staff"],
            serde_json::json!({"role": ["user", "admin"]}),
        );
        assert!(rule.check(&Method::GET, &id).is_ok());
        assert!(rule.check(&Method::POST, &id).is_err());
        let id = identity(
            &["orders:write"],
            &["staff"],
            serde_json::json!({"role": "admin"}),
        );
        assert!(rule.check(&Method::POST, &id).is_ok());
        let id = identity(&[], &["other"], serde_json::json!({"role": "admin"}));
        assert!(rule.check(&Method::GET, &id).is_err());
        let id = identity(&[], &["premium"], serde_json::json!({"role": "user"}));
        assert!(rule.check(&Method::GET, &id).is_err());
    }
}
