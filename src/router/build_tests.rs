//! Build errors: invalid routes and conflicts.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use http::{HeaderName, Method};

use super::tests::{hosts, methods, spec};
use super::{BuildError, RouteSpec, Router};

fn build_errors(specs: Vec<RouteSpec>) -> Vec<BuildError> {
    Router::build(specs.into_iter().map(|s| (s, ())).collect()).unwrap_err()
}

#[test]
fn conflicts_name_both_routes() {
    let errors = build_errors(vec![spec("/a"), spec("/x"), spec("/x")]);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].route, errors[0].other), (2, Some(1)));
    assert!(
        errors[0].message.contains("same path `/x`"),
        "{}",
        errors[0].message
    );
    let cases: Vec<Vec<RouteSpec>> = vec![
        vec![
            methods(spec("/x"), &[Method::GET]),
            methods(spec("/x"), &[Method::GET, Method::POST]),
        ],
        vec![spec("/a/{id}"), spec("/a/{x}")],
        vec![spec("/a/**"), spec("/a/{rest:**}")],
        vec![spec("re:^/a$"), spec("re:^/a$")],
        vec![hosts(spec("/x"), &["a.com"]), hosts(spec("/x"), &["*.com"])],
        vec![
            hosts(spec("/"), &["api.example.com"]),
            hosts(spec("/"), &["*.example.com"]),
        ],
        vec![
            hosts(spec("/x"), &["a.com"]),
            methods(spec("/x"), &[Method::GET]),
        ],
        vec![
            methods(spec("/x"), &[Method::GET]),
            methods(spec("/x"), &[Method::HEAD]),
        ],
    ];
    for case in cases {
        let errors = build_errors(case);
        assert_eq!((errors[0].route, errors[0].other), (1, Some(0)));
    }
}

#[test]
fn non_conflicts() {
    let mut h1 = spec("/x");
    h1.headers = vec![(HeaderName::from_static("v"), "1".to_owned())];
    let mut h2 = spec("/x");
    h2.headers = vec![(HeaderName::from_static("v"), "2".to_owned())];
    let cases: Vec<Vec<RouteSpec>> = vec![
        vec![
            methods(spec("/x"), &[Method::GET]),
            methods(spec("/x"), &[Method::POST]),
        ],
        vec![spec("/x"), methods(spec("/x"), &[Method::GET])],
        vec![spec("/a/{id}"), spec("/a/*"), spec("/a/**")],
        vec![hosts(spec("/x"), &["a.com"]), hosts(spec("/x"), &["b.com"])],
        vec![
            hosts(spec("/x"), &["a.com"]),
            hosts(spec("/x"), &["*.a.com"]),
        ],
        vec![h1, h2],
        vec![spec("/x"), spec("/x/")],
        vec![spec("re:^/a$"), spec("re:^/a/?$")],
    ];
    for case in cases {
        let n = case.len();
        assert_eq!(
            Router::build(case.into_iter().map(|s| (s, ())).collect())
                .map(|r| r.len())
                .unwrap(),
            n
        );
    }
}

#[test]
fn invalid_routes_are_reported_with_every_problem() {
    let mut bad = hosts(spec("/a/{id"), &["a:80"]);
    bad.methods = Some(Vec::new());
    let errors = build_errors(vec![spec("/ok"), bad, spec("re:(")]);
    let routes: Vec<usize> = errors.iter().map(|e| e.route).collect();
    assert_eq!(routes, [1, 1, 1, 2]);
    assert!(errors[0].message.contains("unclosed"));
    assert!(errors[1].message.contains("`methods` is empty"));
    assert!(errors[2].message.contains("invalid host `a:80`"));
}
