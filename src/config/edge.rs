//! The edge's config file: its two listeners, its identity, the tunnel CA it trusts,
//! and which hostnames each tunnel serves.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use toml::Spanned;

use super::edge_tunnels::RawTunnel;
use super::{ConfigError, Source};
use crate::tls::pem::Identity;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    admin: Option<super::RawAdmin>,
    tunnel_listener: RawTunnelListener,
    public_listener: RawPublic,
    #[serde(default)]
    tunnels: BTreeMap<Spanned<String>, RawTunnel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunnelListener {
    listen: Spanned<String>,
    tcp_listen: Option<Spanned<String>>,
    cert: Spanned<String>,
    key: Spanned<String>,
    client_ca: Spanned<String>,
    handshake_timeout: Option<Spanned<String>>,
    max_handshakes: Option<Spanned<i64>>,
    max_handshakes_per_source: Option<Spanned<i64>>,
    stream_window_mib: Option<Spanned<i64>>,
    connection_window_mib: Option<Spanned<i64>>,
    send_window_mib: Option<Spanned<i64>>,
    max_connections_per_tunnel: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublic {
    listen: Spanned<String>,
    client_hello_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    max_connections_per_source: Option<Spanned<i64>>,
}

/// A validated edge configuration.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// UDP address of the QUIC tunnel listener.
    pub tunnel_listen: SocketAddr,
    /// TCP address of the HTTP/2 fallback listener (default: same address as QUIC).
    pub tunnel_tcp_listen: Option<SocketAddr>,
    /// The edge's server certificate and key (presented to gateways).
    pub identity: Identity,
    /// CA that signs gateway client certificates.
    pub tunnel_ca: Vec<CertificateDer<'static>>,
    /// TCP address of the public listener MCP clients connect to.
    pub public_listen: SocketAddr,
    /// How long a client may take to send its ClientHello.
    pub client_hello_timeout: Duration,
    /// A relay with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// Most public connections open at once; more are closed on accept.
    pub max_connections: usize,
    /// Most public connections open at once from one source (IPv4 address, IPv6 /64).
    pub max_connections_per_source: usize,
    /// Limits of the tunnel listener, on both transports.
    pub tunnel_limits: TunnelLimits,
    /// Tunnel id → hostname patterns it serves.
    pub tunnels: HashMap<String, Vec<String>>,
    /// The config file and every file it refers to (watched for hot reload).
    pub files: Vec<std::path::PathBuf>,
    /// Admin endpoint (`/healthz`, `/readyz`, `/metrics`), when configured.
    pub admin: Option<SocketAddr>,
}

/// What a gateway connection may cost the edge before and after it is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelLimits {
    /// Time from accept to registration: TLS handshake, control stream and `Hello`.
    pub handshake_timeout: Duration,
    /// Connections not yet registered, in total and from one source.
    pub max_handshakes: usize,
    pub max_handshakes_per_source: usize,
    /// Bytes a gateway may send the edge unread, per stream and per connection (QUIC and
    /// HTTP/2 receive windows).
    pub stream_window: u32,
    pub connection_window: u32,
    /// Bytes the edge buffers towards a gateway that does not read (QUIC, per connection).
    pub send_window: u64,
    /// Registered, non-draining connections one tunnel id may hold.
    pub max_connections_per_tunnel: usize,
}

impl Default for TunnelLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            max_handshakes: 256,
            max_handshakes_per_source: 16,
            stream_window: MIB,
            connection_window: 8 * MIB,
            send_window: 8 * u64::from(MIB),
            max_connections_per_tunnel: 16,
        }
    }
}

const MIB: u32 = 1024 * 1024;
/// Largest window in MiB: HTTP/2 windows must stay below 2^31 bytes.
const MAX_WINDOW_MIB: u64 = 1024;

/// Default time a public client gets to send its ClientHello.
pub const DEFAULT_CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Default idle timeout of a relay (MCP server streams can be quiet for minutes).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default cap on concurrent public connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl EdgeConfig {
    /// Reads and validates an edge config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_source(&Source::read(path)?)
    }

    /// Validates config text (its paths resolve against `src.path`).
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let raw: Raw = src.parse()?;
        let addr = |key: &str, v: &Spanned<String>| {
            v.get_ref()
                .parse::<SocketAddr>()
                .map_err(|_| src.invalid(key, v, "expected \"ip:port\", e.g. \"0.0.0.0:7844\""))
        };
        let t = &raw.tunnel_listener;
        let tunnel_listen = addr("tunnel_listener.listen", &t.listen)?;
        let tunnel_tcp_listen = t.tcp_listen.as_ref().map(|v| addr("tunnel_listener.tcp_listen", v)).transpose()?;
        let identity = src.identity(("tunnel_listener.cert", &t.cert), ("tunnel_listener.key", &t.key))?;
        let tunnel_ca = src.certs("tunnel_listener.client_ca", &t.client_ca)?;
        let public_listen = addr("public_listener.listen", &raw.public_listener.listen)?;
        let client_hello_timeout = src.positive_duration(
            "public_listener.client_hello_timeout",
            raw.public_listener.client_hello_timeout.as_ref(),
            DEFAULT_CLIENT_HELLO_TIMEOUT,
        )?;
        let public = &raw.public_listener;
        let idle_timeout =
            src.duration("public_listener.idle_timeout", public.idle_timeout.as_ref(), DEFAULT_IDLE_TIMEOUT)?;
        let max_connections = match &public.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n) => usize::try_from(*n.get_ref())
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| src.invalid("public_listener.max_connections", n, "expected a positive number"))?,
        };
        let max_connections_per_source = count(
            src,
            "public_listener.max_connections_per_source",
            public.max_connections_per_source.as_ref(),
            (max_connections / 8).max(1),
            u32::MAX.into(),
        )?;
        let tunnel_limits = tunnel_limits(src, t)?;
        let tunnels = super::edge_tunnels::tunnel_map(src, &raw.tunnels)?;
        Ok(Self {
            tunnel_listen,
            tunnel_tcp_listen,
            identity,
            tunnel_ca,
            public_listen,
            client_hello_timeout,
            idle_timeout,
            max_connections,
            max_connections_per_source,
            tunnel_limits,
            tunnels,
            files: src.files(),
            admin: edge_admin(src, raw.admin.as_ref())?,
        })
    }
}

/// `[tunnel_listener]`'s limits, defaults from [`TunnelLimits::default`].
fn tunnel_limits(src: &Source, t: &RawTunnelListener) -> Result<TunnelLimits, ConfigError> {
    let d = TunnelLimits::default();
    let key = |k: &str| format!("tunnel_listener.{k}");
    let mib = |k: &str, v: &Option<Spanned<i64>>, default: u64| {
        count(src, &key(k), v.as_ref(), usize::try_from(default / u64::from(MIB)).unwrap_or(1), MAX_WINDOW_MIB)
            // At most 1024 MiB, so the product fits a u32.
            .map(|n| u32::try_from(n).unwrap_or(1) * MIB)
    };
    let limits = TunnelLimits {
        handshake_timeout: src.positive_duration(
            &key("handshake_timeout"),
            t.handshake_timeout.as_ref(),
            d.handshake_timeout,
        )?,
        max_handshakes: count(src, &key("max_handshakes"), t.max_handshakes.as_ref(), d.max_handshakes, 1_000_000)?,
        max_handshakes_per_source: count(
            src,
            &key("max_handshakes_per_source"),
            t.max_handshakes_per_source.as_ref(),
            d.max_handshakes_per_source,
            1_000_000,
        )?,
        stream_window: mib("stream_window_mib", &t.stream_window_mib, d.stream_window.into())?,
        connection_window: mib("connection_window_mib", &t.connection_window_mib, d.connection_window.into())?,
        send_window: mib("send_window_mib", &t.send_window_mib, d.send_window)?.into(),
        max_connections_per_tunnel: count(
            src,
            &key("max_connections_per_tunnel"),
            t.max_connections_per_tunnel.as_ref(),
            d.max_connections_per_tunnel,
            1024,
        )?,
    };
    if let (Some(v), true) = (&t.stream_window_mib, limits.stream_window > limits.connection_window) {
        return Err(src.invalid(&key("stream_window_mib"), v, "must not exceed connection_window_mib"));
    }
    Ok(limits)
}

/// An optional count in `1..=max`.
fn count(src: &Source, key: &str, v: Option<&Spanned<i64>>, default: usize, max: u64) -> Result<usize, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    u64::try_from(*v.get_ref())
        .ok()
        .filter(|n| (1..=max).contains(n))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| src.invalid(key, v, format!("expected 1 to {max}")))
}

/// The edge's `[admin]`: listen only (it has no control operations).
fn edge_admin(src: &Source, admin: Option<&super::RawAdmin>) -> Result<Option<SocketAddr>, ConfigError> {
    if let Some(v) = admin.and_then(|a| a.token_sha256.as_ref()) {
        return Err(src.invalid("admin.token_sha256", v, "only the gateway has control operations"));
    }
    src.admin_listen(admin)
}
