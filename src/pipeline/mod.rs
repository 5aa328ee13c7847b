//! The request lifecycle: the fixed-order steps of SPEC §3 run for the matched route's
//! [`RoutePlan`], then the upstream exchange, then the response steps.
//!
//! `request_id` → (`redirect_http` on plain listeners) → *routing* → *upstream* →
//! `security_headers`. Later steps (`ip_filter`,
//! `cors`, `auth`, …) slot into [`Gateway::process`] in SPEC order as fields of the plan.

pub mod added_fields;
mod attempts;
pub mod auth;
pub mod authorize;
pub mod cache;
pub mod client_ip;
pub mod cors;
pub mod exchange;
pub mod form;
pub mod forward;
pub mod ip_filter;
pub mod mirror;
pub mod rate_limit;
pub mod redirect;
pub mod request_id;
pub mod security_headers;
pub mod split;
mod template_vars;
pub mod transform;

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderValue, Request, Response, Uri};

use crate::body::{GatewayBody, IncomingBody, RequestBody};
use crate::error::{ErrorKind, GatewayError};
use crate::observability::access_log::AccessEntry;
use crate::router::{RequestView, RouteMatch, normalize_path};
use crate::runtime::{
    ForwardPlan, Limits, Respond, RouteAction, RoutePlan, Runtime, RuntimeHandle, State,
};
use crate::server::ConnContext;
use crate::upstream;

use added_fields::AddedFields;
use exchange::{ClientBody, Finish, PendingLog};
use forward::ForwardedFor;
use template_vars::RequestVars;

/// The gateway's request handler: the runtime serving now and the long-lived state.
pub struct Gateway {
    runtime: RuntimeHandle,
    state: Arc<State>,
}

/// The answer to one request: the response, and the fields its head gets last.
pub struct Answer {
    /// The response.
    pub response: Response<ClientBody>,
    /// `X-Request-Id`, the rate-limit fields and the cache's, which replace the response's
    /// own.
    pub added: AddedFields,
}

impl Answer {
    /// The response with the added fields in its header map.
    pub fn into_response(self) -> Response<ClientBody> {
        let mut response = self.response;
        self.added.insert_into(response.headers_mut());
        response
    }
}

/// What one request has gathered on its way, for the response steps and the log.
struct RequestContext<'rt> {
    request_id: HeaderValue,
    client_ip: IpAddr,
    peer_trusted: bool,
    route: Option<&'rt RoutePlan>,
    /// The client's `Origin`, kept for the `cors` response headers.
    origin: Option<HeaderValue>,
    /// Whether the request was a CORS preflight the gateway answered.
    preflight: bool,
    /// Who the request is from, once `auth` accepted a credential.
    identity: Option<Arc<auth::Identity>>,
    /// The `rate_limit` check, for its response headers.
    rate_limit: Option<rate_limit::RateOutcome<'rt>>,
    /// The route's `request_transform`, rendered from the client's request; `forward` applies it.
    request_transform: Option<transform::PreparedRequest<'rt>>,
    /// The cache's `X-Cache` and `Age`, added last unless a `response_transform` runs.
    cache: Option<cache::CacheMark>,
    entry: Option<AccessEntry>,
    bytes_in: Option<Arc<AtomicU64>>,
}

impl RequestContext<'_> {
    /// Notes the cache's fields for the answer (see [`cache::CacheMark`]) and its verdict
    /// for the access log.
    fn cached(&mut self, mark: cache::CacheMark) {
        if let Some(entry) = self.entry.as_mut() {
            entry.cache = Some(mark.verdict.as_str().to_owned());
        }
        self.cache = Some(mark);
    }

    /// Puts the cache's fields into `response`'s map, for a `response_transform` to see (and
    /// change); otherwise they are added last, beside the map.
    fn cache_fields_into(&mut self, response: &mut Response<GatewayBody>) {
        if let Some(mark) = self.cache.take() {
            mark.insert_into(response.headers_mut());
        }
    }
}

impl Gateway {
    /// A gateway serving `runtime`, with `state` kept across reloads.
    pub fn new(runtime: Runtime, state: Arc<State>) -> Self {
        Self {
            runtime: RuntimeHandle::new(runtime),
            state,
        }
    }

    /// The runtime holder, for reloads.
    pub fn runtime(&self) -> &RuntimeHandle {
        &self.runtime
    }

    /// The long-lived state registry.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The listener limits of the runtime serving now.
    pub fn limits(&self) -> Limits {
        self.runtime.current().limits
    }

    /// Serves one request from `conn`. Never fails: every error becomes a response.
    ///
    /// Not an `async fn`, which would hold the request twice (rust-lang/rust#62958).
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` holds its arguments twice (rust-lang/rust#62958)"
    )]
    pub fn handle(
        &self,
        request: Request<IncomingBody>,
        conn: Arc<ConnContext>,
    ) -> impl Future<Output = Answer> {
        async move {
            conn.activity.on_request_start();
            let runtime = self.runtime.current();
            // Read only for the access log's duration.
            let started = runtime.access_log.is_some().then(crate::poll_clock::now);
            let request_id = request_id::take(request.headers());
            let (client_ip, peer_trusted) = runtime
                .trusted_proxies
                .resolve(conn.peer.ip(), request.headers());
            let entry = runtime
                .access_log
                .as_ref()
                .map(|_| access_entry(&request, &request_id, client_ip));
            let mut ctx = RequestContext {
                peer_trusted,
                request_id,
                client_ip,
                route: None,
                origin: None,
                preflight: false,
                identity: None,
                rate_limit: None,
                request_transform: None,
                cache: None,
                entry,
                bytes_in: None,
            };

            // Boxed: the connection's task (the own HTTP/1.1 loop, or hyper's dispatcher) holds
            // this future's state for as long as the connection lives, so the large state of
            // routing and forwarding is allocated per request instead of being held by every idle
            // keep-alive connection.
            let processed = boxed(|| self.process(&runtime, request, &conn, &mut ctx)).await;
            let mut response = match processed {
                Ok(response) => response,
                Err(err) => {
                    if let Some(entry) = ctx.entry.as_mut() {
                        entry.error = Some(err.log_text());
                    }
                    // An error's answer is the gateway's own: no cache fields.
                    ctx.cache = None;
                    err.into_response(ctx.request_id.to_str().unwrap_or_default())
                }
            };

            // Response steps, in SPEC order. The cache's fields, the rate-limit fields and
            // the request id are added last, beside the header map (see `added_fields`).
            let mut added = AddedFields::new(ctx.request_id);
            if let Some(fields) = ctx.rate_limit.as_ref().and_then(|o| o.fields()) {
                added.set_rate_limit(fields);
            }
            if let Some(mark) = ctx.cache {
                added.set_cache(mark);
            }
            if let Some(cors) = ctx.route.and_then(|r| r.cors.as_ref())
                && !ctx.preflight
            {
                cors.apply(ctx.origin.as_ref(), response.headers_mut());
            }
            let security_headers = match ctx.route {
                Some(route) => route.security_headers.as_ref(),
                None => runtime.unrouted_security_headers.as_ref(),
            };
            if let Some(step) = security_headers {
                step.apply(response.headers_mut(), conn.tls);
            }

            let log = match (runtime.access_log.as_ref(), ctx.entry) {
                (Some(log), Some(mut entry)) => {
                    entry.status = response.status().as_u16();
                    entry.route = ctx.route.map(|r| r.name.to_string());
                    entry.consumer = ctx
                        .identity
                        .as_ref()
                        .and_then(|i| i.consumer.as_deref())
                        .map(str::to_owned);
                    Some(Box::new(PendingLog {
                        log: log.clone(),
                        entry,
                        started: started.unwrap_or_else(crate::poll_clock::now),
                        bytes_in: ctx.bytes_in,
                    }))
                }
                _ => None,
            };
            let finish = Finish::new(conn.activity.clone(), log);
            Answer {
                response: response.map(|body| ClientBody::new(body, finish)),
                added,
            }
        }
    }

    /// The request steps, routing and the upstream exchange.
    ///
    /// Not an `async fn`, which would hold the request twice (rust-lang/rust#62958).
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` holds its arguments twice (rust-lang/rust#62958)"
    )]
    fn process<'rt>(
        &self,
        runtime: &'rt Runtime,
        mut request: Request<IncomingBody>,
        conn: &ConnContext,
        ctx: &mut RequestContext<'rt>,
    ) -> impl Future<Output = Result<Response<GatewayBody>, GatewayError>> {
        async move {
            if conn.activity.has_ambiguous_framing() {
                return Err(GatewayError::bad_request(
                    "a request may not have both Content-Length and Transfer-Encoding",
                )
                .closing());
            }
            check_header_size(&request, runtime.limits.max_header_bytes)?;
            if let Some(redirect) = runtime.redirect_http.as_ref().filter(|_| !conn.tls) {
                let bound = self.state.https_port.load(Ordering::Relaxed);
                return redirect.response(&request, bound);
            }
            let path = normalize_path(request.uri().path())
                .map_err(|err| GatewayError::bad_request(err.to_string()))?;
            if let Some(entry) = ctx.entry.as_mut() {
                entry.path = path.to_string();
            }
            // The `Host` field is looked up once: routing reads it, `outbound` forwards it.
            let host_field = request.headers().get(HOST).cloned();
            let host = host_of(request.uri(), host_field.as_ref());
            let view = RequestView {
                method: request.method(),
                host,
                path: &path,
                query: request.uri().query(),
                headers: request.headers(),
            };
            // A CORS preflight is answered for the route of the method it asks about, before
            // `auth`; the service never sees it.
            if let Some(requested) = cors::preflight_method(request.method(), request.headers()) {
                let asked = RequestView {
                    method: &requested,
                    ..view
                };
                if let RouteMatch::Found { route, .. } = runtime.router.find(&asked)
                    && let Some(cors) = &route.cors
                {
                    ctx.route = Some(route);
                    ctx.preflight = true;
                    if let Some(filter) = &route.ip_filter {
                        filter.check(ctx.client_ip)?;
                    }
                    return Ok(cors.preflight(request.headers()));
                }
            }
            let (route, captures) = match runtime.router.find(&view) {
                RouteMatch::Found { route, captures } => (route, captures),
                RouteMatch::MethodNotAllowed { allow } => {
                    return Err(GatewayError::method_not_allowed(allow));
                }
                RouteMatch::NotFound => return Err(GatewayError::not_found()),
            };
            ctx.route = Some(route);
            if route.cors.is_some() {
                ctx.origin = request.headers().get(ORIGIN).cloned();
            }

            if declared_length(&request)? > Some(route.max_body) {
                // Refuse before reading any of the body, and close: the rest is never read.
                return Err(GatewayError::payload_too_large().closing());
            }

            // Request steps, in SPEC order (`cors` only answers preflights, above).
            if let Some(filter) = &route.ip_filter {
                filter.check(ctx.client_ip)?;
            }
            if let Some(auth) = &route.auth {
                ctx.identity = auth
                    .authenticate(auth::credential::Head::of(&request), conn)
                    .await?;
                if let Some(authorize) = &route.authorize {
                    match &ctx.identity {
                        Some(identity) => authorize.check(request.method(), identity)?,
                        None => return Err(auth.missing()),
                    }
                }
            }
            if let Some(step) = &route.rate_limit {
                let outcome = step
                    .check(ctx.client_ip, ctx.identity.as_deref(), request.headers())
                    .await?;
                let refused = outcome.refused();
                ctx.rate_limit = Some(outcome);
                refused?;
            }

            match &route.action {
                RouteAction::Respond(respond) => Ok(respond_response(respond)),
                RouteAction::Forward(plan) => {
                    let vars = RequestVars {
                        path: &path,
                        captures: &captures,
                        request_id: &ctx.request_id,
                        client_ip: ctx.client_ip,
                        headers: request.headers(),
                        query: request.uri().query(),
                        identity: ctx.identity.as_deref(),
                    };
                    let upstream_path = upstream_path(plan, &path, &vars);
                    ctx.request_transform =
                        route.request_transform.as_ref().map(|t| t.prepare(&vars));
                    let response_transform =
                        route.response_transform.as_ref().map(|t| t.prepare(&vars));
                    // `cache` sits before the upstream; `response_transform` after it, so it
                    // also applies to what the cache serves.
                    let mut response = 'answered: {
                        let cache = match &route.cache {
                            Some(step) => {
                                match step.lookup(&request, &path, ctx.identity.as_deref()).await {
                                    cache::Lookup::Hit(response, mark) => {
                                        ctx.cached(mark);
                                        break 'answered response;
                                    }
                                    cache::Lookup::Forward(pending) => Some(pending),
                                }
                            }
                            None => None,
                        };
                        if let Some(method) =
                            cache.as_ref().and_then(cache::Pending::upstream_method)
                        {
                            *request.method_mut() = method;
                        }
                        let mut outbound = self.outbound(
                            runtime,
                            route,
                            plan,
                            request,
                            host_field,
                            upstream_path,
                            conn,
                            ctx,
                        )?;
                        if let Some(pending) = &cache {
                            outbound.head_bytes = pending.head_bytes();
                        }
                        let response = Self::forward(plan, outbound, ctx).await?;
                        match cache {
                            Some(pending) => {
                                let (response, verdict) = pending.finish(response).await?;
                                ctx.cached(cache::CacheMark::forwarded(verdict));
                                response
                            }
                            None => response,
                        }
                    };
                    match response_transform {
                        Some(step) => {
                            ctx.cache_fields_into(&mut response);
                            Box::pin(step.apply(response)).await
                        }
                        None => Ok(response),
                    }
                }
            }
        }
    }

    /// Picks the target for the request and prepares what it is sent: the upstream path,
    /// the forwarded and identity headers, the transform's header and query changes. No
    /// waiting here: what waits ([`Gateway::forward`]) should hold as little as possible.
    #[allow(clippy::too_many_arguments)]
    fn outbound<'rt>(
        &self,
        runtime: &Runtime,
        route: &'rt RoutePlan,
        plan: &'rt ForwardPlan,
        request: Request<IncomingBody>,
        host_field: Option<HeaderValue>,
        path: String,
        conn: &ConnContext,
        ctx: &mut RequestContext<'rt>,
    ) -> Result<Outbound<'rt>, GatewayError> {
        let key = upstream::PickKey {
            client_ip: ctx.client_ip,
            headers: request.headers(),
            consumer: ctx.identity.as_deref().and_then(|i| i.consumer.as_deref()),
        };
        let service = plan.service.choose(&key);
        if let Some(entry) = ctx.entry.as_mut() {
            entry.service = Some(service.name.to_string());
        }
        // The circuit breaker answers 503 while open; a half-open probe slot is held until
        // the attempt has finished.
        let permit = service.admit()?;
        let endpoints = service.endpoints_here();
        let index = endpoints.pick(&key, &[]).ok_or_else(no_healthy_target)?;
        let target = &endpoints.targets[index].target;
        if let Some(entry) = ctx.entry.as_mut() {
            entry.target = Some(target.url.clone());
        }

        let (mut parts, body) = request.into_parts();
        let mut transform = ctx.request_transform.take();
        if ctx.identity.is_some()
            && let Some(auth) = route.auth.as_ref().filter(|a| a.hides_credentials())
        {
            auth.hide(&mut parts);
        }
        let mut path_and_query = path;
        let query = transform.as_ref().and_then(|t| t.query(parts.uri.query()));
        if let Some(query) = query
            .as_deref()
            .or(parts.uri.query())
            .filter(|q| !q.is_empty())
        {
            // A `rewrite` template may carry its own query; the client's is appended to it.
            path_and_query.push(if path_and_query.contains('?') {
                '&'
            } else {
                '?'
            });
            path_and_query.push_str(query);
        }
        // The origin form (`/path?query`); an HTTP/2 attempt adds the target's authority.
        let uri = Uri::try_from(path_and_query).map_err(|err| {
            GatewayError::bad_request("the forwarded path is not a valid URI").with_cause(err)
        })?;
        let client_host = host_field.or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let upstream_host = match (&client_host, plan.preserve_host) {
            (Some(host), true) => host.clone(),
            _ => target.host_header().clone(),
        };
        let fwd = ForwardedFor {
            peer: &conn.peer_ip,
            peer_trusted: ctx.peer_trusted,
            proto: if conn.tls { "https" } else { "http" },
            host: client_host.as_ref(),
            upstream_host: &upstream_host,
            request_id: &ctx.request_id,
            claim_headers: &runtime.claim_headers,
        };
        // The forwarded and identity headers are sent after the request's own (see
        // `upstream::AddedHeaders`); a transform sees them in the map.
        let mut added = upstream::AddedHeaders::with_capacity(8);
        forward::prepare_request_headers(&mut parts.headers, &fwd, &mut added);
        if let Some(identity) = &ctx.identity {
            identity.apply(&mut added);
        }
        if let Some(transform) = transform.as_mut() {
            added.move_into(&mut parts.headers);
            transform.headers(&mut parts.headers);
        }
        parts.uri = uri;

        if ctx.entry.is_some() {
            ctx.bytes_in = Some(Arc::default());
        }
        let body = RequestBody::new(body, route.max_body, ctx.bytes_in.clone());
        Ok(Outbound {
            service,
            endpoints,
            index,
            permit,
            parts,
            added,
            body,
            transform,
            head_bytes: upstream::HeadBytes::Shared,
        })
    }

    /// Sends the prepared request to its target (and others when it is retried) and
    /// streams the answer back.
    ///
    /// Not an `async fn`, which would hold its argument twice (rust-lang/rust#62958).
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` holds its arguments twice (rust-lang/rust#62958)"
    )]
    fn forward<'a>(
        plan: &'a ForwardPlan,
        mut outbound: Outbound<'a>,
        ctx: &'a mut RequestContext<'_>,
    ) -> impl Future<Output = Result<Response<GatewayBody>, GatewayError>> {
        async move {
            if let Some(transform) = outbound.transform {
                let transformed = transform.body(&mut outbound.parts.headers, outbound.body);
                outbound.body = Box::pin(transformed).await?;
            }
            if let Some(mirror) = &plan.mirror {
                // The copy goes with the same headers, from the whole map.
                outbound.added.move_into(&mut outbound.parts.headers);
                outbound.body = mirror.copy(
                    &outbound.parts,
                    outbound.body,
                    &mirror::Source::of(ctx, plan),
                );
            }
            let service = outbound.service;
            let endpoints = &outbound.endpoints;
            let exchange = attempts::Exchange {
                service,
                endpoints,
                first: outbound.index,
                timeout: plan.timeout_for(service),
                preserve_host: plan.preserve_host,
                client_ip: ctx.client_ip,
                consumer: ctx.identity.as_deref().and_then(|i| i.consumer.as_deref()),
                added: &outbound.added,
                head_bytes: outbound.head_bytes,
            };
            let request = Request::from_parts(outbound.parts, outbound.body);
            let tried = attempts::run(exchange, request).await;
            drop(outbound.permit);
            if let Some(entry) = ctx.entry.as_mut()
                && tried.attempts > 1
            {
                entry.target = Some(endpoints.targets[tried.target].target.url.clone());
                entry.attempts = Some(tried.attempts);
            }
            let answer = tried.result?;
            if let Some(entry) = ctx.entry.as_mut() {
                entry.upstream_ms = Some(answer.elapsed.as_secs_f64() * 1000.0);
            }
            let (mut parts, body) = answer.response.into_parts();
            forward::remove_hop_by_hop(&mut parts.headers);
            // Room for the headers the later steps add (request id, cache, rate limits).
            let _ = parts.headers.try_reserve(8);
            Ok(Response::from_parts(parts, body))
        }
    }
}

/// A request made ready for its service by [`Gateway::outbound`].
struct Outbound<'rt> {
    service: &'rt upstream::ServiceRuntime,
    /// The service's targets, loaded once for the request.
    endpoints: crate::worker_hold::WorkerHold<upstream::Endpoints>,
    /// The target picked first.
    index: usize,
    /// The circuit breaker's admission, held until the attempts have finished.
    permit: upstream::Permit,
    parts: http::request::Parts,
    /// The forwarded and identity headers, sent after the request's own.
    added: upstream::AddedHeaders,
    body: RequestBody,
    /// The route's `request_transform`, for its body changes.
    transform: Option<transform::PreparedRequest<'rt>>,
    /// Where an HTTP/1.1 answer's header values are to live (their own copy for the cache).
    head_bytes: upstream::HeadBytes,
}

/// The future `make` returns, in a box allocated first, so that it can be written in place:
/// `Box::pin(future)` makes it on the stack and then copies all of it, and a future is as
/// large as its largest state.
fn boxed<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// 503 when every target of the service is unhealthy or ejected.
fn no_healthy_target() -> GatewayError {
    GatewayError::new(
        ErrorKind::ServiceUnavailable,
        "no healthy upstream target is available",
    )
    .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("5"))
}

/// The host a request is for: the URI's authority (HTTP/2, absolute-form) or `Host`.
fn request_host<B>(request: &Request<B>) -> Option<&str> {
    host_of(request.uri(), request.headers().get(HOST))
}

/// [`request_host`] from the parts, for a caller that has looked up `Host` already.
fn host_of<'a>(uri: &'a Uri, host_field: Option<&'a HeaderValue>) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| host_field.and_then(|h| h.to_str().ok()))
}

/// 431 when the request head is over the limit (hyper refuses far larger heads itself).
fn check_header_size<B>(request: &Request<B>, limit: usize) -> Result<(), GatewayError> {
    let uri = request.uri();
    let mut size = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + request.method().as_str().len()
        + 12;
    for (name, value) in request.headers() {
        size += name.as_str().len() + value.len() + 4;
        if size > limit {
            return Err(GatewayError::new(
                ErrorKind::HeadersTooLarge,
                "request headers exceed the size limit",
            )
            .closing());
        }
    }
    Ok(())
}

/// The body length the client declared, if any; a malformed `Content-Length` is a 400.
fn declared_length<B>(request: &Request<B>) -> Result<Option<u64>, GatewayError> {
    match request.headers().get(CONTENT_LENGTH) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| GatewayError::bad_request("invalid Content-Length").closing()),
    }
}

/// The path sent upstream: `rewrite` when set, else the normalized path less `strip_prefix`.
fn upstream_path(plan: &ForwardPlan, path: &str, vars: &RequestVars<'_>) -> String {
    if let Some(template) = &plan.rewrite {
        let mut out = String::with_capacity(path.len() + 16);
        template.render(vars, &mut out);
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        return out;
    }
    match &plan.strip_prefix {
        Some(prefix) => forward::strip_prefix(path, prefix).to_owned(),
        None => path.to_owned(),
    }
}

/// The response of a `respond` route.
fn respond_response(respond: &Respond) -> Response<GatewayBody> {
    let mut response = Response::new(GatewayBody::full(respond.body.clone()));
    *response.status_mut() = respond.status;
    let headers = response.headers_mut();
    if !respond.body.is_empty() {
        headers.insert(CONTENT_TYPE, respond.content_type.clone());
    }
    for (name, value) in &respond.headers {
        headers.insert(name.clone(), value.clone());
    }
    response
}

/// The access log entry of a request, before it is served.
fn access_entry<B>(
    request: &Request<B>,
    request_id: &HeaderValue,
    client_ip: IpAddr,
) -> AccessEntry {
    AccessEntry {
        ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        request_id: request_id.to_str().unwrap_or_default().to_owned(),
        client_ip: client_ip.to_string(),
        method: request.method().to_string(),
        host: request_host(request).unwrap_or_default().to_owned(),
        path: request.uri().path().to_owned(),
        ..AccessEntry::default()
    }
}
