//! `find` agrees with a brute-force reading of SPEC §2.4 on random small route sets.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::cmp::Reverse;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
struct Model {
    /// Pattern segments as written, or a regex.
    path: Result<Vec<String>, String>,
    methods: Option<Vec<Method>>,
    hosts: Vec<&'static str>,
    header: Option<&'static str>,
}

impl Model {
    fn spec(&self) -> RouteSpec {
        let path = match &self.path {
            Ok(segments) => PathSpec::Pattern(format!("/{}", segments.join("/"))),
            Err(regex) => PathSpec::Regex(regex.clone()),
        };
        RouteSpec {
            path,
            methods: self.methods.clone(),
            hosts: self.hosts.iter().map(|h| (*h).to_owned()).collect(),
            headers: self
                .header
                .map(|v| (HeaderName::from_static("x-v"), v.to_owned()))
                .into_iter()
                .collect(),
            query: Vec::new(),
        }
    }

    fn has_conditions(&self) -> bool {
        self.methods.is_some() || !self.hosts.is_empty() || self.header.is_some()
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            Ok(pattern) => segments_match(pattern, &path[1..].split('/').collect::<Vec<_>>()),
            Err(regex) => regex::Regex::new(regex).unwrap().is_match(path),
        }
    }

    fn others_match(&self, host: Option<&str>, header: Option<&str>) -> bool {
        let host_ok = self.hosts.is_empty()
            || host.is_some_and(|h| {
                self.hosts.iter().any(|p| match p.strip_prefix('*') {
                    Some(suffix) => h.len() > suffix.len() && h.ends_with(suffix),
                    None => h == *p,
                })
            });
        host_ok && self.header.is_none_or(|v| header == Some(v))
    }

    fn method_matches(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| {
            m.contains(method) || (*method == Method::HEAD && m.contains(&Method::GET))
        })
    }

    /// Greater is more specific: patterns before regexes, then segment by segment
    /// literal > {param} > * > end of pattern > **, then conditional.
    fn rank(&self) -> (bool, Vec<u8>, bool) {
        let ranks = match &self.path {
            Ok(segments) => {
                let mut ranks: Vec<u8> = segments
                    .iter()
                    .map(|s| match s.as_str() {
                        "*" => 2,
                        s if s.ends_with("**}") || s == "**" => 0,
                        s if s.starts_with('{') => 3,
                        _ => 4,
                    })
                    .collect();
                if ranks.last() != Some(&0) {
                    ranks.push(1);
                }
                ranks
            }
            Err(_) => Vec::new(),
        };
        (self.path.is_ok(), ranks, self.has_conditions())
    }
}

fn segments_match(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, None) => true,
        (Some((p, _)), _) if p == "**" || p.ends_with(":**}") => true,
        (Some((p, rest)), Some((s, path_rest))) => {
            let one = if p == "*" || p.starts_with('{') {
                !s.is_empty()
            } else {
                p == s
            };
            one && segments_match(rest, path_rest)
        }
        _ => false,
    }
}

fn model() -> impl Strategy<Value = Model> {
    let segment = prop::sample::select(vec!["a", "b", "{p}", "*"]);
    let tail = prop::sample::select(vec!["", "", "**", "{r:**}"]);
    let pattern = (prop::collection::vec(segment, 1..=3), tail).prop_map(|(segments, tail)| {
        let mut out: Vec<String> = segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if *s == "{p}" {
                    format!("{{p{i}}}")
                } else {
                    (*s).to_owned()
                }
            })
            .collect();
        if !tail.is_empty() {
            out.push(tail.to_owned());
        }
        Ok(out)
    });
    let regex =
        prop::sample::select(vec!["^/a", "^/b/.*$", "^/[ab]$"]).prop_map(|r| Err(r.to_owned()));
    let path = prop_oneof![4 => pattern, 1 => regex];
    let methods = prop::sample::select(vec![
        None,
        Some(vec![Method::GET]),
        Some(vec![Method::POST]),
        Some(vec![Method::GET, Method::POST]),
    ]);
    let hosts = prop::sample::select(vec![vec![], vec!["a.com"], vec!["*.com"]]);
    let header = prop::sample::select(vec![None, Some("1"), Some("2")]);
    (path, methods, hosts, header).prop_map(|(path, methods, hosts, header)| Model {
        path,
        methods,
        hosts,
        header,
    })
}

fn request() -> impl Strategy<Value = (String, Method, Option<&'static str>, Option<&'static str>)>
{
    let path = prop::collection::vec(prop::sample::select(vec!["a", "b", "c", ""]), 1..=4)
        .prop_map(|s| format!("/{}", s.join("/")));
    let method = prop::sample::select(vec![Method::GET, Method::HEAD, Method::POST, Method::PUT]);
    let host = prop::sample::select(vec![None, Some("a.com"), Some("b.com")]);
    let header = prop::sample::select(vec![None, Some("1"), Some("2")]);
    (path, method, host, header)
}

/// Drops routes until the set builds (random sets often conflict).
fn buildable(mut models: Vec<Model>) -> (Vec<Model>, Router<usize>) {
    loop {
        let input = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.spec(), i))
            .collect();
        match Router::build(input) {
            Ok(router) => return (models, router),
            Err(errors) => {
                assert!(errors.iter().all(|e| e.other.is_some()), "{errors:?}");
                models.remove(errors[0].route);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn find_agrees_with_brute_force(
        models in prop::collection::vec(model(), 1..8),
        requests in prop::collection::vec(request(), 1..8),
    ) {
        let (models, router) = buildable(models);
        for (path, method, host, header) in requests {
            let mut headers = HeaderMap::new();
            if let Some(v) = header {
                headers.insert("x-v", HeaderValue::from_static(v));
            }
            let view = RequestView { method: &method, host, path: &path, query: None, headers: &headers };
            let candidates: Vec<usize> = (0..models.len())
                .filter(|&i| models[i].path_matches(&path) && models[i].others_match(host, header))
                .collect();
            let best = candidates
                .iter()
                .copied()
                .filter(|&i| models[i].method_matches(&method))
                .min_by_key(|&i| (Reverse(models[i].rank()), i));
            let expected_allow = {
                let methods: Vec<Method> = candidates
                    .iter()
                    .flat_map(|&i| models[i].methods.clone().unwrap_or_default())
                    .collect();
                MethodSet::accepted(&methods).to_allow_value()
            };
            match router.find(&view) {
                RouteMatch::Found { route, .. } => prop_assert_eq!(Some(*route), best, "{} {}", method, path),
                RouteMatch::MethodNotAllowed { allow } => {
                    prop_assert_eq!(best, None);
                    prop_assert_eq!(allow.to_str().unwrap(), expected_allow);
                }
                RouteMatch::NotFound => {
                    prop_assert_eq!(best, None);
                    prop_assert!(candidates.is_empty(), "{:?}", candidates);
                }
            }
        }
    }
}
