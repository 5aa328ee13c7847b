//! Upstream services: connection pools, target selection, forwarding with timeouts, and what
//! keeps failing targets out of the way: active health checks, passive ejection and the
//! circuit breaker.

pub mod breaker;
mod clock;
mod forward;
pub mod health;
pub mod passive;
mod pool;
mod registry;
mod service;
pub mod status;

pub use breaker::Permit;
pub use forward::{Failure, UpstreamResponse, send};
pub use pool::{ClientPools, ConnectError, Lease, TargetPool, UpstreamProtocol, WorkerPools};
pub use registry::{Attempt, Outcome, ServiceState, TargetKey, TargetState, UpstreamRegistry};
pub use service::{Endpoint, Endpoints, PickKey, ServiceRuntime, Target, TargetError};
