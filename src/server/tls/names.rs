//! What the gateway reads from X.509 certificates: the DNS names a server certificate is for,
//! and the subject CN of a client certificate.

use std::sync::Arc;

use pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names a server certificate is valid for: its SAN DNS names, else its subject CN.
pub(super) fn dns_names(der: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|err| format!("cannot parse the certificate: {err}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|err| format!("cannot parse the certificate's names: {err}"))?;
    let mut names: Vec<String> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        names.extend(common_name(&cert));
    }
    Ok(names)
}

/// The subject CN of a (verified) client certificate.
pub fn client_cn(der: &CertificateDer<'_>) -> Option<Arc<str>> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    common_name(&cert).map(Arc::from)
}

fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}
