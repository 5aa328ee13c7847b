//! `security_headers` (SPEC §3.9): headers added to every response of the route, the
//! gateway's own errors included; `Strict-Transport-Security` only on TLS.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The compiled step: what to set and what to remove.
#[derive(Debug, Clone, Default)]
pub struct SecurityHeaders {
    /// Headers set on every response (replacing the upstream's).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// `Strict-Transport-Security`, sent on TLS connections only.
    pub hsts: Option<HeaderValue>,
    /// Headers removed from every response.
    pub remove: Vec<HeaderName>,
}

impl SecurityHeaders {
    /// Applies the step to a response's headers.
    pub fn apply(&self, headers: &mut HeaderMap, tls: bool) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        if tls && let Some(hsts) = &self.hsts {
            headers.insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_only_on_tls() {
        let step = SecurityHeaders {
            set: vec![(
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            )],
            hsts: Some(HeaderValue::from_static("max-age=1")),
            remove: vec![http::header::SERVER],
        };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::SERVER, HeaderValue::from_static("x"));
        step.apply(&mut headers, false);
        assert!(headers.get(http::header::SERVER).is_none());
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(
            headers
                .get(http::header::STRICT_TRANSPORT_SECURITY)
                .is_none()
        );
        step.apply(&mut headers, true);
        assert_eq!(
            headers[http::header::STRICT_TRANSPORT_SECURITY],
            "max-age=1"
        );
    }
}
