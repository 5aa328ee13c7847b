//! The fields the gateway puts on every answer last: `X-Request-Id`, the rate-limit fields
//! and the cache's `X-Cache` and `Age`. They replace any field of the same name the answer
//! has.
//!
//! They are kept beside the answer's header map rather than inserted into it: the own
//! HTTP/1.1 loop writes them straight after the map's fields, which saves hashing each name
//! into the map (http's `HeaderMap` hashes custom names byte by byte). Other connections
//! (HTTP/2, or HTTP/1.1 served by hyper) get them inserted ([`AddedFields::insert_into`]).
//! Requests going upstream have the same arrangement: [`crate::upstream::AddedHeaders`].

use http::header::AGE;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::cache::{self, CacheMark, X_CACHE};
use super::request_id::X_REQUEST_ID;

/// The names of the rate-limit fields, in the order of [`RateFields`]' values.
static RATE_LIMIT_NAMES: [HeaderName; 5] = [
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-reset"),
    HeaderName::from_static("ratelimit-policy"),
    HeaderName::from_static("ratelimit"),
];

/// The rate-limit fields of one answer: `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
/// `X-RateLimit-Reset`, `RateLimit-Policy` and `RateLimit`, in that order.
#[derive(Debug, Clone)]
pub struct RateFields(pub [HeaderValue; 5]);

/// The fields added to one answer.
#[derive(Debug, Clone)]
pub struct AddedFields {
    request_id: HeaderValue,
    rate_limit: Option<RateFields>,
    /// `X-Cache`, and `Age` on a hit.
    cache: Option<(HeaderValue, Option<HeaderValue>)>,
}

impl AddedFields {
    /// The fields of a request with this id (and no rate-limit fields yet).
    pub fn new(request_id: HeaderValue) -> Self {
        Self {
            request_id,
            rate_limit: None,
            cache: None,
        }
    }

    /// Adds the rate-limit fields.
    pub fn set_rate_limit(&mut self, fields: RateFields) {
        self.rate_limit = Some(fields);
    }

    /// Adds the cache's fields.
    pub fn set_cache(&mut self, mark: CacheMark) {
        self.cache = Some(mark.values());
    }

    /// Whether the answer's own field `name` is replaced (and so not sent).
    pub fn replaces(&self, name: &HeaderName) -> bool {
        *name == X_REQUEST_ID
            || (self.rate_limit.is_some() && RATE_LIMIT_NAMES.iter().any(|n| n == name))
            || self
                .cache
                .as_ref()
                .is_some_and(|(_, age)| *name == X_CACHE || (age.is_some() && *name == AGE))
    }

    /// Each field, in the order they are written.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let rate_limit = self
            .rate_limit
            .iter()
            .flat_map(|fields| RATE_LIMIT_NAMES.iter().zip(&fields.0));
        let cache = self.cache.iter().flat_map(|(verdict, age)| {
            std::iter::once((&X_CACHE, verdict)).chain(age.iter().map(|age| (&AGE, age)))
        });
        cache
            .chain(rate_limit)
            .chain(std::iter::once((&X_REQUEST_ID, &self.request_id)))
    }

    /// Puts the fields into `headers`, replacing those of the same names.
    pub fn insert_into(self, headers: &mut HeaderMap) {
        if let Some((verdict, age)) = self.cache {
            cache::insert_fields(headers, verdict, age);
        }
        if let Some(RateFields(values)) = self.rate_limit {
            for (name, value) in RATE_LIMIT_NAMES.iter().zip(values) {
                headers.insert(name.clone(), value);
            }
        }
        headers.insert(X_REQUEST_ID.clone(), self.request_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::cache::Verdict;

    fn rate_fields() -> RateFields {
        RateFields(
            [
                "10",
                "9",
                "1700000000",
                "\"10/1m\";q=10;w=60",
                "\"10/1m\";r=9;t=60",
            ]
            .map(HeaderValue::from_static),
        )
    }

    #[test]
    fn replaces_only_its_own_names() {
        let mut fields = AddedFields::new(HeaderValue::from_static("id-1"));
        assert!(fields.replaces(&X_REQUEST_ID));
        assert!(!fields.replaces(&HeaderName::from_static("x-ratelimit-limit")));
        fields.set_rate_limit(rate_fields());
        for name in &RATE_LIMIT_NAMES {
            assert!(fields.replaces(name), "{name}");
        }
        assert!(!fields.replaces(&http::header::CONTENT_TYPE));
        assert!(!fields.replaces(&HeaderName::from_static("x-ratelimit")));

        assert!(!fields.replaces(&X_CACHE));
        fields.set_cache(CacheMark::forwarded(Verdict::Miss));
        assert!(fields.replaces(&X_CACHE));
        assert!(!fields.replaces(&AGE), "a miss keeps the upstream's Age");
        fields.set_cache(CacheMark {
            verdict: Verdict::Hit,
            age: Some(3),
        });
        assert!(fields.replaces(&AGE));
    }

    #[test]
    fn iter_and_insert_into_agree() {
        let mut fields = AddedFields::new(HeaderValue::from_static("id-1"));
        fields.set_rate_limit(rate_fields());
        fields.set_cache(CacheMark {
            verdict: Verdict::Hit,
            age: Some(5),
        });
        let listed: Vec<(String, String)> = fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
            .collect();
        assert_eq!(listed.len(), 8);
        assert_eq!(listed[0], ("x-cache".into(), "HIT".into()));
        assert_eq!(listed[1], ("age".into(), "5".into()));
        assert_eq!(listed[7], ("x-request-id".into(), "id-1".into()));

        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("upstream-id"));
        headers.insert(&X_CACHE, HeaderValue::from_static("MISS from a proxy"));
        headers.insert(AGE, HeaderValue::from_static("100"));
        headers.append("x-ratelimit-limit", HeaderValue::from_static("5"));
        headers.append("x-ratelimit-limit", HeaderValue::from_static("6"));
        fields.insert_into(&mut headers);
        assert_eq!(headers.len(), 8);
        for (name, value) in &listed {
            let all: Vec<_> = headers.get_all(name.as_str()).iter().collect();
            assert_eq!(all, [value.as_str()], "{name}");
        }
    }
}
