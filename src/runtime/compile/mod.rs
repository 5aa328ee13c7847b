//! `compile(config) -> Runtime`: everything the request path needs, parsed and merged once —
//! targets bound to their connection pools, plugins merged (global → service → route), patterns and
//! templates parsed, the router built. Errors point at the file's line and column.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

mod plugins;
mod resilience;
mod traffic;
mod transport;

use super::plan::{ForwardPlan, Respond, RouteAction, RoutePlan};
use super::state::State;
use super::{Limits, Runtime};
use crate::config::{
    self, AccessLog as AccessLogSetting, Config, ConfigError, ConfigErrors, Location,
    PluginSetting, Protocol, RespondBody, Route, Service, Spanned, effective_plugin,
};
use crate::pipeline::auth::{AuthContext, AuthStep, Consumers};
use crate::pipeline::client_ip::TrustedProxies;
use crate::pipeline::rate_limit::ScopeOf;
use crate::pipeline::redirect::HttpsRedirect;
use crate::router::{PathSpec, Pattern, RouteSpec, Router};
use crate::template::Template;
use crate::upstream::{ServiceRuntime, UpstreamProtocol};
use plugins::{RouteOf, cache, compile_steps, rate_limit, security_headers, transforms};

/// What [`compile`] gives: a runtime ready to swap in, or every error found.
pub type CompileOutcome = Result<Runtime, ConfigErrors>;

/// Collects located errors while compiling.
pub(super) struct Errors<'c> {
    file: &'c str,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    pub(super) fn at(&mut self, location: Location, message: impl Into<String>) {
        self.list
            .push(ConfigError::at(self.file, location, message.into()));
    }
}

/// Compiles a validated config into a [`Runtime`], borrowing long-lived parts (connection
/// pools, the access log writer) from `state`.
pub fn compile(config: &Config, state: &State) -> CompileOutcome {
    let mut errors = Errors {
        file: &config.file,
        list: Vec::new(),
    };
    let limits = limits(&config.limits);
    let services = compile_services(config, state, &mut errors);
    let mut located = Vec::new();
    let consumers = Arc::new(Consumers::compile(&config.consumers, &mut located));
    for (location, message) in located {
        errors.at(location, message);
    }
    let auth_cx = AuthContext {
        consumers: &consumers,
        state,
        config,
    };

    let mut routes = Vec::with_capacity(config.routes.len());
    let mut locations = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        locations.push(route_location(route));
        if let Some(compiled) =
            compile_route(config, route, &services, &limits, &auth_cx, &mut errors)
        {
            routes.push(compiled);
        }
    }
    if !errors.list.is_empty() {
        return Err(sorted(errors.list));
    }
    let route_count = routes.len();
    let mut claim_headers: Vec<HeaderName> = Vec::new();
    for (_, plan) in &routes {
        for name in plan.auth.iter().flat_map(AuthStep::claim_headers) {
            if !claim_headers.contains(&name) {
                claim_headers.push(name);
            }
        }
    }
    let router = match Router::build(routes) {
        Ok(router) => router,
        Err(build_errors) => {
            for err in build_errors {
                let location = locations
                    .get(err.route)
                    .copied()
                    .unwrap_or(Location::UNKNOWN);
                let message = match err.other.and_then(|o| locations.get(o)) {
                    Some(other) if other.line() > 0 => format!(
                        "{} (the other route is at line {}, column {})",
                        err.message,
                        other.line(),
                        other.column()
                    ),
                    _ => err.message,
                };
                errors.at(location, message);
            }
            return Err(sorted(errors.list));
        }
    };

    let mut trusted = Vec::new();
    for cidr in &config.trusted_proxies {
        match config::parse_cidr(&cidr.value) {
            Ok(net) => trusted.push(net),
            Err(message) => errors.at(cidr.referenced, message),
        }
    }
    let access_log = match &config.observability.access_log {
        _ if state.is_dry_run() => None,
        AccessLogSetting::Off => None,
        AccessLogSetting::Stdout => Some(state.access_log_stdout()),
        AccessLogSetting::File(path) => match state.access_log_file(path) {
            Ok(log) => Some(log),
            Err(err) => {
                errors.at(
                    Location::UNKNOWN,
                    format!("cannot open the access log `{path}`: {err}"),
                );
                None
            }
        },
    };
    let unrouted_security_headers =
        effective_plugin([None, None, Some(&config.plugins)], |p| &p.security_headers).and_then(
            |entry| match &entry.value {
                PluginSetting::On(settings) => {
                    Some(security_headers(settings, entry.referenced, &mut errors))
                }
                PluginSetting::Off => None,
            },
        );
    let (tls, redirect_http) = compile_tls(config, state, &mut errors);
    if !errors.list.is_empty() {
        return Err(sorted(errors.list));
    }
    // Last: the config is complete, so it may change what the registry keeps.
    let health_checks = resilience::activate(config, &services, state);
    let mut services: Vec<_> = services.into_values().collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Runtime {
        tls,
        redirect_http,
        unrouted_security_headers,
        router,
        limits,
        trusted_proxies: TrustedProxies::new(trusted),
        claim_headers,
        access_log,
        route_count,
        service_count: services.len(),
        services,
        health_checks,
    })
}

/// The `tls` block: the server TLS config (certificate files read now, so a reload re-reads
/// them) and the `redirect_http` answer.
fn compile_tls(
    config: &Config,
    state: &State,
    errors: &mut Errors<'_>,
) -> (Option<Arc<rustls::ServerConfig>>, Option<HttpsRedirect>) {
    let Some(tls) = &config.tls else {
        return (None, None);
    };
    let redirect = tls.value.redirect_http.then(|| HttpsRedirect {
        configured_port: config::located(&tls.value.listen)
            .first()
            .and_then(|addr| config::parse_listen_addr(&addr.value).ok())
            .map_or(443, |addr| addr.port()),
    });
    match crate::server::tls::compile(config, &tls.value, state) {
        Ok(server) => (Some(server), redirect),
        Err(located) => {
            for (location, message) in located {
                errors.at(location, message);
            }
            (None, redirect)
        }
    }
}

fn sorted(mut list: Vec<ConfigError>) -> ConfigErrors {
    list.sort_by_key(|e| (e.line, e.col));
    ConfigErrors(list)
}

fn limits(limits: &config::Limits) -> Limits {
    Limits {
        max_body: limits.max_body.0,
        max_header_bytes: usize::try_from(limits.max_header_bytes.0).unwrap_or(usize::MAX),
        header_timeout: limits.header_timeout.0,
        idle_timeout: limits.idle_timeout.0,
        max_connections: limits.max_connections as usize,
        shutdown_grace: limits.shutdown_grace.0,
    }
}

fn compile_services(
    config: &Config,
    state: &State,
    errors: &mut Errors<'_>,
) -> HashMap<String, Arc<ServiceRuntime>> {
    let mut services = HashMap::with_capacity(config.services.len());
    for (name, service) in &config.services {
        let spec = &service.value;
        let mut targets = Vec::new();
        let listed: Vec<(&Spanned<String>, u32)> = match &spec.url {
            Some(url) => vec![(url, 1)],
            None => spec
                .targets
                .iter()
                .map(|t| (&t.url, t.weight.value))
                .collect(),
        };
        let Ok(tls) = transport::service_tls(config, name, spec, errors) else {
            continue;
        };
        for (url, weight) in listed {
            match transport::target(&url.value, weight, tls.as_ref()) {
                Ok(target) => targets.push(target),
                Err(err) => errors.at(url.referenced, err.to_string()),
            }
        }
        if targets.is_empty() {
            if spec.url.is_none() && spec.targets.is_empty() {
                errors.at(
                    service.referenced,
                    format!("service `{name}` needs `url` or `targets`"),
                );
            }
            continue;
        }
        let protocol = match protocol(spec) {
            Protocol::H2c => UpstreamProtocol::H2c,
            _ => UpstreamProtocol::Http1,
        };
        let service = Arc::new(
            ServiceRuntime::new(
                name,
                targets,
                protocol,
                &state.pools,
                &state.upstreams,
                spec.timeouts.connect.0,
                spec.timeouts.request.0,
            )
            .with_balance(traffic::balance(spec, errors))
            .with_retries(transport::retries(spec)),
        );
        if !state.is_dry_run() {
            service.discover(state.pools.clone(), state.upstreams.clone());
        }
        services.insert(name.clone(), service);
    }
    services
}

fn protocol(service: &Service) -> Protocol {
    service
        .protocol
        .as_ref()
        .map(|p| p.value)
        .unwrap_or_default()
}

/// Where a route is reported: its `path` (or `path_regex`) value.
fn route_location(route: &Spanned<Route>) -> Location {
    let r = &route.value;
    r.path
        .as_ref()
        .or(r.path_regex.as_ref())
        .map_or(route.referenced, |p| p.referenced)
}

fn compile_route(
    config: &Config,
    route: &Spanned<Route>,
    services: &HashMap<String, Arc<ServiceRuntime>>,
    limits: &Limits,
    auth_cx: &AuthContext<'_>,
    errors: &mut Errors<'_>,
) -> Option<(RouteSpec, RoutePlan)> {
    let r = &route.value;
    let location = route_location(route);
    let path = match (&r.path, &r.path_regex) {
        (Some(path), _) => PathSpec::Pattern(path.value.clone()),
        (None, Some(regex)) => PathSpec::Regex(regex.value.clone()),
        (None, None) => return None,
    };
    let pattern = match Pattern::parse(&path) {
        Ok(pattern) => pattern,
        Err(err) => {
            errors.at(location, err.to_string());
            return None;
        }
    };
    let name: Arc<str> = match &r.name {
        Some(name) => name.value.as_str().into(),
        None => pattern.as_str().into(),
    };

    let mut methods = Vec::with_capacity(r.methods.len());
    for method in &r.methods {
        match http::Method::from_bytes(method.value.0.as_bytes()) {
            Ok(m) => methods.push(m),
            Err(_) => errors.at(
                method.referenced,
                format!("invalid method `{}`", method.value.0),
            ),
        }
    }
    let mut headers = Vec::with_capacity(r.headers.len());
    for (header, value) in &r.headers {
        match HeaderName::from_bytes(header.0.as_bytes()) {
            Ok(h) => headers.push((h, value.clone())),
            Err(_) => errors.at(location, format!("invalid header name `{}`", header.0)),
        }
    }
    let spec = RouteSpec {
        path,
        methods: (!methods.is_empty()).then_some(methods),
        hosts: r.hosts.iter().map(|h| h.value.clone()).collect(),
        headers,
        query: r
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };

    let service = r.main_service().and_then(|s| config.services.get(&s.value));
    let levels = [
        Some(&r.plugins),
        service.map(|s| &s.value.plugins),
        Some(&config.plugins),
    ];
    let security_headers =
        effective_plugin(levels, |p| &p.security_headers).and_then(|entry| match &entry.value {
            PluginSetting::On(settings) => {
                Some(security_headers(settings, entry.referenced, errors))
            }
            PluginSetting::Off => None,
        });

    let steps = compile_steps(levels, auth_cx, errors);
    let scope = ScopeOf {
        route: &name,
        service: r.service.as_ref().map(|s| s.value.as_str()),
    };
    let rate_limit = rate_limit(levels, scope, auth_cx.state, errors);
    let max_body = r.max_body.map_or(limits.max_body, |b| b.0);
    let captures: Vec<&str> = pattern.capture_names().iter().map(|n| n.as_ref()).collect();
    let (request_transform, response_transform) =
        transforms(levels, &name, &captures, max_body, errors);

    let action = if let Some(respond) = &r.respond {
        RouteAction::Respond(compile_respond(&respond.value, respond.referenced, errors))
    } else if let Some(service) = traffic::destination(r, services, errors) {
        let rewrite = r.rewrite.as_ref().and_then(|rewrite| {
            match Template::parse(&rewrite.value).and_then(|t| {
                t.check_captures(&captures)?;
                Ok(t)
            }) {
                Ok(template) => Some(template),
                Err(err) => {
                    errors.at(rewrite.referenced, format!("invalid `rewrite`: {err}"));
                    None
                }
            }
        });
        let strip_prefix = r.strip_prefix.as_ref().and_then(|prefix| {
            let trimmed = prefix.value.trim_end_matches('/');
            if !prefix.value.starts_with('/') {
                errors.at(prefix.referenced, "`strip_prefix` must start with `/`");
                None
            } else if trimmed.is_empty() {
                None
            } else {
                Some(Box::<str>::from(trimmed))
            }
        });
        RouteAction::Forward(ForwardPlan {
            service,
            strip_prefix,
            rewrite,
            preserve_host: r.preserve_host,
            timeout: r.timeout.map(|t| t.0),
            mirror: traffic::mirror(r, services),
        })
    } else {
        // Routes with aggregate are refused as unsupported before compiling.
        return None;
    };

    let cache = match &action {
        RouteAction::Forward(forward) => {
            let scope = format!("{:?} {:?}", r.hosts, r.methods);
            let route = RouteOf {
                name: &name,
                scope: &scope,
                has_auth: steps.auth.is_some(),
                timeout: forward.longest_timeout(),
            };
            cache(levels, &route, auth_cx.state, errors)
        }
        RouteAction::Respond(_) => None,
    };
    let plan = RoutePlan {
        name,
        max_body,
        cache,
        action,
        ip_filter: steps.ip_filter,
        cors: steps.cors,
        auth: steps.auth,
        authorize: steps.authorize,
        rate_limit,
        request_transform,
        response_transform,
        security_headers,
    };
    Some((spec, plan))
}

fn compile_respond(respond: &config::Respond, at: Location, errors: &mut Errors<'_>) -> Respond {
    let status = StatusCode::from_u16(respond.status.value).unwrap_or_else(|_| {
        errors.at(respond.status.referenced, "`status` must be 100–599");
        StatusCode::OK
    });
    let (body, content_type) = match &respond.body {
        RespondBody::Text(text) => (
            Bytes::from(text.clone()),
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ),
        RespondBody::Json(value) => (
            Bytes::from(value.to_string()),
            HeaderValue::from_static("application/json"),
        ),
    };
    let mut headers = Vec::new();
    for (name, value) in &respond.headers {
        match (
            HeaderName::from_bytes(name.0.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => headers.push((n, v)),
            _ => errors.at(at, format!("invalid header `{}: {value}`", name.0)),
        }
    }
    Respond {
        status,
        body,
        content_type,
        headers,
    }
}
