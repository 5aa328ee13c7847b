//! Picking the certificate of a TLS handshake by the client's SNI name.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Certificates by the DNS names they are valid for. An exact name wins over a wildcard;
/// `*.example.com` matches exactly one label before `example.com`; among certificates with
/// the same name, the first listed wins. Without SNI, or for a name no certificate has, the
/// first certificate (the default) is served.
#[derive(Debug)]
pub(super) struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Wildcard certificates by the suffix after `*.` (`example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// A resolver serving `default` when no name matches.
    pub(super) fn new(default: Arc<CertifiedKey>) -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
        }
    }

    /// Makes `key` the certificate for `name` (`api.example.com` or `*.example.com`), unless
    /// an earlier certificate has that name.
    pub(super) fn add(&mut self, name: &str, key: &Arc<CertifiedKey>) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let (map, name) = match name.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix.to_owned()),
            None => (&mut self.exact, name),
        };
        map.entry(name).or_insert_with(|| key.clone());
    }

    /// The certificate for a server name (the default when none has it).
    pub(super) fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return key;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;

    /// A certified key told apart by its (fake) certificate bytes; signing is never used.
    fn key(tag: u8) -> Arc<CertifiedKey> {
        #[derive(Debug)]
        struct NoKey;
        impl rustls::sign::SigningKey for NoKey {
            fn choose_scheme(
                &self,
                _: &[rustls::SignatureScheme],
            ) -> Option<Box<dyn rustls::sign::Signer>> {
                None
            }
            fn algorithm(&self) -> rustls::SignatureAlgorithm {
                rustls::SignatureAlgorithm::ECDSA
            }
        }
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![tag])],
            Arc::new(NoKey),
        ))
    }

    fn tag(key: &Arc<CertifiedKey>) -> u8 {
        key.cert[0].as_ref()[0]
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let mut r = SniResolver::new(key(0));
        r.add("api.example.com", &key(1));
        r.add("*.example.com", &key(2));
        r.add("API.other.org.", &key(3));
        r.add("api.example.com", &key(4)); // a later certificate with the same name loses
        assert_eq!(tag(r.pick(Some("api.example.com"))), 1);
        assert_eq!(tag(r.pick(Some("Api.Example.com"))), 1);
        assert_eq!(tag(r.pick(Some("www.example.com"))), 2);
        assert_eq!(tag(r.pick(Some("api.other.org"))), 3);
        // A wildcard matches one label only, and not the bare domain.
        assert_eq!(tag(r.pick(Some("a.b.example.com"))), 0);
        assert_eq!(tag(r.pick(Some("example.com"))), 0);
        assert_eq!(tag(r.pick(Some("unknown.net"))), 0);
        assert_eq!(tag(r.pick(None)), 0);
    }
}
