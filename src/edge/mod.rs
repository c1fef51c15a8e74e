//! The reference tunnel edge.
//!
//! Two listeners: QUIC for gateways (`tunnel`: mTLS, control stream, registry) and TCP
//! for public MCP clients (`public`: SNI peek, stream per connection, splice). The edge
//! relays ciphertext only; it holds no inner key.

mod accept;
pub mod limits;
pub mod link;
pub mod public;
pub mod registry;
pub mod sni;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::edge::{EdgeConfig, TunnelLimits};
use crate::protocol::{codes, ALPN_QUIC};
use crate::stats::{Counter, Labels};
use crate::tasks::Tasks;
use crate::tls::configs::{self, TlsConfigError};
use crate::transport::ALPN_H2;
use registry::Registry;

/// QUIC idle timeout (ms): a gateway that vanishes is noticed within this time.
pub const QUIC_IDLE_TIMEOUT_MS: u32 = 30_000;
/// How long in-flight relays may run after shutdown is requested.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Tls(#[from] TlsConfigError),
    #[error("QUIC TLS config: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// Edge counters (metadata only).
#[derive(Debug, Default)]
pub struct EdgeStats {
    /// Public TCP connections accepted.
    pub public_connections: Counter,
    /// Closed: no complete, valid ClientHello in time.
    pub bad_client_hello: Counter,
    /// Closed: no tunnel serves the SNI.
    pub unknown_sni: Counter,
    /// Closed: the tunnel has no live gateway connection.
    pub no_gateway: Counter,
    /// Data streams opened to gateways.
    pub streams_opened: Counter,
    /// Data streams that ended with an error.
    pub streams_failed: Counter,
    /// Bytes relayed client → gateway.
    pub bytes_to_gateway: Counter,
    /// Bytes relayed gateway → client.
    pub bytes_to_client: Counter,
    /// Gateway connections refused (handshake, identity, Hello).
    pub tunnel_refused: Counter,
    /// Relays closed after the idle timeout.
    pub streams_idle: Counter,
    /// Public connections closed at once because `max_connections` were open.
    pub over_capacity: Counter,
    /// Public connections closed at once: their source had `max_connections_per_source` open.
    pub over_source_capacity: Counter,
    /// Tunnel-listener connections refused at `max_handshakes` (in all or per source).
    pub handshakes_refused: Counter,
    /// Relays running now (client connection ↔ tunnel stream).
    pub streams_active: prometheus_client::metrics::gauge::Gauge,
    /// Gateway connections registered, by transport.
    pub registrations: prometheus_client::metrics::family::Family<Labels, prometheus_client::metrics::counter::Counter>,
    /// Expiry of the edge's server certificate and of the tunnel CA.
    pub cert_expiry: crate::stats::CertExpiry,
}

/// State shared by the edge's tasks.
#[derive(Debug)]
pub struct EdgeShared {
    pub registry: Registry,
    pub stats: EdgeStats,
    client_hello_timeout: Duration,
    idle_timeout: Duration,
    next_stream_id: AtomicU64,
    /// Public connections, in all and per source.
    public_gate: limits::Gate,
    /// Gateway connections not yet registered, in all and per source.
    handshakes: limits::Gate,
    tunnel_limits: TunnelLimits,
    /// The edge's background tasks (listeners, config watch, HTTP/2 link drivers); `run`
    /// waits for them at shutdown.
    pub tasks: Tasks,
}

impl EdgeStats {
    /// Registers every counter under the `mcp_tunnel_edge` prefix.
    fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        let all = [
            (&self.public_connections, "public_connections", "Public TCP connections accepted"),
            (&self.bad_client_hello, "bad_client_hello", "Connections closed without a valid ClientHello in time"),
            (&self.unknown_sni, "unknown_sni", "Connections closed: no tunnel serves the SNI"),
            (&self.no_gateway, "no_gateway", "Connections closed: no live gateway for the tunnel"),
            (&self.streams_opened, "streams_opened", "Tunnel streams opened"),
            (&self.streams_failed, "streams_failed", "Tunnel streams that ended with an error"),
            (&self.bytes_to_gateway, "bytes_to_gateway", "Bytes relayed client to gateway"),
            (&self.bytes_to_client, "bytes_to_client", "Bytes relayed gateway to client"),
            (&self.tunnel_refused, "tunnel_refused", "Gateway connections refused"),
            (&self.streams_idle, "streams_idle", "Relays closed by the idle timeout"),
            (&self.over_capacity, "over_capacity", "Public connections refused at max_connections"),
            (
                &self.over_source_capacity,
                "over_source_capacity",
                "Public connections refused at max_connections_per_source",
            ),
            (&self.handshakes_refused, "handshakes_refused", "Tunnel-listener connections refused at max_handshakes"),
        ];
        for (counter, name, help) in all {
            counter.register(registry, name, help);
        }
        for transport in ["quic", "http2"] {
            let _ = self.registrations.get_or_create(&crate::stats::labels(&[("transport", transport)]));
        }
        registry.register("streams_active", "Relays running now", self.streams_active.clone());
        registry.register(
            "tunnel_registrations",
            "Gateway connections registered by transport",
            self.registrations.clone(),
        );
        self.cert_expiry.register(registry);
    }
}

/// What the edge's admin endpoint reports.
struct EdgeAdmin {
    shared: Arc<EdgeShared>,
    registry: prometheus_client::registry::Registry,
    live: prometheus_client::metrics::family::Family<Labels, prometheus_client::metrics::gauge::Gauge>,
}

impl crate::admin::AdminSource for EdgeAdmin {
    /// The edge is ready once it listens (it does before the admin endpoint starts).
    fn readiness(&self) -> (bool, serde_json::Value) {
        let tunnels: serde_json::Map<_, _> =
            self.shared.registry.live_counts().into_iter().map(|(id, n)| (id, n.into())).collect();
        (true, serde_json::json!({ "live_connections": tunnels }))
    }

    fn metrics(&self) -> String {
        self.live.clear();
        for (tunnel, n) in self.shared.registry.live_counts() {
            self.live.get_or_create(&vec![("tunnel".into(), tunnel)]).set(n as i64);
        }
        crate::stats::render(&self.registry)
    }
}

/// A bound, not yet running edge.
pub struct Edge {
    admin: Option<TcpListener>,
    reload: Option<(std::path::PathBuf, Arc<tokio::sync::Notify>, Vec<std::path::PathBuf>)>,
    shared: Arc<EdgeShared>,
    endpoint: quinn::Endpoint,
    /// TCP listener of the HTTP/2 fallback transport.
    tunnel_tcp: TcpListener,
    tunnel_tls: tokio_rustls::TlsAcceptor,
    public: TcpListener,
}

impl Edge {
    /// Binds every listener (QUIC and HTTP/2 tunnel, public, admin; port 0 allowed), so a
    /// bind failure stops the start and callers learn the addresses before `run`.
    pub async fn bind(config: &EdgeConfig) -> Result<Self, EdgeError> {
        let tls = configs::edge_tunnel_server(&config.identity, &config.tunnel_ca, &[ALPN_QUIC])?;
        let h2_tls = configs::edge_tunnel_server(&config.identity, &config.tunnel_ca, &[ALPN_H2])?;
        let server = accept::quic_server(tls, &config.tunnel_limits)?;
        let endpoint_config = endpoint_config(&config.identity);
        let (endpoint, tunnel_tcp) =
            bind_tunnel(server, endpoint_config, config.tunnel_listen, config.tunnel_tcp_listen).await?;
        let public = TcpListener::bind(config.public_listen).await.map_err(|source| EdgeError::Bind {
            what: "public listener",
            addr: config.public_listen,
            source,
        })?;
        let shared = Arc::new(EdgeShared {
            registry: Registry::new(&config.tunnels),
            stats: EdgeStats::default(),
            client_hello_timeout: config.client_hello_timeout,
            idle_timeout: config.idle_timeout,
            next_stream_id: AtomicU64::new(1),
            public_gate: limits::Gate::new(config.max_connections, config.max_connections_per_source),
            handshakes: limits::Gate::new(
                config.tunnel_limits.max_handshakes,
                config.tunnel_limits.max_handshakes_per_source,
            ),
            tunnel_limits: config.tunnel_limits,
            tasks: Tasks::new(),
        });
        shared.stats.cert_expiry.set("edge_server", &config.identity.chain);
        shared.stats.cert_expiry.set("tunnel_ca", &config.tunnel_ca);
        let tunnel_tls = tokio_rustls::TlsAcceptor::from(Arc::new(h2_tls));
        let admin = match config.admin {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| EdgeError::Bind {
                what: "admin endpoint",
                addr,
                source,
            })?),
            None => None,
        };
        Ok(Self { admin, reload: None, shared, endpoint, tunnel_tcp, tunnel_tls, public })
    }

    /// Reloads the tunnel → hostnames table from `path` when the file changes or
    /// `trigger` is notified (SIGHUP). Listener addresses and certificates apply after a
    /// restart.
    pub fn watch_config(mut self, path: std::path::PathBuf, trigger: Arc<tokio::sync::Notify>) -> Self {
        self.reload = Some((path.clone(), trigger, vec![path]));
        self
    }

    /// TCP address of the HTTP/2 fallback tunnel listener.
    pub fn tunnel_tcp_addr(&self) -> SocketAddr {
        self.tunnel_tcp.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// UDP address gateways dial.
    pub fn tunnel_addr(&self) -> SocketAddr {
        self.endpoint.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// TCP address MCP clients connect to.
    pub fn public_addr(&self) -> SocketAddr {
        self.public.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// TCP address of the admin endpoint (`None` without `[admin] listen`).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Registry and counters, shared with the running edge.
    pub fn shared(&self) -> Arc<EdgeShared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` fires. Then: stop accepting, ask every gateway to drain,
    /// let in-flight relays finish (up to the grace period), close the tunnels, and wait
    /// for the background tasks.
    pub async fn run(mut self, shutdown: CancellationToken) {
        info!(tunnel = %self.tunnel_addr(), tunnel_tcp = %self.tunnel_tcp_addr(), public = %self.public_addr(), "edge listening");
        let tasks = self.shared.tasks.clone();
        // Each shutdown phase has its own tracker: relays drain first, tunnels after.
        let relays = TaskTracker::new();
        let tunnels = TaskTracker::new();
        let hard_stop = CancellationToken::new();
        self.start_services(&shutdown);
        let stops = tunnel::Stops { drain: shutdown.clone(), stop: hard_stop.clone() };
        let public =
            tasks.spawn(accept::accept_public(self.public, self.shared.clone(), relays.clone(), shutdown.clone()));
        let h2 = tasks.spawn(accept::accept_h2(
            self.tunnel_tcp,
            self.tunnel_tls,
            self.shared.clone(),
            tunnels.clone(),
            stops.clone(),
        ));
        accept::accept_quic(&self.endpoint, &self.shared, &tunnels, &stops).await;
        let _ = public.await;
        let _ = h2.await;
        relays.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, relays.wait()).await.is_err() {
            warn!("shutdown grace period over; cutting remaining relays");
        }
        hard_stop.cancel();
        tunnels.close();
        if tokio::time::timeout(Duration::from_secs(5), tunnels.wait()).await.is_err() {
            warn!("gateway connections did not close in time");
        }
        self.endpoint.close(codes::CLOSE_NORMAL.into(), b"edge shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        // HTTP/2 link drivers end with their links; the admin endpoint and the config
        // watch at `shutdown`.
        if !tasks.shutdown(Duration::from_secs(5)).await {
            warn!(remaining = tasks.len(), "background tasks still running at shutdown; stopping anyway");
        }
        info!("edge stopped");
    }

    /// Starts the config watch and the admin endpoint in tasks that end at `shutdown`.
    fn start_services(&mut self, shutdown: &CancellationToken) {
        if let Some((path, trigger, files)) = self.reload.take() {
            let shared = self.shared.clone();
            let reload = move || reload_tunnels(&shared, &path);
            let watch = crate::reload::watch(files, trigger, crate::reload::POLL_INTERVAL, shutdown.clone(), reload);
            self.shared.tasks.spawn(watch);
        }
        if let Some(listener) = self.admin.take() {
            let mut registry = prometheus_client::registry::Registry::with_prefix("mcp_tunnel_edge");
            self.shared.stats.register(&mut registry);
            let live = prometheus_client::metrics::family::Family::default();
            registry.register("tunnel_connections", "Live gateway connections by tunnel", live.clone());
            let source = Arc::new(EdgeAdmin { shared: self.shared.clone(), registry, live });
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "admin endpoint listening");
            }
            self.shared.tasks.spawn(crate::admin::serve(listener, source, shutdown.clone()));
        }
    }
}

/// Reloads the tunnel → hostnames table from `path`; an invalid file changes nothing.
/// The watch keeps watching `path` alone (`None`).
fn reload_tunnels(shared: &EdgeShared, path: &std::path::Path) -> Option<Vec<std::path::PathBuf>> {
    match EdgeConfig::load(path) {
        Ok(c) => {
            shared.registry.set_tunnels(&c.tunnels);
            info!(tunnels = c.tunnels.len(), "edge config reloaded");
        }
        Err(e) => error!("edge config reload rejected, keeping the running config: {e}"),
    }
    None
}

/// Binds the QUIC endpoint and the TCP fallback listener. With port 0 both get the same
/// (free) port number, so one `host:port` reaches either transport.
async fn bind_tunnel(
    server: quinn::ServerConfig,
    endpoint_config: quinn::EndpointConfig,
    udp: SocketAddr,
    tcp: Option<SocketAddr>,
) -> Result<(quinn::Endpoint, TcpListener), EdgeError> {
    let bind_err = |what, addr| move |source| EdgeError::Bind { what, addr, source };
    for _ in 0..10 {
        let socket = std::net::UdpSocket::bind(udp).map_err(bind_err("QUIC tunnel listener", udp))?;
        crate::transport::size_udp_buffers(&socket);
        let runtime = Arc::new(quinn::TokioRuntime);
        let endpoint = quinn::Endpoint::new(endpoint_config.clone(), Some(server.clone()), socket, runtime)
            .map_err(bind_err("QUIC tunnel listener", udp))?;
        let port = endpoint.local_addr().map_err(bind_err("QUIC tunnel listener", udp))?.port();
        let tcp_addr = tcp.unwrap_or(SocketAddr::new(udp.ip(), port));
        match TcpListener::bind(tcp_addr).await {
            Ok(listener) => return Ok((endpoint, listener)),
            // Port 0 gave a UDP port whose TCP twin is taken: try another.
            Err(_) if udp.port() == 0 && tcp.is_none() => continue,
            Err(source) => return Err(EdgeError::Bind { what: "HTTP/2 tunnel listener", addr: tcp_addr, source }),
        }
    }
    Err(EdgeError::Bind { what: "HTTP/2 tunnel listener", addr: udp, source: std::io::ErrorKind::AddrInUse.into() })
}

/// QUIC endpoint settings whose keys (stateless reset, connection-id validation) are
/// derived from the edge's private key, so they survive a restart: a restarted edge can
/// then tell gateways at once that their old connection is gone, instead of them waiting
/// for the idle timeout. Each key is a domain-separated SHA-256 of the private key, so it
/// reveals nothing about it.
fn endpoint_config(identity: &crate::tls::pem::Identity) -> quinn::EndpointConfig {
    let key = identity.key.der();
    let derive = |label: &[u8]| {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(label);
        ctx.update(key.secret_der());
        ctx.finish()
    };
    let reset = derive(b"mcp-tunnel/quic-stateless-reset/v1\0");
    let mut config =
        quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset.as_ref())));
    // Connection ids are validated with a keyed hash; the same key after a restart lets
    // the edge recognise its old ids and answer them with a reset instead of dropping.
    let cid = derive(b"mcp-tunnel/quic-cid/v1\0");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    config
}
