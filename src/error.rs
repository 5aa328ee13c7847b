//! The one error type of the request path and its one renderer (SPEC §4.2).
//!
//! Every failure the gateway answers itself becomes a [`GatewayError`]: its [`ErrorKind`] fixes
//! the status and the `code`, its message is safe to show a client, and its cause (never shown)
//! goes to the access log. [`GatewayError::into_response`] is the only place that renders an
//! error response.

use std::borrow::Cow;
use std::fmt;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderName, Response, StatusCode};

use crate::body::GatewayBody;

/// Where a failure came from: drives logs, metrics and (later) retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client sent something we refuse.
    Client,
    /// The upstream service failed or did not answer.
    Upstream,
    /// A fault of the gateway itself.
    Internal,
}

/// What went wrong, as the client sees it: one variant per row of SPEC §4.2's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: malformed request, bad path, bad JSON where JSON is needed.
    BadRequest,
    /// 401: no or invalid credential.
    Unauthorized,
    /// 403: authorization failed or `ip_filter`.
    Forbidden,
    /// 404: no route.
    NotFound,
    /// 405: path matched, method did not.
    MethodNotAllowed,
    /// 413: body over the limit.
    PayloadTooLarge,
    /// 429: rate limited.
    RateLimited,
    /// 431: headers over the limit.
    HeadersTooLarge,
    /// 502: upstream refused, reset, or sent an invalid response.
    BadGateway,
    /// 503: no healthy target, circuit open, store down.
    ServiceUnavailable,
    /// 504: upstream did not answer in time.
    GatewayTimeout,
    /// 500: a fault of the gateway itself.
    Internal,
}

impl ErrorKind {
    /// The HTTP status of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `code` of the JSON error body.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::HeadersTooLarge => "headers_too_large",
            Self::BadGateway => "bad_gateway",
            Self::ServiceUnavailable => "service_unavailable",
            Self::GatewayTimeout => "gateway_timeout",
            Self::Internal => "internal_error",
        }
    }

    /// Where failures of this kind come from unless said otherwise.
    fn default_source(self) -> ErrorSource {
        match self {
            Self::BadGateway | Self::ServiceUnavailable | Self::GatewayTimeout => {
                ErrorSource::Upstream
            }
            Self::Internal => ErrorSource::Internal,
            _ => ErrorSource::Client,
        }
    }
}

/// A failure the gateway answers itself.
#[derive(Debug)]
pub struct GatewayError {
    kind: ErrorKind,
    source: ErrorSource,
    message: Cow<'static, str>,
    cause: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    close: bool,
}

impl GatewayError {
    /// An error of `kind` with a client-safe `message`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            source: kind.default_source(),
            message: message.into(),
            cause: None,
            headers: Vec::new(),
            close: false,
        }
    }

    /// 400 with a client-safe message.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// 404: no route for the request.
    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "no route matches the request")
    }

    /// 405 with the `Allow` header listing what the path accepts.
    pub fn method_not_allowed(allow: HeaderValue) -> Self {
        Self::new(
            ErrorKind::MethodNotAllowed,
            "method not allowed on this path",
        )
        .with_header(http::header::ALLOW, allow)
    }

    /// 413: the request body is over `limit` bytes.
    pub fn payload_too_large() -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            "request body exceeds the size limit",
        )
    }

    /// Records the internal cause, for the log only; never shown to the client.
    pub fn with_cause(mut self, cause: impl fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// Adds a response header (`Allow`, `Retry-After`, `WWW-Authenticate`…).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Asks for the client connection to be closed after the response.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where the failure came from.
    pub fn source(&self) -> ErrorSource {
        self.source
    }

    /// The client-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The internal cause, for logs.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// Text for the access log's `error` field: the code, and the cause when known.
    pub fn log_text(&self) -> String {
        match &self.cause {
            Some(cause) => format!("{}: {}", self.kind.code(), cause),
            None => self.kind.code().to_owned(),
        }
    }

    /// Renders the JSON error response of SPEC §4.2 — the only renderer of gateway errors.
    pub fn into_response(self, request_id: &str) -> Response<GatewayBody> {
        let status = self.kind.status();
        let body = serde_json::json!({
            "error": {
                "status": status.as_u16(),
                "code": self.kind.code(),
                "message": self.message,
                "request_id": request_id,
            }
        });
        let mut response = Response::new(GatewayBody::full(body.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        if self.close {
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn renders_the_json_shape_without_the_cause() {
        let err = GatewayError::new(ErrorKind::BadGateway, "upstream refused the connection")
            .with_cause("connect to 10.1.2.3:80: connection refused");
        let response = err.into_response("req-1");
        assert_eq!(response.status(), 502);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"error": {"status": 502, "code": "bad_gateway",
                "message": "upstream refused the connection", "request_id": "req-1"}})
        );
        assert!(!String::from_utf8_lossy(&bytes).contains("10.1.2.3"));
    }

    #[test]
    fn every_kind_has_its_table_status() {
        let table = [
            (ErrorKind::BadRequest, 400, "bad_request"),
            (ErrorKind::Unauthorized, 401, "unauthorized"),
            (ErrorKind::Forbidden, 403, "forbidden"),
            (ErrorKind::NotFound, 404, "not_found"),
            (ErrorKind::MethodNotAllowed, 405, "method_not_allowed"),
            (ErrorKind::PayloadTooLarge, 413, "payload_too_large"),
            (ErrorKind::RateLimited, 429, "rate_limited"),
            (ErrorKind::HeadersTooLarge, 431, "headers_too_large"),
            (ErrorKind::BadGateway, 502, "bad_gateway"),
            (ErrorKind::ServiceUnavailable, 503, "service_unavailable"),
            (ErrorKind::GatewayTimeout, 504, "gateway_timeout"),
        ];
        for (kind, status, code) in table {
            assert_eq!(kind.status().as_u16(), status);
            assert_eq!(kind.code(), code);
        }
    }
}
