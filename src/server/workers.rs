//! Thread-per-core serving, as nginx does with worker processes: one thread per core, each with
//! its own single-threaded runtime, its own `SO_REUSEPORT` socket on every listen address and
//! its own upstream connection pools. A request never leaves the thread that accepted its
//! connection, so the hot path has no cross-thread wake-ups.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::listener::{Scheme, serve};
use crate::pipeline::Gateway;

/// How many connections may wait in the kernel's accept queue of each socket.
const BACKLOG: i32 = 4096;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker thread running the caller (0 outside workers).
pub fn current_worker() -> usize {
    WORKER.with(Cell::get)
}

/// How many worker threads to run: `GATEHOUSE_WORKERS`, else one per available core.
pub fn worker_count() -> usize {
    std::env::var("GATEHOUSE_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Binds `count` sockets sharing `addr` with `SO_REUSEPORT` (port 0: the first picks a free
/// port and the others join it).
pub fn bind_shared(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = bind_socket(addr, true)?;
    let actual = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_socket(actual, true)?);
    }
    Ok(sockets)
}

/// Binds one listening socket on `addr` that no other socket may share (the admin API's).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bind_socket(addr, false)
}

fn bind_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// What every worker shares.
pub struct WorkerShared {
    /// The request handler.
    pub gateway: Arc<Gateway>,
    /// Open connections allowed across every worker and listener.
    pub connections: Arc<Semaphore>,
    /// Cancelled to stop accepting and drain.
    pub shutdown: CancellationToken,
    /// Every connection task, to wait for on shutdown.
    pub tracker: TaskTracker,
}

/// Starts one thread per entry of `sockets` (each entry: that worker's socket for every listen
/// address, plain and TLS, with what it speaks). A worker serves until `shutdown`, then drains its connections within the
/// shutdown grace and stops.
pub fn start(
    sockets: Vec<Vec<(std::net::TcpListener, Scheme)>>,
    shared: &WorkerShared,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut threads = Vec::with_capacity(sockets.len());
    for (index, listeners) in sockets.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let gateway = shared.gateway.clone();
        let connections = shared.connections.clone();
        // A token of the worker's own: each connection task polls it whenever it runs, and
        // a shared one would make every poll take a lock the other workers take too.
        let shutdown = shared.shutdown.child_token();
        let tracker = shared.tracker.clone();
        let thread = std::thread::Builder::new()
            .name(format!("gatehouse-worker-{index}"))
            .spawn(move || {
                WORKER.with(|w| w.set(index));
                runtime.block_on(async move {
                    for (listener, scheme) in listeners {
                        match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => {
                                tokio::spawn(serve(
                                    listener,
                                    scheme,
                                    gateway.clone(),
                                    connections.clone(),
                                    shutdown.clone(),
                                    tracker.clone(),
                                ));
                            }
                            Err(err) => tracing::error!(%err, "cannot use a listener"),
                        }
                    }
                    shutdown.cancelled().await;
                    let grace = gateway.limits().shutdown_grace;
                    let _ = tokio::time::timeout(grace, tracker.wait()).await;
                });
            })?;
        threads.push(thread);
    }
    Ok(threads)
}
