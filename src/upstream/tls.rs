//! TLS to `https://` targets (SPEC §2.2 `tls`): a rustls client (aws-lc-rs) per service,
//! trusting the `ca` file when given, else the platform's roots; `verify: false` accepts any
//! certificate; `sni` replaces the server name sent and verified. ALPN offers HTTP/2 and
//! HTTP/1.1, and the server's choice decides how the connection is used (see `pool`).
//!
//! The CA file is read when the config is compiled, so a reload re-reads it. The settings'
//! identity ([`TlsKey`]) is part of the connection pools' key: targets that differ in their TLS
//! settings never share a connection.

use std::sync::{Arc, OnceLock};

use pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::config::{Config, Location, ServiceTls, Spanned};

/// The ALPN protocols offered to `protocol: http` targets, in preference order.
const ALPN_HTTP: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What makes two targets' TLS settings the same, for pool keys: the settings as compiled
/// (the CA file's contents, not its name) and the server name the target is verified as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsKey {
    verify: bool,
    ca: Option<Arc<[u8]>>,
    server_name: String,
}

/// A service's TLS client settings, compiled once per config.
#[derive(Clone)]
pub struct UpstreamTls {
    config: Arc<ClientConfig>,
    verify: bool,
    ca: Option<Arc<[u8]>>,
    sni: Option<ServerName<'static>>,
}

/// The TLS settings of one target: the service's, with the server name it is checked as.
#[derive(Clone)]
pub struct TargetTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    key: TlsKey,
}

impl std::fmt::Debug for TargetTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetTls").field("key", &self.key).finish()
    }
}

impl TargetTls {
    /// Opens TLS over `stream`, offering the service's ALPN protocols.
    pub(super) async fn handshake(
        &self,
        stream: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
    }

    /// The identity of these settings, for pool keys.
    pub fn key(&self) -> &TlsKey {
        &self.key
    }
}

impl UpstreamTls {
    /// Compiles the `tls` block of the service `service` (absent: verify against the platform's
    /// roots, server name from the URL). Reads the `ca` file; errors point at the key.
    pub fn compile(
        config: &Config,
        service: &str,
        tls: Option<&Spanned<ServiceTls>>,
    ) -> Result<Self, Located> {
        let settings = tls.map(|t| t.value.clone()).unwrap_or_default();
        let provider = Arc::new(crate::server::tls::provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| (Location::UNKNOWN, format!("TLS setup failed: {err}")))?;
        let mut ca_bytes = None;
        let builder = if settings.verify {
            let roots = match &settings.ca {
                Some(ca) => {
                    let (roots, bytes) = read_roots(config, ca)?;
                    ca_bytes = Some(bytes);
                    Arc::new(roots)
                }
                None => platform_roots(),
            };
            builder.with_root_certificates(roots)
        } else {
            tracing::warn!(
                service,
                "`tls.verify` is false: the service's certificates are not checked, \
                 so anyone on the path can impersonate it"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
        };
        let mut client = builder.with_no_client_auth();
        client.alpn_protocols = ALPN_HTTP.iter().map(|p| p.to_vec()).collect();
        let sni = match &settings.sni {
            Some(sni) => Some(
                ServerName::try_from(sni.value.clone())
                    .map_err(|_| (sni.referenced, format!("invalid `sni` `{}`", sni.value)))?,
            ),
            None => None,
        };
        Ok(Self {
            config: Arc::new(client),
            verify: settings.verify,
            ca: ca_bytes,
            sni,
        })
    }

    /// The settings for a target whose URL names `host`: the server name is `sni` when set,
    /// else `host`.
    pub fn for_host(&self, host: &str) -> Result<TargetTls, String> {
        let server_name = match &self.sni {
            Some(sni) => sni.clone(),
            None => ServerName::try_from(host.to_owned())
                .map_err(|_| format!("`{host}` is not a valid TLS server name"))?,
        };
        Ok(TargetTls {
            connector: TlsConnector::from(self.config.clone()),
            key: TlsKey {
                verify: self.verify,
                ca: self.ca.clone(),
                server_name: server_name.to_str().into_owned(),
            },
            server_name,
        })
    }
}

/// A config error: where, and what.
type Located = (Location, String);

/// The CAs of the `ca` file, and their DER bytes (the settings' identity).
fn read_roots(
    config: &Config,
    ca: &Spanned<String>,
) -> Result<(RootCertStore, Arc<[u8]>), Located> {
    let mut errors = Vec::new();
    let certs =
        crate::server::tls::read_certificates(config, ca, &mut errors).ok_or_else(|| {
            errors
                .pop()
                .unwrap_or((ca.referenced, "unreadable `ca`".into()))
        })?;
    let mut roots = RootCertStore::empty();
    let mut identity = Vec::new();
    for cert in certs {
        identity.extend_from_slice(&cert);
        roots.add(cert).map_err(|err| {
            let message = format!("unusable CA certificate in `{}`: {err}", ca.value);
            (ca.referenced, message)
        })?;
    }
    Ok((roots, identity.into()))
}

/// The platform's trusted roots, read once per process (a reload does not re-read them).
fn platform_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for err in &found.errors {
                tracing::warn!(%err, "could not read some of the platform's CA certificates");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    ignored,
                    "no platform CA certificates found: https targets need `tls.ca`"
                );
            }
            Arc::new(roots)
        })
        .clone()
}

/// `verify: false`: any certificate is accepted, but the handshake signatures are still
/// checked (the peer holds the key of the certificate it showed).
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
