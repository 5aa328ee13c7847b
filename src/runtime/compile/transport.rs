//! How a service's targets are reached, compiled: TLS for `https://` targets (the `ca` file is
//! read now, so a reload re-reads it) and the `retries` policy.

use crate::config::{Config, Service};
use crate::upstream::{RetryPolicy, Target, TargetError, UpstreamTls};

use super::Errors;

/// The TLS settings of service `name` when it has `https://` targets; `Err(())` when they are
/// unusable (the error is recorded, located at the key).
pub(super) fn service_tls(
    config: &Config,
    name: &str,
    spec: &Service,
    errors: &mut Errors<'_>,
) -> Result<Option<UpstreamTls>, ()> {
    let https = spec
        .url
        .iter()
        .chain(spec.targets.iter().map(|t| &t.url))
        .any(|url| url.value.trim_start().starts_with("https://"));
    if !https {
        return Ok(None);
    }
    UpstreamTls::compile(config, name, spec.tls.as_ref())
        .map(Some)
        .map_err(|(location, message)| errors.at(location, message))
}

/// A parsed target with its TLS settings when it is `https://`.
pub(super) fn target(
    url: &str,
    weight: u32,
    tls: Option<&UpstreamTls>,
) -> Result<Target, TargetError> {
    let target = Target::parse(url, weight)?;
    match tls {
        Some(tls) if target.is_https() => target.with_tls(tls),
        _ => Ok(target),
    }
}

/// The service's retry policy; `None` without `retries` or with `attempts: 0`.
pub(super) fn retries(spec: &Service) -> Option<RetryPolicy> {
    spec.retries
        .as_ref()
        .and_then(|r| RetryPolicy::compile(&r.value))
}
