//! Compiling the `tls` block (SPEC §2.1) into a `rustls::ServerConfig`: certificates and keys
//! read from their PEM files, the SNI resolver, the client-certificate verifier (mTLS), ALPN
//! and session resumption. Errors point at the `cert`, `key` or `client_ca` value.

use std::sync::Arc;

use pki_types::pem::{self, PemObject};
use pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use super::resolver::SniResolver;
use crate::config::{self, ClientAuth, Config, Location, Spanned};
use crate::runtime::State;

/// The ALPN protocols offered, in preference order.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Builds the server-side TLS settings of `tls`, reading every file it names. Errors are
/// located at the value naming the bad file.
pub fn compile(
    config: &Config,
    tls: &config::Tls,
    state: &State,
) -> Result<Arc<ServerConfig>, Vec<(Location, String)>> {
    let provider = Arc::new(super::provider());
    let mut errors = Vec::new();
    let mut resolver: Option<SniResolver> = None;
    for certificate in &tls.certificates {
        let Some(key) = certified_key(config, certificate, &provider, &mut errors) else {
            continue;
        };
        let key = Arc::new(key);
        let names = match key.cert.first().map(super::names::dns_names) {
            Some(Ok(names)) => names,
            Some(Err(message)) => {
                errors.push((certificate.cert.referenced, message));
                continue;
            }
            None => continue,
        };
        let resolver = resolver.get_or_insert_with(|| SniResolver::new(key.clone()));
        for name in &names {
            resolver.add(name, &key);
        }
    }

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| vec![(Location::UNKNOWN, format!("TLS setup failed: {err}"))])?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => match client_verifier(config, ca, tls.client_auth, &provider) {
            Ok(verifier) => builder.with_client_cert_verifier(verifier),
            Err(message) => {
                errors.push((ca.referenced, message));
                builder.with_no_client_auth()
            }
        },
    };
    let Some(resolver) = resolver.filter(|_| errors.is_empty()) else {
        if errors.is_empty() {
            errors.push((
                Location::UNKNOWN,
                "`tls` needs at least one certificate".into(),
            ));
        }
        return Err(errors);
    };
    let mut server = builder.with_cert_resolver(Arc::new(resolver));
    server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    let (ticketer, cache) = state
        .tls_sessions()
        .map_err(|err| vec![(Location::UNKNOWN, format!("TLS session tickets: {err}"))])?;
    server.ticketer = ticketer;
    server.session_storage = cache;
    Ok(Arc::new(server))
}

/// Reads one `certificates` entry: its chain and its key, checked to belong together.
fn certified_key(
    config: &Config,
    certificate: &config::Certificate,
    provider: &rustls::crypto::CryptoProvider,
    errors: &mut Vec<(Location, String)>,
) -> Option<CertifiedKey> {
    let chain = read_certificates(config, &certificate.cert, errors);
    let key = read_key(config, &certificate.key, errors);
    let (chain, key) = (chain?, key?);
    match CertifiedKey::from_der(chain, key, provider) {
        Ok(key) => Some(key),
        Err(rustls::Error::InconsistentKeys(_)) => {
            let message = format!(
                "the private key `{}` does not match the certificate `{}`",
                certificate.key.value, certificate.cert.value
            );
            errors.push((certificate.key.referenced, message));
            None
        }
        Err(err) => {
            let message = format!("unusable private key `{}`: {err}", certificate.key.value);
            errors.push((certificate.key.referenced, message));
            None
        }
    }
}

/// The certificates of a PEM file; an error when it has none. Also reads the CAs of
/// upstream TLS (`services.*.tls.ca`).
pub(crate) fn read_certificates(
    config: &Config,
    path: &Spanned<String>,
    errors: &mut Vec<(Location, String)>,
) -> Option<Vec<CertificateDer<'static>>> {
    let bytes = read(config, path, "certificate", errors)?;
    let chain: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match chain {
        Ok(chain) if !chain.is_empty() => Some(chain),
        Ok(_) => {
            let message = format!("no PEM certificate in `{}`", path.value);
            errors.push((path.referenced, message));
            None
        }
        Err(err) => {
            let message = format!("invalid PEM in `{}`: {}", path.value, pem_error(&err));
            errors.push((path.referenced, message));
            None
        }
    }
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
fn read_key(
    config: &Config,
    path: &Spanned<String>,
    errors: &mut Vec<(Location, String)>,
) -> Option<PrivateKeyDer<'static>> {
    let bytes = read(config, path, "private key", errors)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Some(key),
        Err(pem::Error::NoItemsFound) => {
            let message = format!("no PEM private key in `{}`", path.value);
            errors.push((path.referenced, message));
            None
        }
        Err(err) => {
            let message = format!("invalid PEM in `{}`: {}", path.value, pem_error(&err));
            errors.push((path.referenced, message));
            None
        }
    }
}

/// The verifier of client certificates signed by the CAs in `ca`.
fn client_verifier(
    config: &Config,
    ca: &Spanned<String>,
    client_auth: ClientAuth,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut errors = Vec::new();
    let Some(certs) = read_certificates(config, ca, &mut errors) else {
        return Err(errors
            .pop()
            .map_or_else(|| "unreadable `client_ca`".to_owned(), |(_, m)| m));
    };
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|err| format!("unusable CA certificate in `{}`: {err}", ca.value))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match client_auth {
        ClientAuth::Optional => builder.allow_unauthenticated(),
        ClientAuth::Required => builder,
    };
    builder
        .build()
        .map_err(|err| format!("unusable `client_ca` `{}`: {err}", ca.value))
}

/// The bytes of a file named in the config (relative to the config file's directory).
fn read(
    config: &Config,
    path: &Spanned<String>,
    what: &str,
    errors: &mut Vec<(Location, String)>,
) -> Option<Vec<u8>> {
    let resolved = config.resolve_path(&path.value);
    match std::fs::read(&resolved) {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            let message = format!(
                "cannot read the {what} file `{}`: {err}",
                resolved.display()
            );
            errors.push((path.referenced, message));
            None
        }
    }
}

/// A PEM error without the file's contents.
fn pem_error(err: &pem::Error) -> String {
    match err {
        pem::Error::Io(err) => err.to_string(),
        pem::Error::NoItemsFound => "nothing found".to_owned(),
        _ => "malformed PEM section".to_owned(),
    }
}
