//! The cache's side of the upstream's answer: store it when it may be stored (buffering the
//! body within `max_body`, streaming it otherwise), invalidate on successful writes, and the
//! answers made from stored entries.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::header::{AGE, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::store::{CacheStore, CachedResponse};
use super::{CacheKey, Leader, RouteCache, Verdict, X_CACHE, policy};
use crate::body::GatewayBody;
use crate::error::{ErrorKind, GatewayError};
use crate::http1;

/// What the step still has to do once the upstream answered.
pub struct Pending {
    kind: PendingKind,
}

pub(super) enum PendingKind {
    /// Not cached: only `X-Cache: BYPASS`.
    Bypass,
    /// A write: a 2xx answer invalidates the path's entries.
    Write {
        cache: Arc<RouteCache>,
        path: Arc<str>,
    },
    /// A miss (or a refresh): store the answer when it may be stored.
    Fill(Box<Fill>),
}

/// A response to store, once it comes.
pub(super) struct Fill {
    pub(super) cache: Arc<RouteCache>,
    pub(super) key: CacheKey,
    pub(super) stamp: u64,
    /// The client asked with HEAD (sent upstream as GET): answer without the body.
    pub(super) head: bool,
    pub(super) verdict: Verdict,
    pub(super) statuses: Arc<[StatusCode]>,
    pub(super) ttl: Duration,
    pub(super) max_body: u64,
    pub(super) respect_cache_control: bool,
    /// Held while fetching for others; dropped once stored (or found unstorable).
    pub(super) _leader: Option<Leader>,
}

impl Pending {
    pub(super) fn new(kind: PendingKind) -> Self {
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

    /// Handles the upstream's `response`: stores it, or invalidates the path, and marks it
    /// with `X-Cache`. Returns the response for the client and the verdict. Fails only when
    /// the upstream's body breaks while being read for storing.
    pub async fn finish(
        self,
        mut response: Response<GatewayBody>,
    ) -> Result<(Response<GatewayBody>, Verdict), GatewayError> {
        match self.kind {
            PendingKind::Bypass => Ok((mark(response, Verdict::Bypass), Verdict::Bypass)),
            PendingKind::Write { cache, path } => {
                if response.status().is_success() {
                    // Boxed: writes are rarer than reads, and the store's future is large.
                    Box::pin(cache.store().invalidate_path(&path)).await;
                }
                response
                    .headers_mut()
                    .insert(X_CACHE.clone(), bypass_value());
                Ok((response, Verdict::Bypass))
            }
            PendingKind::Fill(fill) => fill.finish(response).await,
        }
    }
}

impl Fill {
    async fn finish(
        self,
        response: Response<GatewayBody>,
    ) -> Result<(Response<GatewayBody>, Verdict), GatewayError> {
        let head = self.head;
        let storable = policy::storable(
            response.status(),
            response.headers(),
            &self.statuses,
            self.ttl,
            self.respect_cache_control,
        );
        let policy::Storable::Store(ttl) = storable else {
            return Ok((answer(response, Verdict::Bypass, head), Verdict::Bypass));
        };
        let declared = response.body().size_hint().upper();
        if declared.is_some_and(|len| len > self.max_body) {
            return Ok((answer(response, Verdict::Bypass, head), Verdict::Bypass));
        }
        let (mut parts, mut body) = response.into_parts();
        // A copy, not the frames themselves: a frame may share a connection's whole read
        // buffer, which would then live as long as the entry, unweighed.
        let mut buffer = BytesMut::with_capacity(
            declared
                .and_then(|len| usize::try_from(len).ok())
                .unwrap_or(0),
        );
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    // Trailers are not kept.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if (buffer.len() + data.len()) as u64 > self.max_body {
                        // Too large to keep: pass on what was read, then the rest.
                        buffer.extend_from_slice(&data);
                        let rest = GatewayBody::prefixed(buffer.freeze(), body);
                        let response = Response::from_parts(parts, rest);
                        return Ok((answer(response, Verdict::Bypass, head), Verdict::Bypass));
                    }
                    buffer.extend_from_slice(&data);
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
        let body = buffer.freeze();
        // The upstream's `Content-Length` stays when it is the length read (its own, as a
        // rule); otherwise it is set to what is stored.
        let declared_right =
            declared == Some(body.len() as u64) && parts.headers.contains_key(CONTENT_LENGTH);
        if http1::body_allowed(parts.status) && !declared_right {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let entry = Arc::new(CachedResponse {
            status: parts.status,
            headers: compact(&parts.headers),
            body: body.clone(),
            stored_at: Instant::now(),
            ttl,
            stamp: self.stamp,
        });
        self.cache.store().insert(self.key, entry).await;
        // `self._leader` drops here, after the entry is in: those waiting find it.
        let body = if head {
            GatewayBody::Empty
        } else {
            GatewayBody::full(body)
        };
        let response = Response::from_parts(parts, body);
        Ok((mark(response, self.verdict), self.verdict))
    }
}

/// A copy of `headers` whose values live in one buffer of their own. hyper's parsed values
/// share the connection's read buffer (8 KiB and up): kept as they are, one stored entry
/// could keep that whole buffer alive, far beyond the weight it is counted for.
fn compact(headers: &HeaderMap) -> HeaderMap {
    let total = headers.values().map(HeaderValue::len).sum();
    let mut text = BytesMut::with_capacity(total);
    for value in headers.values() {
        text.extend_from_slice(value.as_bytes());
    }
    let text = text.freeze();
    // Room for the headers added on the way out (`X-Cache`, rate-limit fields, the request
    // id): the answer's map is not grown again.
    let mut copy = HeaderMap::with_capacity(headers.len() + 8);
    let mut at = 0;
    for (name, value) in headers {
        let end = at + value.len();
        // The bytes were a valid value already; the original is the fallback all the same.
        let mut stored =
            HeaderValue::from_maybe_shared(text.slice(at..end)).unwrap_or_else(|_| value.clone());
        stored.set_sensitive(value.is_sensitive());
        copy.append(name.clone(), stored);
        at = end;
    }
    copy
}

/// The answer made from a stored entry, with `X-Cache: HIT` and `Age`.
pub(super) fn hit_response(entry: &CachedResponse, head: bool) -> Response<GatewayBody> {
    let body = if head {
        GatewayBody::Empty
    } else {
        GatewayBody::full(entry.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status;
    let headers = response.headers_mut();
    headers.clone_from(&entry.headers);
    headers.insert(X_CACHE.clone(), HeaderValue::from_static("HIT"));
    let age = Instant::now()
        .saturating_duration_since(entry.stored_at)
        .as_secs();
    headers.insert(AGE, HeaderValue::from(age));
    response
}

/// `response` with its verdict, its body dropped for a HEAD request sent upstream as GET.
fn answer(response: Response<GatewayBody>, verdict: Verdict, head: bool) -> Response<GatewayBody> {
    let response = if head {
        response.map(|_| GatewayBody::Empty)
    } else {
        response
    };
    mark(response, verdict)
}

fn mark(mut response: Response<GatewayBody>, verdict: Verdict) -> Response<GatewayBody> {
    response
        .headers_mut()
        .insert(X_CACHE.clone(), HeaderValue::from_static(verdict.as_str()));
    response
}

fn bypass_value() -> HeaderValue {
    HeaderValue::from_static("BYPASS")
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

        let copy = compact(&headers);
        assert_eq!(copy, headers);
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
