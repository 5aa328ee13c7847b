//! Service checks of how targets are reached: `retries`, `tls` and `protocol` against the
//! targets' schemes.

use super::Checker;
use crate::config::service::{Protocol, RetryOn, Service};

/// Most extra tries `retries.attempts` may ask for: more only multiplies load on a failing
/// service (the retry budget caps them anyway).
const MAX_RETRY_ATTEMPTS: u32 = 10;

impl Checker<'_> {
    /// Checks `retries`, `tls` and `protocol` of one service.
    pub(super) fn service_transport(&mut self, service: &Service) {
        if let Some(retries) = &service.retries {
            if retries.value.attempts > MAX_RETRY_ATTEMPTS {
                self.error(
                    retries.referenced,
                    format!(
                        "`retries.attempts` is at most {MAX_RETRY_ATTEMPTS}, not {}",
                        retries.value.attempts
                    ),
                );
            }
            for on in &retries.value.on {
                if let RetryOn::Status(status) = on.value
                    && !(400..=599).contains(&status)
                {
                    self.error(
                        on.referenced,
                        format!("`retries.on` status {status} is not an error status (400–599)"),
                    );
                }
            }
        }
        let urls = || {
            service
                .url
                .iter()
                .chain(service.targets.iter().map(|t| &t.url))
        };
        let https = |url: &str| url.trim_start().starts_with("https://");
        if let Some(tls) = &service.tls
            && !urls().any(|u| https(&u.value))
        {
            self.error(
                tls.referenced,
                "`tls` applies to https:// targets and this service has none",
            );
        }
        if let Some(sni) = service.tls.as_ref().and_then(|t| t.value.sni.as_ref())
            && pki_types::ServerName::try_from(sni.value.as_str()).is_err()
        {
            self.error(
                sni.referenced,
                format!("`sni` `{}` is not a valid server name", sni.value),
            );
        }
        let h2c = service
            .protocol
            .as_ref()
            .is_some_and(|p| p.value == Protocol::H2c);
        if h2c {
            for url in urls().filter(|u| https(&u.value)) {
                self.error(
                    url.referenced,
                    "`protocol: h2c` is HTTP/2 in cleartext; an https:// target negotiates \
                     HTTP/2 by ALPN with `protocol: http`",
                );
            }
        }
    }
}
