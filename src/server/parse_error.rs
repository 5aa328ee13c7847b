//! hyper answers the requests it cannot parse (a garbage request line, a header line without a
//! colon, a head past its buffer) itself, with a bare status line and no body, before the
//! pipeline ever sees them. SPEC §4.2 wants every error the gateway makes to be JSON, so the
//! socket wrapper recognizes those canned answers on their way out and sends the JSON error of
//! [`GatewayError`] in their place.
//!
//! A canned answer is told apart from every other response by its missing `x-request-id`:
//! the pipeline puts one on every response it sends.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ErrorKind, GatewayError};

/// Whether `written` is hyper's own 4xx answer: a 4xx head without `x-request-id` (header
/// names go out in lower case).
pub(super) fn is_canned(written: &[u8]) -> bool {
    if written.len() < 13
        || !(written.starts_with(b"HTTP/1.1 4") || written.starts_with(b"HTTP/1.0 4"))
    {
        return false;
    }
    match memchr::memmem::find(written, b"\r\n\r\n") {
        Some(end) => memchr::memmem::find(&written[..end], b"\r\nx-request-id:").is_none(),
        None => false,
    }
}

/// The JSON replacement for `written` when it is hyper's own 4xx answer, else `None`.
pub(super) fn replacement(written: &[u8]) -> Option<Bytes> {
    if !is_canned(written) {
        return None;
    }
    let error = if &written[9..12] == b"431" {
        GatewayError::new(
            ErrorKind::HeadersTooLarge,
            "request headers exceed the size limit",
        )
    } else {
        GatewayError::bad_request("malformed HTTP request")
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let response = error.closing().into_response(&request_id);
    let body = response.body().clone_full().unwrap_or_default();
    let mut out = BytesMut::with_capacity(256 + body.len());
    out.put_slice(format!("HTTP/1.1 {}\r\n", response.status()).as_bytes());
    for (name, value) in response.headers() {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(
        format!(
            "content-length: {}\r\nx-request-id: {request_id}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.put_slice(&body);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_answers_become_json() {
        let canned = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = replacement(canned).expect("replaced");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("content-type: application/json\r\n"));
        assert!(text.contains("connection: close\r\n"));
        assert!(
            text.ends_with("\"}}") || text.contains("\"code\":\"bad_request\""),
            "{text}"
        );
        let canned = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let text = String::from_utf8_lossy(&replacement(canned).expect("replaced")).into_owned();
        assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
    }

    #[test]
    fn pipeline_responses_are_left_alone() {
        let ours = b"HTTP/1.1 404 Not Found\r\nx-request-id: abc\r\ncontent-length: 2\r\n\r\n{}";
        assert!(replacement(ours).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00").is_none());
    }
}
