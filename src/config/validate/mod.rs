//! Checks that need more than one value at a time, or that serde cannot express: references
//! between sections, exclusive keys, addresses, CIDRs, URLs, regexes. Every problem is
//! reported with its location; nothing stops at the first.
//!
//! Path pattern syntax, route conflicts and `{name}` templates are checked by the router when
//! it compiles the routes, using the locations kept in the config.

mod plugins;
mod resilience;
mod routes;
mod transport;

use std::net::SocketAddr;

use ipnet::IpNet;
use serde_saphyr::{Location, Spanned};

use super::Config;
use super::error::{ConfigError, did_you_mean};
use super::service::{Balance, Service};
use super::tokens::Selector;

/// Checks a parsed config; returns every problem found, in file order.
pub fn validate(config: &Config) -> Vec<ConfigError> {
    let mut check = Checker {
        file: &config.file,
        config,
        errors: Vec::new(),
    };
    check.top_level();
    for (name, service) in &config.services {
        check.service(name, service);
    }
    check.plugins(&config.plugins);
    check.routes();
    let mut errors = check.errors;
    errors.sort_by_key(|e| (e.line, e.col));
    errors
}

/// A parsed target URL: `http(s)://host[:port]` with the default port filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// `true` for `https://`.
    pub https: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port; 80 or 443 when the URL has none.
    pub port: u16,
}

/// Parses a service target URL: `http://` or `https://`, a host, an optional port, and no
/// path (other than `/`), query, fragment or user info.
pub fn parse_target_url(text: &str) -> Result<TargetUrl, String> {
    let bad = |why: &str| format!("invalid target URL `{text}`: {why}");
    let uri: http::Uri = text.parse().map_err(|_| bad("not a URL"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("expected `http://` or `https://`")),
    };
    let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user info is not allowed"));
    }
    if authority.host().is_empty() {
        return Err(bad("missing host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || text.contains('#') {
        return Err(bad(
            "a target has no path or query; use the route's `rewrite`",
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    Ok(TargetUrl {
        https,
        host: host.to_owned(),
        port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
    })
}

/// Parses a CIDR such as `10.0.0.0/8`; a bare IP address means a single host (/32 or /128).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("invalid CIDR `{text}`: expected an address/prefix such as `10.0.0.0/8` or an IP address"))
}

/// Parses a listen address: `IP:PORT` (`[::]:8080` for IPv6), or `localhost:PORT` for the
/// IPv4 loopback address.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let localhost = text
        .strip_prefix("localhost:")
        .and_then(|port| port.parse::<u16>().ok())
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    localhost
        .or_else(|| text.parse().ok())
        .ok_or_else(|| format!("`{text}`: expected IP:PORT such as `0.0.0.0:8080`"))
}

/// Collects located errors while walking a config.
pub(crate) struct Checker<'a> {
    file: &'a str,
    config: &'a Config,
    errors: Vec<ConfigError>,
}

impl<'a> Checker<'a> {
    /// Records an error at `location`.
    fn error(&mut self, location: Location, message: impl Into<String>) {
        self.errors
            .push(ConfigError::at(self.file, location, message));
    }

    /// Checks that `addr` is a listen address and returns it.
    fn socket_addr(&mut self, addr: &Spanned<String>, what: &str) -> Option<SocketAddr> {
        match parse_listen_addr(&addr.value) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.error(addr.referenced, format!("invalid {what} address {reason}"));
                None
            }
        }
    }

    /// Checks a list of CIDRs.
    fn cidrs(&mut self, list: &[Spanned<String>]) {
        for cidr in list {
            if let Err(message) = parse_cidr(&cidr.value) {
                self.error(cidr.referenced, message);
            }
        }
    }

    /// Checks that `name` is a defined service, suggesting a close one otherwise.
    fn service_ref(&mut self, name: &Spanned<String>) {
        let services = &self.config.services;
        if !services.contains_key(&name.value) {
            let hint = did_you_mean(&name.value, services.keys().map(String::as_str));
            self.error(
                name.referenced,
                format!("unknown service `{}`{hint}", name.value),
            );
        }
    }

    /// Checks that a selector is one of the `allowed` kinds.
    fn selector(&mut self, selector: &Spanned<Selector>, key: &str, allowed: &[&str]) {
        if !allowed.contains(&selector.value.kind()) {
            let list = allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.error(
                selector.referenced,
                format!(
                    "`{key}` cannot be `{}`; expected one of {list}",
                    selector.value
                ),
            );
        }
    }

    fn top_level(&mut self) {
        let config = self.config;
        if let Some(listen) = &config.listen {
            for addr in super::shapes::located(listen) {
                self.socket_addr(&addr, "listen");
            }
        }
        if let Some(tls) = &config.tls {
            for addr in super::shapes::located(&tls.value.listen) {
                self.socket_addr(&addr, "tls.listen");
            }
            if tls.value.certificates.is_empty() {
                self.error(tls.referenced, "`tls` needs at least one certificate");
            }
            if tls.value.client_auth == super::ClientAuth::Required && tls.value.client_ca.is_none()
            {
                self.error(
                    tls.referenced,
                    "`client_auth: required` needs `client_ca` (the CAs to verify clients against)",
                );
            }
        }
        if let Some(admin) = &config.admin {
            let admin = &admin.value;
            if let Some(addr) = self.socket_addr(&admin.listen, "admin.listen") {
                let has_token = admin
                    .token
                    .as_ref()
                    .is_some_and(|t| !t.value.expose().is_empty());
                if !addr.ip().is_loopback() && !has_token {
                    self.error(
                        admin.listen.referenced,
                        "`admin.token` is required when `admin.listen` is not a loopback address",
                    );
                }
            }
        }
        self.cidrs(&config.trusted_proxies);
        if let Some(cluster) = &config.cluster {
            let redis = &cluster.value.redis;
            if !(redis.value.starts_with("redis://") || redis.value.starts_with("rediss://")) {
                self.error(
                    redis.referenced,
                    format!(
                        "invalid Redis URL `{}`: expected `redis://…` or `rediss://…`",
                        redis.value
                    ),
                );
            }
        }
        if let Some(tracing) = &config.observability.tracing {
            let sample = tracing.value.sample;
            if !(0.0..=1.0).contains(&sample) {
                self.error(
                    tracing.referenced,
                    format!("`sample` must be between 0 and 1, not {sample}"),
                );
            }
        }
        if config.limits.max_connections == 0 {
            self.error(
                Location::UNKNOWN,
                "`limits.max_connections` must be at least 1",
            );
        }
    }

    fn service(&mut self, name: &str, service: &Spanned<Service>) {
        let at = service.referenced;
        let service = &service.value;
        match (&service.url, service.targets.is_empty()) {
            (Some(url), false) => self.error(
                url.referenced,
                format!("service `{name}` has both `url` and `targets`; use one"),
            ),
            (None, true) => self.error(at, format!("service `{name}` needs `url` or `targets`")),
            _ => {}
        }
        let urls = service
            .url
            .iter()
            .chain(service.targets.iter().map(|t| &t.url));
        for url in urls {
            if let Err(message) = parse_target_url(&url.value) {
                self.error(url.referenced, message);
            }
        }
        for target in &service.targets {
            if target.weight.value == 0 {
                self.error(target.weight.referenced, "`weight` must be at least 1");
            }
        }
        let hash = service
            .balance
            .as_ref()
            .is_some_and(|b| b.value == Balance::Hash);
        match (&service.hash_on, hash) {
            (None, true) => {
                let at = service.balance.as_ref().map_or(at, |b| b.referenced);
                self.error(at, "`balance: hash` needs `hash_on`");
            }
            (Some(hash_on), false) => {
                self.error(
                    hash_on.referenced,
                    "`hash_on` is only used with `balance: hash`",
                );
            }
            (Some(hash_on), true) => {
                self.selector(
                    hash_on,
                    "hash_on",
                    &["header:NAME", "cookie:NAME", "ip", "consumer"],
                );
            }
            (None, false) => {}
        }
        self.service_transport(service);
        self.resilience(service);
        self.plugins(&service.plugins);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_need_scheme_host_and_nothing_else() {
        let url = parse_target_url("http://127.0.0.1:9001").expect("valid");
        assert_eq!(
            (url.https, url.host.as_str(), url.port),
            (false, "127.0.0.1", 9001)
        );
        assert_eq!(
            parse_target_url("https://api.internal").map(|u| u.port),
            Ok(443)
        );
        assert_eq!(
            parse_target_url("http://[::1]:80/").map(|u| u.host),
            Ok("::1".into())
        );
        for bad in [
            "127.0.0.1:80",
            "ftp://x",
            "http://x/api",
            "http://x?a=1",
            "http://u@x",
            "http://",
        ] {
            assert!(parse_target_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs_accept_bare_addresses() {
        assert_eq!(parse_cidr("10.0.0.0/8").map(|n| n.prefix_len()), Ok(8));
        assert_eq!(parse_cidr("10.1.2.3").map(|n| n.prefix_len()), Ok(32));
        assert_eq!(parse_cidr("::1").map(|n| n.prefix_len()), Ok(128));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("ten").is_err());
    }

    #[test]
    fn listen_addresses_are_ip_port_or_localhost() {
        assert_eq!(
            parse_listen_addr("0.0.0.0:8080").map(|a| a.port()),
            Ok(8080)
        );
        assert_eq!(
            parse_listen_addr("[::]:8443").map(|a| a.is_ipv6()),
            Ok(true)
        );
        let local = parse_listen_addr("localhost:9901").expect("valid");
        assert!(local.ip().is_loopback());
        for bad in [
            "8080",
            ":8080",
            "0.0.0.0",
            "0.0.0.0:80800",
            "example.com:80",
        ] {
            assert!(parse_listen_addr(bad).is_err(), "{bad}");
        }
    }
}
