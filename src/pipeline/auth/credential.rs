//! Where a credential is read from (`header:NAME`, `cookie:NAME`, `query:NAME`), and how it is
//! removed for `hide_credentials`.

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Uri};

use crate::config::Selector;
use crate::pipeline::form;

/// The parts of a request the auth methods read.
#[derive(Clone, Copy)]
pub struct Head<'a> {
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The request URI (for `query:` sources).
    pub uri: &'a Uri,
}

impl<'a> Head<'a> {
    /// The head of `request`.
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        Self {
            headers: request.headers(),
            uri: request.uri(),
        }
    }
}

/// One place a credential may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A header. For `Authorization`, only the given scheme's value counts.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
    /// A query parameter.
    Query(String),
}

impl Source {
    /// The source a `from:` selector names, or `None` for selectors that are no place
    /// (validation has already refused them).
    pub fn from_selector(selector: &Selector) -> Option<Self> {
        match selector {
            Selector::Header(name) => HeaderName::from_bytes(name.0.as_bytes())
                .ok()
                .map(Source::Header),
            Selector::Cookie(name) => Some(Source::Cookie(name.clone())),
            Selector::Query(name) => Some(Source::Query(name.clone())),
            _ => None,
        }
    }

    /// The credential at this source. `scheme` is the `Authorization` scheme that carries it
    /// (`Bearer`); other schemes in that header count as absent.
    pub fn find<'p>(&self, head: Head<'p>, scheme: &str) -> Option<Cow<'p, str>> {
        match self {
            Source::Header(name) => {
                // UTF-8 is checked a word at a time; `to_str` checks each byte, and a token
                // is a few hundred bytes. Whatever is not a credential fails its check later.
                let value = std::str::from_utf8(head.headers.get(name)?.as_bytes())
                    .ok()?
                    .trim();
                let value = if name == AUTHORIZATION {
                    strip_scheme(value, scheme)?
                } else {
                    value
                };
                (!value.is_empty()).then_some(Cow::Borrowed(value))
            }
            Source::Cookie(name) => cookie(head.headers, name).map(Cow::Borrowed),
            Source::Query(name) => query_param(head.uri.query()?, name),
        }
    }

    /// Removes the credential from this source (`hide_credentials`).
    pub fn remove(&self, parts: &mut Parts, scheme: &str) {
        match self {
            Source::Header(name) => {
                if name == AUTHORIZATION {
                    let ours = parts
                        .headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| strip_scheme(v.trim(), scheme).is_some());
                    if !ours {
                        return;
                    }
                }
                parts.headers.remove(name);
            }
            Source::Cookie(name) => remove_cookie(parts, name),
            Source::Query(name) => remove_query_param(parts, name),
        }
    }
}

/// The value after `scheme ` in an `Authorization` value (the scheme is case-insensitive).
pub fn strip_scheme<'v>(value: &'v str, scheme: &str) -> Option<&'v str> {
    // The scheme is a short ASCII word: compared by bytes, without searching the whole value.
    let given = value.as_bytes().get(..scheme.len())?;
    if !given.eq_ignore_ascii_case(scheme.as_bytes())
        || value.as_bytes().get(scheme.len()) != Some(&b' ')
    {
        return None;
    }
    value.get(scheme.len() + 1..).map(str::trim_start)
}

/// The value of cookie `name` in the `Cookie` headers.
pub fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The percent-decoded value of query parameter `name`.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    form::raw_pairs(query)
        .filter(|(k, _)| form::decode(k) == name)
        .map(|(_, v)| form::decode(v))
        .find(|v| !v.is_empty())
}

fn remove_cookie(parts: &mut Parts, name: &str) {
    let kept: Vec<String> = parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(k, _)| k != name))
        .map(str::to_owned)
        .collect();
    parts.headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        parts.headers.insert(COOKIE, value);
    }
}

fn remove_query_param(parts: &mut Parts, name: &str) {
    let Some(query) = parts.uri.query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && form::decode(key) != name
        })
        .collect();
    let path = parts.uri.path();
    let path_and_query = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut builder = Uri::builder().path_and_query(path_and_query);
    if let Some(scheme) = parts.uri.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = parts.uri.authority() {
        builder = builder.authority(authority.clone());
    }
    if let Ok(uri) = builder.build() {
        parts.uri = uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(parts: &Parts) -> Head<'_> {
        Head {
            headers: &parts.headers,
            uri: &parts.uri,
        }
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn bearer_header_only_with_its_scheme() {
        let source = Source::Header(AUTHORIZATION);
        let p = parts("/", &[("authorization", "Bearer abc.def.ghi")]);
        assert_eq!(
            source.find(head(&p), "Bearer").as_deref(),
            Some("abc.def.ghi")
        );
        let p = parts("/", &[("authorization", "bearer   tok")]);
        assert_eq!(source.find(head(&p), "Bearer").as_deref(), Some("tok"));
        let p = parts("/", &[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(source.find(head(&p), "Bearer"), None);
        let mut p = parts("/", &[("authorization", "Basic dXNlcjpwdw==")]);
        source.remove(&mut p, "Bearer");
        assert!(p.headers.contains_key(AUTHORIZATION));
        source.remove(&mut p, "Basic");
        assert!(!p.headers.contains_key(AUTHORIZATION));
    }

    #[test]
    fn the_scheme_is_a_whole_word() {
        assert_eq!(strip_scheme("Bearer t", "Bearer"), Some("t"));
        assert_eq!(strip_scheme("BEARER  t", "Bearer"), Some("t"));
        assert_eq!(strip_scheme("Bearer", "Bearer"), None);
        assert_eq!(strip_scheme("Bearert", "Bearer"), None);
        assert_eq!(strip_scheme("Bearerx t", "Bearer"), None);
        assert_eq!(strip_scheme("Bear t", "Bearer"), None);
        assert_eq!(strip_scheme("Bearer ", "Bearer"), Some(""));
        assert_eq!(strip_scheme("Béarer t", "Bearer"), None);
    }

    #[test]
    fn other_headers_are_raw() {
        let source = Source::Header(HeaderName::from_static("x-api-key"));
        let p = parts("/", &[("x-api-key", "k1")]);
        assert_eq!(source.find(head(&p), "Bearer").as_deref(), Some("k1"));
    }

    #[test]
    fn cookies_found_and_removed() {
        let source = Source::Cookie("access_token".into());
        let mut p = parts("/", &[("cookie", "a=1; access_token=tok; b=2")]);
        assert_eq!(source.find(head(&p), "Bearer").as_deref(), Some("tok"));
        source.remove(&mut p, "Bearer");
        assert_eq!(p.headers[COOKIE], "a=1; b=2");
        let mut p = parts("/", &[("cookie", "access_token=tok")]);
        source.remove(&mut p, "Bearer");
        assert!(!p.headers.contains_key(COOKIE));
    }

    #[test]
    fn query_found_and_removed() {
        let source = Source::Query("api_key".into());
        let mut p = parts("/x?a=1&api_key=s%3Dcret&b=2", &[]);
        assert_eq!(source.find(head(&p), "Bearer").as_deref(), Some("s=cret"));
        source.remove(&mut p, "Bearer");
        assert_eq!(p.uri.to_string(), "/x?a=1&b=2");
        let mut p = parts("/x?api_key=k", &[]);
        source.remove(&mut p, "Bearer");
        assert_eq!(p.uri.to_string(), "/x");
        let p = parts("/x?api_key=", &[]);
        assert_eq!(source.find(head(&p), "Bearer"), None);
    }
}
