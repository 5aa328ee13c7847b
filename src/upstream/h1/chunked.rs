//! Decoding a chunked response body (RFC 9112 §7.1) from the connection's read buffer.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::response::{MAX_HEAD_BYTES, MAX_HEADERS};
use super::{Invalid, take};

/// Longest chunk-size line (with its extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;

/// What one decoding step gave.
#[derive(Debug)]
pub(super) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The trailer fields, which end the body.
    Trailers(HeaderMap),
    /// The body ended (no trailers).
    End,
    /// More bytes must be read first.
    More,
}

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// A chunked body's decoder; it consumes from the buffer only what it decoded.
#[derive(Debug)]
pub(super) struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self { state: State::Size }
    }
}

impl ChunkedDecoder {
    /// Decodes the next piece from the front of `buf`.
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, Invalid> {
        loop {
            match self.state {
                State::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() <= MAX_SIZE_LINE => {
                        return Ok(Decoded::More);
                    }
                    _ => return Err(Invalid::ChunkSize),
                },
                State::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
                    let data = take(buf, n);
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Invalid::ChunkEnd);
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => return self.trailers(buf),
                State::Done => return Ok(Decoded::End),
            }
        }
    }

    /// The trailer section: header lines up to an empty line.
    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, Invalid> {
        if buf.len() < 2 {
            return Ok(Decoded::More);
        }
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            self.state = State::Done;
            return Ok(Decoded::End);
        }
        let mut lines = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
        let (used, fields) = match httparse::parse_headers(buf, &mut lines) {
            Ok(httparse::Status::Complete((used, fields))) => (used, fields),
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD_BYTES => {
                return Ok(Decoded::More);
            }
            Ok(httparse::Status::Partial) => return Err(Invalid::HeadTooLarge),
            Err(err) => return Err(Invalid::Head(err)),
        };
        let mut trailers = HeaderMap::with_capacity(fields.len());
        for field in fields {
            let name =
                HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| Invalid::HeaderName)?;
            let value = HeaderValue::from_bytes(field.value).map_err(|_| Invalid::HeaderValue)?;
            trailers.append(name, value);
        }
        buf.advance(used);
        self.state = State::Done;
        Ok(Decoded::Trailers(trailers))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Feeds `wire` to a decoder in the given piece sizes; returns the body and trailers.
    fn decode_in_pieces(
        wire: &[u8],
        pieces: &[usize],
    ) -> Result<(Vec<u8>, Option<HeaderMap>, usize), Invalid> {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let mut sizes = pieces.iter().cycle();
        let mut body = Vec::new();
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::Trailers(map) => return Ok((body, Some(map), buf.len())),
                Decoded::End => return Ok((body, None, buf.len())),
                Decoded::More => {
                    if fed == wire.len() {
                        return Err(Invalid::ChunkEnd);
                    }
                    let n = (*sizes.next().unwrap_or(&1)).max(1).min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    fn encode(chunks: &[Vec<u8>], trailers: &str) -> Vec<u8> {
        let mut wire = Vec::new();
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            wire.extend_from_slice(format!("{:x};ext=1\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n");
        wire.extend_from_slice(trailers.as_bytes());
        wire.extend_from_slice(b"\r\n");
        wire
    }

    #[test]
    fn a_body_with_trailers() {
        let wire = b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\nnext";
        let (body, trailers, left) = decode_in_pieces(wire, &[wire.len()]).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(trailers.unwrap()["x-sum"], "1");
        assert_eq!(left, 4, "what follows the body stays in the buffer");
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"5\r\nhelloXX0\r\n\r\n"[..],
            b"g\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\nBad Trailer\r\n\r\n",
        ] {
            assert!(decode_in_pieces(bad, &[bad.len()]).is_err(), "{bad:?}");
        }
        let long = format!("1;{}", "e".repeat(MAX_SIZE_LINE + 1));
        assert!(matches!(
            decode_in_pieces(long.as_bytes(), &[long.len()]),
            Err(Invalid::ChunkSize)
        ));
    }

    proptest! {
        #[test]
        fn any_split_of_any_body_decodes_to_the_same_bytes(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6),
            pieces in prop::collection::vec(1usize..40, 1..8),
            with_trailer in any::<bool>(),
        ) {
            let trailer = if with_trailer { "X-T: v\r\n" } else { "" };
            let wire = encode(&chunks, trailer);
            let (body, trailers, left) = decode_in_pieces(&wire, &pieces).unwrap();
            prop_assert_eq!(body, chunks.concat());
            prop_assert_eq!(trailers.is_some(), with_trailer);
            prop_assert_eq!(left, 0);
        }
    }
}
