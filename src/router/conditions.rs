//! The non-path conditions of a route: methods, hosts, headers and query parameters.

use http::{HeaderName, Method};

use super::RequestView;
use super::normalize::escape_at;

/// The standard methods, in the order of their bit in [`MethodSet::mask`]; alphabetical, so
/// that an `Allow` value built from the mask is sorted.
const STANDARD: [Method; 9] = [
    Method::CONNECT,
    Method::DELETE,
    Method::GET,
    Method::HEAD,
    Method::OPTIONS,
    Method::PATCH,
    Method::POST,
    Method::PUT,
    Method::TRACE,
];
const GET_BIT: u16 = 1 << 2;
const HEAD_BIT: u16 = 1 << 3;

/// A set of methods: a bit per standard method, extension methods listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MethodSet {
    mask: u16,
    extensions: Vec<Method>,
}

impl MethodSet {
    /// The methods a route accepts: those listed, plus HEAD when GET is listed.
    pub(crate) fn accepted(methods: &[Method]) -> Self {
        let mut set = Self::default();
        for method in methods {
            set.insert(method);
        }
        if set.mask & GET_BIT != 0 {
            set.mask |= HEAD_BIT;
        }
        set
    }

    fn insert(&mut self, method: &Method) {
        match STANDARD.iter().position(|m| m == method) {
            Some(bit) => self.mask |= 1 << bit,
            None if !self.extensions.contains(method) => self.extensions.push(method.clone()),
            None => {}
        }
    }

    fn contains(&self, method: &Method) -> bool {
        match STANDARD.iter().position(|m| m == method) {
            Some(bit) => self.mask & (1 << bit) != 0,
            None => self.extensions.contains(method),
        }
    }

    fn intersects(&self, other: &Self) -> bool {
        self.mask & other.mask != 0 || self.extensions.iter().any(|m| other.extensions.contains(m))
    }

    pub(crate) fn union(&mut self, other: &Self) {
        self.mask |= other.mask;
        for method in &other.extensions {
            self.insert(method);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.mask == 0 && self.extensions.is_empty()
    }

    /// The set as an `Allow` header value: methods sorted by name, comma separated.
    pub(crate) fn to_allow_value(&self) -> String {
        let mut names: Vec<&str> = STANDARD
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.mask & (1 << bit) != 0)
            .map(|(_, m)| m.as_str())
            .chain(self.extensions.iter().map(Method::as_str))
            .collect();
        names.sort_unstable();
        names.join(", ")
    }
}

/// One entry of a route's `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// An exact name, lowercase.
    Exact(Box<str>),
    /// `*.example.com`, stored as the lowercase suffix `.example.com`.
    Wildcard(Box<str>),
}

impl HostPattern {
    pub(crate) fn parse(host: &str) -> Result<Self, String> {
        let lower = host.trim_end_matches('.').to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| !label.is_empty())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return Err(format!(
                "invalid host `{host}`: use a name like `api.example.com` or `*.example.com`, without a port"
            ));
        }
        Ok(if wildcard {
            Self::Wildcard(format!(".{name}").into())
        } else {
            Self::Exact(name.into())
        })
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host.eq_ignore_ascii_case(name),
            Self::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }

    /// True when some host name matches both patterns.
    fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Exact(name), wildcard @ Self::Wildcard(_))
            | (wildcard @ Self::Wildcard(_), Self::Exact(name)) => wildcard.matches(name),
            (Self::Wildcard(a), Self::Wildcard(b)) => {
                a.ends_with(b.as_ref()) || b.ends_with(a.as_ref())
            }
        }
    }
}

/// Everything besides the path that a request must satisfy to be served by a route.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conditions {
    /// `None`: every method.
    pub(crate) methods: Option<MethodSet>,
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) headers: Vec<(HeaderName, Box<str>)>,
    pub(crate) query: Vec<(Box<str>, Box<str>)>,
}

/// How a request fared against a route's conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Match,
    /// Everything matched except the method: a candidate for 405.
    MethodOnly,
    NoMatch,
}

impl Conditions {
    /// True when the route has any condition; such a route beats an unconditional one.
    pub(crate) fn any(&self) -> bool {
        self.methods.is_some()
            || !self.hosts.is_empty()
            || !self.headers.is_empty()
            || !self.query.is_empty()
    }

    /// Checks a request. Its host is stripped of the port only when the route names hosts.
    pub(crate) fn check(&self, req: &RequestView<'_>) -> Outcome {
        let others = (self.hosts.is_empty()
            || req
                .host
                .map(strip_port)
                .is_some_and(|h| self.hosts.iter().any(|p| p.matches(h))))
            && self.headers.iter().all(|(name, value)| {
                req.headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.as_bytes() == value.as_bytes())
            })
            && self
                .query
                .iter()
                .all(|(name, value)| query_has(req.query, name, value));
        match (others, &self.methods) {
            (false, _) => Outcome::NoMatch,
            (true, Some(methods)) if !methods.contains(req.method) => Outcome::MethodOnly,
            (true, _) => Outcome::Match,
        }
    }

    /// True when one request could satisfy both routes' conditions: methods intersect (`None`
    /// is every method), both host lists could match one host (empty is any host), and no
    /// header or query parameter is required by both with different values.
    pub(crate) fn overlaps(&self, other: &Self) -> bool {
        let methods = match (&self.methods, &other.methods) {
            (Some(a), Some(b)) => a.intersects(b),
            _ => true,
        };
        let hosts = self.hosts.is_empty()
            || other.hosts.is_empty()
            || self
                .hosts
                .iter()
                .any(|a| other.hosts.iter().any(|b| a.overlaps(b)));
        methods
            && hosts
            && compatible(&self.headers, &other.headers)
            && compatible(&self.query, &other.query)
    }
}

/// True when no name is required by both lists with different values.
fn compatible<K: PartialEq, V: PartialEq>(a: &[(K, V)], b: &[(K, V)]) -> bool {
    a.iter().all(|(name, value)| {
        b.iter()
            .all(|(b_name, b_value)| name != b_name || value == b_value)
    })
}

/// The request's host name without port or trailing dot (`[::1]:8080` → `[::1]`).
pub(crate) fn strip_port(host: &str) -> &str {
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// True when the query string has parameter `name` with value `value`, both compared after
/// form decoding (`%XX` escapes and `+` as space).
fn query_has(query: Option<&str>, name: &str, value: &str) -> bool {
    query.is_some_and(|query| {
        query.split('&').any(|pair| {
            let (key, val) = pair.split_once('=').unwrap_or((pair, ""));
            decoded_eq(key, name) && decoded_eq(val, value)
        })
    })
}

/// Compares form-decoded `raw` with `expected` without allocating.
fn decoded_eq(raw: &str, expected: &str) -> bool {
    let raw = raw.as_bytes();
    let mut expected = expected.bytes();
    let mut i = 0;
    while i < raw.len() {
        let byte = match raw[i] {
            b'%' => match escape_at(raw, i) {
                Some(byte) => {
                    i += 2;
                    byte
                }
                None => b'%',
            },
            b'+' => b' ',
            byte => byte,
        };
        if expected.next() != Some(byte) {
            return false;
        }
        i += 1;
    }
    expected.next().is_none()
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;
