//! `cache` (SPEC §3.8) against real upstreams: hits and misses with `X-Cache` and `Age`, TTL,
//! the key (query, headers, consumer), what is never stored, `Cache-Control` both ways,
//! invalidation by writes, collapsed misses, HEAD from GET entries, purge, the memory bound
//! and reloads.

mod common;

use std::time::Duration;

use common::{Upstream, base, client, gateway, upstream};
use gatehouse::app::Gatehouse;
use gatehouse::pipeline::cache::CachePurge;
use serde_json::Value;

/// A gateway with one catch-all route named `cached` to `upstream`, with `cache` settings
/// (a YAML flow mapping) and optional extra route keys.
async fn cached(upstream: &Upstream, settings: &str) -> Gatehouse {
    gateway(&config(upstream, settings)).await
}

fn config(upstream: &Upstream, settings: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nobservability: {{ access_log: off }}\nservices:\n  echo: {{ url: \"{}\" }}\nroutes:\n  - {{ name: cached, path: /**, service: echo, plugins: {{ cache: {settings} }} }}\n",
        upstream.url()
    )
}

async fn send(gw: &Gatehouse, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client().request(method, format!("{}{path}", base(gw)));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("response");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("text").to_owned())
    };
    let x_cache = header("x-cache");
    let age = header("age");
    let content_length = header("content-length");
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    Reply {
        status,
        x_cache,
        age,
        content_length,
        headers,
        body,
    }
}

async fn get(gw: &Gatehouse, path: &str) -> Reply {
    send(gw, "GET", path, &[]).await
}

#[derive(Debug)]
struct Reply {
    status: u16,
    x_cache: Option<String>,
    age: Option<String>,
    content_length: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn cache(&self) -> &str {
        self.x_cache.as_deref().unwrap_or("<none>")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

#[tokio::test]
async fn a_miss_then_a_hit_with_age() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ ttl: 60s }").await;
    let first = get(&gw, "/items/1").await;
    assert_eq!((first.status, first.cache()), (200, "MISS"));
    assert_eq!(first.age, None, "no Age on a miss");
    let second = get(&gw, "/items/1").await;
    assert_eq!((second.status, second.cache()), (200, "HIT"));
    assert_eq!(second.age.as_deref(), Some("0"));
    assert_eq!(second.body, first.body, "the stored body, byte for byte");
    assert_eq!(up.hits(), 1, "a hit never reaches the upstream");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = get(&gw, "/items/1").await;
    assert_eq!(third.cache(), "HIT");
    assert_eq!(
        third.age.as_deref(),
        Some("1"),
        "Age counts seconds since stored"
    );
    // Another path is another entry.
    assert_eq!(get(&gw, "/items/2").await.cache(), "MISS");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn entries_expire_after_the_ttl() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ ttl: 1s }").await;
    assert_eq!(get(&gw, "/t").await.cache(), "MISS");
    assert_eq!(get(&gw, "/t").await.cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(&gw, "/t").await.cache(), "MISS");
    assert_eq!(get(&gw, "/t").await.cache(), "HIT");
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn vary_query_all_none_and_a_list() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ vary_query: all }").await;
    assert_eq!(get(&gw, "/q?a=1&b=2").await.cache(), "MISS");
    assert_eq!(
        get(&gw, "/q?b=2&a=1").await.cache(),
        "HIT",
        "parameter order does not matter"
    );
    assert_eq!(get(&gw, "/q?a=2&b=2").await.cache(), "MISS");
    assert_eq!(get(&gw, "/q").await.cache(), "MISS");

    let gw = cached(&up, "{ vary_query: none }").await;
    assert_eq!(get(&gw, "/q?x=1").await.cache(), "MISS");
    assert_eq!(get(&gw, "/q?x=2").await.cache(), "HIT");
    assert_eq!(get(&gw, "/q").await.cache(), "HIT");

    let gw = cached(&up, "{ vary_query: [page] }").await;
    assert_eq!(get(&gw, "/q?page=1&utm=a").await.cache(), "MISS");
    assert_eq!(get(&gw, "/q?utm=b&page=1").await.cache(), "HIT");
    assert_eq!(get(&gw, "/q?page=2&utm=a").await.cache(), "MISS");
}

#[tokio::test]
async fn vary_headers_are_in_the_key() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ vary_headers: [Accept-Language] }").await;
    let fr = [("accept-language", "fr")];
    let en = [("accept-language", "en")];
    assert_eq!(send(&gw, "GET", "/v", &fr).await.cache(), "MISS");
    assert_eq!(send(&gw, "GET", "/v", &en).await.cache(), "MISS");
    assert_eq!(send(&gw, "GET", "/v", &[]).await.cache(), "MISS");
    let hit = send(&gw, "GET", "/v", &fr).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.json()["headers"]["accept-language"], "fr");
    // A header not listed is not in the key.
    let other = send(
        &gw,
        "GET",
        "/v",
        &[("accept-language", "en"), ("x-other", "1")],
    )
    .await;
    assert_eq!(other.cache(), "HIT");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn entries_per_consumer_on_authenticated_routes() {
    let up = upstream("a").await;
    for per_consumer in ["auto", "true"] {
        let gw = gateway(&format!(
            r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{}" }}
consumers:
  alice: {{ keys: [alice-key] }}
  bob: {{ keys: [bob-key] }}
routes:
  - path: /**
    service: echo
    plugins:
      auth: {{ api_key: {{}} }}
      cache: {{ per_consumer: {per_consumer} }}
"#,
            up.url()
        ))
        .await;
        let alice = [("x-api-key", "alice-key")];
        let bob = [("x-api-key", "bob-key")];
        assert_eq!(send(&gw, "GET", "/me", &alice).await.cache(), "MISS");
        let bobs = send(&gw, "GET", "/me", &bob).await;
        assert_eq!(bobs.cache(), "MISS", "bob never gets alice's entry");
        assert_eq!(bobs.json()["headers"]["x-consumer-id"], "bob");
        let alices = send(&gw, "GET", "/me", &alice).await;
        assert_eq!(alices.cache(), "HIT");
        assert_eq!(alices.json()["headers"]["x-consumer-id"], "alice");
        assert_eq!(send(&gw, "GET", "/me", &[]).await.status, 401);
    }

    // `per_consumer: false` shares entries between consumers.
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{}" }}
consumers:
  alice: {{ keys: [alice-key] }}
  bob: {{ keys: [bob-key] }}
routes:
  - path: /**
    service: echo
    plugins:
      auth: {{ api_key: {{}} }}
      cache: {{ per_consumer: false }}
"#,
        up.url()
    ))
    .await;
    assert_eq!(
        send(&gw, "GET", "/shared", &[("x-api-key", "alice-key")])
            .await
            .cache(),
        "MISS"
    );
    assert_eq!(
        send(&gw, "GET", "/shared", &[("x-api-key", "bob-key")])
            .await
            .cache(),
        "HIT"
    );
}

#[tokio::test]
async fn only_listed_statuses_are_stored_and_never_5xx() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ statuses: [200, 404, 500] }").await;
    for _ in 0..2 {
        let created = get(&gw, "/status/201").await;
        assert_eq!((created.status, created.cache()), (201, "BYPASS"));
        let error = get(&gw, "/status/500").await;
        assert_eq!((error.status, error.cache()), (500, "BYPASS"));
    }
    assert_eq!(get(&gw, "/status/404").await.cache(), "MISS");
    let hit = get(&gw, "/status/404").await;
    assert_eq!((hit.status, hit.cache()), (404, "HIT"));
    assert_eq!(up.hits(), 5);
}

#[tokio::test]
async fn bodies_over_max_body_stream_through_unstored() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ max_body: 2KiB }").await;
    for _ in 0..2 {
        // Chunked, 4 KiB: found too large while reading; the client gets all of it.
        let big = get(&gw, "/stream/4").await;
        assert_eq!((big.status, big.cache()), (200, "BYPASS"));
        assert_eq!(big.body.len(), 4096);
        // Declared too large by Content-Length.
        let declared = send(&gw, "GET", "/declared", &[("x-reply-size", "3000")]).await;
        assert_eq!(declared.cache(), "BYPASS");
        assert_eq!(declared.body.len(), 3000);
    }
    assert_eq!(up.hits(), 4);
    // Within the limit, chunked: stored, and served with its Content-Length.
    assert_eq!(get(&gw, "/stream/1").await.cache(), "MISS");
    let small = get(&gw, "/stream/1").await;
    assert_eq!(small.cache(), "HIT");
    assert_eq!(small.body.len(), 1024);
    assert_eq!(small.content_length.as_deref(), Some("1024"));
}

#[tokio::test]
async fn cookies_private_and_no_store_are_never_stored() {
    let up = upstream("a").await;
    for respect in ["true", "false"] {
        let gw = cached(&up, &format!("{{ respect_cache_control: {respect} }}")).await;
        let cases: [(&str, (&str, &str)); 3] = [
            ("/cookie", ("x-reply-header-set-cookie", "session=1")),
            (
                "/private",
                ("x-reply-header-cache-control", "private, max-age=60"),
            ),
            ("/no-store", ("x-reply-header-cache-control", "no-store")),
        ];
        for (path, header) in cases {
            let before = up.hits();
            for _ in 0..2 {
                assert_eq!(
                    send(&gw, "GET", path, &[header]).await.cache(),
                    "BYPASS",
                    "{path} with respect_cache_control: {respect}"
                );
            }
            assert_eq!(up.hits(), before + 2, "{path}: both reached the upstream");
        }
    }
}

#[tokio::test]
async fn request_cache_control_bypasses_the_lookup() {
    let up = upstream("a").await;
    let gw = cached(&up, "{}").await;
    let first = get(&gw, "/r").await;
    assert_eq!(first.cache(), "MISS");
    // no-cache: fetched fresh, and the fresh answer replaces the entry.
    let fresh = send(&gw, "GET", "/r", &[("cache-control", "no-cache")]).await;
    assert_eq!(fresh.cache(), "BYPASS");
    assert_eq!(up.hits(), 2);
    let hit = get(&gw, "/r").await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.body, fresh.body, "the refreshed answer was stored");
    assert_ne!(hit.body, first.body);
    // max-age=0 and Pragma: no-cache too.
    assert_eq!(
        send(&gw, "GET", "/r", &[("cache-control", "max-age=0")])
            .await
            .cache(),
        "BYPASS"
    );
    assert_eq!(
        send(&gw, "GET", "/r", &[("pragma", "no-cache")])
            .await
            .cache(),
        "BYPASS"
    );
    // no-store: fetched and not stored.
    let before = get(&gw, "/r").await;
    let unstored = send(&gw, "GET", "/r", &[("cache-control", "no-store")]).await;
    assert_eq!(unstored.cache(), "BYPASS");
    assert_eq!(get(&gw, "/r").await.body, before.body);
    assert_eq!(up.hits(), 5);

    // With respect_cache_control off, the client cannot skip the cache.
    let gw = cached(&up, "{ respect_cache_control: false }").await;
    assert_eq!(get(&gw, "/r").await.cache(), "MISS");
    assert_eq!(
        send(&gw, "GET", "/r", &[("cache-control", "no-cache")])
            .await
            .cache(),
        "HIT"
    );
}

/// Asks the test upstream for a fixed `Date` field.
const DATE: (&str, &str) = ("x-reply-header-date", "Mon, 07 Dec 2026 00:00:00 GMT");

#[tokio::test]
async fn a_refetch_refreshes_the_same_answer_and_replaces_a_changed_one() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ ttl: 60s }").await;
    // `x-reply-size` is not in the key: one entry, whose answer the requests choose. The
    // upstream's `Date` is fixed, or answers a second apart would differ by it.
    let refetch = |size: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let gw = &gw;
        async move {
            let mut headers = vec![("cache-control", "no-cache"), ("x-reply-size", size), DATE];
            headers.extend_from_slice(extra);
            let reply = send(gw, "GET", "/f", &headers).await;
            assert_eq!(reply.cache(), "BYPASS");
            assert_eq!(reply.body, vec![b'x'; size.parse().expect("size")]);
            let hit = get(gw, "/f").await;
            assert_eq!(hit.cache(), "HIT");
            hit
        }
    };
    assert_eq!(
        send(&gw, "GET", "/f", &[("x-reply-size", "10"), DATE])
            .await
            .cache(),
        "MISS"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&gw, "/f").await.age.as_deref(), Some("1"));

    // The same answer: its age starts again.
    let hit = refetch("10", &[]).await;
    assert_eq!(hit.age.as_deref(), Some("0"));
    assert_eq!(hit.body, vec![b'x'; 10]);

    // Longer, shorter (the stored body's first bytes), then new header lines: replaced.
    for size in ["20", "5"] {
        let hit = refetch(size, &[]).await;
        assert_eq!(hit.body.len().to_string(), size);
        assert_eq!(hit.content_length.as_deref(), Some(size));
    }
    let hit = refetch("5", &[("x-reply-header-x-version", "2")]).await;
    assert_eq!(hit.headers["x-version"], "2");
    assert_eq!(hit.body, vec![b'x'; 5]);
    let hit = refetch("5", &[]).await;
    assert!(
        hit.headers.get("x-version").is_none(),
        "the field went away"
    );

    // A body in several chunks, the same each time.
    let path = "/json/3000?chunked=1";
    let first = send(&gw, "GET", path, &[DATE]).await;
    assert_eq!(first.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = send(&gw, "GET", path, &[("cache-control", "no-cache"), DATE]).await;
    assert_eq!(fresh.body, first.body);
    let hit = get(&gw, path).await;
    assert_eq!((hit.cache(), hit.age.as_deref()), ("HIT", Some("0")));
    assert_eq!(hit.body, first.body);
    assert_eq!(hit.content_length, Some(first.body.len().to_string()));

    // A write invalidates the entry; a refetch after it makes it valid again.
    let same = [("x-reply-size", "5"), DATE];
    assert_eq!(send(&gw, "POST", "/f", &same).await.status, 200);
    let fresh = send(
        &gw,
        "GET",
        "/f",
        &[("cache-control", "no-cache"), same[0], DATE],
    )
    .await;
    assert_eq!(fresh.cache(), "BYPASS");
    assert_eq!(get(&gw, "/f").await.cache(), "HIT");
}

#[tokio::test]
async fn upstream_max_age_caps_the_ttl() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ ttl: 60s }").await;
    let short = [("x-reply-header-cache-control", "public, max-age=1")];
    assert_eq!(send(&gw, "GET", "/m", &short).await.cache(), "MISS");
    assert_eq!(send(&gw, "GET", "/m", &short).await.cache(), "HIT");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(send(&gw, "GET", "/m", &short).await.cache(), "MISS");
    // no-cache and max-age=0 from the upstream: not stored.
    for value in ["no-cache", "max-age=0"] {
        let header = [("x-reply-header-cache-control", value)];
        assert_eq!(send(&gw, "GET", "/n", &header).await.cache(), "BYPASS");
        assert_eq!(send(&gw, "GET", "/n", &header).await.cache(), "BYPASS");
    }
    // Ignored when respect_cache_control is off: the route's ttl applies.
    let gw = cached(&up, "{ ttl: 60s, respect_cache_control: false }").await;
    let header = [("x-reply-header-cache-control", "no-cache")];
    assert_eq!(send(&gw, "GET", "/n", &header).await.cache(), "MISS");
    assert_eq!(send(&gw, "GET", "/n", &header).await.cache(), "HIT");
}

#[tokio::test]
async fn a_successful_write_invalidates_every_variant_of_the_path() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ vary_headers: [Accept-Language] }").await;
    let fr = [("accept-language", "fr")];
    for _ in 0..2 {
        get(&gw, "/items").await;
        get(&gw, "/items?page=2").await;
        send(&gw, "GET", "/items", &fr).await;
        get(&gw, "/other").await;
    }
    assert_eq!(up.hits(), 4);
    let write = send(&gw, "POST", "/items", &[]).await;
    assert_eq!((write.status, write.cache()), (200, "BYPASS"));
    assert_eq!(get(&gw, "/items").await.cache(), "MISS");
    assert_eq!(get(&gw, "/items?page=2").await.cache(), "MISS");
    assert_eq!(send(&gw, "GET", "/items", &fr).await.cache(), "MISS");
    assert_eq!(get(&gw, "/other").await.cache(), "HIT", "other paths stay");
    assert_eq!(get(&gw, "/items").await.cache(), "HIT");

    for method in ["PUT", "PATCH", "DELETE"] {
        assert_eq!(get(&gw, "/items").await.cache(), "HIT");
        send(&gw, method, "/items", &[]).await;
        assert_eq!(get(&gw, "/items").await.cache(), "MISS", "{method}");
    }

    // A failed write leaves the entries.
    assert_eq!(get(&gw, "/status/404").await.cache(), "MISS");
    let failed = send(&gw, "POST", "/status/404", &[]).await;
    assert_eq!(failed.status, 404);
    assert_eq!(get(&gw, "/status/404").await.cache(), "HIT");
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_request() {
    let up = upstream("a").await;
    let gw = cached(&up, "{}").await;
    let url = format!("{}/slow/300", base(&gw));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let response = client().get(url).send().await.expect("response");
            let cache = response.headers()["x-cache"]
                .to_str()
                .expect("text")
                .to_owned();
            let status = response.status().as_u16();
            let body = response.bytes().await.expect("body");
            (status, cache, body)
        }));
    }
    let mut verdicts = Vec::new();
    let mut bodies = Vec::new();
    for task in tasks {
        let (status, cache, body) = task.await.expect("task");
        assert_eq!(status, 200);
        verdicts.push(cache);
        bodies.push(body);
    }
    assert_eq!(
        up.hits(),
        1,
        "one upstream request for 20 concurrent misses"
    );
    assert_eq!(verdicts.iter().filter(|v| *v == "MISS").count(), 1);
    assert_eq!(verdicts.iter().filter(|v| *v == "HIT").count(), 19);
    assert!(bodies.iter().all(|b| *b == bodies[0]));

    // When the first answer cannot be stored, the others fetch their own.
    let url = format!("{}/slow/200", base(&gw));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let response = client()
                .get(url)
                .header("x-reply-header-set-cookie", "a=b")
                .send()
                .await
                .expect("response");
            response.status().as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), 200);
    }
    assert_eq!(up.hits(), 1 + 5);
}

#[tokio::test]
async fn head_is_served_from_get_entries() {
    let up = upstream("a").await;
    let gw = cached(&up, "{}").await;
    let full = get(&gw, "/h").await;
    assert_eq!(full.cache(), "MISS");
    let head = send(&gw, "HEAD", "/h", &[]).await;
    assert_eq!((head.status, head.cache()), (200, "HIT"));
    assert!(head.body.is_empty());
    assert_eq!(
        head.content_length.as_deref(),
        Some(full.body.len().to_string().as_str()),
        "the GET answer's Content-Length"
    );
    assert_eq!(up.hits(), 1);

    // A HEAD miss fetches with GET and fills GET's entry.
    let head = send(&gw, "HEAD", "/h2", &[]).await;
    assert_eq!(head.cache(), "MISS");
    assert!(head.body.is_empty());
    let full = get(&gw, "/h2").await;
    assert_eq!(full.cache(), "HIT");
    assert_eq!(full.json()["method"], "GET");
    assert_eq!(
        head.content_length.as_deref(),
        Some(full.body.len().to_string().as_str())
    );
    assert_eq!(up.hits(), 2);

    // Methods not listed are not cached.
    let gw = cached(&up, "{ methods: [GET] }").await;
    assert_eq!(send(&gw, "HEAD", "/h3", &[]).await.cache(), "BYPASS");
    assert_eq!(send(&gw, "OPTIONS", "/h3", &[]).await.cache(), "BYPASS");
}

#[tokio::test]
async fn purge_all_by_route_and_by_path() {
    let up = upstream("a").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{}" }}
routes:
  - {{ name: one, path: /one/**, service: echo, plugins: {{ cache: {{}} }} }}
  - {{ name: two, path: /two/**, service: echo, plugins: {{ cache: {{}} }} }}
"#,
        up.url()
    ))
    .await;
    let state = gw.gateway().state().clone();
    for path in ["/one/a", "/one/a?v=2", "/one/b", "/two/a", "/two/b"] {
        assert_eq!(get(&gw, path).await.cache(), "MISS");
    }
    assert_eq!(
        state.cache_purge(CachePurge::Path("/one/a".into())).await,
        2
    );
    assert_eq!(get(&gw, "/one/a").await.cache(), "MISS");
    assert_eq!(get(&gw, "/one/b").await.cache(), "HIT");
    assert_eq!(state.cache_purge(CachePurge::Route("two".into())).await, 2);
    assert_eq!(get(&gw, "/two/a").await.cache(), "MISS");
    assert_eq!(state.cache_purge(CachePurge::Route("none".into())).await, 0);
    // one: /one/a, /one/b; two: /two/a.
    assert_eq!(state.cache_purge(CachePurge::All).await, 3);
    assert_eq!(get(&gw, "/one/b").await.cache(), "MISS");
}

#[tokio::test]
async fn max_memory_bounds_the_entries() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ max_memory: 16KiB }").await;
    let state = gw.gateway().state().clone();
    let fetch = |i: usize| {
        let gw = &gw;
        async move {
            send(gw, "GET", &format!("/mem/{i}"), &[("x-reply-size", "1000")])
                .await
                .cache()
                .to_owned()
        }
    };
    // /mem/0 is used again at once: it is kept over entries stored once and never hit.
    assert_eq!(fetch(0).await, "MISS");
    assert_eq!(fetch(0).await, "HIT");
    for i in 1..40 {
        assert_eq!(fetch(i).await, "MISS");
    }
    let usage = state.cache_usage("cached").await.expect("a cache");
    assert!(usage.bytes <= 16 * 1024, "{usage:?}");
    assert!(usage.entries > 0 && usage.entries < 40, "{usage:?}");
    assert_eq!(fetch(39).await, "HIT", "the newest entry is kept");
    assert_eq!(fetch(0).await, "HIT", "the entry used again is kept");
    let mut evicted = 0;
    for i in 1..39 {
        if fetch(i).await == "MISS" {
            evicted += 1;
        }
    }
    assert!(evicted > 0, "entries stored once and never hit are evicted");
}

#[tokio::test]
async fn reloads_keep_entries_unless_the_settings_change() {
    let up = upstream("a").await;
    let yaml = config(&up, "{ ttl: 60s }");
    let gw = gateway(&yaml).await;
    assert_eq!(get(&gw, "/k").await.cache(), "MISS");
    let same = gatehouse::config::load_str("test.yaml", &yaml).expect("config");
    gw.apply(&same).expect("reload");
    assert_eq!(get(&gw, "/k").await.cache(), "HIT", "same settings: kept");
    let changed =
        gatehouse::config::load_str("test.yaml", &config(&up, "{ ttl: 30s }")).expect("config");
    gw.apply(&changed).expect("reload");
    assert_eq!(
        get(&gw, "/k").await.cache(),
        "MISS",
        "new settings: a new cache"
    );
}

/// Every value of `name` on a response.
fn all(response: &reqwest::Response, name: &str) -> Vec<String> {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("text").to_owned())
        .collect()
}

#[tokio::test]
async fn the_cache_fields_replace_the_upstreams() {
    let up = upstream("a").await;
    let gw = cached(&up, "{ ttl: 1m }").await;
    let ask = || {
        client()
            .get(format!("{}/fields", base(&gw)))
            .header("x-reply-header-x-cache", "HIT from a cdn")
            .header("x-reply-header-age", "100")
    };
    let miss = ask().send().await.expect("response");
    assert_eq!(all(&miss, "x-cache"), ["MISS"]);
    assert_eq!(
        all(&miss, "age"),
        ["100"],
        "a miss passes the upstream's Age on"
    );
    let hit = ask().send().await.expect("response");
    assert_eq!(all(&hit, "x-cache"), ["HIT"]);
    assert_eq!(all(&hit, "age"), ["0"]);
}

#[tokio::test]
async fn a_response_transform_sees_the_cache_fields() {
    let up = upstream("a").await;
    let yaml = format!(
        "listen: 127.0.0.1:0\nobservability: {{ access_log: off }}\nservices:\n  echo: {{ url: \"{}\" }}\nroutes:\n  - path: /**\n    service: echo\n    plugins:\n      cache: {{ ttl: 1m }}\n      response_transform: {{ headers: {{ rename: {{ X-Cache: X-Cache-Status }}, remove: [Age] }} }}\n",
        up.url()
    );
    let gw = gateway(&yaml).await;
    for expected in ["MISS", "HIT"] {
        let response = client()
            .get(format!("{}/renamed", base(&gw)))
            .send()
            .await
            .expect("response");
        assert_eq!(all(&response, "x-cache-status"), [expected]);
        assert!(all(&response, "x-cache").is_empty());
        assert!(
            all(&response, "age").is_empty(),
            "removed on the {expected}"
        );
    }
}

#[tokio::test]
async fn routes_without_cache_have_no_x_cache() {
    let up = upstream("a").await;
    let gw = common::proxy_all(&up.url()).await;
    let reply = get(&gw, "/plain").await;
    assert_eq!(reply.x_cache, None);
}

#[test]
fn cache_settings_are_checked() {
    let yaml = |settings: &str| {
        format!(
            "listen: 127.0.0.1:0\nservices:\n  echo: {{ url: \"http://127.0.0.1:1\" }}\nroutes:\n  - {{ path: /**, service: echo, plugins: {{ cache: {settings} }} }}\n"
        )
    };
    let errors = |settings: &str| match gatehouse::config::load_str("g.yaml", &yaml(settings)) {
        Ok(_) => String::new(),
        Err(errors) => errors.to_string(),
    };
    assert_eq!(errors("{ ttl: 10s, vary_query: [page] }"), "");
    assert!(errors("{ ttl: 0s }").contains("`ttl` must be more than 0"));
    assert!(errors("{ store: cluster }").contains("`store: cluster` needs `cluster.redis`"));
    assert!(errors("{ statuses: [700] }").contains("not between 100 and 599"));
}

#[tokio::test]
async fn the_access_log_has_the_verdict() {
    let up = upstream("a").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let gw = gateway(&format!(
        "listen: 127.0.0.1:0\nobservability: {{ access_log: \"{}\" }}\nservices:\n  echo: {{ url: \"{}\" }}\nroutes:\n  - {{ path: /**, service: echo, plugins: {{ cache: {{}} }} }}\n",
        log.display(),
        up.url()
    ))
    .await;
    get(&gw, "/l").await;
    get(&gw, "/l").await;
    send(&gw, "POST", "/l", &[]).await;
    let mut verdicts = Vec::new();
    for _ in 0..50 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        verdicts = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["cache"].clone())
            .collect();
        if verdicts.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(verdicts, ["MISS", "HIT", "BYPASS"]);
}
