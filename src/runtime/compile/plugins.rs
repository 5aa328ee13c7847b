//! The plugin steps of a route, compiled from the settings that apply to it (route, then
//! service, then global, as [`effective_plugin`] picks them).

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::Errors;
use crate::config::{self, HeaderSetting, Location, PluginSetting, Spanned, effective_plugin};
use crate::pipeline::auth::{AuthContext, AuthStep};
use crate::pipeline::authorize::Authorize;
use crate::pipeline::cache::CacheStep;
use crate::pipeline::cors::Cors;
use crate::pipeline::ip_filter::IpFilter;
use crate::pipeline::rate_limit::{RateLimitStep, ScopeOf};
use crate::pipeline::security_headers::SecurityHeaders;
use crate::pipeline::transform::{RequestTransform, ResponseTransform};
use crate::runtime::State;

/// The settings of a plugin entry that is on, with its location.
fn on<T>(entry: Option<&Spanned<PluginSetting<T>>>) -> Option<(&T, Location)> {
    entry.and_then(|e| e.value.settings().map(|s| (s, e.referenced)))
}

/// The request steps of one route that `compile_steps` builds.
pub(super) struct Steps {
    pub(super) ip_filter: Option<IpFilter>,
    pub(super) cors: Option<Cors>,
    pub(super) auth: Option<AuthStep>,
    pub(super) authorize: Option<Authorize>,
}

/// Compiles the plugins of a route that apply before the upstream, from the levels
/// (route, service, global) merged by [`effective_plugin`].
pub(super) fn compile_steps(
    levels: [Option<&config::Plugins>; 3],
    auth_cx: &AuthContext<'_>,
    errors: &mut Errors<'_>,
) -> Steps {
    let ip_filter = on(effective_plugin(levels, |p| &p.ip_filter)).map(|(filter, _)| {
        let mut nets = |list: &[Spanned<String>]| {
            let mut parsed = Vec::with_capacity(list.len());
            for cidr in list {
                match config::parse_cidr(&cidr.value) {
                    Ok(net) => parsed.push(net),
                    Err(message) => errors.at(cidr.referenced, message),
                }
            }
            parsed
        };
        let allow = nets(&filter.allow);
        let deny = nets(&filter.deny);
        IpFilter::new(allow, deny)
    });
    let cors = on(effective_plugin(levels, |p| &p.cors)).and_then(|(settings, at)| {
        Cors::compile(settings)
            .map_err(|message| errors.at(at, format!("invalid `cors`: {message}")))
            .ok()
    });
    let auth = on(effective_plugin(levels, |p| &p.auth)).map(|(settings, at)| {
        let mut located = Vec::new();
        let step = AuthStep::compile(settings, at, auth_cx, &mut located);
        for (location, message) in located {
            errors.at(location, message);
        }
        step
    });
    let authorize = on(effective_plugin(levels, |p| &p.authorize))
        .map(|(settings, _)| Authorize::compile(settings));
    Steps {
        ip_filter,
        cors,
        auth,
        authorize,
    }
}

/// The route's `request_transform` and `response_transform`: templates may use the route's
/// path `captures`; response bodies are buffered up to `max_body`.
pub(super) fn transforms(
    levels: [Option<&config::Plugins>; 3],
    route: &Arc<str>,
    captures: &[&str],
    max_body: u64,
    errors: &mut Errors<'_>,
) -> (Option<RequestTransform>, Option<ResponseTransform>) {
    let mut located = Vec::new();
    let request = on(effective_plugin(levels, |p| &p.request_transform)).map(|(settings, at)| {
        RequestTransform::compile(settings, route, captures, at, &mut located)
    });
    let response = on(effective_plugin(levels, |p| &p.response_transform)).map(|(settings, at)| {
        ResponseTransform::compile(settings, route, captures, max_body, at, &mut located)
    });
    for (location, message) in located {
        errors.at(location, message);
    }
    (request, response)
}

/// What the `cache` step needs to know of its route.
pub(super) struct RouteOf<'a> {
    pub(super) name: &'a str,
    /// Tells apart unnamed routes of one pattern.
    pub(super) scope: &'a str,
    pub(super) has_auth: bool,
    pub(super) timeout: std::time::Duration,
}

/// The `cache` step of a forwarding route, with its cache from `state`.
pub(super) fn cache(
    levels: [Option<&config::Plugins>; 3],
    route: &RouteOf<'_>,
    state: &State,
    errors: &mut Errors<'_>,
) -> Option<CacheStep> {
    let (settings, at) = on(effective_plugin(levels, |p| &p.cache))?;
    CacheStep::compile(
        route.name,
        route.scope,
        settings,
        route.has_auth,
        route.timeout,
        &state.caches,
    )
    .map_err(|message| errors.at(at, format!("invalid `cache`: {message}")))
    .ok()
}

/// The `rate_limit` step of a route, its counters taken from (and kept in) `state`.
pub(super) fn rate_limit(
    levels: [Option<&config::Plugins>; 3],
    scope: ScopeOf<'_>,
    state: &State,
    errors: &mut Errors<'_>,
) -> Option<RateLimitStep> {
    let (settings, at) = on(effective_plugin(levels, |p| &p.rate_limit))?;
    RateLimitStep::compile(settings, scope, &state.rate_limits)
        .map_err(|message| errors.at(at, format!("invalid `rate_limit`: {message}")))
        .ok()
}

pub(super) fn security_headers(
    settings: &config::SecurityHeaders,
    at: Location,
    errors: &mut Errors<'_>,
) -> SecurityHeaders {
    let mut step = SecurityHeaders::default();
    let mut value_of = |setting: &HeaderSetting, name: &str| match setting {
        HeaderSetting::Value(v) => match HeaderValue::from_str(v) {
            Ok(value) => Some(value),
            Err(_) => {
                errors.at(at, format!("invalid value for `{name}`"));
                None
            }
        },
        HeaderSetting::Off => None,
    };
    step.hsts = value_of(
        &settings.strict_transport_security,
        "strict_transport_security",
    );
    let pairs = [
        (
            &settings.x_content_type_options,
            "x_content_type_options",
            http::header::X_CONTENT_TYPE_OPTIONS,
        ),
        (
            &settings.x_frame_options,
            "x_frame_options",
            http::header::X_FRAME_OPTIONS,
        ),
        (
            &settings.referrer_policy,
            "referrer_policy",
            http::header::REFERRER_POLICY,
        ),
        (
            &settings.content_security_policy,
            "content_security_policy",
            http::header::CONTENT_SECURITY_POLICY,
        ),
    ];
    for (setting, key, header) in pairs {
        if let Some(value) = value_of(setting, key) {
            step.set.push((header, value));
        }
    }
    for name in &settings.remove {
        match HeaderName::from_bytes(name.0.as_bytes()) {
            Ok(h) => step.remove.push(h),
            Err(_) => errors.at(at, format!("invalid header name `{}`", name.0)),
        }
    }
    step
}
