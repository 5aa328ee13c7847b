//! `auth.mtls`: the verified client certificate's subject CN names a consumer.

use std::sync::Arc;

use super::consumers::Consumers;
use super::{Challenge, Outcome, Rejection};
use crate::server::ConnContext;

/// Client-certificate authentication. The TLS handshake has verified the certificate
/// against `tls.client_ca`; this maps its CN to a consumer.
pub(super) struct MtlsAuth {
    consumers: Arc<Consumers>,
}

impl MtlsAuth {
    pub(super) fn new(consumers: Arc<Consumers>) -> Self {
        Self { consumers }
    }

    pub(super) fn check(&self, conn: &ConnContext) -> Outcome {
        let Some(cn) = conn.client_cn.as_deref() else {
            return Outcome::Absent;
        };
        match self.consumers.get(cn) {
            Some(consumer) => Outcome::Valid(consumer.identity.clone()),
            None => Outcome::Invalid(Rejection {
                challenge: Challenge::ClientCertificate,
                reason: "the certificate names no known consumer",
            }),
        }
    }
}
