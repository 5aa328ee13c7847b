//! Cache keys: method + normalized path + the varying query parameters, request headers and
//! consumer. Keys are client-chosen data: each key is hashed once, when it is built, with a
//! hasher seeded at random once per process (foldhash's quality variant, the seeded hash
//! hashbrown's tables rely on against chosen keys), and the maps it goes through hash only
//! that digest.

use std::borrow::Cow;
use std::cell::RefCell;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};

use http::{HeaderMap, HeaderName, Method};
use smallvec::SmallVec;

/// Which query parameters are part of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryVary {
    /// Every parameter.
    All,
    /// None: the query is ignored.
    None,
    /// Only these names.
    Only(Vec<String>),
}

/// How a route builds its keys, compiled from the `cache` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// The query parameters in the key.
    pub query: QueryVary,
    /// Request headers whose values are in the key.
    pub headers: Vec<HeaderName>,
    /// Whether the consumer is in the key.
    pub per_consumer: bool,
}

/// The key of one cached response: the path, then its variant (method, query, header values
/// and consumer, `\0`-separated: a byte no part may hold), in one shared text. The path is
/// kept apart so that every variant of a path can be found (invalidation, purge by path).
#[derive(Debug, Clone)]
pub struct CacheKey {
    /// The path, then the variant.
    text: Arc<str>,
    /// Where the variant starts in `text`.
    split: usize,
    /// The keyed hash of `text` and `split`, computed once.
    digest: u64,
}

thread_local! {
    /// Each worker's buffer for building key texts.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The scratch buffer is given back when a key made it larger than this.
const MAX_SCRATCH: usize = 16 * 1024;

/// The process's seeded hasher for cache keys. foldhash rather than std's SipHash: a key's
/// digest was a tenth of the cache's work on a miss with SipHash, and the seed is what keeps
/// clients from choosing colliding keys.
static KEY_HASHER: LazyLock<foldhash::quality::RandomState> =
    LazyLock::new(foldhash::quality::RandomState::default);

impl CacheKey {
    /// The key whose text is `text`, the path being its first `split` bytes.
    fn of_text(text: &str, split: usize) -> Self {
        let digest = KEY_HASHER.hash_one((text, split));
        Self {
            text: text.into(),
            split,
            digest,
        }
    }

    /// The normalized request path.
    pub fn path(&self) -> &str {
        &self.text[..self.split]
    }

    /// Method, query, header values and consumer, `\0`-separated.
    pub fn variant(&self) -> &str {
        &self.text[self.split..]
    }

    /// The bytes the key holds, for the entry's weight.
    pub fn weight(&self) -> usize {
        self.text.len()
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest && self.split == other.split && self.text == other.text
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

/// Hashes [`CacheKey`]s for the store's tables: a key's digest is already a seeded hash of
/// its text (clients choose keys), so it is taken as it is instead of being hashed again.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, digest: u64) {
        self.0 = digest;
    }

    /// Not used by [`CacheKey`]; mixes any other input in all the same.
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

/// Builds [`DigestHasher`]s.
pub type DigestState = std::hash::BuildHasherDefault<DigestHasher>;

/// `bytes` as text, invalid sequences replaced: `String::from_utf8_lossy`, with the usual
/// case (valid UTF-8) checked a word at a time first.
fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

impl KeySpec {
    /// The key of a request. HEAD shares GET's entries.
    pub fn key(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        consumer: Option<&str>,
    ) -> CacheKey {
        // The text is built in the worker's scratch `String` (plain copies, no UTF-8 check
        // at the end, no allocation once it has grown), then copied once into the key's
        // shared text.
        SCRATCH.with_borrow_mut(|text| {
            text.clear();
            self.write_text(text, method, path, query, headers, consumer);
            let key = CacheKey::of_text(text, path.len());
            if text.capacity() > MAX_SCRATCH {
                // A rare huge key does not stay with the worker.
                *text = String::new();
            }
            key
        })
    }

    /// Writes the key's text into `text`: path, method, the kept query, the `vary_headers`
    /// values and the consumer.
    fn write_text(
        &self,
        text: &mut String,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        consumer: Option<&str>,
    ) {
        text.push_str(path);
        text.push_str(if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        });
        text.push('\0');
        self.push_query(query.unwrap_or_default(), text);
        for name in &self.headers {
            text.push('\0');
            let mut values = headers.get_all(name).iter().peekable();
            if values.peek().is_none() {
                // Absent differs from present and empty.
                text.push('\u{1}');
            }
            for (i, value) in values.enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(&utf8_lossy(value.as_bytes()));
            }
        }
        if self.per_consumer {
            text.push('\0');
            text.push_str(consumer.unwrap_or("\u{1}"));
        }
    }

    /// The kept parameters, sorted by name (the order of one name's values is kept).
    fn push_query(&self, query: &str, out: &mut String) {
        if self.query == QueryVary::None || query.is_empty() {
            return;
        }
        let mut pairs: SmallVec<[&str; 8]> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|pair| match &self.query {
                QueryVary::Only(names) => {
                    let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
                    names.iter().any(|n| n == name)
                }
                _ => true,
            })
            .collect();
        pairs.sort_by_key(|pair| pair.split_once('=').map_or(*pair, |(n, _)| n));
        for (i, pair) in pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(pair);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn tables_place_keys_by_their_digest() {
        let spec = spec(QueryVary::All);
        let headers = HeaderMap::new();
        let one = spec.key(&Method::GET, "/a", Some("x=1"), &headers, None);
        let two = spec.key(&Method::GET, "/a", Some("x=2"), &headers, None);
        let state = DigestState::default();
        assert_eq!(state.hash_one(&one), one.digest);
        assert_eq!(state.hash_one(&two), two.digest);
        assert_ne!(one.digest, two.digest);
    }

    fn spec(query: QueryVary) -> KeySpec {
        KeySpec {
            query,
            headers: vec![HeaderName::from_static("accept-language")],
            per_consumer: false,
        }
    }

    fn key(spec: &KeySpec, method: Method, query: Option<&str>, lang: Option<&str>) -> CacheKey {
        let mut headers = HeaderMap::new();
        if let Some(lang) = lang {
            headers.insert(
                "accept-language",
                HeaderValue::from_str(lang).expect("value"),
            );
        }
        spec.key(&method, "/items", query, &headers, None)
    }

    #[test]
    fn query_order_does_not_matter() {
        let all = spec(QueryVary::All);
        assert_eq!(
            key(&all, Method::GET, Some("b=2&a=1"), None),
            key(&all, Method::GET, Some("a=1&b=2"), None)
        );
        assert_ne!(
            key(&all, Method::GET, Some("a=1"), None),
            key(&all, Method::GET, Some("a=2"), None)
        );
        // Values of one name keep their order.
        assert_ne!(
            key(&all, Method::GET, Some("a=1&a=2"), None),
            key(&all, Method::GET, Some("a=2&a=1"), None)
        );
        assert_eq!(
            key(&all, Method::GET, Some("&a=1&"), None),
            key(&all, Method::GET, Some("a=1"), None)
        );
    }

    #[test]
    fn query_none_and_only() {
        let none = spec(QueryVary::None);
        assert_eq!(
            key(&none, Method::GET, Some("a=1"), None),
            key(&none, Method::GET, None, None)
        );
        let only = spec(QueryVary::Only(vec!["page".into()]));
        assert_eq!(
            key(&only, Method::GET, Some("page=2&utm=x"), None),
            key(&only, Method::GET, Some("utm=y&page=2"), None)
        );
        assert_ne!(
            key(&only, Method::GET, Some("page=2"), None),
            key(&only, Method::GET, Some("page=3"), None)
        );
    }

    #[test]
    fn head_shares_get_and_headers_vary() {
        let all = spec(QueryVary::All);
        assert_eq!(
            key(&all, Method::HEAD, None, None),
            key(&all, Method::GET, None, None)
        );
        assert_ne!(
            key(&all, Method::GET, None, Some("fr")),
            key(&all, Method::GET, None, Some("en"))
        );
        assert_ne!(
            key(&all, Method::GET, None, Some("")),
            key(&all, Method::GET, None, None)
        );
    }

    #[test]
    fn consumers_apart_when_per_consumer() {
        let mut per = spec(QueryVary::All);
        per.per_consumer = true;
        let headers = HeaderMap::new();
        let a = per.key(&Method::GET, "/x", None, &headers, Some("alice"));
        let b = per.key(&Method::GET, "/x", None, &headers, Some("bob"));
        let anonymous = per.key(&Method::GET, "/x", None, &headers, None);
        assert_ne!(a, b);
        assert_ne!(a, anonymous);
        assert_eq!(a.path(), "/x");
        // No query, `accept-language` absent, then the consumer.
        assert_eq!(a.variant(), "GET\0\0\u{1}\0alice");
        assert_eq!(CacheKey::of_text("/xGET\0\0\u{1}\0alice", 2), a);
    }
}
