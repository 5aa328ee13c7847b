//! `rate_limit` (SPEC §3.6): counts each request against the route's limits in a
//! [`RateStore`](crate::store::RateStore) before it is forwarded, refuses with 429 when any
//! limit is used up, and reports the tightest limit in the `X-RateLimit-*`, `RateLimit-Policy`
//! and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers, structured fields:
//! `RateLimit-Policy: "100/1m";q=100;w=60` and `RateLimit: "100/1m";r=42;t=17`).

mod headers;

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::added_fields::RateFields;
use super::auth::Identity;
use crate::config::{self, RateScope, Selector};
use crate::error::{ErrorKind, GatewayError};
use crate::store::local::LocalStore;
use crate::store::{CounterKey, Decision, LimitSpec, PreparedLimits, RateStore};
use crate::worker_hold::WorkerCopies;

/// The compiled `rate_limit` step of a route.
pub struct RateLimitStep {
    key: KeySource,
    default: Tier,
    /// Group tiers in config order: the first group the identity belongs to wins.
    groups: Vec<(Box<str>, Tier)>,
    headers: bool,
}

/// What a request is counted by.
enum KeySource {
    /// The consumer, else the client IP.
    Consumer,
    Ip,
    /// A header's value, else the client IP.
    Header(HeaderName),
    Route(Arc<str>),
    Global,
}

/// One set of limits with its store counters and its `RateLimit-Policy` value.
struct Tier {
    limits: PreparedLimits,
    /// `X-RateLimit-Limit` and the start of `RateLimit` of each limit, in config order, and
    /// the `RateLimit-Policy` value: a copy per worker thread, since every answer clones them (see
    /// [`crate::worker_hold::WorkerCopies`]).
    values: WorkerCopies<TierValues>,
}

/// The header values of a tier that every answer carries.
struct TierValues {
    /// `X-RateLimit-Limit` of each limit, in config order.
    limits: Vec<HeaderValue>,
    /// The start of `RateLimit` for each limit, in config order: its name, quoted.
    items: Vec<HeaderValue>,
    /// `RateLimit-Policy`.
    policy: HeaderValue,
}

/// Where a route's counters are shared: its scope's identity.
pub struct ScopeOf<'a> {
    /// The route's name.
    pub route: &'a str,
    /// The route's service, if it forwards to one.
    pub service: Option<&'a str>,
}

/// The result of a check, kept in the request context for the response headers.
pub struct RateOutcome<'rt> {
    tier: &'rt Tier,
    decision: Decision,
    headers: bool,
}

impl RateLimitStep {
    /// Compiles the settings; the counters come from `store` (kept across reloads).
    pub fn compile(
        settings: &config::RateLimit,
        scope: ScopeOf<'_>,
        store: &Arc<LocalStore>,
    ) -> Result<Self, String> {
        let key = match &settings.key.value {
            Selector::Consumer => KeySource::Consumer,
            Selector::Ip => KeySource::Ip,
            Selector::Header(name) => KeySource::Header(
                HeaderName::from_bytes(name.0.as_bytes())
                    .map_err(|_| format!("invalid header name `{}`", name.0))?,
            ),
            Selector::Route => KeySource::Route(scope.route.into()),
            Selector::Global => KeySource::Global,
            other => return Err(format!("`rate_limit.key` cannot be `{}`", other.kind())),
        };
        let scope_id = match (settings.scope, scope.service) {
            (RateScope::Service, Some(service)) => format!("service:{service}"),
            (RateScope::Global, _) => "global".to_owned(),
            _ => format!("route:{}", scope.route),
        };
        let tier = |rates: &[config::Rate]| {
            Tier::compile(rates, &scope_id, settings.algorithm, settings.burst, store)
        };
        Ok(Self {
            key,
            default: tier(&settings.limits),
            groups: settings
                .groups
                .iter()
                .map(|(group, rates)| (group.as_str().into(), tier(rates)))
                .collect(),
            headers: settings.headers,
        })
    }

    /// Counts the request; the outcome says whether it may go on and carries the headers.
    /// An error only when the store cannot be reached (cluster store).
    pub async fn check<'rt>(
        &'rt self,
        client_ip: IpAddr,
        identity: Option<&Identity>,
        headers: &HeaderMap,
    ) -> Result<RateOutcome<'rt>, GatewayError> {
        let key = match &self.key {
            KeySource::Consumer => match identity.and_then(|i| i.consumer.as_deref()) {
                Some(consumer) => CounterKey::Consumer(consumer),
                None => CounterKey::Ip(client_ip),
            },
            KeySource::Ip => CounterKey::Ip(client_ip),
            KeySource::Header(name) => match headers.get(name) {
                Some(value) => CounterKey::Header(value.as_bytes()),
                None => CounterKey::Ip(client_ip),
            },
            KeySource::Route(route) => CounterKey::Route(route),
            KeySource::Global => CounterKey::Global,
        };
        let tier = identity
            .and_then(|identity| {
                self.groups.iter().find_map(|(group, tier)| {
                    identity
                        .groups
                        .iter()
                        .any(|g| **g == **group)
                        .then_some(tier)
                })
            })
            .unwrap_or(&self.default);
        let decision = tier
            .limits
            .check(&key, crate::poll_clock::now())
            .await
            .map_err(|err| {
                GatewayError::new(
                    ErrorKind::ServiceUnavailable,
                    "the rate-limit store is unavailable",
                )
                .with_cause(err)
            })?;
        Ok(RateOutcome {
            tier,
            decision,
            headers: self.headers,
        })
    }
}

impl Tier {
    fn compile(
        rates: &[config::Rate],
        scope: &str,
        algorithm: config::RateAlgorithm,
        burst: u32,
        store: &Arc<LocalStore>,
    ) -> Self {
        let spec = LimitSpec {
            scope: scope.to_owned(),
            limits: rates.iter().map(|r| (r.count, r.per.0)).collect(),
            algorithm,
            burst,
        };
        let names: Vec<Box<str>> = rates.iter().map(|r| r.to_string().into()).collect();
        let values = WorkerCopies::new(|| TierValues {
            limits: headers::limit_values(&spec.limits),
            items: headers::items(&names),
            policy: headers::policy(&names, &spec.limits),
        });
        Self {
            limits: PreparedLimits::Local(store.clone(), store.prepare(&spec)),
            values,
        }
    }
}

impl RateOutcome<'_> {
    /// The 429 when the request was refused, with `Retry-After`.
    pub fn refused(&self) -> Result<(), GatewayError> {
        if self.decision.allowed {
            return Ok(());
        }
        Err(
            GatewayError::new(ErrorKind::RateLimited, "rate limit exceeded").with_header(
                http::header::RETRY_AFTER,
                HeaderValue::from(headers::whole_seconds(self.decision.reset).max(1)),
            ),
        )
    }

    /// The rate-limit fields of the answer (`None` when the route's `headers` is off).
    pub fn fields(&self) -> Option<RateFields> {
        if self.headers {
            headers::fields(self.tier, &self.decision)
        } else {
            None
        }
    }
}
