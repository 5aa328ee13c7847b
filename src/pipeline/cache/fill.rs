//! The cache's side of the upstream's answer: store it when it may be stored (buffering the
//! body within `max_body`, streaming it otherwise), invalidate on successful writes, and the
//! answers made from stored entries.

use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Response, Version};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::store::{CacheStore, CachedResponse};
use super::{CacheKey, CacheMark, CacheStep, Leader, Lookup, RouteCache, Verdict, policy};
use crate::body::GatewayBody;
use crate::error::{ErrorKind, GatewayError};
use crate::http1;

/// What the step still has to do once the upstream answered. It borrows the route's step
/// (which the request's runtime keeps) rather than cloning its `Arc`s: a clone writes a count
/// that every worker thread writes, moving its cache line between cores on every request.
pub struct Pending<'a> {
    kind: PendingKind<'a>,
}

pub(super) enum PendingKind<'a> {
    /// Not cached: only `X-Cache: BYPASS`.
    Bypass,
    /// A write: a 2xx answer invalidates the path's entries.
    Write {
        cache: &'a RouteCache,
        path: Arc<str>,
    },
    /// A miss (or a refresh): store the answer when it may be stored.
    Fill(Fill<'a>),
}

/// A response to store, once it comes.
pub(super) struct Fill<'a> {
    /// The route's step: its cache and settings.
    pub(super) step: &'a CacheStep,
    pub(super) key: CacheKey,
    pub(super) stamp: u64,
    /// The client asked with HEAD (sent upstream as GET): answer without the body.
    pub(super) head: bool,
    pub(super) verdict: Verdict,
    /// What was stored under the key when the request went upstream, live or not: an
    /// answer that is the same refreshes it in place.
    pub(super) current: Option<Arc<CachedResponse>>,
    /// Held while fetching for others; dropped once stored (or found unstorable).
    pub(super) _leader: Option<Leader<'a>>,
}

impl<'a> Pending<'a> {
    pub(super) fn new(kind: PendingKind<'a>) -> Self {
        Self { kind }
    }

    /// The method to send upstream instead of the client's: GET for a HEAD miss that will
    /// fill GET's entry.
    pub fn upstream_method(&self) -> Option<http::Method> {
        match &self.kind {
            PendingKind::Fill(fill) if fill.head => Some(http::Method::GET),
            _ => None,
        }
    }

    /// Where the answer's header values should live: a copy of their own when the answer
    /// may be stored, so that the entry can keep them as they are (see `Fill::finish`).
    pub fn head_bytes(&self) -> crate::upstream::HeadBytes {
        match &self.kind {
            PendingKind::Fill(_) => crate::upstream::HeadBytes::Own,
            _ => crate::upstream::HeadBytes::Shared,
        }
    }

    /// Handles the upstream's `response`: stores it, or invalidates the path. Returns the
    /// response for the client and the verdict (for `X-Cache`, which the caller adds: see
    /// [`super::CacheMark`]). Fails only when the upstream's body breaks while being read for
    /// storing.
    ///
    /// Not an `async fn`, which would hold the response twice (rust-lang/rust#62958).
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` holds its arguments twice (rust-lang/rust#62958)"
    )]
    pub fn finish(
        self,
        response: Response<GatewayBody>,
    ) -> impl Future<Output = Result<(Response<GatewayBody>, Verdict), GatewayError>> + Send {
        async move {
            match self.kind {
                PendingKind::Bypass => Ok((response, Verdict::Bypass)),
                PendingKind::Write { cache, path } => {
                    if response.status().is_success() {
                        // Boxed: writes are rarer than reads, and the store's future is large.
                        Box::pin(cache.store().invalidate_path(&path)).await;
                    }
                    Ok((response, Verdict::Bypass))
                }
                PendingKind::Fill(fill) => fill.finish(response).await,
            }
        }
    }
}

impl Fill<'_> {
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` holds its arguments twice (rust-lang/rust#62958)"
    )]
    fn finish(
        mut self,
        response: Response<GatewayBody>,
    ) -> impl Future<Output = Result<(Response<GatewayBody>, Verdict), GatewayError>> + Send {
        async move {
            let head = self.head;
            let step = self.step;
            let storable = policy::storable(
                response.status(),
                response.headers(),
                &step.statuses,
                step.ttl,
                step.respect_cache_control,
            );
            let policy::Storable::Store(ttl) = storable else {
                return Ok((without_body(response, head), Verdict::Bypass));
            };
            let declared = response.body().size_hint().upper();
            if declared.is_some_and(|len| len > step.max_body) {
                return Ok((without_body(response, head), Verdict::Bypass));
            }
            let store = step.cache.store();
            // A refetch of an answer already stored (a client's `no-cache`, an entry
            // invalidated by a write) is compared with it as it comes: when it is the same,
            // the entry is refreshed in place, and nothing is copied.
            let current = self.current.take();
            let (mut parts, mut body) = response.into_parts();
            // An HTTP/1.x answer came from the gateway's own client, asked (see
            // `Pending::head_bytes`) for header values in a copy of their head: the entry
            // keeps a clone of the map. Others (HTTP/2, hyper's) have values that share the
            // connection's frame buffers: they are copied beside the body (see `compact`).
            let compacting = !matches!(parts.version, Version::HTTP_10 | Version::HTTP_11);
            let expected = declared
                .and_then(|len| usize::try_from(len).ok())
                .unwrap_or(0);
            let mut read = match &current {
                Some(entry) => Reading::Matching {
                    stored: &entry.body,
                    matched: 0,
                    own: None,
                },
                None => {
                    let values = compacting.then_some(&parts.headers);
                    let (text, body) = copies(values, expected, &[]);
                    Reading::Copying { text, body }
                }
            };
            loop {
                match body.frame().await {
                    None => break,
                    Some(Ok(frame)) => {
                        // Trailers are not kept.
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        if (read.len() + data.len()) as u64 > step.max_body {
                            // Too large to keep: pass on what was read, then the rest.
                            let read = read.into_body(&data);
                            let rest = GatewayBody::prefixed(read, body);
                            let response = Response::from_parts(parts, rest);
                            return Ok((without_body(response, head), Verdict::Bypass));
                        }
                        read.push(compacting.then_some(&parts.headers), expected, data);
                    }
                    Some(Err(err)) => {
                        return Err(GatewayError::new(
                            ErrorKind::BadGateway,
                            "the upstream's response body broke off",
                        )
                        .with_cause(err));
                    }
                }
            }
            let (body, stored) = match read {
                Reading::Matching {
                    stored,
                    matched,
                    own,
                } if matched == stored.len() => {
                    fix_length(&mut parts, declared, matched);
                    if let Some(entry) = &current
                        && entry.same_answer(parts.status, &parts.headers, ttl)
                    {
                        store.refresh(&self.key, entry, self.stamp).await;
                        // The answer's own bytes when they came in one piece: the stored
                        // body's count is written by every worker that serves it.
                        let body = own.unwrap_or_else(|| stored.clone());
                        let Fill { verdict, .. } = self;
                        return Ok((answer(parts, body, head), verdict));
                    }
                    // The stored body, shared: the answer's own bytes may share the
                    // connection's read buffer.
                    let copy = if compacting {
                        compact(&parts.headers, value_text(&parts.headers, 0).freeze())
                    } else {
                        Compacted::kept(&parts.headers)
                    };
                    (stored.clone(), copy)
                }
                read if compacting => {
                    let (body, text) = read.into_copy(Some(&parts.headers));
                    let mut copy = compact(&parts.headers, text);
                    if let Some(length) = fix_length(&mut parts, declared, body.len()) {
                        copy.headers.insert(CONTENT_LENGTH, length);
                    }
                    (body, copy)
                }
                read => {
                    let (body, _) = read.into_copy(None);
                    fix_length(&mut parts, declared, body.len());
                    (body, Compacted::kept(&parts.headers))
                }
            };
            let entry = Arc::new(CachedResponse::new(
                parts.status,
                stored.headers,
                body.clone(),
                ttl,
                stored.weight,
                crate::poll_clock::now(),
                self.stamp,
            ));
            let Fill {
                key,
                verdict,
                _leader: leader,
                ..
            } = self;
            store.insert(key, entry).await;
            // The leader drops here, after the entry is in: those waiting find it.
            drop(leader);
            Ok((answer(parts, body, head), verdict))
        }
    }
}

/// The body of an answer to store, as it is read: compared with the stored entry's body
/// while it is the same (nothing copied), copied from the first difference on (or from the
/// start when nothing is stored).
enum Reading<'e> {
    /// Every byte so far is the stored body's: `matched` of them, which came as `own`
    /// when they came in one piece.
    Matching {
        stored: &'e Bytes,
        matched: usize,
        own: Option<Bytes>,
    },
    /// Copies: of the header values when they are compacted (`text`, made first so that
    /// the values and the body share one allocation; else empty), and of the body read so
    /// far (`body`).
    Copying { text: Bytes, body: BytesMut },
}

impl Reading<'_> {
    /// Bytes of body read.
    fn len(&self) -> usize {
        match self {
            Self::Matching { matched, .. } => *matched,
            Self::Copying { body, .. } => body.len(),
        }
    }

    /// Takes the next piece of the body; `values`: the headers whose values are copied
    /// beside it, when they are.
    fn push(&mut self, values: Option<&HeaderMap>, expected: usize, data: Bytes) {
        match self {
            Self::Matching {
                stored,
                matched,
                own,
            } => {
                let end = *matched + data.len();
                if stored.get(*matched..end) == Some(&data[..]) {
                    *own = (*matched == 0).then_some(data);
                    *matched = end;
                    return;
                }
                let (text, mut body) = copies(values, expected.max(end), &stored[..*matched]);
                body.extend_from_slice(&data);
                *self = Self::Copying { text, body };
            }
            Self::Copying { body, .. } => body.extend_from_slice(&data),
        }
    }

    /// The body read so far and then `data`, for passing on unstored.
    fn into_body(self, data: &[u8]) -> Bytes {
        let mut body = match self {
            Self::Matching {
                stored, matched, ..
            } => {
                let mut body = BytesMut::with_capacity(matched + data.len());
                body.extend_from_slice(&stored[..matched]);
                body
            }
            Self::Copying { body, .. } => body,
        };
        body.extend_from_slice(data);
        body.freeze()
    }

    /// The body read and, when `values` are given, their text, as copies.
    fn into_copy(self, values: Option<&HeaderMap>) -> (Bytes, Bytes) {
        let (text, body) = match self {
            Self::Matching {
                stored, matched, ..
            } => copies(values, matched, &stored[..matched]),
            Self::Copying { text, body } => (text, body),
        };
        (body.freeze(), text)
    }
}

/// Copies of the values of `values` (in the map's order; none without it) and of `read`,
/// the body so far, in one allocation with room for a body of `expected` bytes.
fn copies(values: Option<&HeaderMap>, expected: usize, read: &[u8]) -> (Bytes, BytesMut) {
    let room = expected.max(read.len());
    let (text, mut body) = match values {
        Some(headers) => {
            let mut body = value_text(headers, room);
            (body.split().freeze(), body)
        }
        None => (Bytes::new(), BytesMut::with_capacity(room)),
    };
    body.extend_from_slice(read);
    (text, body)
}

/// A buffer holding the values of `headers` in the map's order, with room for `more` bytes.
fn value_text(headers: &HeaderMap, more: usize) -> BytesMut {
    let text_len: usize = headers.values().map(HeaderValue::len).sum();
    let mut buffer = BytesMut::with_capacity(text_len + more);
    for value in headers.values() {
        buffer.extend_from_slice(value.as_bytes());
    }
    buffer
}

/// Sets the answer's `Content-Length` to the `length` read, unless the upstream declared
/// that length itself (its own field stays then, as a rule); returns the value set.
fn fix_length(
    parts: &mut http::response::Parts,
    declared: Option<u64>,
    length: usize,
) -> Option<HeaderValue> {
    let declared_right =
        declared == Some(length as u64) && parts.headers.contains_key(CONTENT_LENGTH);
    if !http1::body_allowed(parts.status) || declared_right {
        return None;
    }
    let value = HeaderValue::from(length);
    parts.headers.insert(CONTENT_LENGTH, value.clone());
    Some(value)
}

/// The answer for the client: `body`, or none for a HEAD request.
fn answer(parts: http::response::Parts, body: Bytes, head: bool) -> Response<GatewayBody> {
    let body = if head {
        GatewayBody::Empty
    } else {
        GatewayBody::full(body)
    };
    Response::from_parts(parts, body)
}

/// A stored copy of an answer's headers, and what they weigh.
struct Compacted {
    headers: HeaderMap,
    weight: u32,
}

impl Compacted {
    /// A clone of `headers`, whose values share nothing larger than a copy of their own
    /// head (an HTTP/1.1 answer's, read with `HeadBytes::Own`).
    fn kept(headers: &HeaderMap) -> Self {
        Self {
            headers: headers.clone(),
            weight: headers_weight(headers),
        }
    }
}

/// What `headers` weigh in an entry (see [`line_weight`]).
fn headers_weight(headers: &HeaderMap) -> u32 {
    let weight: usize = headers
        .iter()
        .map(|(name, value)| line_weight(name, value))
        .sum();
    u32::try_from(weight).unwrap_or(u32::MAX)
}

/// What one header line weighs in an entry: its name and value, and 32 bytes.
fn line_weight(name: &http::HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len() + 32
}

/// A copy of `headers` whose values live in `text`, which holds each value's bytes in the
/// map's order. hyper's parsed values (an HTTP/2 answer's) share its frame buffers: kept as
/// they are, one stored entry could keep a whole buffer alive, far beyond the weight it is
/// counted for. The copy is a clone with its values replaced: nothing is hashed again.
fn compact(headers: &HeaderMap, text: Bytes) -> Compacted {
    let mut copy = headers.clone();
    let mut at = 0;
    let mut weight = 0usize;
    for (name, value) in copy.iter_mut() {
        let end = at + value.len();
        weight += line_weight(name, value);
        // `text` holds the bytes of a valid value; the original is kept if it somehow
        // does not.
        if text.get(at..end).is_some()
            && let Ok(mut stored) = HeaderValue::from_maybe_shared(text.slice(at..end))
        {
            stored.set_sensitive(value.is_sensitive());
            *value = stored;
        }
        at = end;
    }
    Compacted {
        headers: copy,
        weight: u32::try_from(weight).unwrap_or(u32::MAX),
    }
}

/// The answer made from a stored entry, and its mark (`X-Cache: HIT` and `Age`, added by
/// the caller).
pub(super) fn hit(entry: &CachedResponse, head: bool) -> Lookup<'static> {
    let body = if head {
        GatewayBody::Empty
    } else {
        GatewayBody::full(entry.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status;
    response.headers_mut().clone_from(&entry.headers);
    let age = crate::poll_clock::now()
        .saturating_duration_since(entry.stored_at())
        .as_secs();
    Lookup::Hit(
        response,
        CacheMark {
            verdict: Verdict::Hit,
            age: Some(age),
        },
    )
}

/// `response`, its body dropped for a HEAD request sent upstream as GET.
fn without_body(response: Response<GatewayBody>, head: bool) -> Response<GatewayBody> {
    if head {
        response.map(|_| GatewayBody::Empty)
    } else {
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn compact_headers_are_equal_and_own_their_bytes() {
        // Values sliced from one big buffer, as hyper's parser makes them.
        let read_buffer = Bytes::from(format!("{}text/plainabcvary-me", "x".repeat(8192)));
        let slice = |from: usize, len: usize| {
            HeaderValue::from_maybe_shared(read_buffer.slice(8192 + from..8192 + from + len))
                .expect("value")
        };
        let mut headers = HeaderMap::new();
        headers.insert("content-type", slice(0, 10));
        headers.append("x-multi", slice(10, 3));
        headers.append("x-multi", slice(13, 7));
        let mut secret = HeaderValue::from_static("s3cret");
        secret.set_sensitive(true);
        headers.insert("x-secret", secret);

        let text: Vec<u8> = headers
            .values()
            .flat_map(|v| v.as_bytes().to_vec())
            .collect();
        let Compacted {
            headers: copy,
            weight,
        } = compact(&headers, Bytes::from(text));
        assert_eq!(copy, headers);
        let expected: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        assert_eq!(weight as usize, expected);
        let multi: Vec<_> = copy.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["abc", "vary-me"]);
        assert!(copy["x-secret"].is_sensitive());
        let start = read_buffer.as_ptr() as usize;
        let end = start + read_buffer.len();
        for value in copy.values() {
            let at = value.as_bytes().as_ptr() as usize;
            assert!(
                !(start..end).contains(&at),
                "a value still points into the read buffer"
            );
        }
    }
}
