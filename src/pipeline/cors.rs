//! `cors` (SPEC §3.3): preflights answered by the gateway (before `auth`, never reaching the
//! service), and CORS headers on the route's responses for allowed origins.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::body::GatewayBody;
use crate::config;

/// Which origins are allowed.
#[derive(Debug, Clone)]
enum Origins {
    /// `"*"`: any origin (never with credentials).
    Any,
    /// Listed origins; `https://*.example.com` entries match any subdomain.
    List(Vec<OriginPattern>),
}

/// One allowed origin: exact, or `scheme://*.suffix[:port]`.
#[derive(Debug, Clone)]
enum OriginPattern {
    Exact(String),
    Wildcard { scheme: String, suffix: String },
}

/// The compiled `cors` step.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Origins,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`. Returns the method the real request will use.
pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Method> {
    if method != Method::OPTIONS || !headers.contains_key(ORIGIN) {
        return None;
    }
    let requested = headers.get(ACCESS_CONTROL_REQUEST_METHOD)?.to_str().ok()?;
    Method::from_bytes(requested.trim().as_bytes()).ok()
}

impl Cors {
    /// Compiles the settings (validation has refused `"*"` with credentials).
    pub fn compile(settings: &config::Cors) -> Result<Self, String> {
        let listed = settings.origins.value.as_slice();
        let origins = if listed.iter().any(|o| o == "*") {
            Origins::Any
        } else {
            Origins::List(listed.iter().map(|o| OriginPattern::parse(o)).collect())
        };
        let join = |items: Vec<&str>| -> Result<Option<HeaderValue>, String> {
            if items.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(&items.join(", "))
                .map(Some)
                .map_err(|_| format!("invalid header list `{}`", items.join(", ")))
        };
        let methods = join(
            settings
                .methods
                .iter()
                .map(|m| m.0.as_str())
                .collect::<Vec<_>>(),
        )?
        .unwrap_or_else(|| HeaderValue::from_static("GET, HEAD, POST"));
        Ok(Self {
            origins,
            methods,
            headers: join(settings.headers.iter().map(|h| h.0.as_str()).collect())?,
            expose: join(settings.expose.iter().map(|h| h.0.as_str()).collect())?,
            credentials: settings.credentials.value,
            max_age: HeaderValue::from(settings.max_age.0.as_secs()),
        })
    }

    /// Whether `origin` may read responses.
    pub fn allows(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::List(patterns) => patterns.iter().any(|p| p.matches(origin)),
        }
    }

    /// The answer to a preflight: 204, with the CORS headers when the origin is allowed.
    pub fn preflight(&self, request: &HeaderMap) -> Response<GatewayBody> {
        let mut response = Response::new(GatewayBody::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        for vary in [
            "Origin",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
        ] {
            headers.append(VARY, HeaderValue::from_static(vary));
        }
        let Some(origin) = request.get(ORIGIN) else {
            return response;
        };
        if !origin.to_str().is_ok_and(|o| self.allows(o)) {
            return response;
        }
        self.allow_origin(origin, headers);
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        // Without a configured list, the requested headers are allowed (as Kong does).
        let allowed_headers = self
            .headers
            .clone()
            .or_else(|| request.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned());
        if let Some(value) = allowed_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
        headers.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        response
    }

    /// Adds the CORS headers of an actual (non-preflight) response for `origin`.
    pub fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if matches!(self.origins, Origins::List(_)) {
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        let Some(origin) = origin else {
            return;
        };
        if !origin.to_str().is_ok_and(|o| self.allows(o)) {
            return;
        }
        self.allow_origin(origin, headers);
        if let Some(expose) = &self.expose {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }

    fn allow_origin(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        let value = match self.origins {
            Origins::Any if !self.credentials => HeaderValue::from_static("*"),
            _ => origin.clone(),
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if self.credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

impl OriginPattern {
    fn parse(text: &str) -> Self {
        let lower = text.trim_end_matches('/').to_ascii_lowercase();
        match lower.split_once("://*.") {
            Some((scheme, suffix)) => Self::Wildcard {
                scheme: scheme.to_owned(),
                suffix: format!(".{suffix}"),
            },
            None => Self::Exact(lower),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        match self {
            Self::Exact(exact) => *exact == origin,
            Self::Wildcard { scheme, suffix } => {
                let Some(rest) = origin
                    .strip_prefix(scheme.as_str())
                    .and_then(|r| r.strip_prefix("://"))
                else {
                    return false;
                };
                rest.len() > suffix.len()
                    && rest.ends_with(suffix.as_str())
                    && !rest[..rest.len() - suffix.len()].contains(['/', ':', '@'])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(yaml: &str) -> Cors {
        let settings: config::Cors = serde_saphyr::from_str(yaml).expect("yaml");
        Cors::compile(&settings).expect("compile")
    }

    #[test]
    fn wildcard_subdomains_match_only_their_suffix() {
        let c = cors("{origins: [\"https://*.example.com\", \"https://app.test\"]}");
        assert!(c.allows("https://a.example.com"));
        assert!(c.allows("https://a.b.example.com"));
        assert!(c.allows("HTTPS://App.Test"));
        assert!(!c.allows("https://example.com"));
        assert!(!c.allows("http://a.example.com"));
        assert!(!c.allows("https://evil.com/.example.com"));
        assert!(!c.allows("https://a.example.com.evil.com"));
        assert!(!c.allows("https://app.test.evil"));
    }

    #[test]
    fn preflight_headers_for_allowed_origin_only() {
        let c = cors(
            "{origins: [\"https://app.test\"], methods: [GET, POST], credentials: true, max_age: 10m}",
        );
        let mut request = HeaderMap::new();
        request.insert(ORIGIN, HeaderValue::from_static("https://app.test"));
        request.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        request.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        let response = c.preflight(&request);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let h = response.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.test");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");

        request.insert(ORIGIN, HeaderValue::from_static("https://evil.test"));
        let response = c.preflight(&request);
        assert!(!response.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        assert!(response.headers().contains_key(VARY));
    }

    #[test]
    fn star_answers_star_without_vary() {
        let c = cors("{origins: \"*\", expose: [X-Request-Id]}");
        let mut headers = HeaderMap::new();
        c.apply(
            Some(&HeaderValue::from_static("https://x.test")),
            &mut headers,
        );
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(headers[ACCESS_CONTROL_EXPOSE_HEADERS], "X-Request-Id");
        assert!(!headers.contains_key(VARY));
    }
}
