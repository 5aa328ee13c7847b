//! Reading a response head, and how its body is framed and whether the connection stays
//! open after it (RFC 9112 §6.3, §9.3).

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, StatusCode, Version, response};

use super::{HeadBytes, Invalid};
use crate::http1::{self, HeadLines, NameMemo};

/// Most header lines a response head may have (as hyper's `max_headers(256)` was).
pub(super) const MAX_HEADERS: usize = 256;
/// Largest response head accepted, interim (1xx) heads included.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: a response to HEAD, a 204 or a 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the target closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// Status, version and headers.
    pub parts: response::Parts,
    /// How the body that follows is delimited.
    pub framing: ResponseFraming,
    /// Whether the connection may carry another request once the body has been read.
    pub keep_alive: bool,
}

/// Parses a final response head from the front of `buf`, consuming it (and any interim 1xx
/// heads before it). `Ok(None)`: the head is not complete yet. `head_request`: the request
/// was a HEAD, so the response has no body whatever its headers say. `head_bytes`: whether
/// the header values share the read buffer or a copy of the head.
pub(super) fn parse(
    buf: &mut BytesMut,
    names: &mut NameMemo,
    head_request: bool,
    head_bytes: HeadBytes,
) -> Result<Option<Head>, Invalid> {
    loop {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buf,
            &mut headers,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD_BYTES {
                    return Err(Invalid::HeadTooLarge);
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(Invalid::TooManyHeaders),
            Err(err) => return Err(Invalid::Head(err)),
        };
        let code = response.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| Invalid::Status(code))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // The gateway never asks to switch protocols.
            return Err(Invalid::UnaskedUpgrade);
        }
        if status.is_informational() {
            // 100 Continue, 103 Early Hints…: interim, the final answer follows.
            buf.advance(len);
            continue;
        }
        let version = match response.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        // The header values share the head's bytes: split off the read buffer (no copy),
        // or copied when the answer is to be kept.
        let mut lines = HeadLines::new();
        let mut fields = FramingFields::default();
        for (index, header) in response.headers.iter().enumerate() {
            let name = names
                .name(index, header.name.as_bytes())
                .map_err(|_| Invalid::HeaderName)?;
            fields.see(&name, header.value);
            let (start, end) = http1::span(buf, header.value);
            lines.push((name, start, end));
        }
        let text = match head_bytes {
            HeadBytes::Shared => buf.split_to(len).freeze(),
            HeadBytes::Own => {
                let text = Bytes::copy_from_slice(&buf[..len]);
                buf.advance(len);
                text
            }
        };
        let mut headers = http1::header_map(&text, &mut lines, 8).ok_or(Invalid::HeaderValue)?;
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = status;
        parts.version = version;
        let framing = fields.framing(status, head_request)?;
        if fields.transfer_encoding {
            // It does not describe what is on the wire.
            headers.remove(CONTENT_LENGTH);
        }
        let keep_alive = framing != ResponseFraming::UntilClose && fields.keeps_alive(version);
        parts.headers = headers;
        return Ok(Some(Head {
            parts,
            framing,
            keep_alive,
        }));
    }
}

/// What the framing fields of a head say, read as its lines go by: one pass, where looking up
/// `Transfer-Encoding`, `Content-Length` and `Connection` in the map would hash each name.
#[derive(Debug, Default)]
struct FramingFields {
    /// Whether there is a `Transfer-Encoding` field.
    transfer_encoding: bool,
    /// Whether its last coding (the last non-empty one of the last readable field) is chunked.
    chunked: bool,
    /// The one length of the `Content-Length` fields, if they agree.
    length: Option<u64>,
    /// Whether a `Content-Length` field is not a list of one repeated number.
    bad_length: bool,
    /// Whether `Connection` lists `close`, and `keep-alive`.
    close: bool,
    keep_alive: bool,
}

impl FramingFields {
    /// Takes in one header line.
    fn see(&mut self, name: &HeaderName, value: &[u8]) {
        if *name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
            // A value that is not text is passed over, as `HeaderValue::to_str` would.
            let text = value
                .iter()
                .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b));
            let last = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|coding| !coding.is_empty());
            if let (true, Some(coding)) = (text, last) {
                self.chunked = coding.eq_ignore_ascii_case(b"chunked");
            }
        } else if *name == CONTENT_LENGTH {
            for part in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let n = std::str::from_utf8(part)
                    .ok()
                    .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|p| p.parse::<u64>().ok());
                match n {
                    // The same length repeated is one length; two different ones are an error.
                    Some(n) if self.length.is_none_or(|seen| seen == n) => self.length = Some(n),
                    _ => self.bad_length = true,
                }
            }
        } else if *name == CONNECTION {
            self.close |= http1::has_token(value, "close");
            self.keep_alive |= http1::has_token(value, "keep-alive");
        }
    }

    /// The body's framing (RFC 9112 §6.3): `Transfer-Encoding` first (its `Content-Length`
    /// is dropped by the caller), then the one `Content-Length`, else until close.
    fn framing(&self, status: StatusCode, head_request: bool) -> Result<ResponseFraming, Invalid> {
        // Interim (1xx) heads were skipped before.
        if head_request || !http1::body_allowed(status) {
            return Ok(ResponseFraming::Empty);
        }
        if self.transfer_encoding {
            return Ok(if self.chunked {
                ResponseFraming::Chunked
            } else {
                ResponseFraming::UntilClose
            });
        }
        if self.bad_length {
            return Err(Invalid::ContentLength);
        }
        Ok(match self.length {
            Some(n) => ResponseFraming::Length(n),
            None => ResponseFraming::UntilClose,
        })
    }

    /// Whether the target keeps the connection open: HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 only with `Connection: keep-alive`.
    fn keeps_alive(&self, version: Version) -> bool {
        if version == Version::HTTP_11 {
            !self.close
        } else {
            self.keep_alive
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
mod tests {
    use super::*;

    fn parse_all(text: &str, head_request: bool) -> (Result<Option<Head>, Invalid>, BytesMut) {
        let mut buf = BytesMut::from(text.as_bytes());
        let parsed = parse(
            &mut buf,
            &mut NameMemo::default(),
            head_request,
            HeadBytes::Shared,
        );
        (parsed, buf)
    }

    fn final_head(text: &str) -> Head {
        match parse_all(text, false).0 {
            Ok(Some(head)) => head,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn a_plain_head_is_parsed_and_consumed() {
        let (parsed, rest) = parse_all(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
            false,
        );
        let head = parsed.unwrap().unwrap();
        assert_eq!(head.parts.status, StatusCode::OK);
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers["content-type"], "text/plain");
        assert_eq!(head.framing, ResponseFraming::Length(5));
        assert!(head.keep_alive);
        assert_eq!(&rest[..], b"hello");
    }

    #[test]
    fn own_head_bytes_keep_nothing_of_the_read_buffer() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Tag: a\r\nContent-Length: 5\r\n\r\nhello";
        for (head_bytes, inside) in [(HeadBytes::Shared, true), (HeadBytes::Own, false)] {
            let mut buf = BytesMut::with_capacity(8192);
            buf.extend_from_slice(text.as_bytes());
            let start = buf.as_ptr() as usize;
            let head = parse(&mut buf, &mut NameMemo::default(), false, head_bytes)
                .unwrap()
                .unwrap();
            assert_eq!(head.parts.headers["content-type"], "text/plain");
            assert_eq!(head.parts.headers["x-tag"], "a");
            assert_eq!(&buf[..], b"hello", "the head is consumed either way");
            for value in head.parts.headers.values() {
                let at = value.as_bytes().as_ptr() as usize;
                assert_eq!(
                    (start..start + 8192).contains(&at),
                    inside,
                    "{head_bytes:?}: {value:?}"
                );
            }
        }
    }

    #[test]
    fn an_incomplete_head_waits_and_consumes_nothing() {
        let (parsed, rest) = parse_all("HTTP/1.1 200 OK\r\nContent-Le", false);
        assert!(matches!(parsed, Ok(None)));
        assert_eq!(rest.len(), 27);
    }

    #[test]
    fn interim_heads_are_skipped() {
        let head = final_head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(head.parts.status, StatusCode::CREATED);
        assert!(!head.parts.headers.contains_key("link"));
    }

    #[test]
    fn an_unasked_switch_is_refused() {
        let (parsed, _) = parse_all("HTTP/1.1 101 Switching Protocols\r\n\r\n", false);
        assert!(matches!(parsed, Err(Invalid::UnaskedUpgrade)));
    }

    #[test]
    fn no_body_for_head_204_and_304() {
        let (parsed, _) = parse_all("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        let head = parsed.unwrap().unwrap();
        assert_eq!(head.framing, ResponseFraming::Empty);
        assert_eq!(head.parts.headers[CONTENT_LENGTH], "9");
        for status in [204, 304] {
            let head = final_head(&format!("HTTP/1.1 {status} X\r\nContent-Length: 3\r\n\r\n"));
            assert_eq!(head.framing, ResponseFraming::Empty);
        }
    }

    #[test]
    fn chunked_wins_over_content_length_which_goes() {
        let head = final_head(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        );
        assert_eq!(head.framing, ResponseFraming::Chunked);
        assert!(!head.parts.headers.contains_key(CONTENT_LENGTH));
        let head = final_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(head.framing, ResponseFraming::UntilClose);
        assert!(!head.keep_alive);
    }

    #[test]
    fn the_last_coding_of_every_field_decides_and_a_bad_length_beside_it_is_ignored() {
        let head = final_head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: ,\r\n\r\n",
        );
        assert_eq!(head.framing, ResponseFraming::Chunked);
        assert!(!head.parts.headers.contains_key(CONTENT_LENGTH));
        let head = final_head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        );
        assert_eq!(head.framing, ResponseFraming::UntilClose);
    }

    #[test]
    fn lengths_must_agree_and_be_digits() {
        let head =
            final_head("HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(head.framing, ResponseFraming::Length(4));
        for bad in ["4, 5", "-1", "+4", "0x4", "", "99999999999999999999999"] {
            let text = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert!(
                matches!(parse_all(&text, false).0, Err(Invalid::ContentLength)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn no_length_means_until_close() {
        let head = final_head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(head.framing, ResponseFraming::UntilClose);
        assert!(!head.keep_alive);
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(
            !final_head("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n")
                .keep_alive
        );
        assert!(!final_head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        let head =
            final_head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(head.keep_alive);
        assert_eq!(head.parts.version, Version::HTTP_10);
    }

    #[test]
    fn malformed_heads_are_errors() {
        for bad in [
            "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 99 Low\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(parse_all(bad, false).0.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_hold() {
        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("x-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert!(matches!(
            parse_all(&many, false).0,
            Err(Invalid::TooManyHeaders)
        ));
        let long = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD_BYTES));
        assert!(matches!(
            parse_all(&long, false).0,
            Err(Invalid::HeadTooLarge)
        ));
    }
}
