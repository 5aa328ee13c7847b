//! `request_id` (SPEC §3.1, always on): keep a valid incoming `X-Request-Id` or make one.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The header that carries the request id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the client's `X-Request-Id` when it is 1–128 printable ASCII
/// characters, else a new UUID v4.
pub fn take(headers: &HeaderMap) -> HeaderValue {
    if let Some(value) = headers.get(&X_REQUEST_ID)
        && is_valid(value.as_bytes())
    {
        return value.clone();
    }
    generate()
}

fn is_valid(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

fn generate() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    // Owned bytes: the id is cloned for the upstream and the response by a reference count,
    // with no second allocation.
    HeaderValue::from_maybe_shared(Bytes::from_owner(buf))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_and_replaces_invalid_ids() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(take(&headers), "abc-123");
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(take(&headers).len(), 36);
        headers.insert(
            &X_REQUEST_ID,
            HeaderValue::from_str(&"a".repeat(129)).expect("ok"),
        );
        assert_eq!(take(&headers).len(), 36);
        assert_eq!(take(&HeaderMap::new()).len(), 36);
    }
}
