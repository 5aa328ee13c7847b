//! Keys whose feature has not landed yet. A config using one is rejected with a located
//! error rather than silently ignored. When a feature lands, delete its line from
//! [`unsupported_keys`].

use serde_saphyr::{Location, Spanned};

use super::Config;
use super::error::ConfigError;
use super::route::Route;
use super::service::{Protocol, Service};

/// Every feature of a config that is not supported yet, as located errors
/// ``FILE:LINE:COL: `aggregate` is not supported yet``.
pub fn unsupported(config: &Config) -> Vec<ConfigError> {
    let mut found = Vec::new();
    unsupported_keys(config, &mut |key: &str, location: Location| {
        found.push(ConfigError::at(
            &config.file,
            location,
            format!("`{key}` is not supported yet"),
        ));
    });
    found.sort_by_key(|e| (e.line, e.col));
    found
}

/// THE list of unsupported features: calls `report(key, location)` for each one used.
fn unsupported_keys(config: &Config, report: &mut dyn FnMut(&str, Location)) {
    let mut key = |name: &str, location: Option<Location>| {
        if let Some(location) = location {
            report(name, location);
        }
    };
    key("cluster", at(&config.cluster));
    key("observability.tracing", at(&config.observability.tracing));

    for service in config.services.values() {
        let s: &Service = &service.value;
        let grpc = s.protocol.as_ref().filter(|p| p.value == Protocol::Grpc);
        key("protocol: grpc", grpc.map(|p| p.referenced));
        key("descriptor", at(&s.descriptor));
        key("protos", at(&s.protos));
    }

    for route in &config.routes {
        let r: &Route = &route.value;
        key("aggregate", at(&r.aggregate));
        key("grpc", at(&r.grpc));
    }
}

/// The location of a present value.
fn at<T>(value: &Option<Spanned<T>>) -> Option<Location> {
    value.as_ref().map(|v| v.referenced)
}
