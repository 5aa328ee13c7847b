//! `auth.jwt`: JSON Web Tokens. NOT BUILT YET — `auth.jwt` is refused by
//! `config::unsupported` until this lands.

use http::HeaderName;
use http::request::Parts;

use super::credential::Head;
use super::{AuthContext, Outcome};
use crate::config::{self, Location};

/// JWT validation of one route.
pub(super) struct JwtAuth {
    _private: (),
}

impl JwtAuth {
    pub(super) fn compile(
        _settings: &config::Jwt,
        at: Location,
        _cx: &AuthContext<'_>,
        errors: &mut Vec<(Location, String)>,
    ) -> Option<Self> {
        errors.push((at, "`jwt` is not supported yet".to_owned()));
        None
    }

    /// `true`: introspection is configured too, so bearer tokens that are not JWT-shaped
    /// (three dot-separated parts) are left to it (count as absent here).
    pub(super) fn opaque_tokens_elsewhere(self, _yes: bool) -> Self {
        self
    }

    pub(super) async fn check(&self, _head: Head<'_>) -> Outcome {
        Outcome::Absent
    }

    pub(super) fn hide(&self, _parts: &mut Parts) {}

    pub(super) fn claim_headers(&self) -> Vec<HeaderName> {
        Vec::new()
    }
}
