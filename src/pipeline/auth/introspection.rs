//! `auth.introspection`: OAuth 2.0 token introspection (RFC 7662). NOT BUILT YET —
//! refused by `config::unsupported` until this lands.

use http::request::Parts;

use super::credential::Head;
use super::{AuthContext, Outcome};
use crate::config::{self, Location};

/// Introspection of opaque bearer tokens.
pub(super) struct IntrospectionAuth {
    _private: (),
}

impl IntrospectionAuth {
    pub(super) fn compile(
        _settings: &config::Introspection,
        at: Location,
        _cx: &AuthContext<'_>,
        errors: &mut Vec<(Location, String)>,
    ) -> Option<Self> {
        errors.push((at, "`introspection` is not supported yet".to_owned()));
        None
    }

    /// `true`: `jwt` is configured too, so JWT-shaped bearer tokens are left to it.
    pub(super) fn jwt_tokens_elsewhere(self, _yes: bool) -> Self {
        self
    }

    pub(super) async fn check(&self, _head: Head<'_>) -> Outcome {
        Outcome::Absent
    }

    pub(super) fn hide(&self, _parts: &mut Parts) {}
}
