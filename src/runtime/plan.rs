//! A route, compiled: where it goes and the steps it runs, in SPEC §3's fixed order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use crate::pipeline::auth::AuthStep;
use crate::pipeline::authorize::Authorize;
use crate::pipeline::cache::CacheStep;
use crate::pipeline::cors::Cors;
use crate::pipeline::ip_filter::IpFilter;
use crate::pipeline::mirror::Mirror;
use crate::pipeline::rate_limit::RateLimitStep;
use crate::pipeline::security_headers::SecurityHeaders;
use crate::pipeline::split::ServiceChoice;
use crate::pipeline::transform::{RequestTransform, ResponseTransform};
use crate::template::Template;
use crate::upstream::ServiceRuntime;

/// Everything the pipeline needs for one route, with plugins merged and parsed.
pub struct RoutePlan {
    /// The route's name (metrics, logs).
    pub name: Arc<str>,
    /// Largest request body.
    pub max_body: u64,
    /// What answers the request.
    pub action: RouteAction,
    /// Client address allow and deny lists.
    pub ip_filter: Option<IpFilter>,
    /// Cross-origin resource sharing: preflights and response headers.
    pub cors: Option<Cors>,
    /// Authentication.
    pub auth: Option<AuthStep>,
    /// Authorization of the authenticated identity (validation ensures `auth` is present).
    pub authorize: Option<Authorize>,
    /// Rate limits, counted before forwarding.
    pub rate_limit: Option<RateLimitStep>,
    /// Changes to the forwarded request (headers, query, JSON body).
    pub request_transform: Option<RequestTransform>,
    /// Changes to the upstream's response (status, headers, JSON body).
    pub response_transform: Option<ResponseTransform>,
    /// Response caching (forwarding routes only).
    pub cache: Option<CacheStep>,
    /// Response headers step, when enabled for the route.
    pub security_headers: Option<SecurityHeaders>,
}

/// What answers a routed request.
pub enum RouteAction {
    /// Forward to a service.
    Forward(ForwardPlan),
    /// Answer directly (`respond`).
    Respond(Respond),
}

/// How a request is forwarded.
pub struct ForwardPlan {
    /// The service to forward to, or the `split` that picks it.
    pub service: ServiceChoice,
    /// Removed from the front of the forwarded path.
    pub strip_prefix: Option<Box<str>>,
    /// Template of the forwarded path.
    pub rewrite: Option<Template>,
    /// Forward the client's `Host`.
    pub preserve_host: bool,
    /// The route's `timeout`, overriding the service's request timeout.
    pub timeout: Option<Duration>,
    /// A copy of a share of the requests for another service.
    pub mirror: Option<Mirror>,
}

impl ForwardPlan {
    /// Time allowed up to response headers when forwarding to `service`.
    pub fn timeout_for(&self, service: &ServiceRuntime) -> Duration {
        self.timeout.unwrap_or(service.request_timeout)
    }

    /// The longest time a request of this route may wait for response headers.
    pub fn longest_timeout(&self) -> Duration {
        self.service
            .services()
            .map(|service| self.timeout_for(service))
            .max()
            .unwrap_or_default()
    }
}

/// A fixed answer (`respond` routes).
pub struct Respond {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
    /// Its content type.
    pub content_type: HeaderValue,
    /// Extra headers.
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}
