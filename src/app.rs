//! A running gateway: listeners bound, admin API up, reloads and graceful shutdown.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminState};
use crate::config::{self, Config, ConfigErrors};
use crate::pipeline::Gateway;
use crate::runtime::{self, State};
use crate::server;

/// Why the gateway could not start.
#[derive(Debug)]
pub enum StartError {
    /// The config is invalid.
    Config(ConfigErrors),
    /// A listener could not be bound.
    Bind {
        /// The address asked for.
        addr: String,
        /// What the system said.
        error: std::io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(errors) => write!(f, "{errors}"),
            Self::Bind { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A gateway that is serving.
pub struct Gatehouse {
    /// The addresses of the plain listeners, in config order.
    pub listeners: Vec<SocketAddr>,
    /// The addresses of the TLS listeners (`tls.listen`), in config order.
    pub tls_listeners: Vec<SocketAddr>,
    /// The admin API's address, when enabled.
    pub admin: Option<SocketAddr>,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    config_path: Option<PathBuf>,
}

impl Gatehouse {
    /// Compiles `config`, binds its listeners and starts serving.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        Self::start_with_path(config, None).await
    }

    /// Loads the config file at `path` and starts serving; `reload` re-reads that file.
    pub async fn start_file(path: &Path) -> Result<Self, StartError> {
        let config = config::load_file(path).map_err(StartError::Config)?;
        Self::start_with_path(config, Some(path.to_owned())).await
    }

    async fn start_with_path(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Self, StartError> {
        server::tls::install_default_provider();
        let state = Arc::new(State::default());
        let compiled = runtime::compile(&config, &state).map_err(StartError::Config)?;
        let limits = compiled.limits;
        let gateway = Arc::new(Gateway::new(compiled, state));

        raise_file_limit(limits.max_connections);
        let workers = server::worker_count();
        // sockets[w][l]: worker w's socket on listen address l, with what it speaks.
        let mut sockets: Vec<Vec<(std::net::TcpListener, server::Scheme)>> =
            (0..workers).map(|_| Vec::new()).collect();
        let tls_addresses = config
            .tls
            .as_ref()
            .map(|tls| config::located(&tls.value.listen))
            .unwrap_or_default();
        let mut listeners = Vec::new();
        let mut tls_listeners = Vec::new();
        let plain = config.listen_addresses().into_iter().map(|a| (a, false));
        for (addr, tls) in plain.chain(tls_addresses.into_iter().map(|a| (a, true))) {
            let (local, group) = bind_group(&addr.value, workers)?;
            let scheme = if tls {
                tls_listeners.push(local);
                server::Scheme::Https
            } else {
                listeners.push(local);
                server::Scheme::Http
            };
            for (worker, listener) in group.into_iter().enumerate() {
                sockets[worker].push((listener, scheme));
            }
        }
        if let Some(first) = tls_listeners.first() {
            gateway
                .state()
                .https_port
                .store(first.port(), Ordering::Relaxed);
        }
        let admin_listener = match &config.admin {
            Some(admin) => {
                let text = admin.value.listen.value.clone();
                let socket =
                    config::parse_listen_addr(&text).map_err(|message| StartError::Bind {
                        addr: text.clone(),
                        error: std::io::Error::other(message),
                    })?;
                let listener = server::bind(socket)
                    .and_then(tokio::net::TcpListener::from_std)
                    .map_err(|error| StartError::Bind { addr: text, error })?;
                let token = admin
                    .value
                    .token
                    .as_ref()
                    .map(|t| t.value.expose().to_owned());
                Some((listener, token))
            }
            None => None,
        };

        let shared = server::WorkerShared {
            gateway: gateway.clone(),
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        };
        server::start_workers(sockets, &shared).map_err(|error| StartError::Bind {
            addr: "worker threads".into(),
            error,
        })?;
        for addr in &listeners {
            tracing::info!("listening on http://{addr} (HTTP/1.1 and h2c, {workers} workers)");
        }
        for addr in &tls_listeners {
            tracing::info!(
                "listening on https://{addr} (TLS, HTTP/1.1 and HTTP/2 via ALPN, {workers} workers)"
            );
        }
        let server::WorkerShared {
            shutdown, tracker, ..
        } = shared;
        let mut admin_addr = None;
        if let Some((listener, token)) = admin_listener {
            let addr = listener.local_addr().map_err(|error| StartError::Bind {
                addr: "admin".into(),
                error,
            })?;
            tracing::info!("{}", admin::describe(addr));
            let state = AdminState::new(token);
            state.ready.store(true, Ordering::Release);
            tokio::spawn(admin::serve(listener, state, shutdown.clone()));
            admin_addr = Some(addr);
        }
        // Idle rate-limit keys are freed even where no request comes any more.
        let counters = gateway.state().rate_limits.clone();
        tokio::spawn(counters.sweep_every(shutdown.clone()));
        // Idle upstream connections the targets closed are closed here too.
        let pools = gateway.state().pools.clone();
        tokio::spawn(pools.sweep_every(shutdown.clone()));
        Ok(Self {
            listeners,
            tls_listeners,
            admin: admin_addr,
            gateway,
            shutdown,
            tracker,
            config_path,
        })
    }

    /// The request handler, for inspection in tests.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Compiles `config` and swaps it in; on error the running config keeps serving.
    /// Listener addresses (plain and TLS) and the admin listener are not changed by a reload;
    /// TLS certificates are re-read and serve every connection accepted after the swap.
    pub fn apply(&self, config: &Config) -> Result<(), ConfigErrors> {
        let compiled = runtime::compile(config, self.gateway.state())?;
        self.gateway.runtime().swap(compiled);
        Ok(())
    }

    /// Re-reads the config file the gateway was started from and applies it.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let Some(path) = &self.config_path else {
            return Ok(());
        };
        let config = config::load_file(path)?;
        self.apply(&config)
    }

    /// Stops accepting, lets in-flight requests finish within `limits.shutdown_grace`, and
    /// returns whether everything drained in time.
    pub async fn shutdown(self) -> bool {
        let grace = self.gateway.limits().shutdown_grace;
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }

    /// Serves until SIGTERM or SIGINT (then drains), reloading on SIGHUP.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => match self.reload() {
                    Ok(()) => tracing::info!("config reloaded"),
                    Err(errors) => tracing::error!("config reload rejected, the old config keeps serving:\n{errors}"),
                },
            }
        }
        tracing::info!("shutting down: draining in-flight requests");
        if self.shutdown().await {
            tracing::info!("drained");
        } else {
            tracing::warn!("shutdown grace period over; closing the remaining connections");
        }
        Ok(())
    }
}

/// Binds one listen address once per worker (`SO_REUSEPORT`); returns the bound address.
fn bind_group(
    text: &str,
    workers: usize,
) -> Result<(SocketAddr, Vec<std::net::TcpListener>), StartError> {
    let bind_error = |error| StartError::Bind {
        addr: text.to_owned(),
        error,
    };
    let socket: SocketAddr = config::parse_listen_addr(text)
        .map_err(|message| bind_error(std::io::Error::other(message)))?;
    let group = server::bind_shared(socket, workers).map_err(bind_error)?;
    let local = group[0].local_addr().map_err(bind_error)?;
    Ok((local, group))
}

/// Raises the open-file limit towards what `max_connections` needs (each client connection can
/// hold an upstream connection too), within the hard limit, as nginx's
/// `worker_rlimit_nofile` does; logs when the hard limit is too low.
fn raise_file_limit(max_connections: usize) {
    let wanted = (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(1024);
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => tracing::warn!(
            "open-file limit is {got}; `limits.max_connections` may need up to {wanted} \
             (raise the hard limit, e.g. `ulimit -Hn`)"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "cannot raise the open-file limit"),
    }
}

impl Drop for Gatehouse {
    /// A gateway dropped without [`Gatehouse::shutdown`] stops accepting and drains too, so its
    /// worker threads end.
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.tracker.close();
    }
}
