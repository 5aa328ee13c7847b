//! Upstream services: connection pools, target selection and forwarding with timeouts.

mod forward;
mod pool;
mod service;

pub use forward::{UpstreamResponse, send};
pub use pool::{ClientPools, ConnectError, Lease, TargetPool, UpstreamProtocol, WorkerPools};
pub use service::{ServiceRuntime, Target, TargetError};
