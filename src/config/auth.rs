//! `auth` and `authorize` plugin settings (SPEC §3.4, §3.5).

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::shapes::OneOrMany;
use super::tokens::{HeaderName, Method, Secret, Selector};
use super::units::Duration;

/// Authentication: any configured method that succeeds authenticates the request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// `true`: anonymous requests pass; a present but invalid credential is still a 401.
    pub optional: bool,
    /// `true`: the credential is removed before forwarding.
    pub hide_credentials: bool,
    /// JSON Web Tokens.
    pub jwt: Option<Spanned<Jwt>>,
    /// API keys of consumers.
    pub api_key: Option<Spanned<ApiKey>>,
    /// OAuth 2.0 token introspection (RFC 7662).
    pub introspection: Option<Spanned<Introspection>>,
    /// HTTP Basic against consumers' passwords.
    pub basic: Option<Spanned<Basic>>,
    /// `true`: a verified client certificate whose subject CN names a consumer.
    pub mtls: bool,
}

/// JWT validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    /// Accepted algorithms; any other (including `none`) fails.
    pub algorithms: Vec<Spanned<jsonwebtoken::Algorithm>>,
    /// Shared secret for HS* algorithms.
    #[serde(default)]
    pub secret: Option<Spanned<Secret>>,
    /// PEM public key file for RS*/PS*/ES*/EdDSA.
    #[serde(default)]
    pub public_key: Option<Spanned<String>>,
    /// JWKS URL of rotating keys.
    #[serde(default)]
    pub jwks_url: Option<Spanned<String>>,
    /// Required `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud` (one of these).
    #[serde(default)]
    pub audience: Option<OneOrMany<String>>,
    /// Clock skew allowed on `exp`/`nbf`. Default 0s.
    #[serde(default)]
    pub leeway: Duration,
    /// Where the token is read. Default `header:Authorization` (Bearer), `cookie:access_token`.
    #[serde(default = "jwt_from")]
    pub from: Vec<Spanned<Selector>>,
    /// Claim naming the consumer. Default `sub`.
    #[serde(default = "claim_sub")]
    pub consumer_claim: String,
    /// Claim holding scopes. Default `scope` (`scp` and `permissions` are read too).
    #[serde(default = "claim_scope")]
    pub scopes_claim: String,
    /// Claim holding groups. Default `groups`.
    #[serde(default = "claim_groups")]
    pub groups_claim: String,
    /// Claims forwarded as request headers.
    #[serde(default)]
    pub claims_to_headers: IndexMap<String, HeaderName>,
    /// `true`: tokens whose `jti` was revoked are rejected.
    #[serde(default)]
    pub revocable: bool,
}

fn unlocated<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

fn jwt_from() -> Vec<Spanned<Selector>> {
    vec![
        unlocated(Selector::Header(HeaderName("Authorization".to_owned()))),
        unlocated(Selector::Cookie("access_token".to_owned())),
    ]
}

fn claim_sub() -> String {
    "sub".to_owned()
}

fn claim_scope() -> String {
    "scope".to_owned()
}

fn claim_groups() -> String {
    "groups".to_owned()
}

/// API-key authentication against consumers' `keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKey {
    /// Where the key is read. Default `header:X-API-Key`, `query:api_key`.
    pub from: Vec<Spanned<Selector>>,
}

impl Default for ApiKey {
    fn default() -> Self {
        Self {
            from: vec![
                unlocated(Selector::Header(HeaderName("X-API-Key".to_owned()))),
                unlocated(Selector::Query("api_key".to_owned())),
            ],
        }
    }
}

/// OAuth 2.0 token introspection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Introspection {
    /// Introspection endpoint.
    pub url: Spanned<String>,
    /// Client id the gateway authenticates with.
    pub client_id: String,
    /// Client secret the gateway authenticates with.
    pub client_secret: Secret,
    /// How long active results are cached (never beyond the token's `exp`). Default 60s.
    #[serde(default = "sixty_seconds")]
    pub cache: Duration,
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

/// HTTP Basic authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Basic {
    /// Realm sent in `WWW-Authenticate`. Default `gatehouse`.
    pub realm: String,
}

impl Default for Basic {
    fn default() -> Self {
        Self {
            realm: "gatehouse".to_owned(),
        }
    }
}

/// Authorization of authenticated requests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Authorize {
    /// Scopes that are all required.
    pub scopes: Vec<String>,
    /// Scopes of which one is enough.
    pub any_scope: Vec<String>,
    /// Groups of which one is enough.
    pub groups: Vec<String>,
    /// Claims that must all be equal.
    pub claims: IndexMap<String, String>,
    /// Extra requirements per method, merged with the above.
    pub methods: IndexMap<Method, Requirements>,
}

/// Per-method authorization requirements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Requirements {
    /// Scopes that are all required.
    pub scopes: Vec<String>,
    /// Scopes of which one is enough.
    pub any_scope: Vec<String>,
    /// Groups of which one is enough.
    pub groups: Vec<String>,
    /// Claims that must all be equal.
    pub claims: IndexMap<String, String>,
}
