//! Pooled HTTP clients, kept in the state registry so that a reload keeps warm connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::RequestBody;

/// A pooled client: keep-alive HTTP/1.1, or multiplexed HTTP/2 for h2c services.
pub type UpstreamClient = Client<HttpConnector, RequestBody>;

/// How the gateway speaks to a service's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2 over cleartext, prior knowledge.
    H2c,
}

/// What makes two services able to share one client (and so its pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The protocol spoken to targets.
    pub protocol: UpstreamProtocol,
    /// The TCP connect timeout.
    pub connect_timeout: Duration,
}

/// The clients in use, by [`ClientKey`], one per worker thread (each worker keeps its own
/// connections); lives in the state registry across reloads.
pub struct ClientPools {
    workers: usize,
    clients: Mutex<HashMap<ClientKey, Arc<[UpstreamClient]>>>,
}

impl Default for ClientPools {
    fn default() -> Self {
        Self::new(crate::server::worker_count())
    }
}

impl ClientPools {
    /// Pools for `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            clients: Mutex::default(),
        }
    }

    /// The clients for `key`, one per worker, made on first use and shared after.
    pub fn clients(&self, key: ClientKey) -> Arc<[UpstreamClient]> {
        let mut clients = match self.clients.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(key)
            .or_insert_with(|| (0..self.workers).map(|_| build(key)).collect())
            .clone()
    }
}

fn build(key: ClientKey) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(key.connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .http1_max_headers(256)
        .retry_canceled_requests(false)
        .set_host(false);
    if key.protocol == UpstreamProtocol::H2c {
        builder
            .http2_only(true)
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(10));
    }
    builder.build(connector)
}
