//! Writing a request head, and choosing how its body is framed (RFC 9112 §6).

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body::SizeHint;

use crate::http1;
use crate::upstream::AddedHeaders;

/// How a request body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Sets the framing headers for a body that says it is over (`end`) or how long it is
/// (`hint`), and returns the framing. A valid `Content-Length` the request already carries is
/// kept (the client's body is checked against it as it is read); a body of unknown length
/// without one is sent chunked.
pub(super) fn frame(headers: &mut HeaderMap, end: bool, hint: &SizeHint) -> BodyFraming {
    headers.remove(TRANSFER_ENCODING);
    if end {
        return BodyFraming::Empty;
    }
    if let Some(len) = hint.exact() {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        return BodyFraming::Length(len);
    }
    if let Some(len) = declared_length(headers) {
        return BodyFraming::Length(len);
    }
    headers.remove(CONTENT_LENGTH);
    headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    BodyFraming::Chunked
}

/// The one valid `Content-Length` of `headers`, if they have exactly that.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = first.to_str().ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Appends the HTTP/1.1 request head to `out`: the request line with the origin-form target
/// of `uri`, then every header, the `added` ones last and in place of any of the same names,
/// then the empty line. Names and values need no checks: the `http` types admit no CR, LF or
/// NUL.
pub(super) fn encode_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    added: &AddedHeaders,
) {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let size = headers
        .iter()
        .chain(added.iter())
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>();
    out.reserve(method.as_str().len() + target.len() + 13 + size + 2);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if !added.replaces(name) {
            http1::push_field(out, name, value);
        }
    }
    for (name, value) in added.iter() {
        http1::push_field(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn an_ended_body_has_no_framing_headers_added() {
        let mut map = headers(&[("transfer-encoding", "chunked")]);
        assert_eq!(
            frame(&mut map, true, &SizeHint::default()),
            BodyFraming::Empty
        );
        assert!(map.is_empty());
    }

    #[test]
    fn a_known_length_sets_content_length() {
        let mut map = headers(&[("content-length", "99")]);
        let framing = frame(&mut map, false, &SizeHint::with_exact(5));
        assert_eq!(framing, BodyFraming::Length(5));
        assert_eq!(map.get_all(CONTENT_LENGTH).iter().count(), 1);
        assert_eq!(map[CONTENT_LENGTH], "5");
    }

    #[test]
    fn a_declared_length_is_kept_when_the_body_does_not_know_its_own() {
        let mut map = headers(&[("content-length", "12")]);
        let framing = frame(&mut map, false, &SizeHint::default());
        assert_eq!(framing, BodyFraming::Length(12));
    }

    #[test]
    fn an_unknown_length_goes_chunked_and_drops_bad_lengths() {
        for bad in ["", "1,2", "+3", "x"] {
            let mut map = headers(&[("content-length", bad)]);
            assert_eq!(
                frame(&mut map, false, &SizeHint::default()),
                BodyFraming::Chunked
            );
            assert!(!map.contains_key(CONTENT_LENGTH), "{bad:?}");
            assert_eq!(map[TRANSFER_ENCODING], "chunked");
        }
        let mut twice = headers(&[("content-length", "3"), ("content-length", "3")]);
        assert_eq!(
            frame(&mut twice, false, &SizeHint::default()),
            BodyFraming::Chunked
        );
    }

    #[test]
    fn the_head_has_the_request_line_headers_and_blank_line() {
        let mut out = Vec::new();
        let uri: Uri = "/users/42?x=1".parse().unwrap();
        let map = headers(&[("host", "svc"), ("accept", "a"), ("accept", "b")]);
        encode_head(&mut out, &Method::GET, &uri, &map, &AddedHeaders::default());
        assert_eq!(
            out,
            b"GET /users/42?x=1 HTTP/1.1\r\nhost: svc\r\naccept: a\r\naccept: b\r\n\r\n"
        );
    }
}
