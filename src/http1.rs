//! HTTP/1.1 message pieces shared by the gateway's own server loop (`server::h1`) and its
//! upstream client (`upstream::h1`): header maps over a parsed head's bytes, header and chunk
//! lines on the wire, `Connection` tokens, and which responses carry a body.

use bytes::Bytes;
use http::header::CONNECTION;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use smallvec::SmallVec;

/// The header lines of a parsed head: each name, and where its value lies in the head's
/// bytes (start, end). Most heads fit inline.
pub type HeadLines = SmallVec<[(HeaderName, usize, usize); 24]>;

/// The header map of `lines` (taken out; by reference, not to copy the inline array), whose
/// values share `head` (the head's bytes: split off the read buffer, or a copy), with room for
/// `extra` headers more. `None` when a value is not valid.
pub fn header_map(head: &Bytes, lines: &mut HeadLines, extra: usize) -> Option<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(lines.len() + extra);
    for (name, start, end) in lines.drain(..) {
        let value = HeaderValue::from_maybe_shared(head.slice(start..end)).ok()?;
        headers.append(name, value);
    }
    Some(headers)
}

/// Most names a [`NameMemo`] keeps, and most bytes of them.
const MEMO_NAMES: usize = 32;
const MEMO_BYTES: usize = 1024;

/// The header names of the last head read on one connection, with their bytes as they were
/// sent. The next head on the connection mostly repeats them in the same order (the same
/// client, the same service), and comparing bytes costs a fraction of parsing a name again
/// (lower-casing it, matching it against the standard names).
#[derive(Debug, Default)]
pub struct NameMemo {
    /// The names' bytes as sent, one after another.
    raw: Vec<u8>,
    /// Each name, and where its bytes end in `raw`.
    names: Vec<(HeaderName, usize)>,
}

impl NameMemo {
    /// The name of the `index`-th line of a head (lines are asked for in order, from 0),
    /// sent as `bytes`. Errors as [`HeaderName::from_bytes`] does.
    pub fn name(
        &mut self,
        index: usize,
        bytes: &[u8],
    ) -> Result<HeaderName, http::header::InvalidHeaderName> {
        if let Some((name, end)) = self.names.get(index) {
            let start = index
                .checked_sub(1)
                .map_or(0, |before| self.names[before].1);
            if self.raw[start..*end] == *bytes {
                return Ok(name.clone());
            }
        }
        let name = HeaderName::from_bytes(bytes)?;
        // From this line on, the memo follows this head (while it has room).
        if index <= self.names.len() {
            self.names.truncate(index);
            self.raw
                .truncate(self.names.last().map_or(0, |(_, end)| *end));
            if index < MEMO_NAMES && self.raw.len() + bytes.len() <= MEMO_BYTES {
                self.raw.extend_from_slice(bytes);
                self.names.push((name.clone(), self.raw.len()));
            }
        }
        Ok(name)
    }
}

/// Where `part` (a slice of `whole`, as httparse hands them out) lies in `whole`.
pub fn span(whole: &[u8], part: &[u8]) -> (usize, usize) {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    (start, start + part.len())
}

/// Appends the header line `name: value` and its CRLF to `out`. Names and values need no
/// checks: the `http` types admit no CR, LF or NUL.
pub fn push_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    push_line(out, name, value.as_bytes());
}

/// Appends the header line `name: value` and its CRLF to `out`, for a value that is not a
/// `HeaderValue` (digits written on the spot); the caller keeps it free of CR, LF and NUL.
pub fn push_line(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The line that opens a chunk: its size in hex digits (upper case, as hyper writes them),
/// then CRLF. Made on the stack.
pub struct ChunkSize {
    text: [u8; 18],
    start: usize,
}

impl ChunkSize {
    /// The line for a chunk of `len` bytes.
    pub fn new(mut len: usize) -> Self {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut text = [0; 18];
        text[16] = b'\r';
        text[17] = b'\n';
        let mut start = 16;
        loop {
            start -= 1;
            text[start] = HEX[len & 0xf];
            len >>= 4;
            if len == 0 {
                break;
            }
        }
        Self { text, start }
    }

    /// The line's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[self.start..]
    }
}

/// Whether the comma-separated header value `value` lists `token` (ASCII case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether a `Connection` header of `headers` lists `token` (`close`, `keep-alive`).
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .any(|value| has_token(value.as_bytes(), token))
}

/// Whether a response with `status` may carry a body (and so `Content-Length`): not 1xx,
/// 204 or 304 (RFC 9110 §6.4.1).
pub fn body_allowed(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_hex_lines() {
        assert_eq!(ChunkSize::new(0).as_bytes(), b"0\r\n");
        assert_eq!(ChunkSize::new(1).as_bytes(), b"1\r\n");
        assert_eq!(ChunkSize::new(255).as_bytes(), b"FF\r\n");
        assert_eq!(ChunkSize::new(4096).as_bytes(), b"1000\r\n");
        assert_eq!(
            ChunkSize::new(usize::MAX).as_bytes(),
            b"FFFFFFFFFFFFFFFF\r\n"
        );
    }

    #[test]
    fn the_memo_gives_the_parsed_name_for_repeated_and_changed_lines() {
        let mut memo = NameMemo::default();
        let heads: [&[&str]; 4] = [
            &["Host", "Authorization", "X-Custom"],
            &["Host", "Authorization", "X-Custom"],
            &["Host", "accept", "X-Custom", "X-More"],
            &["host", "Accept"],
        ];
        for head in heads {
            for (index, name) in head.iter().enumerate() {
                let got = memo.name(index, name.as_bytes()).unwrap();
                assert_eq!(
                    got,
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    "{name}"
                );
            }
        }
        assert!(memo.name(0, b"bad name").is_err());
        assert!(memo.name(1, b"").is_err());
        // Past its bounds the memo keeps nothing more, and names are still right.
        let long = "x".repeat(MEMO_BYTES);
        assert_eq!(memo.name(0, long.as_bytes()).unwrap().as_str(), long);
        for index in 0..MEMO_NAMES + 4 {
            let name = format!("x-{index}");
            assert_eq!(memo.name(index, name.as_bytes()).unwrap().as_str(), name);
            assert_eq!(memo.name(index, name.as_bytes()).unwrap().as_str(), name);
        }
        assert!(memo.names.len() <= MEMO_NAMES && memo.raw.len() <= MEMO_BYTES);
    }

    #[test]
    fn tokens_are_found_in_lists_whatever_their_case() {
        assert!(has_token(b"keep-alive, Close", "close"));
        assert!(has_token(b" upgrade ", "upgrade"));
        assert!(!has_token(b"closed", "close"));
        let mut headers = HeaderMap::new();
        headers.append(CONNECTION, HeaderValue::from_static("x-hop"));
        headers.append(CONNECTION, HeaderValue::from_static("CLOSE"));
        assert!(connection_has(&headers, "close"));
        assert!(!connection_has(&headers, "keep-alive"));
    }

    #[test]
    fn bodies_are_allowed_but_for_1xx_204_and_304() {
        assert!(body_allowed(StatusCode::OK));
        assert!(body_allowed(StatusCode::NOT_FOUND));
        assert!(!body_allowed(StatusCode::CONTINUE));
        assert!(!body_allowed(StatusCode::NO_CONTENT));
        assert!(!body_allowed(StatusCode::NOT_MODIFIED));
    }
}
