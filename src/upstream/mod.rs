//! Upstream services: connection pools, balancing, DNS discovery and forwarding with timeouts.

mod balance;
mod discovery;
mod forward;
mod pool;
mod registry;
mod service;

pub use balance::{Balance, PeakEwma, RequestKey, stable_hash};
pub use discovery::RESOLVE_EVERY;
pub use forward::{Failure, UpstreamResponse, send};
pub use pool::{ClientPools, ConnectError, Lease, TargetPool, UpstreamProtocol, WorkerPools};
pub use registry::{Attempt, Outcome, ServiceState, TargetKey, TargetState, UpstreamRegistry};
pub use service::{Endpoint, Endpoints, PickKey, ServiceRuntime, Target, TargetError};
