//! Upstream services: connection pools, target selection and forwarding with timeouts.

mod forward;
mod pool;
mod registry;
mod service;

pub use forward::{Failure, UpstreamResponse, send};
pub use pool::{ClientPools, ConnectError, Lease, TargetPool, UpstreamProtocol, WorkerPools};
pub use registry::{Attempt, Outcome, ServiceState, TargetKey, TargetState, UpstreamRegistry};
pub use service::{Endpoint, Endpoints, PickKey, ServiceRuntime, Target, TargetError};
