//! Shaping a client request for its upstream and an upstream response for the client
//! (SPEC §4.1): hop-by-hop headers, `X-Forwarded-*`, `Host`, identity headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::auth::IDENTITY_HEADERS;
use crate::upstream::AddedHeaders;

/// Headers that belong to one connection and never cross the gateway.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether `name` is hop-by-hop (or `Upgrade`): a cheap comparison for standard names.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::UPGRADE || HOP_BY_HOP.iter().any(|h| h == name)
}

/// Removes hop-by-hop headers, including those the `Connection` header names, and `Upgrade`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names instead of a lookup per header.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Everything the request headers need on the way upstream.
pub struct ForwardedFor<'a> {
    /// The peer address of the client connection, as a header value.
    pub peer: &'a HeaderValue,
    /// Whether the peer is a trusted proxy (its `X-Forwarded-*` are kept and extended).
    pub peer_trusted: bool,
    /// `http` or `https`: how the client reached the gateway.
    pub proto: &'static str,
    /// The `Host` the client asked for.
    pub host: Option<&'a HeaderValue>,
    /// The `Host` to send: the target's, or the client's with `preserve_host`.
    pub upstream_host: &'a HeaderValue,
    /// The request id.
    pub request_id: &'a HeaderValue,
    /// Header names routes set from token claims; client copies are removed like the
    /// identity headers.
    pub claim_headers: &'a [HeaderName],
}

/// Rewrites request headers for the upstream: hop-by-hop, identity and claim headers out,
/// `Host` set; `X-Forwarded-*` and `X-Request-Id` go in `added` (empty before: they are its
/// first fields), which replaces the request's own fields of those names.
pub fn prepare_request_headers(
    headers: &mut HeaderMap,
    fwd: &ForwardedFor<'_>,
    added: &mut AddedHeaders,
) {
    remove_hop_by_hop(headers);
    // One pass over the names instead of a lookup per header (each hashes the name).
    if headers.keys().any(|name| IDENTITY_HEADERS.contains(&name)) {
        for name in IDENTITY_HEADERS {
            headers.remove(name);
        }
    }
    if !fwd.claim_headers.is_empty() && headers.keys().any(|n| fwd.claim_headers.contains(n)) {
        for name in fwd.claim_headers {
            headers.remove(name);
        }
    }

    // X-Forwarded-For: a trusted proxy's chain is extended; anything else a client sent is
    // replaced, so upstreams never see a spoofed chain.
    let chain = fwd
        .peer_trusted
        .then(|| headers.get(&X_FORWARDED_FOR))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .filter(|chain| !chain.trim().is_empty());
    let xff = match chain {
        Some(chain) => {
            let peer = fwd.peer.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{chain}, {peer}")).ok()
        }
        None => Some(fwd.peer.clone()),
    };
    if let Some(value) = xff {
        added.push_new(X_FORWARDED_FOR.clone(), value);
    }
    if !(fwd.peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        added.push_new(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(fwd.proto),
        );
    }
    if !(fwd.peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match fwd.host {
            Some(host) => added.push_new(X_FORWARDED_HOST.clone(), host.clone()),
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    headers.insert(header::HOST, fwd.upstream_host.clone());
    added.push_new(
        super::request_id::X_REQUEST_ID.clone(),
        fwd.request_id.clone(),
    );
}

/// The forwarded path: the normalized path with `strip_prefix` removed (on a segment
/// boundary), never empty.
pub fn strip_prefix<'p>(path: &'p str, prefix: &str) -> &'p str {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_headers_and_identity_stripping() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        headers.insert("x-consumer-id", HeaderValue::from_static("admin"));
        let host = HeaderValue::from_static("api.example.com");
        let upstream = HeaderValue::from_static("127.0.0.1:9001");
        let id = HeaderValue::from_static("rid");
        let peer = HeaderValue::from_static("192.0.2.7");
        let fwd = ForwardedFor {
            peer: &peer,
            peer_trusted: false,
            proto: "http",
            host: Some(&host),
            upstream_host: &upstream,
            request_id: &id,
            claim_headers: &[],
        };
        let mut added = AddedHeaders::default();
        prepare_request_headers(&mut headers, &fwd, &mut added);
        added.insert_into(&mut headers);
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "api.example.com");
        assert_eq!(headers["host"], "127.0.0.1:9001");
        assert!(!headers.contains_key("x-consumer-id"));

        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.1"));
        let fwd = ForwardedFor {
            peer_trusted: true,
            ..fwd
        };
        let mut added = AddedHeaders::default();
        prepare_request_headers(&mut headers, &fwd, &mut added);
        added.insert_into(&mut headers);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.1, 192.0.2.7");
    }

    #[test]
    fn strip_prefix_on_segment_boundaries() {
        assert_eq!(strip_prefix("/api/v1/users/42", "/api/v1"), "/users/42");
        assert_eq!(strip_prefix("/api/v1", "/api/v1"), "/");
        assert_eq!(strip_prefix("/api/v10/x", "/api/v1"), "/api/v10/x");
        assert_eq!(strip_prefix("/api/v1/users", "/api/v1/"), "/users");
        assert_eq!(strip_prefix("/other", "/api"), "/other");
    }
}
