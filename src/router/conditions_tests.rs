#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use super::*;

#[test]
fn get_implies_head_and_allow_is_sorted() {
    let set = MethodSet::accepted(&[Method::POST, Method::GET]);
    assert!(set.contains(&Method::HEAD));
    assert_eq!(set.to_allow_value(), "GET, HEAD, POST");
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let mut union = MethodSet::accepted(&[Method::DELETE]);
    union.union(&MethodSet::accepted(&[purge.clone(), Method::CONNECT]));
    assert_eq!(union.to_allow_value(), "CONNECT, DELETE, PURGE");
    assert!(!MethodSet::accepted(&[Method::POST]).contains(&Method::HEAD));
    assert!(
        MethodSet::accepted(std::slice::from_ref(&purge))
            .intersects(&MethodSet::accepted(&[purge]))
    );
}

#[test]
fn hosts_exact_and_wildcard() {
    let exact = HostPattern::parse("API.example.com").unwrap();
    assert!(exact.matches("api.EXAMPLE.com"));
    assert!(!exact.matches("x.api.example.com"));
    let wildcard = HostPattern::parse("*.example.com").unwrap();
    assert!(wildcard.matches("a.example.com"));
    assert!(wildcard.matches("a.b.Example.com"));
    assert!(!wildcard.matches("example.com"));
    assert!(!wildcard.matches("badexample.com"));
    for bad in ["", "*", "*.", "a:80", "a.*.com", "a..b"] {
        assert!(HostPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn host_overlap() {
    let p = |h: &str| HostPattern::parse(h).unwrap();
    assert!(p("a.com").overlaps(&p("A.com")));
    assert!(!p("a.com").overlaps(&p("b.com")));
    assert!(p("x.a.com").overlaps(&p("*.a.com")));
    assert!(!p("a.com").overlaps(&p("*.a.com")));
    assert!(p("*.b.a.com").overlaps(&p("*.a.com")));
    assert!(!p("*.b.com").overlaps(&p("*.a.com")));
}

#[test]
fn ports_are_stripped() {
    assert_eq!(strip_port("a.com:8080"), "a.com");
    assert_eq!(strip_port("a.com."), "a.com");
    assert_eq!(strip_port("[::1]:443"), "[::1]");
    assert_eq!(strip_port("a.com"), "a.com");
}

#[test]
fn query_values_are_decoded() {
    assert!(query_has(Some("a=1&version=1"), "version", "1"));
    assert!(query_has(Some("v=a%20b"), "v", "a b"));
    assert!(query_has(Some("v=a+b"), "v", "a b"));
    assert!(query_has(Some("%76=%31"), "v", "1"));
    assert!(query_has(Some("flag"), "flag", ""));
    assert!(!query_has(Some("v=12"), "v", "1"));
    assert!(!query_has(Some("v=1"), "w", "1"));
    assert!(!query_has(None, "v", "1"));
    assert!(query_has(Some("v=%zz"), "v", "%zz"));
}
