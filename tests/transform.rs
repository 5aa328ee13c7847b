//! `request_transform` and `response_transform` (SPEC §3.7) against the real gateway and real
//! upstreams: header and query changes with templates, JSON bodies by JSON Pointer both ways
//! (with the upstream seeing the new body and its length), `select`, status mapping, bodies
//! that are not JSON or too large passing through, and streaming kept where no body changes.

mod common;

use std::time::{Duration, Instant};

use common::{base, client, error_body, gateway, get, upstream};
use futures_util::StreamExt;
use serde_json::{Value, json};

async fn gw(yaml_routes: &str) -> (gatehouse::app::Gatehouse, common::Upstream) {
    let up = upstream("echo").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{}" }}
consumers:
  web-app:
    keys: [web-key]
routes:
{yaml_routes}
"#,
        up.url()
    ))
    .await;
    (gw, up)
}

#[tokio::test]
async fn request_headers_remove_rename_set_add_with_templates() {
    let (gw, _up) = gw(r#"
  - path: /h/{id}
    service: echo
    plugins:
      auth: { api_key: {} }
      request_transform:
        headers:
          remove: [Cookie, X-Set]
          rename: { X-Old: X-New, X-Multi: X-Moved }
          set: { X-Set: "id={id} by {consumer} from {client_ip}", X-Copy: "{header.x-src}/{query.q}", X-Claim: "[{claim.sub}]" }
          add: { X-Moved: "added", X-Stamp: "{timestamp}", X-Req: "{request_id}" }
"#)
    .await;
    let response = client()
        .get(format!("{}/h/42?q=hello%20there", base(&gw)))
        .header("x-api-key", "web-key")
        .header("cookie", "session=1")
        .header("x-set", "client")
        .header("x-old", "old")
        .header("x-multi", "1")
        .header("x-src", "source")
        .header("x-request-id", "rid-123")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let echo: Value = response.json().await.expect("json");
    let h = &echo["headers"];
    assert_eq!(h.get("cookie"), None);
    assert_eq!(h.get("x-old"), None);
    assert_eq!(h["x-new"], "old");
    assert_eq!(h["x-set"], "id=42 by web-app from 127.0.0.1");
    assert_eq!(h["x-copy"], "source/hello there");
    assert_eq!(h["x-claim"], "[]", "absent values render as nothing");
    assert_eq!(h["x-req"], "rid-123");
    let stamp = h["x-stamp"].as_str().expect("stamp");
    assert!(
        stamp.ends_with('Z') && stamp.contains('T'),
        "RFC 3339: {stamp}"
    );
    // The echo keeps the last of repeated headers: the added value comes after the renamed one.
    assert_eq!(h["x-moved"], "added");
}

#[tokio::test]
async fn renamed_headers_keep_every_value_and_add_keeps_existing() {
    let up = upstream("echo").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{}" }}
routes:
  - path: /reflect
    service: echo
    plugins:
      request_transform:
        headers: {{ rename: {{ X-Multi: X-Reflect-Chunked }}, add: {{ Accept: "text/x-added" }} }}
      response_transform:
        headers:
          remove: [X-Seen-Transfer-Encoding]
          rename: {{ X-Seen-Content-Length: X-Length }}
          set: {{ X-Route: "reflect {{request_id}}" }}
          add: {{ X-Seen-Content-Length: "again", X-Length: "more" }}
"#,
        up.url()
    ))
    .await;
    let response = client()
        .post(format!("{}/reflect", base(&gw)))
        .header("x-multi", "1")
        .header("x-multi", "2")
        .header("x-request-id", "r-1")
        .header("accept", "text/plain")
        .body("abcd")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    let lengths: Vec<_> = h.get_all("x-length").iter().collect();
    assert_eq!(lengths, ["4", "more"], "renamed, then added to");
    assert!(
        h.get("content-length").is_none(),
        "the upstream saw the renamed X-Reflect-Chunked and answered in chunks"
    );
    assert_eq!(h.get("x-seen-transfer-encoding"), None);
    assert_eq!(h["x-seen-content-length"], "again");
    assert_eq!(h["x-route"], "reflect r-1");
    assert_eq!(response.text().await.expect("body"), "abcd");
}

#[tokio::test]
async fn query_set_remove_rename_keep_untouched_encoding() {
    let (gw, _up) = gw(r#"
  - path: /q/{id}
    service: echo
    plugins:
      request_transform:
        query:
          remove: [debug]
          rename: { old: new }
          set: { v: "2", who: "{id} {header.x-who}" }
"#)
    .await;
    let echo: Value = client()
        .get(format!(
            "{}/q/7?a=%2Fx%20y&debug=1&old=k%26&flag&v=1&v=3",
            base(&gw)
        ))
        .header("x-who", "me&you")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        echo["query"],
        "a=%2Fx%20y&new=k%26&flag&v=2&who=7%20me%26you"
    );
    // No query at all: the set parameters are the query.
    let echo: Value = get(&gw, "/q/1").await.json().await.expect("json");
    assert_eq!(echo["query"], "v=2&who=1%20");
}

fn body_routes() -> &'static str {
    r#"
  - path: /reflect
    service: echo
    max_body: 2KiB
    plugins:
      request_transform:
        body:
          remove: [/internal, /list/0]
          rename: { /userId: /user_id, "/a~1b": "/nested/a~0b" }
          set: { /request_id: "{request_id}", /meta/source: gateway, /meta/n: 3, /flags: [1, true] }
"#
}

#[tokio::test]
async fn request_json_body_is_changed_and_its_length_corrected() {
    let (gw, _up) = gw(body_routes()).await;
    for chunked in [false, true] {
        let body =
            r#"{"userId": 7, "internal": "x", "list": [1, 2], "a/b": "slash", "keep": null}"#;
        let mut request = client()
            .post(format!("{}/reflect", base(&gw)))
            .header("content-type", "application/json; charset=utf-8")
            .header("x-request-id", "rid-9");
        request = if chunked {
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(body.to_owned())]);
            request.body(reqwest::Body::wrap_stream(stream))
        } else {
            request.body(body)
        };
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 200);
        let seen_length = response.headers()["x-seen-content-length"].clone();
        assert_eq!(response.headers()["x-seen-transfer-encoding"], "none");
        let text = response.text().await.expect("body");
        assert_eq!(seen_length.to_str().expect("len"), text.len().to_string());
        assert_eq!(
            text,
            r#"{"list":[2],"keep":null,"user_id":7,"nested":{"a~b":"slash"},"request_id":"rid-9","meta":{"source":"gateway","n":3},"flags":[1,true]}"#,
            "chunked: {chunked}"
        );
    }
}

#[tokio::test]
async fn request_bodies_not_json_or_too_large() {
    let (gw, up) = gw(body_routes()).await;
    // Declared JSON but is not: passes through untouched.
    let response = client()
        .post(format!("{}/reflect", base(&gw)))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "{not json");
    // Not declared JSON: streamed through, not even parsed.
    let response = client()
        .post(format!("{}/reflect", base(&gw)))
        .header("content-type", "text/plain")
        .body(r#"{"internal": 1}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(response.text().await.expect("body"), r#"{"internal": 1}"#);
    // Over the route's max_body while buffering (no Content-Length): 413, upstream not asked.
    let before = up.hits();
    let big = format!(r#"{{"filler": "{}"}}"#, "x".repeat(4096));
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(big)]);
    let response = client()
        .post(format!("{}/reflect", base(&gw)))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("send");
    error_body(response, 413, "payload_too_large").await;
    assert_eq!(up.hits(), before, "the upstream never saw it");
}

fn response_routes(upstream: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{upstream}" }}
routes:
  - path: /reflect
    service: echo
    plugins:
      response_transform:
        body:
          remove: [/password_hash]
          rename: {{ /user_id: /id, /created_at: /joined }}
          set: {{ /via: "gateway {{request_id}}" }}
          select: [/id, /name, /joined, /via, /items/name]
  - path: /json/{{n}}
    service: echo
    max_body: 2KiB
    plugins:
      response_transform:
        body: {{ remove: [/secret] }}
  - path: /status/{{code}}
    service: echo
    plugins:
      response_transform:
        status: {{ 404: 200, 503: 500 }}
        headers: {{ set: {{ X-Mapped: "yes" }} }}
"#
    )
}

#[tokio::test]
async fn response_json_body_remove_rename_set_select() {
    let up = upstream("echo").await;
    let gw = gateway(&response_routes(&up.url())).await;
    let doc = json!({
        "user_id": 5, "name": "Ada", "password_hash": "h", "created_at": "2020",
        "extra": {"x": 1}, "items": [{"name": "a", "price": 1}, {"name": "b", "price": 2}]
    });
    for chunked in [false, true] {
        let response = client()
            .post(format!("{}/reflect", base(&gw)))
            .header("content-type", "application/vnd.api+json")
            .header("x-request-id", "r-7")
            .header("x-reflect-chunked", if chunked { "1" } else { "0" })
            .body(doc.to_string())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        let length = response.headers()["content-length"].clone();
        let text = response.text().await.expect("body");
        assert_eq!(length.to_str().expect("len"), text.len().to_string());
        assert_eq!(
            text,
            r#"{"name":"Ada","items":[{"name":"a"},{"name":"b"}],"id":5,"joined":"2020","via":"gateway r-7"}"#
        );
    }
}

#[tokio::test]
async fn head_on_a_body_transform_route_never_claims_the_upstream_length() {
    let up = upstream("echo").await;
    let gw = gateway(&response_routes(&up.url())).await;
    let get = get(&gw, "/json/10").await;
    let get_length = get.headers()["content-length"].clone();
    let body = get.text().await.expect("body");
    assert!(!body.contains("secret"), "{body}");
    assert_eq!(get_length.to_str().expect("len"), body.len().to_string());

    // The upstream answers HEAD with its own (longer) length; the rewritten length is not
    // known without the body, so the gateway leaves `Content-Length` out (RFC 9110 §8.6).
    let head = client()
        .head(format!("{}/json/10", base(&gw)))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);
    if let Some(length) = head.headers().get("content-length") {
        assert_eq!(length, get_length, "a HEAD length must be the GET one");
    }
}

#[tokio::test]
async fn responses_not_json_encoded_or_too_large_pass_through() {
    let up = upstream("echo").await;
    let gw = gateway(&response_routes(&up.url())).await;
    let send = |ct: &'static str, body: &'static str, encoding: Option<&'static str>| {
        let mut request = client()
            .post(format!("{}/reflect", base(&gw)))
            .header("content-type", ct)
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("x-reflect-encoding", encoding);
        }
        request.send()
    };
    let r = send("application/json", "[not json", None)
        .await
        .expect("send");
    assert_eq!(r.text().await.expect("body"), "[not json");
    let r = send("text/plain", r#"{"password_hash":1}"#, None)
        .await
        .expect("send");
    assert_eq!(r.text().await.expect("body"), r#"{"password_hash":1}"#);
    // Compressed bodies are not JSON text: untouched (bytes as sent; reqwest does not decode).
    let r = send("application/json", r#"{"password_hash":1}"#, Some("gzip"))
        .await
        .expect("send");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.bytes().await.expect("body"), r#"{"password_hash":1}"#);

    // Within the bound: changed. Over it (declared or streamed): passed through whole.
    for (path, changed) in [
        ("/json/100", true),
        ("/json/100?chunked=1", true),
        ("/json/5000", false),
        ("/json/5000?chunked=1", false),
    ] {
        let response = client()
            .get(format!("{}{path}", base(&gw)))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{path}");
        let length = response
            .headers()
            .get("content-length")
            .map(|v| v.to_str().expect("len").to_owned());
        let body: Value = response.json().await.expect("json");
        assert_eq!(body.get("secret").is_none(), changed, "{path}");
        assert_eq!(body["id"], 1);
        if changed {
            assert!(length.is_some(), "{path}: a rewritten body has a length");
        }
    }
}

#[tokio::test]
async fn status_mapping() {
    let up = upstream("echo").await;
    let gw = gateway(&response_routes(&up.url())).await;
    for (asked, got) in [(404, 200), (503, 500), (201, 201)] {
        let response = client()
            .get(format!("{}/status/{asked}", base(&gw)))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), got);
        assert_eq!(response.headers()["x-mapped"], "yes");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], asked, "the body is the upstream's");
    }
}

#[tokio::test]
async fn bodies_still_stream_without_body_changes() {
    let up = upstream("echo").await;
    let gw = gateway(&format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{}" }}
routes:
  - path: /stream/{{n}}
    service: echo
    plugins:
      request_transform: {{ headers: {{ set: {{ X-A: "1" }} }} }}
      response_transform: {{ headers: {{ set: {{ X-B: "2" }} }} }}
  - path: /json/{{n}}
    service: echo
    plugins:
      response_transform: {{ body: {{ remove: [/secret] }} }}
"#,
        up.url()
    ))
    .await;
    let started = Instant::now();
    let response = get(&gw, "/stream/20").await;
    assert_eq!(response.headers()["x-b"], "2");
    assert!(response.headers().get("content-length").is_none());
    let mut stream = response.bytes_stream();
    let first = stream.next().await.expect("chunk").expect("ok");
    assert!(!first.is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "the first chunk came before the whole body (20 × 20 ms): {:?}",
        started.elapsed()
    );
    let mut total = first.len();
    while let Some(chunk) = stream.next().await {
        total += chunk.expect("chunk").len();
    }
    assert_eq!(total, 20 * 1024);
    // A body route whose response is not JSON streams too.
    let response = get(&gw, "/json/10").await;
    let body: Value = response.json().await.expect("json");
    assert!(body.get("secret").is_none());
}

#[tokio::test]
async fn config_errors_are_located() {
    let up = upstream("echo").await;
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
services:
  echo: {{ url: "{}" }}
routes:
  - path: /x/{{id}}
    service: echo
    plugins:
      request_transform:
        headers: {{ set: {{ X-A: "{{nope}}" }}, remove: [Content-Length] }}
        body: {{ remove: [internal] }}
      response_transform:
        status: {{ 404: 99 }}
"#,
        up.url()
    );
    let text = match gatehouse::check_str("gatehouse.yaml", &yaml) {
        Ok(summary) => panic!("compiles: {summary}"),
        Err(errors) => errors.to_string(),
    };
    assert!(text.contains("gatehouse.yaml:10:"), "{text}");
    assert!(text.contains("`{nope}` is not a capture"), "{text}");
    assert!(
        text.contains("`Content-Length` is managed by the gateway"),
        "{text}"
    );
    assert!(text.contains("must start with `/`"), "{text}");
    assert!(text.contains("final status between 200 and 599"), "{text}");
}
