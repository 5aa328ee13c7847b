//! The `Cache-Control` rules of the cache (SPEC §3.8): what a request asks of the cache and
//! whether, and for how long, a response may be stored.

use std::time::Duration;

use http::header::{CACHE_CONTROL, PRAGMA, SET_COOKIE};
use http::{HeaderMap, StatusCode};

/// What a request's `Cache-Control` (or `Pragma: no-cache`) asks of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestDirective {
    /// Nothing special: look up, store on a miss.
    Normal,
    /// `no-cache` or `max-age=0`: skip the lookup, but the fresh answer may be stored.
    Refresh,
    /// `no-store`: skip the lookup and store nothing.
    NoStore,
}

/// Reads the request's cache directives (only called when `respect_cache_control` is on), in
/// one pass over the fields: a request's map is small, and scanning it beats looking up
/// `Cache-Control` and `Pragma` one after the other.
pub fn request_directive(headers: &HeaderMap) -> RequestDirective {
    let mut directive = RequestDirective::Normal;
    let mut saw_cache_control = false;
    let mut pragma_no_cache = false;
    for (name, value) in headers {
        if *name == CACHE_CONTROL {
            saw_cache_control = true;
            // A browser's reload sends this alone: no need to split it.
            if value.as_bytes().eq_ignore_ascii_case(b"no-cache") {
                directive = RequestDirective::Refresh;
                continue;
            }
            for (name, arg) in directives(value.as_bytes()) {
                if name.eq_ignore_ascii_case(b"no-store") {
                    return RequestDirective::NoStore;
                }
                if name.eq_ignore_ascii_case(b"no-cache")
                    || (name.eq_ignore_ascii_case(b"max-age")
                        && arg.and_then(delta_seconds) == Some(0))
                {
                    directive = RequestDirective::Refresh;
                }
            }
        } else if *name == PRAGMA {
            pragma_no_cache |= directives(value.as_bytes())
                .any(|(name, _)| name.eq_ignore_ascii_case(b"no-cache"));
        }
    }
    // HTTP/1.0 clients: `Pragma: no-cache` counts only without `Cache-Control`.
    if !saw_cache_control && pragma_no_cache {
        directive = RequestDirective::Refresh;
    }
    directive
}

/// Why a response is not stored (or `Store` with its time to live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storable {
    /// Store it for this long.
    Store(Duration),
    /// Its status is not one the route caches (5xx never are).
    Status,
    /// It sets a cookie.
    SetCookie,
    /// `Cache-Control: private` or `no-store`.
    Private,
    /// `Cache-Control: no-cache`, or `max-age=0`/`s-maxage=0` (with `respect_cache_control`).
    MustRevalidate,
}

/// Decides whether a response may be stored and for how long: `ttl` capped by the response's
/// `s-maxage` (or else `max-age`) when `respect` is on.
pub fn storable(
    status: StatusCode,
    headers: &HeaderMap,
    statuses: &[StatusCode],
    ttl: Duration,
    respect: bool,
) -> Storable {
    if status.is_server_error() || !statuses.contains(&status) {
        return Storable::Status;
    }
    // One pass over the (short) map rather than a lookup for each name.
    let mut max_age = None;
    let mut s_maxage = None;
    let mut no_cache = false;
    let mut private = false;
    for (name, value) in headers {
        if *name == SET_COOKIE {
            return Storable::SetCookie;
        }
        if *name != CACHE_CONTROL || private {
            continue;
        }
        for (name, arg) in directives(value.as_bytes()) {
            let seconds = || arg.and_then(delta_seconds).map(Duration::from_secs);
            if name.eq_ignore_ascii_case(b"no-store") || name.eq_ignore_ascii_case(b"private") {
                private = true;
            } else if name.eq_ignore_ascii_case(b"no-cache") {
                no_cache = true;
            } else if name.eq_ignore_ascii_case(b"s-maxage") {
                // A malformed value counts as 0: stale at once (RFC 9111 §4.2.1).
                s_maxage = Some(seconds().unwrap_or_default());
            } else if name.eq_ignore_ascii_case(b"max-age") {
                max_age = Some(seconds().unwrap_or_default());
            }
        }
    }
    if private {
        return Storable::Private;
    }
    if !respect {
        return Storable::Store(ttl);
    }
    if no_cache {
        return Storable::MustRevalidate;
    }
    match s_maxage.or(max_age) {
        Some(limit) if limit.is_zero() => Storable::MustRevalidate,
        Some(limit) => Storable::Store(ttl.min(limit)),
        None => Storable::Store(ttl),
    }
}

/// The directives of one `Cache-Control` value: `(name, argument)` pairs, trimmed. Read as
/// bytes: directive names are ASCII tokens, and a value is rarely more than one of them.
fn directives(value: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    value.split(|&b| b == b',').filter_map(|part| {
        let part = part.trim_ascii();
        if part.is_empty() {
            return None;
        }
        Some(match part.iter().position(|&b| b == b'=') {
            Some(at) => (part[..at].trim_ascii(), Some(part[at + 1..].trim_ascii())),
            None => (part, None),
        })
    })
}

/// A `max-age`-style argument (delta-seconds, RFC 9111 §1.2.2): digits, quoted or not, a
/// value too large counting as the largest. `None` when malformed.
fn delta_seconds(arg: &[u8]) -> Option<u64> {
    let digits = arg
        .strip_prefix(b"\"")
        .and_then(|a| a.strip_suffix(b"\""))
        .unwrap_or(arg);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    const TTL: Duration = Duration::from_secs(60);

    fn decide(pairs: &[(&'static str, &'static str)], respect: bool) -> Storable {
        storable(
            StatusCode::OK,
            &headers(pairs),
            &[StatusCode::OK, StatusCode::NOT_FOUND],
            TTL,
            respect,
        )
    }

    #[test]
    fn request_directives() {
        let read = |pairs| request_directive(&headers(pairs));
        assert_eq!(read(&[]), RequestDirective::Normal);
        assert_eq!(
            read(&[("cache-control", "max-age=60")]),
            RequestDirective::Normal
        );
        assert_eq!(
            read(&[("cache-control", "No-Cache")]),
            RequestDirective::Refresh
        );
        assert_eq!(
            read(&[("cache-control", "max-age=0")]),
            RequestDirective::Refresh
        );
        assert_eq!(
            read(&[("cache-control", " public , MAX-AGE = 0 ")]),
            RequestDirective::Refresh
        );
        assert_eq!(
            read(&[("cache-control", "no-cache, no-store")]),
            RequestDirective::NoStore
        );
        // A field of `no-cache` alone does not hide a later field's `no-store`.
        assert_eq!(
            read(&[("cache-control", "no-cache"), ("cache-control", "no-store")]),
            RequestDirective::NoStore
        );
        assert_eq!(read(&[("pragma", "no-cache")]), RequestDirective::Refresh);
        assert_eq!(
            read(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]),
            RequestDirective::Normal
        );
    }

    #[test]
    fn statuses_and_errors() {
        let statuses = [StatusCode::OK, StatusCode::INTERNAL_SERVER_ERROR];
        let empty = HeaderMap::new();
        let of = |status| storable(status, &empty, &statuses, TTL, true);
        assert_eq!(of(StatusCode::OK), Storable::Store(TTL));
        assert_eq!(of(StatusCode::CREATED), Storable::Status);
        assert_eq!(of(StatusCode::INTERNAL_SERVER_ERROR), Storable::Status);
    }

    #[test]
    fn never_stored_whatever_the_setting() {
        for respect in [true, false] {
            assert_eq!(
                decide(&[("set-cookie", "a=b")], respect),
                Storable::SetCookie
            );
            assert_eq!(
                decide(&[("cache-control", "private")], respect),
                Storable::Private
            );
            assert_eq!(
                decide(&[("cache-control", "public, no-store")], respect),
                Storable::Private
            );
            assert_eq!(
                decide(
                    &[("cache-control", "private"), ("set-cookie", "a=b")],
                    respect
                ),
                Storable::SetCookie
            );
        }
    }

    #[test]
    fn max_age_caps_the_ttl() {
        let cc = |v: &'static str| decide(&[("cache-control", v)], true);
        assert_eq!(cc("max-age=5"), Storable::Store(Duration::from_secs(5)));
        assert_eq!(cc("max-age=3600"), Storable::Store(TTL));
        assert_eq!(
            cc("max-age=30, s-maxage=10"),
            Storable::Store(Duration::from_secs(10))
        );
        assert_eq!(cc("max-age=0"), Storable::MustRevalidate);
        assert_eq!(cc("max-age=junk"), Storable::MustRevalidate);
        assert_eq!(cc("max-age=\"7\""), Storable::Store(Duration::from_secs(7)));
        assert_eq!(cc("max-age=+7"), Storable::MustRevalidate);
        assert_eq!(cc("max-age=99999999999999999999999"), Storable::Store(TTL));
        assert_eq!(cc("no-cache"), Storable::MustRevalidate);
        assert_eq!(
            decide(&[("cache-control", "no-cache, max-age=5")], false),
            Storable::Store(TTL)
        );
    }
}
