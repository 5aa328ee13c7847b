//! Request routing: path normalization, pattern matching, specificity and fallback.
//!
//! The runtime normalizes the request path with [`normalize_path`], builds a [`Router`] once
//! per configuration from [`RouteSpec`]s, and asks it for the route of each request with
//! [`Router::find`]. The module is pure: no I/O and no configuration types.
//!
//! # Matching design
//!
//! `path` patterns live in a segment trie of our own (`trie.rs`) rather than in `matchit`.
//! `matchit` answers one route per path and treats `{id}` and `*`, or two routes of the same
//! shape, as one slot; SPEC §2.4 needs more: when the most specific path's host, header,
//! query or method conditions fail, the *next* matching route serves the request, and a 405
//! must know every route whose path matched. The trie walks children literal → `{param}` →
//! `*` and then the `**` routes of a node, which yields candidates exactly in specificity
//! order; each trie slot lists its routes conditional-first, then in input order. The first
//! candidate whose conditions hold wins, so the common case stops at the first candidate,
//! costs one binary search per segment and allocates nothing (segment offsets and captures
//! sit in inline `SmallVec`s). `path_regex` routes are tried after the trie, in the same
//! conditional-first, input order.
//!
//! # 405 and HEAD
//!
//! A route that lists GET also accepts HEAD (as nginx's `limit_except GET` does, and as
//! RFC 9110 §9.3.2 expects of a server), so `Allow` lists HEAD whenever it lists GET. When no
//! route serves a request but some route matched its path, hosts, headers and query and
//! failed only on the method, [`Router::find`] answers [`RouteMatch::MethodNotAllowed`] with
//! the union of those routes' methods; otherwise [`RouteMatch::NotFound`].
//!
//! # Decisions where SPEC §2.4 is silent
//!
//! - `{name}` and `*` match one non-empty segment: `/a/{id}` does not match `/a/`.
//! - A trailing slash is significant for exact paths (`/a` ≠ `/a/`); `**` accepts both.
//! - Patterns must be written in normalized form (the error shows it), since they are
//!   compared with normalized paths; captures may not be named like the template's own
//!   variables (`request_id`, `consumer`, `client_ip`, `timestamp`).
//! - An exact host and a wildcard host are equally specific: `api.example.com` and
//!   `*.example.com` on the same path and methods conflict.
//! - A header condition holds when any of the request's values for that name is equal; a
//!   query condition compares form-decoded names and values (`%XX`, `+` as space).
//! - `path_regex` is used as written (unanchored unless it has `^`/`$`).

mod captures;
mod conditions;
pub mod normalize;
pub mod pattern;
mod scan;
mod trie;

use std::collections::HashMap;
use std::ops::{ControlFlow, Range};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use smallvec::SmallVec;

pub use captures::Captures;
pub use normalize::{PathError, normalize_path};
pub use pattern::{PathSpec, Pattern, PatternError};

use conditions::{Conditions, HostPattern, MethodSet, Outcome};
use pattern::{PatternKind, Segment};
use trie::{RouteId, Trie, TrieBuilder};

/// What a route requires of a request, as the runtime builds it from the configuration.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// `path` or `path_regex`.
    pub path: PathSpec,
    /// Accepted methods; `None` accepts every method. GET implies HEAD.
    pub methods: Option<Vec<Method>>,
    /// Host names (`api.example.com`) or wildcards (`*.example.com`); empty matches any host.
    pub hosts: Vec<String>,
    /// Headers that must be present with exactly this value.
    pub headers: Vec<(HeaderName, String)>,
    /// Query parameters that must be present with this (decoded) value.
    pub query: Vec<(String, String)>,
}

/// The parts of a request that routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The host as sent (`Host` or the URI authority), possibly with a port, in any case.
    pub host: Option<&'a str>,
    /// The path, already passed through [`normalize_path`].
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// The router's answer for one request.
#[derive(Debug)]
pub enum RouteMatch<'r, T> {
    /// The most specific route whose path and conditions all match.
    Found {
        /// The route's compiled value, as given to [`Router::build`].
        route: &'r T,
        /// Path captures; read them with the request path.
        captures: Captures<'r>,
    },
    /// Some route matched everything but the method: answer 405 with this `Allow` value.
    MethodNotAllowed {
        /// Methods of those routes, sorted by name, comma separated.
        allow: HeaderValue,
    },
    /// No route matched: answer 404.
    NotFound,
}

/// A route that cannot be built: invalid pattern or condition, or a conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// Index of the route in the input of [`Router::build`].
    pub route: usize,
    /// For a conflict, the index of the other route.
    pub other: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The compiled route table: finds the route of a request by path and conditions.
#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<Route<T>>,
    trie: Trie,
    /// `path_regex` routes in matching order.
    regexes: Vec<RouteId>,
}

#[derive(Debug)]
struct Route<T> {
    value: T,
    pattern: Pattern,
    conditions: Conditions,
}

impl<T> Router<T> {
    /// Compiles routes, given in file order, into a router.
    ///
    /// Fails with every invalid route and every conflict. Two routes conflict when they have
    /// the same path shape (the same pattern up to capture names, or the same regex) and
    /// overlapping conditions, so that neither is more specific: both have conditions or both
    /// have none, their methods intersect (`None` is every method; GET implies HEAD), their
    /// hosts can both match some host (empty is any host; exact and wildcard names overlap
    /// when one host fits both), and no header or query parameter is required by both with
    /// different values.
    pub fn build(routes: Vec<(RouteSpec, T)>) -> Result<Self, Vec<BuildError>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::with_capacity(routes.len());
        for (index, (spec, value)) in routes.into_iter().enumerate() {
            match compile(&spec) {
                Ok((pattern, conditions)) => compiled.push(Route {
                    value,
                    pattern,
                    conditions,
                }),
                Err(messages) => errors.extend(messages.into_iter().map(|message| BuildError {
                    route: index,
                    other: None,
                    message,
                })),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut order: Vec<RouteId> = (0..compiled.len()).collect();
        order.sort_by_key(|&id| !compiled[id].conditions.any());
        let mut builder = TrieBuilder::default();
        let mut regexes = Vec::new();
        for &id in &order {
            match compiled[id].pattern.kind() {
                PatternKind::Segments(segments) => builder.insert(segments, id),
                PatternKind::Regex(_) => regexes.push(id),
            }
        }
        let mut by_regex: HashMap<&str, Vec<RouteId>> = HashMap::new();
        for &id in &regexes {
            by_regex
                .entry(compiled[id].pattern.as_str())
                .or_default()
                .push(id);
        }
        for slot in builder.slots().chain(by_regex.values().map(Vec::as_slice)) {
            errors.extend(conflicts(&compiled, slot));
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| (e.route, e.other));
            return Err(errors);
        }
        Ok(Self {
            routes: compiled,
            trie: builder.finish(),
            regexes,
        })
    }

    /// Finds the most specific route whose path and conditions match the request.
    pub fn find<'r>(&'r self, req: &RequestView<'_>) -> RouteMatch<'r, T> {
        let segments = segment_ranges(req.path);
        let mut allowed = MethodSet::default();
        let mut found = None;
        let mut check = |id: RouteId| {
            let conditions = &self.routes[id].conditions;
            match conditions.check(req) {
                Outcome::Match => {
                    found = Some(id);
                    ControlFlow::Break(())
                }
                Outcome::MethodOnly => {
                    if let Some(methods) = &conditions.methods {
                        allowed.union(methods);
                    }
                    ControlFlow::Continue(())
                }
                Outcome::NoMatch => ControlFlow::Continue(()),
            }
        };
        if self
            .trie
            .candidates(req.path, &segments, &mut check)
            .is_continue()
        {
            for &id in &self.regexes {
                if let PatternKind::Regex(regex) = self.routes[id].pattern.kind()
                    && regex.is_match(req.path)
                    && check(id).is_break()
                {
                    break;
                }
            }
        }
        if let Some(id) = found {
            let route = &self.routes[id];
            return RouteMatch::Found {
                route: &route.value,
                captures: captures(&route.pattern, req.path, &segments),
            };
        }
        if allowed.is_empty() {
            return RouteMatch::NotFound;
        }
        let allow = HeaderValue::from_str(&allowed.to_allow_value())
            .expect("method names are tokens, which are valid header values");
        RouteMatch::MethodNotAllowed { allow }
    }

    /// The number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when the router has no routes (every request is a 404).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Parses a route's pattern and conditions; the error lists every problem.
fn compile(spec: &RouteSpec) -> Result<(Pattern, Conditions), Vec<String>> {
    let mut problems = Vec::new();
    let pattern = Pattern::parse(&spec.path)
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    let methods = match &spec.methods {
        Some(methods) if methods.is_empty() => {
            problems.push("`methods` is empty: omit it to accept every method".to_owned());
            None
        }
        methods => methods.as_deref().map(MethodSet::accepted),
    };
    let hosts = spec
        .hosts
        .iter()
        .filter_map(|host| HostPattern::parse(host).map_err(|e| problems.push(e)).ok())
        .collect();
    if spec.query.iter().any(|(name, _)| name.is_empty()) {
        problems.push("a `query` condition has an empty parameter name".to_owned());
    }
    let headers = spec
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().into()))
        .collect();
    let query = spec
        .query
        .iter()
        .map(|(name, value)| (name.as_str().into(), value.as_str().into()))
        .collect();
    match pattern {
        Some(pattern) if problems.is_empty() => Ok((
            pattern,
            Conditions {
                methods,
                hosts,
                headers,
                query,
            },
        )),
        _ => Err(problems),
    }
}

/// Conflicts among routes of one path shape, each reported on the later route.
fn conflicts<T>(routes: &[Route<T>], slot: &[RouteId]) -> Vec<BuildError> {
    let mut errors = Vec::new();
    for (i, &a) in slot.iter().enumerate() {
        for &b in &slot[i + 1..] {
            let (first, second) = (&routes[a.min(b)], &routes[a.max(b)]);
            if first.conditions.any() == second.conditions.any()
                && first.conditions.overlaps(&second.conditions)
            {
                errors.push(BuildError {
                    route: a.max(b),
                    other: Some(a.min(b)),
                    message: format!(
                        "same path `{}` as another route (`{}`) with overlapping conditions, so neither is more \
                         specific: give one of them a different method, host, header or query condition",
                        second.pattern.as_str(),
                        first.pattern.as_str()
                    ),
                });
            }
        }
    }
    errors
}

/// Byte ranges of the segments of a path (`/a/b/` → `a`, `b`, ``).
fn segment_ranges(path: &str) -> SmallVec<[Range<usize>; 16]> {
    let mut ranges = SmallVec::new();
    let mut start = usize::from(path.starts_with('/'));
    while let Some(at) = scan::find2(&path.as_bytes()[start..], b'/', b'/') {
        ranges.push(start..start + at);
        start += at + 1;
    }
    ranges.push(start..path.len());
    ranges
}

/// The captures of a matched route.
fn captures<'r>(pattern: &'r Pattern, path: &str, segments: &[Range<usize>]) -> Captures<'r> {
    let spans = match pattern.kind() {
        PatternKind::Segments(parts) => parts
            .iter()
            .enumerate()
            .filter_map(|(i, part)| match part {
                Segment::Param(_) => Some(segments.get(i).cloned()),
                Segment::Rest(Some(_)) => Some(Some(
                    segments.get(i).map_or(path.len(), |s| s.start)..path.len(),
                )),
                Segment::Literal(_) | Segment::Star | Segment::Rest(None) => None,
            })
            .collect(),
        PatternKind::Regex(regex) => match regex.captures(path) {
            Some(groups) => pattern
                .capture_names()
                .iter()
                .map(|name| groups.name(name).map(|m| m.range()))
                .collect(),
            None => pattern.capture_names().iter().map(|_| None).collect(),
        },
    };
    Captures::new(pattern.capture_names(), spans)
}

#[cfg(test)]
mod build_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
