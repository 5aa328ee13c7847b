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
use crate::http1;

/// The names of the rate-limit fields, in the order of [`RateFields`]' values.
static RATE_LIMIT_NAMES: [HeaderName; 5] = [
    HeaderName::from_static("x-ratelimit-limit"),
    HeaderName::from_static("x-ratelimit-remaining"),
    HeaderName::from_static("x-ratelimit-reset"),
    HeaderName::from_static("ratelimit-policy"),
    HeaderName::from_static("ratelimit"),
];

/// The rate-limit fields of one answer: `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
/// `X-RateLimit-Reset`, `RateLimit-Policy` and `RateLimit` (`ITEM;r=REMAINING;t=RESET_IN`),
/// in that order. The numbers are kept as numbers: the own HTTP/1.1 loop writes their digits
/// straight into the head ([`AddedFields::write`]); [`RateFields::values`] makes header
/// values of them for other connections.
#[derive(Debug, Clone)]
pub struct RateFields {
    /// `X-RateLimit-Limit`: the tightest limit's count (the tier's value).
    pub limit: HeaderValue,
    /// `X-RateLimit-Remaining`, and `RateLimit`'s `r`.
    pub remaining: u64,
    /// `X-RateLimit-Reset`: when the limit resets, in Unix seconds.
    pub reset_at: u64,
    /// `RateLimit-Policy` (the tier's value).
    pub policy: HeaderValue,
    /// `RateLimit`'s item: the tightest limit's name, quoted (the tier's value).
    pub item: HeaderValue,
    /// `RateLimit`'s `t`: seconds until the limit resets.
    pub reset_in: u64,
}

impl RateFields {
    /// The values, in the order of the names.
    pub fn values(&self) -> [HeaderValue; 5] {
        let mut rate_limit = Vec::with_capacity(self.item.len() + 32);
        self.push_rate_limit(&mut rate_limit);
        [
            self.limit.clone(),
            HeaderValue::from(self.remaining),
            HeaderValue::from(self.reset_at),
            self.policy.clone(),
            HeaderValue::from_bytes(&rate_limit).unwrap_or_else(|_| HeaderValue::from_static("")),
        ]
    }

    /// Writes the five fields as HTTP/1.1 header lines.
    fn write(&self, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        let [limit, remaining, reset, policy, rate_limit] = &RATE_LIMIT_NAMES;
        http1::push_field(out, limit, &self.limit);
        http1::push_line(out, remaining, digits.format(self.remaining).as_bytes());
        http1::push_line(out, reset, digits.format(self.reset_at).as_bytes());
        http1::push_field(out, policy, &self.policy);
        out.extend_from_slice(rate_limit.as_str().as_bytes());
        out.extend_from_slice(b": ");
        self.push_rate_limit(out);
        out.extend_from_slice(b"\r\n");
    }

    /// `RateLimit`'s value: `ITEM;r=REMAINING;t=RESET_IN`.
    fn push_rate_limit(&self, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(self.item.as_bytes());
        out.extend_from_slice(b";r=");
        out.extend_from_slice(digits.format(self.remaining).as_bytes());
        out.extend_from_slice(b";t=");
        out.extend_from_slice(digits.format(self.reset_in).as_bytes());
    }
}

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
        // Every name here starts with `x`, `r` or `a`: most of an answer's own names are
        // told apart by their first letter, without comparing them to each name here.
        if !matches!(name.as_str().as_bytes().first(), Some(b'x' | b'r' | b'a')) {
            return false;
        }
        *name == X_REQUEST_ID
            || (self.rate_limit.is_some() && RATE_LIMIT_NAMES.iter().any(|n| n == name))
            || self
                .cache
                .as_ref()
                .is_some_and(|(_, age)| *name == X_CACHE || (age.is_some() && *name == AGE))
    }

    /// Writes each field as an HTTP/1.1 header line: the cache's, the rate-limit fields,
    /// then `X-Request-Id`.
    pub fn write(&self, out: &mut Vec<u8>) {
        if let Some((verdict, age)) = &self.cache {
            http1::push_field(out, &X_CACHE, verdict);
            if let Some(age) = age {
                http1::push_field(out, &AGE, age);
            }
        }
        if let Some(fields) = &self.rate_limit {
            fields.write(out);
        }
        http1::push_field(out, &X_REQUEST_ID, &self.request_id);
    }

    /// Puts the fields into `headers`, replacing those of the same names.
    pub fn insert_into(self, headers: &mut HeaderMap) {
        if let Some((verdict, age)) = self.cache {
            cache::insert_fields(headers, verdict, age);
        }
        if let Some(fields) = self.rate_limit {
            for (name, value) in RATE_LIMIT_NAMES.iter().zip(fields.values()) {
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
        RateFields {
            limit: HeaderValue::from_static("10"),
            remaining: 9,
            reset_at: 1_700_000_000,
            policy: HeaderValue::from_static("\"10/1m\";q=10;w=60"),
            item: HeaderValue::from_static("\"10/1m\""),
            reset_in: 60,
        }
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
    fn write_and_insert_into_agree() {
        let mut fields = AddedFields::new(HeaderValue::from_static("id-1"));
        fields.set_rate_limit(rate_fields());
        fields.set_cache(CacheMark {
            verdict: Verdict::Hit,
            age: Some(5),
        });
        let mut written = Vec::new();
        fields.write(&mut written);
        let text = String::from_utf8(written).expect("text");
        let listed: Vec<(String, String)> = text
            .split_terminator("\r\n")
            .map(|line| {
                let (name, value) = line.split_once(": ").expect("a header line");
                (name.to_owned(), value.to_owned())
            })
            .collect();
        let expected = [
            ("x-cache", "HIT"),
            ("age", "5"),
            ("x-ratelimit-limit", "10"),
            ("x-ratelimit-remaining", "9"),
            ("x-ratelimit-reset", "1700000000"),
            ("ratelimit-policy", "\"10/1m\";q=10;w=60"),
            ("ratelimit", "\"10/1m\";r=9;t=60"),
            ("x-request-id", "id-1"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(listed, expected);

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
