//! `tls.redirect_http`: on plain listeners, every request is answered `308 Permanent Redirect`
//! to the same host, path and query on https. It runs first in the pipeline, before routing,
//! so no route, plugin or upstream sees a plain-HTTP request.

use http::header::LOCATION;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, StatusCode};

use crate::body::GatewayBody;
use crate::error::GatewayError;

/// The compiled `redirect_http` setting.
#[derive(Debug, Clone, Copy)]
pub struct HttpsRedirect {
    /// The port of the first `tls.listen` address as written (used when no TLS listener was
    /// bound at start-up, e.g. `tls` added by a reload).
    pub configured_port: u16,
}

impl HttpsRedirect {
    /// The 308 answer to `request`. `bound_port` is the port of the first TLS listener (0:
    /// none bound); the URL carries it unless it is 443. 400 when the request names no host.
    pub fn response<B>(
        &self,
        request: &Request<B>,
        bound_port: u16,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let host = super::request_host(request)
            .and_then(|h| h.parse::<Authority>().ok())
            .ok_or_else(|| {
                GatewayError::bad_request("a request to redirect to https needs a Host")
            })?;
        let port = match bound_port {
            0 => self.configured_port,
            port => port,
        };
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = match port {
            443 => format!("https://{}{path}", host.host()),
            port => format!("https://{}:{port}{path}", host.host()),
        };
        let location = HeaderValue::try_from(location)
            .map_err(|err| GatewayError::bad_request("invalid Host").with_cause(err))?;
        let mut response = Response::new(GatewayBody::Empty);
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        response.headers_mut().insert(LOCATION, location);
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: Option<&str>, uri: &str, bound: u16) -> Option<String> {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        let request = builder.body(()).ok()?;
        let redirect = HttpsRedirect {
            configured_port: 8443,
        };
        let response = redirect.response(&request, bound).ok()?;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        Some(response.headers()[LOCATION].to_str().ok()?.to_owned())
    }

    #[test]
    fn keeps_host_path_and_query_and_drops_the_plain_port() {
        assert_eq!(
            location(Some("api.example.com:8080"), "/a/b?x=1&y", 9443).as_deref(),
            Some("https://api.example.com:9443/a/b?x=1&y")
        );
        assert_eq!(
            location(Some("api.example.com"), "/", 443).as_deref(),
            Some("https://api.example.com/")
        );
        assert_eq!(
            location(Some("[::1]:8080"), "/v", 0).as_deref(),
            Some("https://[::1]:8443/v")
        );
    }

    #[test]
    fn no_or_bad_host_is_refused() {
        assert_eq!(location(None, "/", 443), None);
        assert_eq!(location(Some("evil.com/x"), "/", 443), None);
    }
}
