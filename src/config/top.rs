//! The top level of the file (SPEC §2.1): listeners, TLS, admin, limits, cluster,
//! observability, and the maps and lists of §2.2–§2.4 and §3.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::consumer::Consumer;
use super::plugins::Plugins;
use super::route::Route;
use super::service::Service;
use super::shapes::{OneOrMany, located, null_as_default};
use super::tokens::Secret;
use super::units::{ByteSize, Duration};

/// The listen address used when the file has no `listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// A whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The name of the file it was read from, for located errors (not a key of the file).
    #[serde(skip)]
    pub file: String,
    /// Plain-TCP listen addresses (HTTP/1.1 and h2c); a string or a list. Absent:
    /// [`DEFAULT_LISTEN`]. Read it with [`Config::listen_addresses`].
    pub listen: Option<Spanned<OneOrMany<Spanned<String>>>>,
    /// HTTPS listeners.
    pub tls: Option<Spanned<Tls>>,
    /// The admin API and dashboard; off when absent.
    pub admin: Option<Spanned<Admin>>,
    /// Connection and request limits.
    pub limits: Limits,
    /// CIDRs (or bare IPs) of proxies whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "null_as_default")]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Shared state for several gateway nodes.
    pub cluster: Option<Spanned<Cluster>>,
    /// Access log and tracing export.
    pub observability: Observability,
    /// Upstream services by name, in file order.
    #[serde(deserialize_with = "null_as_default")]
    pub services: IndexMap<String, Spanned<Service>>,
    /// Known API clients by name, in file order.
    #[serde(deserialize_with = "null_as_default")]
    pub consumers: IndexMap<String, Consumer>,
    /// Global plugins, applied to every route.
    pub plugins: Plugins,
    /// The routes, in file order (at least one is required).
    #[serde(deserialize_with = "null_as_default")]
    pub routes: Vec<Spanned<Route>>,
}

impl Config {
    /// A file path from the config (certificates, keys): relative paths are relative to the
    /// directory of the config file.
    pub fn resolve_path(&self, path: &str) -> std::path::PathBuf {
        let path = std::path::Path::new(path);
        match std::path::Path::new(&self.file).parent() {
            Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// The plain-TCP listen addresses as written, each located; the default when absent.
    pub fn listen_addresses(&self) -> Vec<Spanned<String>> {
        match &self.listen {
            Some(listen) => located(listen),
            None => vec![Spanned::new(
                DEFAULT_LISTEN.to_owned(),
                serde_saphyr::Location::UNKNOWN,
                serde_saphyr::Location::UNKNOWN,
            )],
        }
    }
}

/// HTTPS listeners (HTTP/1.1 and HTTP/2 via ALPN).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// TLS listen addresses; a string or a list.
    pub listen: Spanned<OneOrMany<Spanned<String>>>,
    /// Certificates, picked by SNI from their names; the first is the default.
    pub certificates: Vec<Certificate>,
    /// PEM file of CAs whose client certificates are accepted (mTLS); asks for none when absent.
    #[serde(default)]
    pub client_ca: Option<Spanned<String>>,
    /// Whether a client certificate is optional or required when `client_ca` is set.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// `true`: plain listeners answer 308 to the https URL.
    #[serde(default)]
    pub redirect_http: bool,
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Path of the PEM certificate chain.
    pub cert: Spanned<String>,
    /// Path of the PEM private key.
    pub key: Spanned<String>,
}

/// Whether TLS clients must present a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// A certificate is verified when presented (the default).
    #[default]
    Optional,
    /// The handshake fails without a valid certificate.
    Required,
}

/// The admin API listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address of the admin listener.
    pub listen: Spanned<String>,
    /// Bearer token required by every endpoint but `/health`; required off loopback.
    #[serde(default)]
    pub token: Option<Spanned<Secret>>,
}

/// Connection and request limits; every field has the SPEC's default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body (413 beyond it). Default 10MiB.
    pub max_body: ByteSize,
    /// Largest request head (431 beyond it). Default 64KiB.
    pub max_header_bytes: ByteSize,
    /// Time allowed to receive a request's headers. Default 10s.
    pub header_timeout: Duration,
    /// Keep-alive idle time. Default 60s.
    pub idle_timeout: Duration,
    /// Open connections beyond which new ones wait in the backlog. Default 25000.
    pub max_connections: u32,
    /// Time in-flight requests get to finish on shutdown. Default 30s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: ByteSize::mib(10),
            max_header_bytes: ByteSize::kib(64),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 25_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Shared state for several gateway nodes (SPEC §7).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Redis URL of the shared store.
    pub redis: Spanned<String>,
    /// What to do while the store cannot be reached.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
}

/// Behaviour while the cluster store is down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Fall back to per-node state (the default).
    #[default]
    Local,
    /// Answer 503 on routes that need the store.
    Deny,
}

/// Logs and traces.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Observability {
    /// Where the JSON access log goes.
    pub access_log: AccessLog,
    /// OpenTelemetry export; off when absent.
    pub tracing: Option<Spanned<Tracing>>,
}

/// Access log destination: `stdout` (the default), `off`, or a file path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessLog {
    /// Standard output.
    #[default]
    Stdout,
    /// No access log.
    Off,
    /// Append to this file.
    File(String),
}

impl<'de> Deserialize<'de> for AccessLog {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match String::deserialize(deserializer)?.as_str() {
            "stdout" => Self::Stdout,
            "off" => Self::Off,
            path => Self::File(path.to_owned()),
        })
    }
}

/// OpenTelemetry trace export.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    /// OTLP collector endpoint.
    pub otlp: Spanned<String>,
    /// Fraction of requests sampled, 0.0–1.0. Default 1.0.
    #[serde(default = "one")]
    pub sample: f64,
}

fn one() -> f64 {
    1.0
}
