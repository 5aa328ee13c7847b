//! Route checks: match rules, destinations, service references, names, regexes.

use std::collections::HashMap;

use serde_saphyr::Location;

use super::Checker;
use crate::config::plugins::effective_plugin;
use crate::config::route::Route;
use crate::config::shapes::PluginSetting;

impl Checker<'_> {
    pub(super) fn routes(&mut self) {
        let config = self.config;
        if config.routes.is_empty() {
            self.error(
                Location::UNKNOWN,
                "the config needs at least one route in `routes`",
            );
        }
        let mut names: HashMap<&str, Location> = HashMap::new();
        for route in &config.routes {
            if let Some(name) = &route.value.name {
                if let Some(first) = names.get(name.value.as_str()) {
                    self.error(
                        name.referenced,
                        format!(
                            "duplicate route name `{}` (first used on line {})",
                            name.value,
                            first.line()
                        ),
                    );
                } else {
                    names.insert(&name.value, name.referenced);
                }
            }
            self.route(route.referenced, &route.value);
        }
    }

    fn route(&mut self, at: Location, route: &Route) {
        match (&route.path, &route.path_regex) {
            (None, None) => self.error(at, "a route needs `path` or `path_regex`"),
            (Some(_), Some(regex)) => self.error(
                regex.referenced,
                "a route takes `path` or `path_regex`, not both",
            ),
            (None, Some(regex)) => {
                if let Err(err) = regex::Regex::new(&regex.value) {
                    self.error(
                        regex.referenced,
                        format!("invalid regex `{}`: {}", regex.value, regex_reason(&err)),
                    );
                }
            }
            (Some(_), None) => {}
        }
        self.destination(at, route);
        if let Some(split) = &route.split {
            if split.value.is_empty() {
                self.error(split.referenced, "`split` needs at least one service");
            }
            for part in &split.value {
                self.service_ref(&part.service);
                if part.weight.value == 0 {
                    self.error(part.weight.referenced, "`weight` must be at least 1");
                }
            }
        }
        if let Some(sticky) = &route.sticky {
            if route.split.is_none() {
                self.error(sticky.referenced, "`sticky` is only used with `split`");
            }
            self.selector(
                sticky,
                "sticky",
                &["header:NAME", "cookie:NAME", "consumer"],
            );
        }
        if let Some(mirror) = &route.mirror {
            if route.service.is_none() && route.split.is_none() {
                self.error(
                    mirror.referenced,
                    "`mirror` copies forwarded requests: it needs `service` or `split`",
                );
            }
            self.service_ref(&mirror.value.service);
            let percent = &mirror.value.percent;
            if !(0.0..=100.0).contains(&percent.value) {
                self.error(percent.referenced, "`percent` must be between 0 and 100");
            }
        }
        if let Some(aggregate) = &route.aggregate {
            if aggregate.value.parts.is_empty() {
                self.error(aggregate.referenced, "`aggregate` needs at least one part");
            }
            for part in aggregate.value.parts.values() {
                self.service_ref(&part.service);
            }
        }
        if let Some(respond) = &route.respond {
            let status = &respond.value.status;
            if !(100..=599).contains(&status.value) {
                self.error(
                    status.referenced,
                    format!("`status` must be between 100 and 599, not {}", status.value),
                );
            }
        }
        self.plugins(&route.plugins);
        self.authorize_needs_auth(at, route);
    }

    /// Exactly one of `service`, `split`, `aggregate`, `respond`.
    fn destination(&mut self, at: Location, route: &Route) {
        let given: Vec<(&str, Location)> = [
            ("service", route.service.as_ref().map(|s| s.referenced)),
            ("split", route.split.as_ref().map(|s| s.referenced)),
            ("aggregate", route.aggregate.as_ref().map(|s| s.referenced)),
            ("respond", route.respond.as_ref().map(|s| s.referenced)),
        ]
        .into_iter()
        .filter_map(|(key, loc)| loc.map(|loc| (key, loc)))
        .collect();
        match given.as_slice() {
            [] => self.error(
                at,
                "a route needs one of `service`, `split`, `aggregate` or `respond`",
            ),
            [(first, _), rest @ ..] => {
                for (key, loc) in rest {
                    self.error(
                        *loc,
                        format!(
                            "`{key}` cannot be combined with `{first}`; a route has one destination"
                        ),
                    );
                }
            }
        }
        if let Some(service) = &route.service {
            self.service_ref(service);
        }
    }

    /// `authorize` is an error on a route whose effective plugins have no `auth`.
    fn authorize_needs_auth(&mut self, at: Location, route: &Route) {
        let service_plugins = route
            .main_service()
            .and_then(|name| self.config.services.get(&name.value))
            .map(|service| &service.value.plugins);
        let levels = [
            Some(&route.plugins),
            service_plugins,
            Some(&self.config.plugins),
        ];
        let authorize = effective_plugin(levels, |p| &p.authorize);
        let auth_on = effective_plugin(levels, |p| &p.auth)
            .is_some_and(|auth| matches!(auth.value, PluginSetting::On(_)));
        if let Some(authorize) = authorize
            && matches!(authorize.value, PluginSetting::On(_))
            && !auth_on
        {
            // Point at the route's own entry when it has one, else at the route.
            let loc = route
                .plugins
                .authorize
                .as_ref()
                .map_or(at, |entry| entry.referenced);
            self.error(
                loc,
                "`authorize` needs `auth` on the route, and this route has none",
            );
        }
    }
}

/// The one-line reason of a regex error.
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or_default())
        .trim()
        .to_owned()
}
