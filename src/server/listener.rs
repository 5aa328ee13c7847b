//! Binding listeners and the accept loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection::{Accepted, serve_connection};
use super::tls;
use crate::pipeline::Gateway;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP: HTTP/1.1 and h2c.
    Http,
    /// TLS (`tls.listen`): HTTP/1.1 and HTTP/2 via ALPN.
    Https,
}

/// Accepts connections on `listener` until `shutdown`, serving each in a task of `tracker`.
/// `connections` bounds how many are open at once across every listener and worker. On an
/// [`Scheme::Https`] listener the TLS handshake runs in the connection's task.
pub async fn serve(
    listener: TcpListener,
    scheme: Scheme,
    gateway: Arc<Gateway>,
    connections: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let local = match listener.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            tracing::error!(%err, "listener has no local address");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(%err, %local, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // At the limit, this connection waits for a slot and the accept loop with it, so
        // further connections stay in the kernel's backlog. (Waiting before `accept` would
        // let a worker whose socket has nothing pending hold the freed slot.)
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        // Clocked: what runs in the connection's task reads the clock once per poll.
        tracker.spawn(crate::poll_clock::Clocked::new(async move {
            let mut accepted = Accepted {
                peer,
                local,
                tls: false,
                client_cn: None,
            };
            match scheme {
                Scheme::Http => serve_connection(stream, accepted, gateway, shutdown).await,
                Scheme::Https => {
                    if let Some(tls) = tls::handshake(stream, &gateway, &shutdown).await {
                        accepted.tls = true;
                        accepted.client_cn = tls.client_cn;
                        serve_connection(tls.stream, accepted, gateway, shutdown).await;
                    }
                }
            }
            drop(permit);
        }));
    }
}
