//! Cache keys: method + normalized path + the varying query parameters, request headers and
//! consumer. Keys are client-chosen data: the stores hash them with a DoS-resistant hasher
//! (std's `RandomState`).

use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method};

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

/// The key of one cached response. `path` is kept apart so that every variant of a path can
/// be found (invalidation, purge by path).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The normalized request path.
    pub path: Arc<str>,
    /// Method, query, header values and consumer, `\0`-separated (a byte no part may hold).
    pub variant: Box<str>,
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
        let mut variant = String::with_capacity(64);
        variant.push_str(if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        });
        variant.push('\0');
        self.push_query(query.unwrap_or_default(), &mut variant);
        for name in &self.headers {
            variant.push('\0');
            let mut values = headers.get_all(name).iter().peekable();
            if values.peek().is_none() {
                // Absent differs from present and empty.
                variant.push('\u{1}');
            }
            for (i, value) in values.enumerate() {
                if i > 0 {
                    variant.push_str(", ");
                }
                variant.push_str(&String::from_utf8_lossy(value.as_bytes()));
            }
        }
        if self.per_consumer {
            variant.push('\0');
            variant.push_str(consumer.unwrap_or("\u{1}"));
        }
        CacheKey {
            path: path.into(),
            variant: variant.into_boxed_str(),
        }
    }

    /// The kept parameters, sorted by name (the order of one name's values is kept).
    fn push_query(&self, query: &str, out: &mut String) {
        if self.query == QueryVary::None || query.is_empty() {
            return;
        }
        let mut pairs: Vec<&str> = query
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
        assert_eq!(a.path.as_ref(), "/x");
    }
}
