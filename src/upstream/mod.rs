//! Upstream services: connection pools, balancing, DNS discovery, forwarding with timeouts,
//! retries and TLS to https targets, and what keeps failing targets out of the way: active
//! health checks, passive ejection and the circuit breaker.

mod added;
mod balance;
pub mod breaker;
mod clock;
mod discovery;
mod forward;
mod h1;
pub mod health;
pub mod passive;
mod pool;
mod registry;
mod retry;
mod service;
pub mod status;
mod tls;

pub use added::{AddedHeaders, NO_ADDED_HEADERS};
pub use balance::{Balance, PeakEwma, RequestKey, stable_hash};
pub use breaker::Permit;
pub use discovery::RESOLVE_EVERY;
pub use forward::{Failure, UpstreamResponse, connect, exchange, send};
pub use h1::{HeadBytes, Http1Body};
pub use pool::{
    ClientPools, ConnectError, Connection, Lease, SWEEP_EVERY, TargetPool, UpstreamProtocol,
    WorkerPools,
};
pub use registry::{Attempt, Outcome, ServiceState, TargetKey, TargetState, UpstreamRegistry};
pub use retry::{MIN_RETRIES_PER_SEC, RetryBudget, RetryPolicy};
pub use service::{Endpoint, Endpoints, PickKey, ServiceRuntime, Target, TargetError};
pub use tls::{TargetTls, TlsKey, UpstreamTls};

/// Locks `mutex`, recovering the data of a holder that panicked: every state behind these
/// mutexes stays valid between writes.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
