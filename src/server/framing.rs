//! Watching HTTP/1.1 message framing on the bytes a client sends, to catch request heads that
//! carry both `Content-Length` and `Transfer-Encoding` (SPEC §4.1).
//!
//! hyper parses requests itself and, for such a head, silently drops `Content-Length` and
//! reads the body as chunked; the request then arrives without a trace of the conflict. SPEC
//! §4.1 wants it rejected with 400 and the connection closed, as a request smuggling attempt.
//! So the socket wrapper follows the framing of the byte stream — head, then a fixed-length
//! or chunked body, then the next head — looking only at header *names* of each head. It does
//! not parse requests for hyper: on anything it does not understand (an upgrade, HTTP/2, a
//! malformed line) it stops watching and leaves the verdict to hyper's parser.

/// The longest head followed; past it hyper answers 431 on its own.
const MAX_HEAD: usize = 256 * 1024;
/// The longest chunk-size or trailer line followed.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for or reading a request head.
    Head,
    /// Skipping a body of known length.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Reading trailer lines up to the empty one.
    Trailers,
    /// No longer following (upgrade, HTTP/2, something hyper will judge).
    Off,
}

/// The framing follower of one connection.
#[derive(Debug)]
pub(super) struct FramingWatch {
    phase: Phase,
    carry: Vec<u8>,
}

/// What a request head says about its body.
struct HeadFacts {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked: bool,
    leaves_http1: bool,
}

impl FramingWatch {
    pub(super) fn new() -> Self {
        Self {
            phase: Phase::Head,
            carry: Vec::new(),
        }
    }

    /// Follows `bytes`, the next bytes read from the client. Returns true when a head with
    /// both `Content-Length` and `Transfer-Encoding` went by.
    pub(super) fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            match self.phase {
                Phase::Off => return false,
                Phase::Head => match self.take_head(bytes) {
                    Some((facts, used)) => {
                        bytes = &bytes[used..];
                        if facts.content_length.is_some() && facts.transfer_encoding {
                            self.phase = Phase::Off;
                            return true;
                        }
                        self.phase = if facts.leaves_http1 {
                            Phase::Off
                        } else if facts.transfer_encoding {
                            if facts.chunked {
                                Phase::ChunkSize
                            } else {
                                Phase::Off
                            }
                        } else {
                            match facts.content_length {
                                Some(0) | None => Phase::Head,
                                Some(n) => Phase::Fixed(n),
                            }
                        };
                    }
                    None => return false,
                },
                Phase::Fixed(n) => {
                    let skip = n.min(bytes.len() as u64);
                    bytes = &bytes[skip as usize..];
                    self.phase = if n == skip {
                        Phase::Head
                    } else {
                        Phase::Fixed(n - skip)
                    };
                }
                Phase::ChunkSize => match self.take_line(bytes) {
                    Some((line, used)) => {
                        bytes = &bytes[used..];
                        self.phase = match parse_chunk_size(&line) {
                            Some(0) => Phase::Trailers,
                            // The data, then its CRLF.
                            Some(n) => Phase::ChunkData(n + 2),
                            None => Phase::Off,
                        };
                    }
                    None => return false,
                },
                Phase::ChunkData(n) => {
                    let skip = n.min(bytes.len() as u64);
                    bytes = &bytes[skip as usize..];
                    self.phase = if n == skip {
                        Phase::ChunkSize
                    } else {
                        Phase::ChunkData(n - skip)
                    };
                }
                Phase::Trailers => match self.take_line(bytes) {
                    Some((line, used)) => {
                        bytes = &bytes[used..];
                        if line.is_empty() {
                            self.phase = Phase::Head;
                        }
                    }
                    None => return false,
                },
            }
        }
        false
    }

    /// A complete head from the carry and `bytes`: its facts and how much of `bytes` it used.
    fn take_head(&mut self, bytes: &[u8]) -> Option<(HeadFacts, usize)> {
        // Empty lines before a request line are allowed (RFC 9112 §2.2).
        let mut skipped = 0;
        if self.carry.is_empty() {
            while skipped < bytes.len() && (bytes[skipped] == b'\r' || bytes[skipped] == b'\n') {
                skipped += 1;
            }
            if let Some(end) = memchr::memmem::find(&bytes[skipped..], b"\r\n\r\n") {
                let end = skipped + end + 4;
                return Some((inspect(&bytes[skipped..end]), end));
            }
            self.carry.extend_from_slice(&bytes[skipped..]);
            self.check_carry();
            return None;
        }
        let searched = self.carry.len().saturating_sub(3);
        self.carry.extend_from_slice(bytes);
        match memchr::memmem::find(&self.carry[searched..], b"\r\n\r\n") {
            Some(end) => {
                let end = searched + end + 4;
                let facts = inspect(&self.carry[..end]);
                let used = bytes.len() - (self.carry.len() - end);
                self.carry.clear();
                Some((facts, used))
            }
            None => {
                self.check_carry();
                None
            }
        }
    }

    /// A complete line (without CRLF) from the carry and `bytes`, and how much of `bytes` it
    /// used.
    fn take_line(&mut self, bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
        match memchr::memchr(b'\n', bytes) {
            Some(at) => {
                let mut line = std::mem::take(&mut self.carry);
                line.extend_from_slice(&bytes[..at]);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some((line, at + 1))
            }
            None => {
                self.carry.extend_from_slice(bytes);
                if self.carry.len() > MAX_LINE {
                    self.phase = Phase::Off;
                    self.carry = Vec::new();
                }
                None
            }
        }
    }

    fn check_carry(&mut self) {
        if self.carry.len() > MAX_HEAD || self.carry.starts_with(b"PRI * HTTP/2.0") {
            self.phase = Phase::Off;
            self.carry = Vec::new();
        }
    }
}

/// Reads the framing facts of one head (request line and header lines, CRLF-separated).
fn inspect(head: &[u8]) -> HeadFacts {
    let mut facts = HeadFacts {
        content_length: None,
        transfer_encoding: false,
        chunked: false,
        leaves_http1: false,
    };
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', head).chain(std::iter::once(head.len()));
    for (index, end) in ends.enumerate() {
        let line = &head[start..end];
        start = end + 1;
        if index == 0 {
            if line.starts_with(b"CONNECT ") || line.starts_with(b"PRI ") {
                facts.leaves_http1 = true;
            }
            continue;
        }
        // Only three names matter, and they start with `c`, `t` or `u`: most lines are
        // passed over on their first byte.
        if !matches!(line.first(), Some(b'c' | b'C' | b't' | b'T' | b'u' | b'U')) {
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) => facts.content_length = Some(n),
                // hyper rejects it; stop following.
                None => facts.leaves_http1 = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            facts.transfer_encoding = true;
            let last = value.rsplit(|&b| b == b',').next().map(trim);
            facts.chunked = last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            facts.leaves_http1 = true;
        }
    }
    facts
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next().map(trim)?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(parts: &[&[u8]]) -> bool {
        let mut watch = FramingWatch::new();
        parts.iter().any(|p| watch.feed(p))
    }

    #[test]
    fn both_headers_in_any_order_are_caught() {
        assert!(feed_all(&[
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
        assert!(feed_all(&[
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n"
        ]));
    }

    #[test]
    fn heads_split_across_reads_are_followed() {
        assert!(feed_all(&[
            b"POST / HTTP/1.1\r\nContent-Le",
            b"ngth: 4\r\nTransfer-Encoding: chu",
            b"nked\r",
            b"\n\r\n",
        ]));
    }

    #[test]
    fn bodies_are_skipped_not_read_as_heads() {
        // A fixed body and a chunked body whose bytes look like a smuggled head.
        let body = b"X\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut fixed =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        fixed.extend_from_slice(body);
        fixed.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(!feed_all(&[&fixed]));

        let mut chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        chunked.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        chunked.extend_from_slice(body);
        chunked.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
        chunked.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        // Byte by byte, too.
        let parts: Vec<&[u8]> = chunked.chunks(1).collect();
        assert!(!feed_all(&parts));
        assert!(!feed_all(&[&chunked]));

        // And a smuggling head after a chunked body is still caught.
        chunked.extend_from_slice(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(feed_all(&[&chunked]));
    }

    #[test]
    fn upgrades_and_h2_stop_the_watch() {
        let mut watch = FramingWatch::new();
        assert!(!watch.feed(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"));
        assert!(!watch.feed(b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"));
        let mut watch = FramingWatch::new();
        assert!(!watch.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert_eq!(watch.phase, Phase::Off);
    }

    mod props {
        use super::super::FramingWatch;
        use proptest::prelude::*;

        /// A well-formed request whose body may contain anything, head-like text included.
        fn request() -> impl Strategy<Value = Vec<u8>> {
            let body = prop::collection::vec(
                prop_oneof![
                    Just(b"\r\n".to_vec()),
                    Just(b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()),
                    prop::collection::vec(any::<u8>(), 0..40),
                ],
                0..4,
            )
            .prop_map(|parts| parts.concat());
            (any::<bool>(), body, 1usize..5).prop_map(|(chunked, body, pieces)| {
                let mut out = Vec::new();
                if chunked {
                    out.extend_from_slice(
                        b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                    );
                    let step = body.len().div_ceil(pieces).max(1);
                    for chunk in body.chunks(step) {
                        out.extend_from_slice(format!("{:x};ext=1\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                } else {
                    out.extend_from_slice(
                        format!(
                            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    out.extend_from_slice(&body);
                }
                out
            })
        }

        proptest! {
            #[test]
            fn well_formed_streams_never_alarm_and_smuggling_after_them_always_does(
                requests in prop::collection::vec(request(), 1..5),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let stream = requests.concat();
                let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
                points.sort_unstable();
                let mut watch = FramingWatch::new();
                let mut last = 0;
                for point in points.into_iter().chain([stream.len()]) {
                    prop_assert!(!watch.feed(&stream[last..point]));
                    last = point;
                }
                prop_assert!(watch.feed(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"));
            }
        }
    }
}
