//! TLS termination (SPEC §2.1 `tls`): rustls with the aws-lc-rs provider. The
//! `rustls::ServerConfig` is compiled with the rest of the runtime ([`compile`]), so a reload
//! re-reads the certificate files; every accepted connection takes the config of the runtime
//! serving at that moment ([`handshake`]).

mod names;
mod resolver;
mod settings;

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

pub use names::client_cn;
pub use settings::compile;
pub(crate) use settings::read_certificates;

use crate::pipeline::Gateway;

/// The crypto provider of every TLS config the gateway builds.
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Makes aws-lc-rs the process-wide default provider, for TLS configs built without an
/// explicit one (HTTP clients). Harmless when a default is already installed.
pub fn install_default_provider() {
    let _ = provider().install_default();
}

/// A TLS connection after its handshake, with the client certificate's CN when one was
/// verified.
pub(super) struct Established {
    /// The decrypted stream.
    pub(super) stream: TlsStream<TcpStream>,
    /// The subject CN of the verified client certificate.
    pub(super) client_cn: Option<Arc<str>>,
}

/// Runs the TLS handshake on `stream` with the current runtime's TLS config, within
/// `limits.header_timeout`. `None` when it fails, times out, the gateway shuts down, or the
/// current config has no `tls` (removed by a reload).
pub(super) async fn handshake(
    stream: TcpStream,
    gateway: &Gateway,
    shutdown: &CancellationToken,
) -> Option<Established> {
    let (config, timeout) = {
        let runtime = gateway.runtime().current();
        (runtime.tls.clone(), runtime.limits.header_timeout)
    };
    let peer = stream.peer_addr().ok();
    let Some(config) = config else {
        tracing::debug!(
            ?peer,
            "TLS connection refused: the config has no `tls` any more"
        );
        return None;
    };
    let accept = TlsAcceptor::from(config).accept(stream);
    let stream = tokio::select! {
        result = tokio::time::timeout(timeout, accept) => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(?peer, %err, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(?peer, "TLS handshake timed out");
                return None;
            }
        },
        () = shutdown.cancelled() => return None,
    };
    let client_cn = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(client_cn);
    Some(Established { stream, client_cn })
}
