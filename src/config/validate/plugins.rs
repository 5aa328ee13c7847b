//! Plugin checks that serde cannot express (each `plugins:` map on its own; the `authorize`
//! needs `auth` rule is in the route checks).

use serde_saphyr::Spanned;

use super::Checker;
use crate::config::auth::Auth;
use crate::config::plugins::{Cors, Plugins, RateLimit, Store};
use crate::config::shapes::PluginSetting;

impl Checker<'_> {
    pub(super) fn plugins(&mut self, plugins: &Plugins) {
        if let Some(entry) = &plugins.request_id
            && matches!(entry.value, PluginSetting::Off)
        {
            self.error(
                entry.referenced,
                "`request_id` is always on and cannot be turned off",
            );
        }
        if let Some(filter) = settings(&plugins.ip_filter) {
            self.cidrs(&filter.allow);
            self.cidrs(&filter.deny);
        }
        if let Some(cors) = &plugins.cors
            && let PluginSetting::On(settings) = &cors.value
        {
            self.cors(cors.referenced, settings);
        }
        if let Some(auth) = &plugins.auth
            && let PluginSetting::On(settings) = &auth.value
        {
            self.auth(auth.referenced, settings);
        }
        if let Some(rate_limit) = &plugins.rate_limit
            && let PluginSetting::On(settings) = &rate_limit.value
        {
            self.rate_limit(rate_limit.referenced, settings);
        }
        if let Some(cache) = settings(&plugins.cache) {
            let at = plugins
                .cache
                .as_ref()
                .map_or(serde_saphyr::Location::UNKNOWN, |c| c.referenced);
            for status in &cache.statuses {
                if !(100..=599).contains(status) {
                    self.error(
                        at,
                        format!("cache status {status} is not between 100 and 599"),
                    );
                }
            }
            if cache.ttl.0.is_zero() {
                self.error(at, "cache `ttl` must be more than 0");
            }
            for method in &cache.methods {
                if matches!(method.0.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
                    self.error(
                        at,
                        format!(
                            "cache `methods` cannot list {m}: writes are never cached, a \
                             successful {m} invalidates the path's entries instead",
                            m = method.0
                        ),
                    );
                }
            }
            if cache.store == Store::Cluster && self.config.cluster.is_none() {
                self.error(at, "cache `store: cluster` needs `cluster.redis`");
            }
        }
    }

    fn cors(&mut self, at: serde_saphyr::Location, cors: &Cors) {
        let any = cors.origins.value.as_slice().iter().any(|o| o == "*");
        if any && cors.credentials.value {
            let loc = if cors.credentials.referenced.line() == 0 {
                at
            } else {
                cors.credentials.referenced
            };
            self.error(
                loc,
                "`cors` cannot allow `credentials` with `origins: \"*\"`; list the allowed origins",
            );
        }
    }

    fn auth(&mut self, at: serde_saphyr::Location, auth: &Auth) {
        if auth.jwt.is_none()
            && auth.api_key.is_none()
            && auth.introspection.is_none()
            && auth.basic.is_none()
            && !auth.mtls
        {
            self.error(
                at,
                "`auth` needs at least one method: `jwt`, `api_key`, `introspection`, `basic` or `mtls`",
            );
        }
        if let Some(jwt) = &auth.jwt {
            let jwt_at = jwt.referenced;
            let jwt = &jwt.value;
            if jwt.algorithms.is_empty() {
                self.error(jwt_at, "`jwt.algorithms` needs at least one algorithm");
            }
            let hmac = jwt.algorithms.iter().any(|a| {
                matches!(
                    a.value,
                    jsonwebtoken::Algorithm::HS256
                        | jsonwebtoken::Algorithm::HS384
                        | jsonwebtoken::Algorithm::HS512
                )
            });
            let public = jwt.algorithms.iter().any(|a| {
                !matches!(
                    a.value,
                    jsonwebtoken::Algorithm::HS256
                        | jsonwebtoken::Algorithm::HS384
                        | jsonwebtoken::Algorithm::HS512
                )
            });
            if hmac && jwt.secret.is_none() {
                self.error(jwt_at, "HS* algorithms need `jwt.secret`");
            }
            if public && jwt.public_key.is_none() && jwt.jwks_url.is_none() {
                self.error(
                    jwt_at,
                    "public-key algorithms need `jwt.public_key` or `jwt.jwks_url`",
                );
            }
            for from in &jwt.from {
                self.selector(
                    from,
                    "jwt.from",
                    &["header:NAME", "cookie:NAME", "query:NAME"],
                );
            }
        }
        if let Some(api_key) = &auth.api_key {
            for from in &api_key.value.from {
                self.selector(
                    from,
                    "api_key.from",
                    &["header:NAME", "cookie:NAME", "query:NAME"],
                );
            }
        }
    }

    fn rate_limit(&mut self, at: serde_saphyr::Location, rate_limit: &RateLimit) {
        if rate_limit.limits.is_empty() {
            self.error(
                at,
                "`rate_limit.limits` needs at least one limit such as `100/1m`",
            );
        }
        self.selector(
            &rate_limit.key,
            "rate_limit.key",
            &["consumer", "ip", "header:NAME", "route", "global"],
        );
        for (group, limits) in &rate_limit.groups {
            if limits.is_empty() {
                self.error(
                    at,
                    format!("`rate_limit.groups.{group}` needs at least one limit"),
                );
            }
        }
        let all = rate_limit
            .limits
            .iter()
            .chain(rate_limit.groups.values().flatten());
        if let Some(rate) = all.into_iter().find(|r| r.count > u64::from(u32::MAX)) {
            self.error(
                at,
                format!("rate limit `{rate}`: N must be at most {}", u32::MAX),
            );
        }
        if rate_limit.store == Store::Cluster && self.config.cluster.is_none() {
            self.error(
                at,
                "`rate_limit.store: cluster` needs `cluster.redis` (use `auto` or `local`)",
            );
        }
    }
}

/// The settings of a plugin entry that is on.
fn settings<T>(entry: &Option<Spanned<PluginSetting<T>>>) -> Option<&T> {
    entry.as_ref().and_then(|e| e.value.settings())
}
