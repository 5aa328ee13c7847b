//! The configuration file: plain serde types, loading, environment interpolation, units and
//! validation with `FILE:LINE:COL` errors.
//!
//! - [`load_file`] / [`load_str`]: parse, [`validate`] and reject [`unsupported`] features;
//!   every error is a [`ConfigError`] displayed as `FILE:LINE:COL: message`.
//! - [`parse_str`]: parse only. Syntax and type errors stop parsing, so it reports one.
//! - Values a later check must point at are [`Spanned`], keeping their line and column.
//! - `${NAME}` and `${NAME:-default}` in string values come from the environment while the
//!   YAML is read (never by editing the text); `$${` is a literal `${`. See `env.rs`.

#![warn(missing_docs)]

mod auth;
mod consumer;
mod env;
mod error;
mod load;
mod plugins;
mod route;
mod service;
mod shapes;
mod tokens;
mod top;
mod transform;
mod units;
mod unsupported;
mod validate;

pub use auth::{ApiKey, Auth, Authorize, Basic, Introspection, Jwt, Requirements};
pub use consumer::Consumer;
pub use error::{ConfigError, ConfigErrors};
pub use load::{load_file, load_str, parse_str};
pub use plugins::{
    Cache, Cors, IpFilter, PLUGIN_NAMES, PluginEntry, Plugins, RateAlgorithm, RateLimit, RateScope,
    RequestId, SecurityHeaders, Store, effective_plugin,
};
pub use route::{Aggregate, AggregatePart, Mirror, Respond, Route, SplitTarget};
pub use serde_saphyr::{Location, Spanned};
pub use service::{
    Balance, CircuitBreaker, Health, Passive, Protocol, Retries, RetryOn, Service, ServiceTimeouts,
    ServiceTls, Target,
};
pub use shapes::{
    HeaderSetting, OneOrMany, PerConsumer, PluginSetting, RespondBody, VaryQuery, located,
};
pub use tokens::{HeaderName, Method, Secret, Selector};
pub use top::{
    AccessLog, Admin, Certificate, ClientAuth, Cluster, Config, DEFAULT_LISTEN, Limits,
    Observability, OnUnavailable, Tls, Tracing,
};
pub use transform::{
    HeaderOps, QueryOps, RequestBodyOps, RequestTransform, ResponseBodyOps, ResponseTransform,
};
pub use units::{ByteSize, Duration, Rate};
pub use unsupported::unsupported;
pub use validate::{TargetUrl, parse_cidr, parse_listen_addr, parse_target_url, validate};
