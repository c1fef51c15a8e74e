//! The customer-side gateway. A request travels through these modules in order:
//! `tunnel` (outbound QUIC connection, streams from the edge) → `serve` (preamble,
//! inner TLS, hyper) → `proxy` (route, headers, forward) → `route` (the table) →
//! `upstream` (allow-listed, pooled connections to MCP servers).

pub mod allowlist;
pub mod dial;
pub mod proxy;
pub mod route;
pub mod serve;
pub mod tunnel;
pub mod upstream;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::gateway::GatewayConfig;
use crate::protocol::ALPN_QUIC;
use crate::tls::configs::{self, TlsConfigError};
use crate::transport::ALPN_H2;
use route::RouteTable;
use serve::InnerTls;
pub use tunnel::TunnelState;

/// QUIC keep-alive: keeps NAT bindings open and detects a dead path.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// QUIC idle timeout (ms) on the gateway side.
pub const IDLE_TIMEOUT_MS: u32 = 20_000;
/// Most data streams the edge may have open on one connection at once.
pub const MAX_STREAMS: u32 = 1024;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Tls(#[from] TlsConfigError),
    #[error("QUIC TLS config: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// State shared by every stream the gateway serves.
#[derive(Debug)]
pub struct GatewayShared {
    routes: RwLock<Arc<RouteTable>>,
    /// The inner TLS config (hot-swappable).
    pub inner_tls: InnerTls,
    /// A client connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
}

impl GatewayShared {
    /// The routing table in force.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A configured, not yet running gateway.
pub struct Gateway {
    config: GatewayConfig,
    shared: Arc<GatewayShared>,
    client: quinn::ClientConfig,
    h2_tls: Arc<rustls::ClientConfig>,
    state: watch::Sender<TunnelState>,
}

impl Gateway {
    /// Builds TLS configs from the validated config.
    pub fn new(config: GatewayConfig) -> Result<Self, GatewayError> {
        let inner = configs::inner_server(&config.inner)?;
        let outer = configs::gateway_tunnel_client(&config.edge.identity, &config.edge.ca, &[ALPN_QUIC])?;
        let h2_tls = Arc::new(configs::gateway_tunnel_client(&config.edge.identity, &config.edge.ca, &[ALPN_H2])?);
        let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(outer)?));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        transport.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(IDLE_TIMEOUT_MS))));
        transport.max_concurrent_bidi_streams(MAX_STREAMS.into());
        transport.max_concurrent_uni_streams(0u32.into());
        client.transport_config(Arc::new(transport));
        let shared = Arc::new(GatewayShared {
            routes: RwLock::new(config.routes.clone()),
            inner_tls: InnerTls::new(inner),
            idle_timeout: config.idle_timeout,
        });
        Ok(Self { config, shared, client, h2_tls, state: watch::channel(TunnelState::Connecting).0 })
    }

    /// Watches the tunnel's state.
    pub fn status(&self) -> watch::Receiver<TunnelState> {
        self.state.subscribe()
    }

    /// Runs until `shutdown` fires and in-flight requests have finished (or
    /// `shutdown_timeout` passed).
    pub async fn run(self, shutdown: CancellationToken) {
        for r in self.config.routes.routes() {
            info!(route = %r.name, upstream = %r.upstream.url(), "route");
        }
        let dialer = tunnel::Dialer { edge: self.config.edge.clone(), quic: self.client, h2_tls: self.h2_tls };
        tunnel::run(self.shared.clone(), dialer, self.state.clone(), shutdown, self.config.shutdown_timeout).await;
        info!("gateway stopped");
    }
}
