//! Plugin settings (SPEC §3), except `auth`/`authorize` ([`super::auth`]) and the transforms
//! ([`super::transform`]).

use indexmap::IndexMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::auth::{Auth, Authorize};
use super::shapes::{HeaderSetting, OneOrMany, PerConsumer, PluginSetting, VaryQuery};
use super::tokens::{HeaderName, Method, Selector};
use super::transform::{RequestTransform, ResponseTransform};
use super::units::{ByteSize, Duration, Rate};

/// A plugin entry with its location (the value after `NAME:`).
pub type PluginEntry<T> = Option<Spanned<PluginSetting<T>>>;

/// A `plugins:` map (global, service or route). Each plugin may appear once; the order in
/// the file does not matter (they run in the SPEC's fixed order). The location kept with
/// each entry is that of its key (`cors:`), so errors about a plugin point at its name.
#[derive(Debug, Clone, Default)]
pub struct Plugins {
    /// Request ids; always on (`{}` or `true` allowed, `false` is an error).
    pub request_id: PluginEntry<RequestId>,
    /// Client IP allow and deny lists.
    pub ip_filter: PluginEntry<IpFilter>,
    /// Cross-origin resource sharing.
    pub cors: PluginEntry<Cors>,
    /// Authentication.
    pub auth: PluginEntry<Auth>,
    /// Authorization of authenticated requests.
    pub authorize: PluginEntry<Authorize>,
    /// Rate limiting.
    pub rate_limit: PluginEntry<RateLimit>,
    /// Changes to the request before it is forwarded.
    pub request_transform: PluginEntry<RequestTransform>,
    /// Response caching.
    pub cache: PluginEntry<Cache>,
    /// Changes to the upstream response.
    pub response_transform: PluginEntry<ResponseTransform>,
    /// Security response headers.
    pub security_headers: PluginEntry<SecurityHeaders>,
}

/// The plugin names, in the order they run.
pub const PLUGIN_NAMES: [&str; 10] = [
    "request_id",
    "ip_filter",
    "cors",
    "auth",
    "authorize",
    "rate_limit",
    "request_transform",
    "cache",
    "response_transform",
    "security_headers",
];

impl<'de> Deserialize<'de> for Plugins {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PluginsVisitor)
    }
}

/// Reads a `plugins:` map, keeping each entry's key location.
struct PluginsVisitor;

/// Reads the value of a plugin entry and gives it the location of its key.
fn entry<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    key: &Spanned<String>,
) -> Result<PluginEntry<T>, A::Error> {
    let value: Spanned<PluginSetting<T>> = map.next_value()?;
    Ok(Some(Spanned::new(
        value.value,
        key.referenced,
        value.defined,
    )))
}

impl<'de> Visitor<'de> for PluginsVisitor {
    type Value = Plugins;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of plugin names to settings")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Plugins, E> {
        Ok(Plugins::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Plugins, A::Error> {
        let mut plugins = Plugins::default();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            match key.value.as_str() {
                "request_id" => plugins.request_id = entry(&mut map, &key)?,
                "ip_filter" => plugins.ip_filter = entry(&mut map, &key)?,
                "cors" => plugins.cors = entry(&mut map, &key)?,
                "auth" => plugins.auth = entry(&mut map, &key)?,
                "authorize" => plugins.authorize = entry(&mut map, &key)?,
                "rate_limit" => plugins.rate_limit = entry(&mut map, &key)?,
                "request_transform" => plugins.request_transform = entry(&mut map, &key)?,
                "cache" => plugins.cache = entry(&mut map, &key)?,
                "response_transform" => plugins.response_transform = entry(&mut map, &key)?,
                "security_headers" => plugins.security_headers = entry(&mut map, &key)?,
                other => return Err(de::Error::unknown_field(other, &PLUGIN_NAMES)),
            }
        }
        Ok(plugins)
    }
}

/// The entry of one plugin that applies to a route: the first one present among `levels`,
/// given most specific first (route, service, global). `NAME: false` is returned as
/// [`PluginSetting::Off`], so an inherited plugin turned off stays off.
pub fn effective_plugin<'a, T>(
    levels: [Option<&'a Plugins>; 3],
    pick: impl Fn(&'a Plugins) -> &'a PluginEntry<T>,
) -> Option<&'a Spanned<PluginSetting<T>>> {
    levels
        .into_iter()
        .flatten()
        .find_map(|plugins| pick(plugins).as_ref())
}

/// Settings of `request_id` (it has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestId {}

/// Client IP filtering; `deny` wins over `allow`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpFilter {
    /// CIDRs (or bare IPs) allowed; empty: all not denied.
    pub allow: Vec<Spanned<String>>,
    /// CIDRs (or bare IPs) denied.
    pub deny: Vec<Spanned<String>>,
}

/// Cross-origin resource sharing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cors {
    /// Allowed origins: `"*"`, or a list (entries may use a `*.` wildcard host).
    pub origins: Spanned<OneOrMany<String>>,
    /// Allowed methods. Default GET, HEAD, POST, PUT, PATCH, DELETE.
    pub methods: Vec<Method>,
    /// Allowed request headers.
    pub headers: Vec<HeaderName>,
    /// Response headers exposed to scripts.
    pub expose: Vec<HeaderName>,
    /// Allow credentials (not with `origins: "*"`).
    pub credentials: Spanned<bool>,
    /// How long browsers may cache a preflight answer. Default 10m.
    pub max_age: Duration,
}

impl Default for Cors {
    fn default() -> Self {
        let unlocated = serde_saphyr::Location::UNKNOWN;
        Self {
            origins: Spanned::new(OneOrMany::Many(Vec::new()), unlocated, unlocated),
            methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                .into_iter()
                .map(|m| Method(m.to_owned()))
                .collect(),
            headers: Vec::new(),
            expose: Vec::new(),
            credentials: Spanned::new(false, unlocated, unlocated),
            max_age: Duration::from_secs(600),
        }
    }
}

/// Rate limiting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Limits that must all pass.
    pub limits: Vec<Rate>,
    /// What is counted: `consumer` (falls back to ip), `ip`, `header:NAME`, `route` or
    /// `global`. Default consumer.
    #[serde(default = "consumer_key")]
    pub key: Spanned<Selector>,
    /// Counting algorithm.
    #[serde(default)]
    pub algorithm: RateAlgorithm,
    /// Extra capacity for token_bucket and leaky_bucket.
    #[serde(default)]
    pub burst: u32,
    /// Limits per consumer group (tiers); the first matching group wins.
    #[serde(default)]
    pub groups: IndexMap<String, Vec<Rate>>,
    /// Which counters are shared: per route (default), per service, or global.
    #[serde(default)]
    pub scope: RateScope,
    /// Where counters live.
    #[serde(default)]
    pub store: Store,
    /// Send the `X-RateLimit-*` and `RateLimit*` headers. Default true.
    #[serde(default = "yes")]
    pub headers: bool,
}

fn consumer_key() -> Spanned<Selector> {
    let unlocated = serde_saphyr::Location::UNKNOWN;
    Spanned::new(Selector::Consumer, unlocated, unlocated)
}

fn yes() -> bool {
    true
}

/// Rate-limit counting algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateAlgorithm {
    /// Sliding window (the default).
    #[default]
    SlidingWindow,
    /// Token bucket.
    TokenBucket,
    /// Fixed window.
    FixedWindow,
    /// Leaky bucket.
    LeakyBucket,
}

/// What a rate-limit counter is shared by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateScope {
    /// One counter per route (the default).
    #[default]
    Route,
    /// Shared by the routes of a service.
    Service,
    /// Shared by every route.
    Global,
}

/// Where plugin state lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Store {
    /// The cluster store when configured, else local (the default).
    #[default]
    Auto,
    /// This node only.
    Local,
    /// The cluster store.
    Cluster,
}

/// Response caching.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cache {
    /// How long an entry is served. Default 60s.
    pub ttl: Duration,
    /// Methods whose responses are cached. Default GET, HEAD.
    pub methods: Vec<Method>,
    /// Statuses that are cached. Default 200, 203, 204, 301, 404.
    pub statuses: Vec<u16>,
    /// Request headers added to the key.
    pub vary_headers: Vec<HeaderName>,
    /// Query parameters in the key.
    pub vary_query: VaryQuery,
    /// Whether entries are kept per consumer.
    pub per_consumer: PerConsumer,
    /// Largest body stored. Default 1MiB.
    pub max_body: ByteSize,
    /// Memory for all entries of this cache. Default 64MiB.
    pub max_memory: ByteSize,
    /// Where entries live.
    pub store: Store,
    /// Obey `no-store`, `private` and `max-age` from both sides. Default true.
    pub respect_cache_control: bool,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            methods: vec![Method("GET".to_owned()), Method("HEAD".to_owned())],
            statuses: vec![200, 203, 204, 301, 404],
            vary_headers: Vec::new(),
            vary_query: VaryQuery::All,
            per_consumer: PerConsumer::Auto,
            max_body: ByteSize::mib(1),
            max_memory: ByteSize::mib(64),
            store: Store::Auto,
            respect_cache_control: true,
        }
    }
}

/// Security headers added to every response of the route; `false` drops one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security`, sent on TLS only. Default
    /// `max-age=31536000; includeSubDomains`.
    pub strict_transport_security: HeaderSetting,
    /// `X-Content-Type-Options`. Default `nosniff`.
    pub x_content_type_options: HeaderSetting,
    /// `X-Frame-Options`. Default `DENY`.
    pub x_frame_options: HeaderSetting,
    /// `Referrer-Policy`. Default `no-referrer`.
    pub referrer_policy: HeaderSetting,
    /// `Content-Security-Policy`. Default off.
    pub content_security_policy: HeaderSetting,
    /// Response headers removed. Default `Server`, `X-Powered-By`.
    pub remove: Vec<HeaderName>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self {
            strict_transport_security: HeaderSetting::value("max-age=31536000; includeSubDomains"),
            x_content_type_options: HeaderSetting::value("nosniff"),
            x_frame_options: HeaderSetting::value("DENY"),
            referrer_policy: HeaderSetting::value("no-referrer"),
            content_security_policy: HeaderSetting::Off,
            remove: vec![
                HeaderName("Server".to_owned()),
                HeaderName("X-Powered-By".to_owned()),
            ],
        }
    }
}
