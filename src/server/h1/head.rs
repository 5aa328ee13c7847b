//! Request heads the own loop takes, and the response heads it writes.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, Method, Request, StatusCode, Uri, Version};

use super::date;
use crate::body::IncomingBody;
use crate::http1::{self, HeadLines, NameMemo};
use crate::pipeline::added_fields::AddedFields;

/// Header lines a head may have to be taken here; hyper takes longer heads (up to its own
/// limit of 1,024).
const MAX_HEADERS: usize = 64;

/// The outcome of parsing the bytes read so far.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per request and taken apart at once; a box would cost an allocation"
)]
pub(super) enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A request the loop serves; its head has been taken off the buffer. `close`: it said
    /// `Connection: close`, so the connection ends after the response.
    Request {
        request: Request<IncomingBody>,
        close: bool,
    },
    /// Anything else (a body, an upgrade, `Expect`, HEAD, CONNECT, HTTP/1.0, a malformed or
    /// very long head, HTTP/2's preface): hyper serves the connection from this byte on. The
    /// buffer is left as it was.
    Handoff,
}

/// Parses the head at the start of `buf`. A request without a body, on HTTP/1.1, with no
/// upgrade or expectation, is taken: the head is split off `buf` (the request's header values
/// share its bytes) and the rest, a pipelined request, stays.
/// `names`: the connection's memo of header names.
pub(super) fn parse(buf: &mut BytesMut, names: &mut NameMemo) -> Parsed {
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
    let path = http1::span(buf, path.as_bytes());
    let mut close = false;
    let mut has_length = false;
    let mut lines = HeadLines::new();
    for (index, header) in head.headers.iter().enumerate() {
        let Ok(name) = names.name(index, header.name.as_bytes()) else {
            return Parsed::Handoff;
        };
        if name == TRANSFER_ENCODING || name == UPGRADE || name == EXPECT {
            return Parsed::Handoff;
        } else if name == CONTENT_LENGTH {
            // Only an empty body, said once.
            if has_length || header.value != b"0" {
                return Parsed::Handoff;
            }
            has_length = true;
        } else if name == CONNECTION {
            if http1::has_token(header.value, "upgrade") {
                return Parsed::Handoff;
            }
            close |= http1::has_token(header.value, "close");
        }
        let (start, end) = http1::span(buf, header.value);
        lines.push((name, start, end));
    }
    let bytes = buf.split_to(len).freeze();
    match build(&bytes, method, path, &mut lines) {
        Some(request) => Parsed::Request { request, close },
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
    lines: &mut HeadLines,
) -> Option<Request<IncomingBody>> {
    let uri = Uri::from_maybe_shared(bytes.slice(path.0..path.1)).ok()?;
    // A little room only: what the pipeline adds on the way upstream (`X-Forwarded-*`,
    // `X-Request-Id`, identity headers) is written beside the map (`upstream::AddedHeaders`)
    // on the usual path.
    let headers = http1::header_map(bytes, lines, 2)?;
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

/// Writes the head of a response with `status` and `headers` into `out`, as hyper's server
/// does (lower-case names, `Date` when missing, `Connection: close` when the connection
/// ends), and returns how its body is framed and whether the connection ends after it:
/// `closing` (the gateway's reasons), or the response's own `Connection: close`. The `added`
/// fields follow the map's, in place of any of the same names. `exact` is the body's exact
/// length, when known.
pub(super) fn encode(
    status: StatusCode,
    headers: &HeaderMap,
    added: &AddedFields,
    exact: Option<u64>,
    closing: bool,
    out: &mut Vec<u8>,
) -> (Framing, bool) {
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
    let allowed = http1::body_allowed(status);
    let mut framing = None;
    // Read on the way, rather than looked up in the map after (each lookup hashes the name).
    let mut says_close = false;
    let mut dated = false;
    for (name, value) in headers {
        if *name == CONNECTION {
            says_close |= http1::has_token(value.as_bytes(), "close");
        } else if *name == DATE {
            dated = true;
        }
        if added.replaces(name) {
            continue;
        }
        if *name == CONTENT_LENGTH || *name == TRANSFER_ENCODING {
            // The first framing header decides; none goes out where no body may follow.
            if !allowed || framing.is_some() {
                continue;
            }
            if *name == TRANSFER_ENCODING {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                framing = Some(Framing::Chunked);
                continue;
            }
            let Some(len) = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|text| text.trim().parse().ok())
            else {
                continue;
            };
            framing = Some(Framing::Length(len));
        }
        http1::push_field(out, name, value);
    }
    added.write(out);
    if closing && !says_close {
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
    if !dated {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (framing, closing || says_close)
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
    use http::HeaderValue;

    fn parsed(text: &str) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(text);
        let parsed = parse(&mut buf, &mut NameMemo::default());
        (parsed, buf)
    }

    #[test]
    fn takes_a_bodyless_request_and_leaves_the_next() {
        let (parsed, rest) =
            parsed("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\nGET /next");
        let Parsed::Request { request, close } = parsed else {
            panic!("not taken: {parsed:?}");
        };
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/a?b=1");
        assert_eq!(request.headers()["host"], "x");
        let multi: Vec<_> = request.headers().get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert!(!close);
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
        assert!(matches!(parsed, Parsed::Request { close: true, .. }));
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
        assert!(matches!(parsed, Parsed::Request { close: false, .. }));
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
        let (framing, _) = encode(
            StatusCode::from_u16(status).unwrap(),
            &map,
            &AddedFields::new(HeaderValue::from_static("R")),
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
            "Length(5)|HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: D\r\nx-request-id: R\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!(
            head(404, &[("content-length", "3")], None, true),
            "Length(3)|HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\ndate: D\r\nx-request-id: R\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(
            head(200, &[], None, false),
            "Chunked|HTTP/1.1 200 OK\r\ndate: D\r\nx-request-id: R\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            head(204, &[("content-length", "0")], Some(0), false),
            "None|HTTP/1.1 204 No Content\r\ndate: D\r\nx-request-id: R\r\n\r\n"
        );
        assert_eq!(
            head(599, &[("connection", "close")], Some(0), true),
            "Length(0)|HTTP/1.1 599 <none>\r\nconnection: close\r\ndate: D\r\nx-request-id: R\r\ncontent-length: 0\r\n\r\n"
        );
        // The gateway's request id replaces the upstream's.
        assert_eq!(
            head(
                200,
                &[("x-request-id", "up"), ("x-other", "1")],
                Some(0),
                false
            ),
            "Length(0)|HTTP/1.1 200 OK\r\nx-other: 1\r\ndate: D\r\nx-request-id: R\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn the_connection_ends_when_the_gateway_or_the_response_says_so() {
        let ends = |headers: HeaderMap, closing: bool| {
            let added = AddedFields::new(HeaderValue::from_static("R"));
            encode(
                StatusCode::OK,
                &headers,
                &added,
                Some(0),
                closing,
                &mut Vec::new(),
            )
            .1
        };
        assert!(!ends(HeaderMap::new(), false));
        assert!(ends(HeaderMap::new(), true));
        let mut close = HeaderMap::new();
        close.insert("connection", HeaderValue::from_static("Close"));
        assert!(ends(close, false));
    }
}
