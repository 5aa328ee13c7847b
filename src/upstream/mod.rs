//! Upstream services: connection pools, target selection and forwarding with timeouts.

mod forward;
mod pool;
mod service;

pub use forward::{UpstreamResponse, send};
pub use pool::{ClientKey, ClientPools, UpstreamClient, UpstreamProtocol};
pub use service::{ServiceRuntime, Target, TargetError};
