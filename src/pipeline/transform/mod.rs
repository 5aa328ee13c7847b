//! `request_transform` and `response_transform` (SPEC §3.7), compiled once per config.
//!
//! Templates are rendered from the client's request before anything changes
//! ([`RequestTransform::prepare`], [`ResponseTransform::prepare`]); the changes are then made
//! on the way: the forwarded query and headers, the request body (buffered only when the route
//! has body changes and the body is JSON), and the upstream's response.

mod body;
mod headers;
mod json_pointer;
mod query;
mod select;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::body::{GatewayBody, RequestBody, is_body_too_large};
use crate::config::{self, Location};
use crate::error::{ErrorKind, GatewayError};
use crate::template::TemplateVars;
use body::{BodyConfig, BodyOps, is_json};
use headers::HeaderStep;
use query::QueryStep;

/// The compiled `request_transform` of a route.
#[derive(Debug)]
pub struct RequestTransform {
    headers: HeaderStep,
    query: Option<QueryStep>,
    body: Option<BodyOps>,
}

/// The compiled `response_transform` of a route.
#[derive(Debug)]
pub struct ResponseTransform {
    headers: HeaderStep,
    body: Option<BodyOps>,
    status: Vec<(StatusCode, StatusCode)>,
    /// Largest response body buffered for the body changes; larger ones pass through.
    max_body: u64,
}

impl RequestTransform {
    /// Compiles `settings` for the route `route`, whose path captures are `captures`; errors
    /// are located at the values or at the plugin entry `at`.
    pub fn compile(
        settings: &config::RequestTransform,
        route: &Arc<str>,
        captures: &[&str],
        at: Location,
        errors: &mut Vec<(Location, String)>,
    ) -> Self {
        let query = QueryStep::compile(&settings.query, captures, at, errors);
        let b = &settings.body;
        let body = BodyConfig {
            rename: &b.rename,
            set: &b.set,
            remove: &b.remove,
            select: &[],
        };
        Self {
            headers: HeaderStep::compile(&settings.headers, captures, at, errors),
            query: (!query.is_empty()).then_some(query),
            body: BodyOps::compile(&body, route, captures, at, errors),
        }
    }

    /// Renders the templates from the client's request, before anything changes.
    pub fn prepare(&self, vars: &dyn TemplateVars) -> PreparedRequest<'_> {
        PreparedRequest {
            step: self,
            headers: self.headers.render(vars),
            query: self
                .query
                .as_ref()
                .map(|q| q.render(vars))
                .unwrap_or_default(),
            body: self
                .body
                .as_ref()
                .map(|b| b.render(vars))
                .unwrap_or_default(),
        }
    }
}

/// One request's transform, its templates rendered.
pub struct PreparedRequest<'t> {
    step: &'t RequestTransform,
    headers: headers::Rendered,
    query: Vec<String>,
    body: Vec<Value>,
}

impl PreparedRequest<'_> {
    /// The forwarded query, when the transform changes it (empty: no query).
    pub fn query(&self, query: Option<&str>) -> Option<String> {
        let step = self.step.query.as_ref()?;
        Some(step.apply(query, &self.query))
    }

    /// Changes the forwarded headers (after the gateway's own, so the transform has the last
    /// word on everything but framing).
    pub fn headers(&mut self, headers: &mut HeaderMap) {
        self.step
            .headers
            .apply(headers, std::mem::take(&mut self.headers));
    }

    /// The forwarded body: `body` unchanged (still streaming) unless the route changes JSON
    /// bodies and this one says it is JSON; then read whole (within the route's `max_body`,
    /// 413 beyond), changed, and `Content-Length` set to its new length.
    pub async fn body(
        self,
        headers: &mut HeaderMap,
        body: RequestBody,
    ) -> Result<RequestBody, GatewayError> {
        let Some(ops) = &self.step.body else {
            return Ok(body);
        };
        if !is_json(headers) || body.is_end_stream() {
            return Ok(body);
        }
        let read = body.collect().await.map_err(|err| {
            if is_body_too_large(&*err) {
                GatewayError::payload_too_large().closing()
            } else {
                GatewayError::bad_request("the request body could not be read").with_cause(err)
            }
        })?;
        let read = read.to_bytes();
        let bytes = ops.transform(&read, self.body).unwrap_or(read);
        set_length(headers, bytes.len());
        Ok(RequestBody::full(bytes))
    }
}

impl ResponseTransform {
    /// Compiles `settings` for the route `route` (captures `captures`, body bound `max_body`).
    pub fn compile(
        settings: &config::ResponseTransform,
        route: &Arc<str>,
        captures: &[&str],
        max_body: u64,
        at: Location,
        errors: &mut Vec<(Location, String)>,
    ) -> Self {
        let b = &settings.body;
        let body = BodyConfig {
            rename: &b.rename,
            set: &b.set,
            remove: &b.remove,
            select: &b.select,
        };
        let mut status = Vec::with_capacity(settings.status.len());
        for (&from, &to) in &settings.status {
            let from = StatusCode::from_u16(from).ok().filter(|_| from >= 100);
            let to = StatusCode::from_u16(to).ok().filter(|_| to >= 200);
            match (from, to) {
                (Some(from), Some(to)) => status.push((from, to)),
                _ => errors.push((
                    at,
                    "`status` maps a status between 100 and 599 to a final status between 200 and 599"
                        .to_owned(),
                )),
            }
        }
        Self {
            headers: HeaderStep::compile(&settings.headers, captures, at, errors),
            body: BodyOps::compile(&body, route, captures, at, errors),
            status,
            max_body,
        }
    }

    /// Renders the templates from the client's request (call before the request is sent).
    pub fn prepare(&self, vars: &dyn TemplateVars) -> PreparedResponse<'_> {
        PreparedResponse {
            step: self,
            headers: self.headers.render(vars),
            body: self
                .body
                .as_ref()
                .map(|b| b.render(vars))
                .unwrap_or_default(),
        }
    }

    /// Transforms `response` (from the upstream or the cache) for a request whose template
    /// values `vars` gives.
    pub async fn apply(
        &self,
        response: Response<GatewayBody>,
        vars: &dyn TemplateVars,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        self.prepare(vars).apply(response).await
    }
}

/// One request's response transform, its templates rendered.
pub struct PreparedResponse<'t> {
    step: &'t ResponseTransform,
    headers: headers::Rendered,
    body: Vec<Value>,
}

impl PreparedResponse<'_> {
    /// Maps the status, changes the headers, then the body when it is JSON and within the
    /// bound. Fails only when the upstream body breaks while it is read (502).
    pub async fn apply(
        self,
        response: Response<GatewayBody>,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        let step = self.step;
        let (mut parts, body) = response.into_parts();
        if let Some((_, to)) = step.status.iter().find(|(from, _)| *from == parts.status) {
            parts.status = *to;
        }
        step.headers.apply(&mut parts.headers, self.headers);
        let Some(ops) = &step.body else {
            return Ok(Response::from_parts(parts, body));
        };
        if !is_json(&parts.headers) {
            return Ok(Response::from_parts(parts, body));
        }
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if body.is_end_stream() {
            // No body to rewrite, but a length declared: the answer to a HEAD request. The
            // rewritten body's length is unknown, and the upstream's would be wrong: RFC 9110
            // lets a HEAD response leave `Content-Length` out.
            if declared.is_some_and(|len| len > 0) {
                parts.headers.remove(CONTENT_LENGTH);
            }
            return Ok(Response::from_parts(parts, body));
        }
        if declared.is_some_and(|len| len > step.max_body) {
            return Ok(Response::from_parts(parts, body));
        }
        let read = match read_within(body, step.max_body).await? {
            Read::Whole(read) => read,
            Read::Over(body) => return Ok(Response::from_parts(parts, body)),
        };
        let bytes = ops.transform(&read, self.body).unwrap_or(read);
        set_length(&mut parts.headers, bytes.len());
        Ok(Response::from_parts(parts, GatewayBody::full(bytes)))
    }
}

/// What reading a body within a bound gave.
enum Read {
    /// All of it.
    Whole(Bytes),
    /// Too much: the body, to pass on as it is (what was read, then the rest).
    Over(GatewayBody),
}

async fn read_within(mut body: GatewayBody, max: u64) -> Result<Read, GatewayError> {
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            GatewayError::new(
                ErrorKind::BadGateway,
                "the upstream service failed to answer",
            )
            .with_cause(err)
        })?;
        // Trailers are dropped: a body the gateway rewrote is sent with a `Content-Length`.
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
            if read.len() as u64 > max {
                return Ok(Read::Over(GatewayBody::prefixed(read.freeze(), body)));
            }
        }
    }
    Ok(Read::Whole(read.freeze()))
}

/// `Content-Length` for a body the gateway rewrote (and no `Transfer-Encoding`).
fn set_length(headers: &mut HeaderMap, len: usize) {
    headers.remove(TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
}

/// Template variables that are all absent, for tests.
#[cfg(test)]
pub(crate) struct NoVars;

#[cfg(test)]
impl TemplateVars for NoVars {
    fn capture(&self, _: &str) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
    fn request_id(&self) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
    fn consumer(&self) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
    fn client_ip(&self) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
    fn claim(&self, _: &str) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
    fn header(&self, _: &str) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
    fn query(&self, _: &str) -> Option<std::borrow::Cow<'_, str>> {
        None
    }
}
