#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use super::*;

pub(super) fn spec(path: &str) -> RouteSpec {
    let path = match path.strip_prefix("re:") {
        Some(regex) => PathSpec::Regex(regex.to_owned()),
        None => PathSpec::Pattern(path.to_owned()),
    };
    RouteSpec {
        path,
        methods: None,
        hosts: Vec::new(),
        headers: Vec::new(),
        query: Vec::new(),
    }
}

pub(super) fn methods(mut spec: RouteSpec, methods: &[Method]) -> RouteSpec {
    spec.methods = Some(methods.to_vec());
    spec
}

pub(super) fn hosts(mut spec: RouteSpec, hosts: &[&str]) -> RouteSpec {
    spec.hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
    spec
}

fn router(specs: Vec<RouteSpec>) -> Router<usize> {
    Router::build(specs.into_iter().enumerate().map(|(i, s)| (s, i)).collect()).unwrap()
}

struct Req<'a> {
    method: Method,
    host: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    headers: HeaderMap,
}

fn get(path: &str) -> Req<'_> {
    Req {
        method: Method::GET,
        host: None,
        path,
        query: None,
        headers: HeaderMap::new(),
    }
}

impl<'a> Req<'a> {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            host: self.host,
            path: self.path,
            query: self.query,
            headers: &self.headers,
        }
    }
}

/// The index of the route found, or `None` for 404; panics on 405.
fn find(router: &Router<usize>, req: &Req<'_>) -> Option<usize> {
    match router.find(&req.view()) {
        RouteMatch::Found { route, .. } => Some(*route),
        RouteMatch::NotFound => None,
        RouteMatch::MethodNotAllowed { allow } => panic!("405 {allow:?} for {}", req.path),
    }
}

fn captured(router: &Router<usize>, path: &str) -> Vec<(String, String)> {
    match router.find(&get(path).view()) {
        RouteMatch::Found { captures, .. } => captures
            .iter(path)
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        _ => panic!("no route for {path}"),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn every_pattern_kind_matches() {
    let r = router(vec![
        spec("/api/users"),
        spec("/api/users/{id}"),
        spec("/api/items/*"),
        spec("/api/static/**"),
        spec("/files/{rest:**}"),
        spec("re:^/v(?P<version>[0-9]+)/items$"),
    ]);
    assert_eq!(find(&r, &get("/api/users")), Some(0));
    assert_eq!(find(&r, &get("/api/users/")), None);
    assert_eq!(find(&r, &get("/api/users/5")), Some(1));
    assert_eq!(find(&r, &get("/api/users/5/x")), None);
    assert_eq!(find(&r, &get("/api/items/5")), Some(2));
    assert_eq!(find(&r, &get("/api/items/")), None);
    for path in ["/api/static", "/api/static/", "/api/static/x/y"] {
        assert_eq!(find(&r, &get(path)), Some(3), "{path}");
    }
    assert_eq!(find(&r, &get("/api/staticx")), None);
    assert_eq!(find(&r, &get("/files/a/b.txt")), Some(4));
    assert_eq!(find(&r, &get("/v12/items")), Some(5));
    assert_eq!(find(&r, &get("/v12/items/x")), None);
    assert_eq!(find(&r, &get("/")), None);
    assert_eq!(r.len(), 6);
}

#[test]
fn captures_are_returned() {
    let r = router(vec![
        spec("/users/{id}/posts/{post}"),
        spec("/files/{rest:**}"),
        spec("re:^/v(?P<version>[0-9]+)(/(?P<tail>x))?$"),
    ]);
    assert_eq!(
        captured(&r, "/users/5/posts/9"),
        pairs(&[("id", "5"), ("post", "9")])
    );
    assert_eq!(
        captured(&r, "/files/a/b.txt"),
        pairs(&[("rest", "a/b.txt")])
    );
    assert_eq!(captured(&r, "/files"), pairs(&[("rest", "")]));
    assert_eq!(captured(&r, "/files/"), pairs(&[("rest", "")]));
    assert_eq!(captured(&r, "/v3"), pairs(&[("version", "3")]));
    assert_eq!(
        captured(&r, "/v3/x"),
        pairs(&[("version", "3"), ("tail", "x")])
    );
    let req = get("/users/5/posts/9");
    let RouteMatch::Found { captures, .. } = r.find(&req.view()) else {
        panic!()
    };
    assert_eq!(captures.get(req.path, "post"), Some("9"));
    assert_eq!(captures.get(req.path, "nope"), None);
    assert_eq!(captures.len(), 2);
}

#[test]
fn specificity_order_of_the_spec() {
    // exact before patterns; longer literal prefix; {param} > * > **; regexes last.
    let r = router(vec![
        spec("re:^/api/.*$"),
        spec("/api/**"),
        spec("/api/*/b"),
        spec("/api/{x}/b"),
        spec("/api/a/**"),
        spec("/api/a/b"),
        spec("/api/{x}"),
        spec("/api/*"),
    ]);
    assert_eq!(find(&r, &get("/api/a/b")), Some(5));
    assert_eq!(find(&r, &get("/api/a/c")), Some(4));
    assert_eq!(find(&r, &get("/api/z/b")), Some(3));
    assert_eq!(find(&r, &get("/api/z")), Some(6));
    assert_eq!(find(&r, &get("/api/z/c")), Some(1));
    assert_eq!(find(&r, &get("/api")), Some(1));
    let only_regex = router(vec![spec("re:^/api/.*$"), spec("/other/**")]);
    assert_eq!(find(&only_regex, &get("/api/z")), Some(0));
}

#[test]
fn exact_route_beats_rest_of_same_prefix() {
    let r = router(vec![spec("/a/**"), spec("/a"), spec("/a/{x}")]);
    assert_eq!(find(&r, &get("/a")), Some(1));
    assert_eq!(find(&r, &get("/a/")), Some(0));
    assert_eq!(find(&r, &get("/a/b")), Some(2));
    assert_eq!(find(&r, &get("/a/b/c")), Some(0));
}

#[test]
fn conditional_route_beats_unconditional_then_file_order() {
    let r = router(vec![spec("/x"), methods(spec("/x"), &[Method::GET])]);
    assert_eq!(find(&r, &get("/x")), Some(1));
    let mut post = get("/x");
    post.method = Method::POST;
    assert_eq!(find(&r, &post), Some(0));
    // Same specificity, different shapes: file order decides.
    let r = router(vec![spec("re:^/y"), spec("re:^/y/.*$")]);
    assert_eq!(find(&r, &get("/y/z")), Some(0));
    let r = router(vec![spec("re:^/y/.*$"), spec("re:^/y")]);
    assert_eq!(find(&r, &get("/y/z")), Some(0));
}

#[test]
fn falls_back_when_conditions_of_the_most_specific_route_fail() {
    let r = router(vec![
        hosts(spec("/api/users/{id}"), &["a.com"]),
        spec("/api/users/**"),
    ]);
    let mut req = get("/api/users/5");
    req.host = Some("b.com");
    assert_eq!(find(&r, &req), Some(1));
    req.host = Some("A.COM:8443");
    assert_eq!(find(&r, &req), Some(0));
}

#[test]
fn host_conditions() {
    let r = router(vec![
        hosts(spec("/"), &["api.example.com"]),
        hosts(spec("/**"), &["*.example.com"]),
    ]);
    let at = |host: Option<&'static str>| {
        let mut req = get("/");
        req.host = host;
        find(&r, &req)
    };
    assert_eq!(at(Some("api.example.com")), Some(0));
    assert_eq!(at(Some("API.Example.com:80")), Some(0));
    assert_eq!(at(Some("a.b.example.com")), Some(1));
    assert_eq!(at(Some("example.com")), None);
    assert_eq!(at(None), None);
}

#[test]
fn header_and_query_conditions() {
    let version = HeaderName::from_static("accept-version");
    let mut v1 = spec("/api");
    v1.headers = vec![(version.clone(), "v1".to_owned())];
    let mut v2 = spec("/api");
    v2.headers = vec![(version, "v2".to_owned())];
    v2.query = vec![("version".to_owned(), "1 2".to_owned())];
    let r = router(vec![v1, v2, spec("/api")]);
    let mut req = get("/api");
    assert_eq!(find(&r, &req), Some(2));
    req.headers
        .insert("Accept-Version", HeaderValue::from_static("v1"));
    assert_eq!(find(&r, &req), Some(0));
    req.headers
        .insert("Accept-Version", HeaderValue::from_static("V1"));
    assert_eq!(find(&r, &req), Some(2));
    req.headers
        .insert("Accept-Version", HeaderValue::from_static("v2"));
    assert_eq!(find(&r, &req), Some(2));
    req.query = Some("a=b&version=1%202");
    assert_eq!(find(&r, &req), Some(1));
    req.query = Some("version=1+2");
    assert_eq!(find(&r, &req), Some(1));
}

#[test]
fn method_not_allowed_lists_the_union_sorted() {
    let r = router(vec![
        methods(spec("/x"), &[Method::POST]),
        methods(spec("/x/**"), &[Method::GET]),
        methods(hosts(spec("/x"), &["other.com"]), &[Method::DELETE]),
    ]);
    let mut req = get("/x");
    req.method = Method::PUT;
    match r.find(&req.view()) {
        RouteMatch::MethodNotAllowed { allow } => assert_eq!(allow, "GET, HEAD, POST"),
        other => panic!("{other:?}"),
    }
    req.method = Method::HEAD;
    assert_eq!(find(&r, &req), Some(1));
    req.path = "/y";
    assert_eq!(find(&r, &req), None);
}

#[test]
fn method_mismatch_with_a_less_specific_full_match_is_found() {
    let r = router(vec![
        methods(spec("/x/{id}"), &[Method::POST]),
        spec("/x/**"),
    ]);
    assert_eq!(find(&r, &get("/x/1")), Some(1));
}

#[test]
fn nodes_with_many_literal_children_find_each() {
    let specs = (0..100).map(|i| spec(&format!("/s{i}/x"))).collect();
    let r = router(specs);
    for i in [0, 31, 32, 99] {
        let path = format!("/s{i}/x");
        assert_eq!(find(&r, &get(&path)), Some(i));
    }
    assert_eq!(find(&r, &get("/s100/x")), None);
}

#[test]
fn empty_router_finds_nothing() {
    let r: Router<usize> = router(Vec::new());
    assert!(r.is_empty());
    assert_eq!(find(&r, &get("/")), None);
}

#[test]
fn segment_ranges_split_on_slashes() {
    let ranges = |p: &str| {
        segment_ranges(p)
            .iter()
            .map(|r| p[r.clone()].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ranges("/"), [""]);
    assert_eq!(ranges("/a/b"), ["a", "b"]);
    assert_eq!(ranges("/a/"), ["a", ""]);
}

#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn timing_of_ten_thousand_routes() {
    use std::time::Instant;
    let mut specs = Vec::new();
    for i in 0..5000 {
        specs.push(spec(&format!("/svc{i}/items/{{id}}")));
        let mut s = spec(&format!("/svc{i}/static/**"));
        if i % 25 == 0 {
            s = methods(
                hosts(s, &["api.example.com", "*.internal.example.com"]),
                &[Method::GET],
            );
        }
        specs.push(s);
    }
    let start = Instant::now();
    let r = router(specs);
    println!("build of {} routes: {:?}", r.len(), start.elapsed());
    let small = router(vec![
        spec("/svc1/items/{id}"),
        spec("/svc1/static/**"),
        spec("/health"),
    ]);
    let large = [
        "/svc4321/items/77",
        "/svc17/static/css/site.css",
        "/svc4999/static",
        "/nope/x",
    ];
    let cases = [
        ("10k", &r, &large[..]),
        ("3", &small, &["/svc1/items/77", "/health"][..]),
    ];
    let rounds = 200_000;
    for (name, r, paths) in cases {
        for path in paths {
            let req = get(path);
            let start = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(r.find(std::hint::black_box(&req.view())));
            }
            println!(
                "find {path} among {name} routes: {:?}",
                start.elapsed() / rounds
            );
        }
    }
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(normalize_path(std::hint::black_box("/svc4321/items/77")).is_ok());
    }
    println!(
        "normalize_path, already normalized: {:?}",
        start.elapsed() / rounds
    );
}
