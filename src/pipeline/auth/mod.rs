//! `auth` (SPEC §3.4): every way a client proves who it is, as one step.
//!
//! Each configured method looks for its credential and answers [`Outcome::Absent`],
//! [`Outcome::Valid`] or [`Outcome::Invalid`]. Any valid credential authenticates the request,
//! but a credential that is present and invalid is a 401 even when another method succeeded;
//! with no credential at all the request is a 401 unless `optional`.

mod api_key;
mod basic;
mod claims;
mod consumers;
pub mod credential;

mod identity;
mod introspection;
pub mod jwks;
mod jwt;
mod mtls;
pub mod revocation;
mod token_cache;

use std::sync::Arc;

use http::header::WWW_AUTHENTICATE;
use http::request::Parts;
use http::{HeaderName, HeaderValue};

use crate::config::{self, Location};
use crate::error::{ErrorKind, GatewayError};
use crate::runtime::State;
use crate::server::ConnContext;
use credential::Head;

pub use consumers::{ConsumerEntry, Consumers, PasswordHash};
pub use identity::{
    IDENTITY_HEADERS, Identity, X_AUTH_SCOPES, X_CONSUMER_GROUPS, X_CONSUMER_ID, X_USER_ID,
};

/// Seconds since the Unix epoch: the clock of token `exp`/`nbf` and revocations.
pub(super) fn now_secs() -> u64 {
    crate::poll_clock::system_now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The realm of `Bearer` challenges.
const BEARER_REALM: &str = "gatehouse";

/// What one method made of a request.
pub enum Outcome {
    /// No credential of this method's kind.
    Absent,
    /// A credential that proves this identity.
    Valid(Arc<Identity>),
    /// A credential that is present but not acceptable.
    Invalid(Rejection),
    /// The credential cannot be checked now (the identity provider is unreachable and
    /// nothing is cached): 503. The text is for the log.
    Unavailable(String),
}

/// Why a present credential was refused, and how to challenge the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The scheme of the `WWW-Authenticate` challenge.
    pub challenge: Challenge,
    /// Client-safe reason (`expired`, `bad signature`, `unknown key`…). Never the credential.
    pub reason: &'static str,
}

impl Rejection {
    /// A refused bearer token (JWT or introspected), with its `error_description`.
    pub fn token(reason: &'static str) -> Self {
        Self {
            challenge: Challenge::Bearer,
            reason,
        }
    }
}

/// The kind of `WWW-Authenticate` challenge a method answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// `Bearer realm="gatehouse"` (RFC 6750), for JWT and introspection.
    Bearer,
    /// `Basic realm="…"` (RFC 7617).
    Basic,
    /// `Key realm="gatehouse"`, for API keys (as Kong does).
    Key,
    /// `ClientCertificate realm="gatehouse"`, for mTLS.
    ClientCertificate,
}

/// The compiled `auth` step of a route.
pub struct AuthStep {
    optional: bool,
    hide_credentials: bool,
    jwt: Option<jwt::JwtAuth>,
    introspection: Option<introspection::IntrospectionAuth>,
    api_key: Option<api_key::ApiKeyAuth>,
    basic: Option<basic::BasicAuth>,
    mtls: Option<mtls::MtlsAuth>,
}

/// Everything compiling an `auth` step needs besides its settings.
pub struct AuthContext<'a> {
    /// The compiled consumers, shared by every route.
    pub consumers: &'a Arc<Consumers>,
    /// The long-lived state (JWKS caches, revocations, clients).
    pub state: &'a State,
    /// The config, for resolving relative file paths.
    pub config: &'a config::Config,
}

impl AuthStep {
    /// Compiles `settings` (located at `at`); errors are `(location, message)` pairs.
    pub fn compile(
        settings: &config::Auth,
        at: Location,
        cx: &AuthContext<'_>,
        errors: &mut Vec<(Location, String)>,
    ) -> Self {
        let jwt = settings.jwt.as_ref().and_then(|jwt| {
            jwt::JwtAuth::compile(&jwt.value, jwt.referenced, cx, errors)
                .map(|j| j.opaque_tokens_elsewhere(settings.introspection.is_some()))
        });
        let introspection = settings.introspection.as_ref().and_then(|i| {
            introspection::IntrospectionAuth::compile(&i.value, i.referenced, cx, errors)
                .map(|i| i.jwt_tokens_elsewhere(settings.jwt.is_some()))
        });
        let api_key = settings
            .api_key
            .as_ref()
            .map(|k| api_key::ApiKeyAuth::compile(&k.value, cx.consumers.clone()));
        let basic = settings
            .basic
            .as_ref()
            .map(|b| basic::BasicAuth::compile(&b.value, cx.consumers.clone()));
        let mtls = settings
            .mtls
            .then(|| mtls::MtlsAuth::new(cx.consumers.clone()));
        if settings.mtls && cx.config.tls.is_none() {
            errors.push((at, "`auth.mtls` needs `tls` with a `client_ca`".to_owned()));
        } else if settings.mtls
            && cx
                .config
                .tls
                .as_ref()
                .is_some_and(|t| t.value.client_ca.is_none())
        {
            errors.push((at, "`auth.mtls` needs `tls.client_ca`".to_owned()));
        }
        Self {
            optional: settings.optional,
            hide_credentials: settings.hide_credentials,
            jwt,
            introspection,
            api_key,
            basic,
            mtls,
        }
    }

    /// Authenticates a request: `Ok(Some(identity))`, `Ok(None)` for an anonymous request
    /// on an `optional` route, or the 401 (503 when the identity provider is down).
    /// With `hide_credentials`, the caller then removes the credential with [`Self::hide`].
    pub async fn authenticate(
        &self,
        head: Head<'_>,
        conn: &ConnContext,
    ) -> Result<Option<Arc<Identity>>, GatewayError> {
        let mut valid = None;
        let mut rejected = None;
        let mut unavailable = None;
        let mut note = |outcome: Outcome| match outcome {
            Outcome::Absent => {}
            Outcome::Valid(identity) => {
                valid.get_or_insert(identity);
            }
            Outcome::Invalid(rejection) => {
                rejected.get_or_insert(rejection);
            }
            Outcome::Unavailable(cause) => {
                unavailable.get_or_insert(cause);
            }
        };
        if let Some(jwt) = &self.jwt {
            note(jwt.check(head).await);
        }
        if let Some(introspection) = &self.introspection {
            note(introspection.check(head).await);
        }
        if let Some(api_key) = &self.api_key {
            note(api_key.check(head));
        }
        if let Some(basic) = &self.basic {
            note(basic.check(head).await);
        }
        if let Some(mtls) = &self.mtls {
            note(mtls.check(conn));
        }

        if let Some(rejection) = rejected {
            return Err(self.invalid(&rejection));
        }
        if let Some(cause) = unavailable {
            return Err(GatewayError::new(
                ErrorKind::ServiceUnavailable,
                "the credential cannot be verified right now",
            )
            .with_cause(cause)
            .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        if let Some(identity) = valid {
            return Ok(Some(identity));
        }
        if self.optional {
            return Ok(None);
        }
        Err(self.missing())
    }

    /// Whether credentials are removed before forwarding (`hide_credentials`).
    pub fn hides_credentials(&self) -> bool {
        self.hide_credentials
    }

    /// Removes every credential the configured methods read (`hide_credentials`).
    pub fn hide(&self, parts: &mut Parts) {
        if let Some(jwt) = &self.jwt {
            jwt.hide(parts);
        }
        if let Some(introspection) = &self.introspection {
            introspection.hide(parts);
        }
        if let Some(api_key) = &self.api_key {
            api_key.hide(parts);
        }
        if let Some(basic) = &self.basic {
            basic.hide(parts);
        }
    }

    /// The 401 for a request without any credential: one challenge per configured method.
    pub fn missing(&self) -> GatewayError {
        let mut error = GatewayError::new(ErrorKind::Unauthorized, "authentication required");
        let mut schemes = Vec::new();
        if self.jwt.is_some() || self.introspection.is_some() {
            schemes.push(Challenge::Bearer);
        }
        if self.api_key.is_some() {
            schemes.push(Challenge::Key);
        }
        if self.basic.is_some() {
            schemes.push(Challenge::Basic);
        }
        if self.mtls.is_some() {
            schemes.push(Challenge::ClientCertificate);
        }
        for scheme in schemes {
            error = error.with_header(WWW_AUTHENTICATE, self.challenge(scheme, None));
        }
        error
    }

    /// The 401 for a present but invalid credential.
    fn invalid(&self, rejection: &Rejection) -> GatewayError {
        let message = match rejection.challenge {
            Challenge::Bearer => format!("invalid token: {}", rejection.reason),
            Challenge::Key => format!("invalid API key: {}", rejection.reason),
            Challenge::Basic => format!("invalid credentials: {}", rejection.reason),
            Challenge::ClientCertificate => {
                format!("invalid client certificate: {}", rejection.reason)
            }
        };
        GatewayError::new(ErrorKind::Unauthorized, message)
            .with_cause(rejection.reason)
            .with_header(
                WWW_AUTHENTICATE,
                self.challenge(rejection.challenge, Some(rejection.reason)),
            )
    }

    /// A `WWW-Authenticate` value; `reason` adds RFC 6750's `error` and `error_description`.
    fn challenge(&self, scheme: Challenge, reason: Option<&'static str>) -> HeaderValue {
        let text = match (scheme, reason) {
            (Challenge::Bearer, Some(reason)) => format!(
                "Bearer realm=\"{BEARER_REALM}\", error=\"invalid_token\", error_description=\"{reason}\""
            ),
            (Challenge::Bearer, None) => format!("Bearer realm=\"{BEARER_REALM}\""),
            (Challenge::Basic, _) => format!(
                "Basic realm=\"{}\", charset=\"UTF-8\"",
                self.basic.as_ref().map_or(BEARER_REALM, |b| b.realm())
            ),
            (Challenge::Key, _) => format!("Key realm=\"{BEARER_REALM}\""),
            (Challenge::ClientCertificate, _) => {
                format!("ClientCertificate realm=\"{BEARER_REALM}\"")
            }
        };
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// Header names this step sets from claims (`claims_to_headers`): a client may never
    /// send them, on any route.
    pub fn claim_headers(&self) -> Vec<HeaderName> {
        self.jwt
            .as_ref()
            .map(|j| j.claim_headers())
            .unwrap_or_default()
    }
}
