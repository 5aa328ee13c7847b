//! Client-facing listeners: accepting within `limits.max_connections`, terminating TLS,
//! serving HTTP/1.1 and HTTP/2 on each connection, closing idle and slow connections, and
//! draining on shutdown.

mod activity;
mod connection;
mod framing;
mod h1;
mod io;
mod listener;
mod parse_error;
pub mod tls;
mod workers;

pub use activity::{ConnActivity, Verdict};
pub use connection::ConnContext;
pub use listener::{Scheme, serve};
pub use workers::{
    WorkerShared, bind, bind_shared, current_worker, start as start_workers, worker_count,
};
