//! Request heads the own loop takes, and the response heads it writes.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRAILER, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};

use super::date;
use crate::body::IncomingBody;

/// Header lines a head may have to be taken here; hyper takes longer heads (up to its own
/// limit of 1,024).
const MAX_HEADERS: usize = 64;

/// What a request head says beyond the request itself.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Asks {
    /// `Connection: close`: the connection ends after the response.
    pub(super) close: bool,
}

/// The outcome of parsing the bytes read so far.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per request and taken apart at once; a box would cost an allocation"
)]
pub(super) enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A request the loop serves; its head has been taken off the buffer.
    Request(Request<IncomingBody>, Asks),
    /// Anything else (a body, an upgrade, `Expect`, HEAD, CONNECT, HTTP/1.0, a malformed or
    /// very long head, HTTP/2's preface): hyper serves the connection from this byte on. The
    /// buffer is left as it was.
    Handoff,
}

/// A header's name, and where its value is in the head.
pub(super) type Line = (HeaderName, (usize, usize));

/// Parses the head at the start of `buf`. A request without a body, on HTTP/1.1, with no
/// upgrade or expectation, is taken: the head is split off `buf` (the request's header values
/// share its bytes) and the rest, a pipelined request, stays. `lines` is scratch space, kept
/// by the connection so that a head costs no allocation for it.
pub(super) fn parse(buf: &mut BytesMut, lines: &mut Vec<Line>) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut []);
    let len = match head.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Handoff,
    };
    if head.version != Some(1) {
        return Parsed::Handoff;
    }
    let (Some(method), Some(path)) = (head.method, head.path) else {
        return Parsed::Handoff;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Handoff;
    };
    if method == Method::HEAD || method == Method::CONNECT {
        return Parsed::Handoff;
    }
    let base = buf.as_ptr() as usize;
    let span = |bytes: &[u8]| {
        let start = bytes.as_ptr() as usize - base;
        (start, start + bytes.len())
    };
    let path = span(path.as_bytes());
    let mut asks = Asks::default();
    let mut has_length = false;
    lines.clear();
    for header in head.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else {
            return Parsed::Handoff;
        };
        match name.as_str() {
            "transfer-encoding" | "upgrade" | "expect" => return Parsed::Handoff,
            "content-length" => {
                // Only an empty body, said once.
                if has_length || header.value != b"0" {
                    return Parsed::Handoff;
                }
                has_length = true;
            }
            "connection" => {
                for token in header.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        asks.close = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        return Parsed::Handoff;
                    }
                }
            }
            _ => {}
        }
        lines.push((name, span(header.value)));
    }
    let bytes = buf.split_to(len).freeze();
    match build(&bytes, method, path, lines) {
        Some(request) => Parsed::Request(request, asks),
        None => {
            // Put the head back for hyper (which answers the invalid request itself).
            let mut whole = BytesMut::with_capacity(bytes.len() + buf.len());
            whole.extend_from_slice(&bytes);
            whole.extend_from_slice(buf);
            *buf = whole;
            Parsed::Handoff
        }
    }
}

/// The request of a parsed head; `None` when its target or a value is not valid.
fn build(
    bytes: &Bytes,
    method: Method,
    path: (usize, usize),
    lines: &mut Vec<Line>,
) -> Option<Request<IncomingBody>> {
    let uri = Uri::from_maybe_shared(bytes.slice(path.0..path.1)).ok()?;
    // Room for the headers the pipeline adds on the way upstream (`X-Forwarded-*`,
    // `X-Request-Id`, identity headers): the map is not grown on the hot path.
    let mut headers = HeaderMap::with_capacity(lines.len() + 8);
    for (name, (start, end)) in lines.drain(..) {
        let value = HeaderValue::from_maybe_shared(bytes.slice(start..end)).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(IncomingBody::Empty);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(request)
}

/// How a response's body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body may follow (1xx, 204, 304).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked, with the trailer fields the response's `Trailer` header names.
    Chunked,
}

/// Whether a response with `status` may carry a body, and `Content-Length`.
fn body_allowed(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Whether `headers` ask to close the connection.
pub(super) fn says_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

/// Writes the head of a response with `status` and `headers` into `out`, as hyper's server
/// does (lower-case names, `Date` when missing, `Connection: close` when the connection
/// ends), and returns how its body is framed. `exact` is the body's exact length, when known.
pub(super) fn encode(
    status: StatusCode,
    headers: &HeaderMap,
    exact: Option<u64>,
    closing: bool,
    out: &mut Vec<u8>,
) -> Framing {
    out.clear();
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let allowed = body_allowed(status);
    let mut framing = None;
    for (name, value) in headers {
        if *name == CONTENT_LENGTH || *name == TRANSFER_ENCODING {
            if !allowed || framing.is_some() {
                continue;
            }
            framing = Some(if *name == CONTENT_LENGTH {
                match std::str::from_utf8(value.as_bytes())
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
                {
                    Some(len) => Framing::Length(len),
                    None => continue,
                }
            } else {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            });
            if *name == TRANSFER_ENCODING {
                continue;
            }
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if closing && !says_close(headers) {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let framing = if !allowed {
        Framing::None
    } else if let Some(framing) = framing {
        framing
    } else if let Some(len) = exact {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        out.extend_from_slice(b"\r\n");
        Framing::Length(len)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    if !headers.contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// The trailer fields a response declares (`Trailer`), lower-cased; hyper sends only those.
pub(super) fn declared_trailers(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(TRAILER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(text);
        let parsed = parse(&mut buf, &mut Vec::new());
        (parsed, buf)
    }

    #[test]
    fn takes_a_bodyless_request_and_leaves_the_next() {
        let (parsed, rest) =
            parsed("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\nGET /next");
        let Parsed::Request(request, asks) = parsed else {
            panic!("not taken: {parsed:?}");
        };
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/a?b=1");
        assert_eq!(request.headers()["host"], "x");
        let multi: Vec<_> = request.headers().get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert!(!asks.close);
        assert_eq!(&rest[..], b"GET /next");
    }

    #[test]
    fn partial_heads_wait() {
        assert!(matches!(
            parsed("GET / HTTP/1.1\r\nHost: x\r\n").0,
            Parsed::Partial
        ));
    }

    #[test]
    fn connection_close_is_noted() {
        let (parsed, _) = parsed("DELETE /x HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(matches!(parsed, Parsed::Request(_, Asks { close: true })));
    }

    #[test]
    fn everything_else_goes_to_hyper_untouched() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            "POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "HEAD / HTTP/1.1\r\n\r\n",
            "CONNECT a:1 HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nbad header\r\n\r\n",
            "GET http://[::1 HTTP/1.1\r\n\r\n",
        ] {
            let (parsed, rest) = parsed(text);
            assert!(matches!(parsed, Parsed::Handoff), "{text:?} was {parsed:?}");
            assert_eq!(&rest[..], text.as_bytes(), "{text:?} lost bytes");
        }
    }

    #[test]
    fn an_empty_body_said_once_is_taken() {
        let (parsed, _) = parsed("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(matches!(parsed, Parsed::Request(..)));
    }

    fn head(status: u16, headers: &[(&str, &str)], exact: Option<u64>, closing: bool) -> String {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map.insert(DATE, HeaderValue::from_static("D"));
        let mut out = Vec::new();
        let framing = encode(
            StatusCode::from_u16(status).unwrap(),
            &map,
            exact,
            closing,
            &mut out,
        );
        format!("{framing:?}|{}", String::from_utf8(out).unwrap())
    }

    #[test]
    fn response_heads_are_framed_as_hyper_frames_them() {
        assert_eq!(
            head(200, &[("content-type", "text/plain")], Some(5), false),
            "Length(5)|HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: D\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!(
            head(404, &[("content-length", "3")], None, true),
            "Length(3)|HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\ndate: D\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            head(200, &[], None, false),
            "Chunked|HTTP/1.1 200 OK\r\ndate: D\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            head(204, &[("content-length", "0")], Some(0), false),
            "None|HTTP/1.1 204 No Content\r\ndate: D\r\n\r\n"
        );
        assert_eq!(
            head(599, &[("connection", "close")], Some(0), true),
            "Length(0)|HTTP/1.1 599 <none>\r\nconnection: close\r\ndate: D\r\ncontent-length: 0\r\n\r\n"
        );
    }
}
