//! The customer-side gateway. A request travels through these modules in order:
//! `tunnel` (outbound connection, streams from the edge) → `serve` (preamble, inner TLS,
//! hyper) → `proxy` (Host, canonical path, route lookup in `route`) → `exchange` (kill
//! switch, admission, inspection, policy, `pins`) → `hold` (approval gate) → `onward`
//! (`forward` to the HTTP upstream through `crate::outbound`, or the stdio bridge; the
//! answer relayed through the inspector and `guard`). Refusals: `outcome`. Control
//! operations: `ops`. docs/architecture.md draws it.

mod admin_report;
pub mod busy;
pub mod conn;
mod control_io;
pub mod dial;
pub mod dial_error;
pub mod discovery;
pub mod exchange;
pub mod forward;
pub mod guard;
pub mod hold;
pub mod limits;
pub mod linger;
pub mod metrics;
pub mod onward;
pub mod ops;
pub mod outcome;
pub mod path;
pub mod pins;
pub mod probe;
pub mod proxy;
pub mod register;
pub mod respond;
pub mod retire;
pub mod route;
pub mod serve;
mod spans;
pub mod state;
pub mod trail;
pub mod tunnel;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};

use crate::audit::{AuditTask, Auditor};
use crate::config::gateway::{EdgeTarget, GatewayConfig};
use crate::protocol::ALPN_QUIC;
use crate::tls::configs::{self, TlsConfigError};
use crate::transport::ALPN_H2;
use crate::{admin, reload};
use route::RouteTable;
use serve::InnerTls;
pub use state::{Rtt, TunnelState};

/// Most data streams the edge may have open on one connection at once. Above the edge's
/// default `public_listener.max_connections` (10 000), so one tunnel connection can carry
/// every client an edge admits (10 000 long-lived SSE streams in docs/benchmarks.md).
pub const MAX_STREAMS: u32 = 16_384;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Tls(#[from] TlsConfigError),
    #[error("QUIC TLS config: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("audit trail: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("{0}")]
    Control(#[from] crate::control::socket::SocketError),
    #[error("{0}")]
    KillState(#[from] crate::control::kill_store::KillStoreError),
    #[error("cannot bind the admin endpoint on {addr}: {source}")]
    AdminBind { addr: SocketAddr, source: std::io::Error },
    #[error("edge.dead_after {0:?} is outside QUIC's idle-timeout range")]
    IdleTimeout(Duration),
}

/// State shared by every stream the gateway serves.
#[derive(Debug)]
pub struct GatewayShared {
    routes: RwLock<Arc<RouteTable>>,
    /// The inner TLS config (hot-swappable).
    pub inner_tls: InnerTls,
    /// A client connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    reloads: watch::Sender<u64>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::GatewayMetrics>,
    /// Where audit records go (never blocks).
    pub auditor: Auditor,
    /// This gateway's tunnel id (from its certificate), for audit records.
    pub tunnel: String,
    /// One permit per client connection served at once (`max_streams`, all tunnel
    /// connections together); streams over it are answered 503 (`busy`).
    pub stream_slots: Arc<tokio::sync::Semaphore>,
    /// Tool calls waiting for approval, by approval id (outlives config reloads).
    pub approvals: Arc<crate::approval::Approvals>,
    /// The kill switch (per route name; survives reloads and, with `state_dir`, restarts).
    pub kill: Arc<crate::control::kill::KillSwitch>,
    /// Pinned and last-seen tool definitions, by route name.
    pub pins: Arc<crate::pinning::Pins>,
    /// Every background task of the gateway; `run` waits for them at shutdown.
    pub tasks: crate::tasks::Tasks,
    /// The state of each tunnel connection (`[edge] connections`), for `ctl status`.
    pub tunnels: Vec<watch::Receiver<TunnelState>>,
}

impl GatewayShared {
    /// The routing table in force.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Installs the routes (with their allow-list and upstream CAs) and the inner
    /// certificate of a new config. In-flight requests keep what they started with; new
    /// TLS handshakes and new requests use the new settings. Stdio routes that did not
    /// change keep their children; the others' children are stopped now (`retire`).
    pub fn apply(&self, config: &GatewayConfig) -> Result<(), GatewayError> {
        let inner = configs::inner_server(&config.inner)?;
        self.inner_tls.replace(inner);
        self.metrics.cert_expiry.set("inner", &config.inner.chain);
        self.pins.load(config.routes.routes().map(|r| r.name.as_str()));
        let retired = {
            let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
            let (table, retired) = retire::carry_over(&routes, &config.routes);
            *routes = table;
            retired
        };
        retire::retire(retired, &self.tasks);
        self.reloads.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Counts successful reloads, so callers can wait for one.
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }
}

/// A configured, not yet running gateway.
pub struct Gateway {
    config: GatewayConfig,
    shared: Arc<GatewayShared>,
    client: quinn::ClientConfig,
    h2_tls: Arc<rustls::ClientConfig>,
    /// One state per tunnel connection (`[edge] connections`).
    states: Vec<watch::Sender<TunnelState>>,
    reload: Option<(PathBuf, Arc<Notify>)>,
    audit_task: Option<AuditTask>,
    /// The bound control socket (when `state_dir` is set) and its path.
    control: Option<(tokio::net::UnixListener, PathBuf)>,
    /// The bound admin endpoint (when `[admin] listen` is set).
    admin: Option<tokio::net::TcpListener>,
}

impl Gateway {
    /// Builds TLS configs from the validated config and starts the audit writer (so call
    /// it inside a Tokio runtime).
    pub fn new(config: GatewayConfig) -> Result<Self, GatewayError> {
        let inner = configs::inner_server(&config.inner)?;
        let (client, h2_tls) = tunnel_client_configs(&config.edge)?;
        let metrics = metrics::GatewayMetrics::new();
        let (auditor, audit_task) = match &config.audit.sink {
            None => (Auditor::disabled(), None),
            Some(sink) => {
                let (a, t) = Auditor::start(sink, config.audit.queue, metrics.audit.clone())?;
                (a, Some(t))
            }
        };
        let tunnel = crate::tls::identity::tunnel_id(&config.edge.identity.chain[0]).unwrap_or_default();
        let pins = Arc::new(crate::pinning::Pins::new(config.state_dir.as_deref()));
        pins.load(config.routes.routes().map(|r| r.name.as_str()));
        let kill = crate::control::kill::KillSwitch::load(config.state_dir.clone(), metrics.kill.clone())?;
        let states: Vec<_> = (0..config.edge.connections).map(|_| watch::channel(TunnelState::Connecting).0).collect();
        let shared = Arc::new(GatewayShared {
            tunnels: states.iter().map(watch::Sender::subscribe).collect(),
            approvals: crate::approval::Approvals::new(metrics.approvals.clone()),
            kill,
            pins,
            auditor,
            tunnel,
            routes: RwLock::new(config.routes.clone()),
            inner_tls: InnerTls::new(inner),
            idle_timeout: config.idle_timeout,
            stream_slots: Arc::new(tokio::sync::Semaphore::new(config.max_streams)),
            reloads: watch::channel(0).0,
            metrics,
            tasks: crate::tasks::Tasks::new(),
        });
        shared.metrics.cert_expiry.set("inner", &config.inner.chain);
        shared.metrics.cert_expiry.set("gateway_client", &config.edge.identity.chain);
        shared.metrics.cert_expiry.set("edge_ca", &config.edge.ca);
        // Bound here, not in `run`, so a state directory or an admin address we cannot
        // use stops the start, and callers learn the admin address (port 0) before `run`.
        let control = config.state_dir.as_deref().map(crate::control::socket::bind).transpose()?;
        let admin = config.admin.map(bind_admin).transpose()?;
        Ok(Self { config, shared, client, h2_tls, states, reload: None, audit_task, control, admin })
    }

    /// The admin endpoint's bound address (`None` without `[admin] listen`).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Reloads from `path` when it (or a file it refers to) changes, or when `trigger`
    /// is notified (SIGHUP).
    pub fn watch_config(mut self, path: PathBuf, trigger: Arc<Notify>) -> Self {
        self.reload = Some((path, trigger));
        self
    }

    /// State shared with the running gateway (routes, inner TLS, reload counter).
    pub fn shared(&self) -> Arc<GatewayShared> {
        self.shared.clone()
    }

    /// Watches the state of the first tunnel connection.
    pub fn status(&self) -> watch::Receiver<TunnelState> {
        self.statuses().swap_remove(0)
    }

    /// Watches the state of every tunnel connection.
    pub fn statuses(&self) -> Vec<watch::Receiver<TunnelState>> {
        self.states.iter().map(watch::Sender::subscribe).collect()
    }

    /// Runs until `shutdown` fires and in-flight requests have finished (or
    /// `shutdown_timeout` passed), then waits for its background tasks.
    pub async fn run(mut self, shutdown: CancellationToken) {
        for r in self.config.routes.routes() {
            info!(route = %r.name, upstream = %r.upstream.url(), "route");
        }
        self.start_services(&shutdown);
        for dial_loop in self.dial_loops(&shutdown) {
            let _ = dial_loop.await;
        }
        // The dial loops bound their own drain; the rest (reload watch, control socket,
        // admin endpoint, stdio bridges a reload retired) end at shutdown or are bounded,
        // and get `shutdown_timeout` more at most.
        if !self.shared.tasks.shutdown(self.config.shutdown_timeout).await {
            warn!(remaining = self.shared.tasks.len(), "background tasks still running at shutdown; stopping anyway");
        }
        if let Some(task) = self.audit_task.take() {
            // Every record of a request that finished goes out before the process ends.
            task.shutdown().await;
        }
        info!("gateway stopped");
    }

    /// Starts the config watch, the first tool listings, the control socket and the
    /// admin endpoint, each in a task of `shared.tasks` that ends at `shutdown`.
    fn start_services(&mut self, shutdown: &CancellationToken) {
        let tasks = self.shared.tasks.clone();
        if let Some((path, trigger)) = self.reload.take() {
            let (shared, running) = (self.shared.clone(), self.config.clone());
            let files = running.files.clone();
            tasks.spawn(reload::watch(files, trigger, reload::POLL_INTERVAL, shutdown.clone(), move || {
                reload_config(&shared, &running, &path)
            }));
        }
        pins::refresh_all(&self.shared);
        if let Some((listener, path)) = self.control.take() {
            let (ops, audit) = (Arc::new(ops::GatewayOps(self.shared.clone())), ops::control_audit(&self.shared));
            tasks.spawn(crate::control::socket::serve(listener, path, ops, audit, shutdown.clone()));
        }
        if let Some(addr) = self.admin_addr() {
            info!(%addr, "admin endpoint listening");
        }
        if let Some(listener) = self.admin.take() {
            let token = self.config.admin_token.as_deref();
            let source = Arc::new(admin_report::GatewayAdmin::new(&self.shared, self.statuses(), token));
            tasks.spawn(admin::serve(listener, source, shutdown.clone()));
        }
    }

    /// Spawns one dial loop per tunnel connection (`[edge] connections`). Connection i
    /// starts on the i-th edge address (cycling), so several edge instances each get
    /// some, and moves to the next address when its edge fails.
    fn dial_loops(&self, shutdown: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let mut loops = Vec::with_capacity(self.states.len());
        for (index, state) in (0u32..).zip(&self.states) {
            let edges = register::Dialer::edges(&self.config.edge, index);
            let span = spans::tunnel(index);
            let dialer = register::Dialer {
                index,
                edges,
                cursor: Default::default(),
                quic: self.client.clone(),
                h2_tls: self.h2_tls.clone(),
                tasks: self.shared.tasks.clone(),
            };
            let run =
                tunnel::run(self.shared.clone(), dialer, state.clone(), shutdown.clone(), self.config.shutdown_timeout);
            loops.push(self.shared.tasks.spawn(run.instrument(span)));
        }
        loops
    }
}

/// The QUIC and HTTP/2 client configs for dialing the edge (also used by `doctor`, so
/// its handshakes are the gateway's own).
pub fn tunnel_client_configs(
    edge: &EdgeTarget,
) -> Result<(quinn::ClientConfig, Arc<rustls::ClientConfig>), GatewayError> {
    let outer = configs::gateway_tunnel_client(&edge.identity, &edge.ca, &[ALPN_QUIC])?;
    let h2_tls = Arc::new(configs::gateway_tunnel_client(&edge.identity, &edge.ca, &[ALPN_H2])?);
    let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(outer)?));
    let mut transport = quinn::TransportConfig::default();
    // Keep-alives keep NAT bindings open, let a restarted edge answer with a stateless
    // reset, and (with the idle timeout, the lower of both sides' applies) find a dead edge.
    let live = edge.liveness;
    transport.keep_alive_interval(Some(live.keepalive_interval));
    let idle =
        quinn::IdleTimeout::try_from(live.answer_deadline()).map_err(|_| GatewayError::IdleTimeout(live.dead_after))?;
    transport.max_idle_timeout(Some(idle));
    transport.max_concurrent_bidi_streams(MAX_STREAMS.into());
    transport.max_concurrent_uni_streams(0u32.into());
    client.transport_config(Arc::new(transport));
    Ok((client, h2_tls))
}

/// Binds the admin endpoint (synchronously: `new` is not async; tokio takes the socket).
fn bind_admin(addr: SocketAddr) -> Result<tokio::net::TcpListener, GatewayError> {
    let err = |source| GatewayError::AdminBind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    tokio::net::TcpListener::from_std(listener).map_err(err)
}

/// Loads and applies `path`; on any error the running config stays. Returns the files
/// to watch from now on.
fn reload_config(shared: &GatewayShared, running: &GatewayConfig, path: &Path) -> Option<Vec<PathBuf>> {
    let config = match GatewayConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!("config reload rejected, keeping the running config: {e}");
            return None;
        }
    };
    if let Err(e) = shared.apply(&config) {
        error!("config reload rejected, keeping the running config: {e}");
        return None;
    }
    let edge = (&config.edge.address, &config.edge.ca, &config.edge.identity.chain, config.edge.transport);
    let was = (&running.edge.address, &running.edge.ca, &running.edge.identity.chain, running.edge.transport);
    if edge != was {
        warn!("[edge] settings changed; they apply after a restart (the tunnel is not dropped for a reload)");
    }
    info!(routes = config.routes.len(), "config reloaded");
    Some(config.files)
}

#[cfg(test)]
#[path = "tests/pipeline.rs"]
mod pipeline_tests;
