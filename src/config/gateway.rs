//! The gateway's config file: where the edge is, the outer and inner identities, the
//! upstream allow-list and the routing table.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use toml::Spanned;

use super::defaults;
use super::route::RawUpstream;
use super::{normalize_host_pattern, ConfigError, Source};
use crate::gateway::route::RouteTable;
use crate::tls::configs;
use crate::tls::pem::Identity;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    admin: Option<super::RawAdmin>,
    audit: Option<super::controls::RawAudit>,
    tunnel_domain: Spanned<String>,
    edge: RawEdge,
    inner_tls: RawInnerTls,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    routes: Vec<super::route::RawRoute>,
    shutdown_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    max_streams: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdge {
    address: Spanned<String>,
    addresses: Option<Vec<Spanned<String>>>,
    connections: Option<Spanned<i64>>,
    tcp_address: Option<Spanned<String>>,
    transport: Option<Spanned<String>>,
    quic_retry_interval: Option<Spanned<String>>,
    backoff_base: Option<Spanned<String>>,
    backoff_max: Option<Spanned<String>>,
    keepalive_interval: Option<Spanned<String>>,
    dead_after: Option<Spanned<String>>,
    rebalance_interval: Option<Spanned<String>>,
    server_name: Option<Spanned<String>>,
    ca: Spanned<String>,
    cert: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInnerTls {
    cert: Spanned<String>,
    key: Spanned<String>,
}

/// Which transport the gateway uses to reach the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportMode {
    /// QUIC first; HTTP/2 over TCP when UDP looks blocked, moving back when QUIC works.
    Auto,
    /// QUIC only.
    Quic,
    /// HTTP/2 over TLS/TCP only.
    Http2,
}

/// Where and as whom the gateway dials the edge.
#[derive(Debug, Clone)]
pub struct EdgeTarget {
    /// `host:port` of the edge's tunnel listener, resolved at each dial.
    pub address: String,
    /// Further edge instances; connection `i` dials entry `i` of `[address] + addresses`
    /// (cycling).
    pub addresses: Vec<String>,
    /// How many tunnel connections to keep open.
    pub connections: u32,
    /// `host:port` of the HTTP/2 fallback listener, when it differs from `address`.
    pub tcp_address: Option<String>,
    /// Transport policy.
    pub transport: TransportMode,
    /// While on HTTP/2 in `auto` mode, how often to check whether QUIC works again.
    pub quic_retry_interval: Duration,
    /// Reconnect backoff: the first delay's upper bound, doubling up to `backoff_max`
    /// (full jitter).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How the gateway tells a live edge from a dead one.
    pub liveness: Liveness,
    /// After a failover, how often a connection checks whether its own edge serves again.
    pub rebalance_interval: Duration,
    /// Name the edge's certificate must carry.
    pub server_name: ServerName<'static>,
    /// The pinned edge CA.
    pub ca: Vec<CertificateDer<'static>>,
    /// The gateway's client certificate (its tunnel identity) and key.
    pub identity: Identity,
}

/// Dead-edge detection. Every `keepalive_interval` the gateway sends a keep-alive (a QUIC
/// PING frame, or an HTTP/2 PING); a connection that has heard nothing from the edge for
/// `dead_after` is dead: the gateway drops it and redials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub keepalive_interval: Duration,
    pub dead_after: Duration,
}

impl Liveness {
    /// How long the answer to a keep-alive may take. The keep-alive goes out at most
    /// `keepalive_interval` after the edge was last heard from, so an answer missing for
    /// the rest of `dead_after` means dead. This is the HTTP/2 PONG deadline and the QUIC
    /// idle timeout (QUIC restarts its idle timer at the first packet sent after one
    /// received, RFC 9000 §10.1: a timeout of `dead_after` itself would fire up to
    /// `keepalive_interval` late).
    pub fn answer_deadline(&self) -> Duration {
        self.dead_after.saturating_sub(self.keepalive_interval)
    }
}

/// A validated gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Domain under which bare route names live.
    pub tunnel_domain: String,
    /// The edge to dial.
    pub edge: EdgeTarget,
    /// Certificate and key for the inner TLS (the customer's).
    pub inner: Identity,
    /// Host (and path) → upstream.
    pub routes: Arc<RouteTable>,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// A client connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// The config file and every file it refers to (watched for hot reload).
    pub files: Vec<std::path::PathBuf>,
    /// Admin endpoint (`/healthz`, `/readyz`, `/metrics`), when configured.
    pub admin: Option<std::net::SocketAddr>,
    /// Where audit records go.
    pub audit: super::controls::AuditSettings,
    /// The gateway's state directory (control socket, kill state, tool pins), when set.
    pub state_dir: Option<std::path::PathBuf>,
    /// Most client connections (tunnel streams) served at once, over all tunnel connections.
    pub max_streams: usize,
    /// `[admin] token_sha256` (`sha256:<hex>`): control operations over the admin
    /// endpoint are off without it.
    pub admin_token: Option<String>,
}

impl GatewayConfig {
    /// Reads and validates a gateway config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_source(&Source::read(path)?)
    }

    /// Validates config text (its paths resolve against `src.path`).
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let raw: Raw = src.parse()?;
        let domain =
            normalize_host_pattern(raw.tunnel_domain.get_ref()).ok().filter(|d| !d.starts_with("*.")).ok_or_else(
                || src.invalid("tunnel_domain", &raw.tunnel_domain, "expected a DNS name such as \"mcp.example.com\""),
            )?;
        let edge = edge_target(src, &raw.edge)?;
        let inner = src.identity(("inner_tls.cert", &raw.inner_tls.cert), ("inner_tls.key", &raw.inner_tls.key))?;
        configs::inner_server(&inner).map_err(|e| src.invalid("inner_tls.cert", &raw.inner_tls.cert, e.to_string()))?;
        let routes = super::route::route_table(src, &domain, &raw.upstream, &raw.routes)?;
        super::route::require_state_dir(src, &raw.routes, raw.state_dir.is_some())?;
        let shutdown_timeout =
            src.duration("shutdown_timeout", raw.shutdown_timeout.as_ref(), defaults::SHUTDOWN_TIMEOUT)?;
        let idle_timeout = src.positive_duration("idle_timeout", raw.idle_timeout.as_ref(), defaults::IDLE_TIMEOUT)?;
        Ok(Self {
            tunnel_domain: domain,
            edge,
            inner,
            routes: Arc::new(routes),
            shutdown_timeout,
            idle_timeout,
            files: src.files(),
            admin: src.admin_listen(raw.admin.as_ref())?,
            audit: super::controls::audit_settings(src, raw.audit.as_ref())?,
            max_streams: match &raw.max_streams {
                None => defaults::MAX_STREAMS,
                Some(n) => usize::try_from(*n.get_ref())
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| src.invalid("max_streams", n, "expected 1 to 1000000"))?,
            },
            state_dir: raw.state_dir.as_ref().map(|d| state_dir(src, d)).transpose()?,
            admin_token: src.admin_token(raw.admin.as_ref())?,
        })
    }
}

/// The state directory, relative to the config file. Not watched for reloads: the
/// gateway writes there itself.
fn state_dir(src: &Source, v: &Spanned<String>) -> Result<std::path::PathBuf, ConfigError> {
    let dir = v.get_ref().trim();
    if dir.is_empty() {
        return Err(src.invalid("state_dir", v, "must not be empty (a directory path, e.g. \"/var/lib/mcp-tunnel\")"));
    }
    if dir.contains('\0') {
        return Err(src.invalid("state_dir", v, "must not contain a NUL byte"));
    }
    let dir = Path::new(dir);
    Ok(if dir.is_absolute() { dir.to_owned() } else { src.path.parent().unwrap_or(Path::new(".")).join(dir) })
}

fn edge_target(src: &Source, raw: &RawEdge) -> Result<EdgeTarget, ConfigError> {
    let address = raw.address.get_ref().trim().to_owned();
    let (host, _) = split_host_port(&address, defaults::EDGE_PORT)
        .ok_or_else(|| src.invalid("edge.address", &raw.address, "expected \"host:port\""))?;
    let name = raw.server_name.as_ref().map(|s| s.get_ref().clone()).unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(name.clone()).map_err(|_| match &raw.server_name {
        Some(s) => src.invalid("edge.server_name", s, format!("{name:?} is not a valid DNS name or IP address")),
        None => src.invalid("edge.address", &raw.address, format!("{name:?} is not a valid DNS name or IP address")),
    })?;
    let address = edge_addr(src, "edge.address", &raw.address)?;
    let ca = src.certs("edge.ca", &raw.ca)?;
    let identity = src.identity(("edge.cert", &raw.cert), ("edge.key", &raw.key))?;
    crate::tls::identity::tunnel_id(&identity.chain[0])
        .map_err(|e| src.invalid("edge.cert", &raw.cert, format!("not a gateway certificate: {e}")))?;
    let tcp_address = match &raw.tcp_address {
        None => None,
        Some(a) => Some(edge_addr(src, "edge.tcp_address", a)?),
    };
    let transport = match raw.transport.as_ref().map(|t| (t, t.get_ref().as_str())) {
        None | Some((_, "auto")) => TransportMode::Auto,
        Some((_, "quic")) => TransportMode::Quic,
        Some((_, "http2")) => TransportMode::Http2,
        Some((t, _)) => return Err(src.invalid("edge.transport", t, "expected \"auto\", \"quic\" or \"http2\"")),
    };
    let quic_retry_interval = src.positive_duration(
        "edge.quic_retry_interval",
        raw.quic_retry_interval.as_ref(),
        defaults::QUIC_RETRY_INTERVAL,
    )?;
    let backoff_base = src.positive_duration("edge.backoff_base", raw.backoff_base.as_ref(), defaults::BACKOFF_BASE)?;
    let backoff_max = src.positive_duration("edge.backoff_max", raw.backoff_max.as_ref(), defaults::BACKOFF_MAX)?;
    if let (Some(at), true) = (&raw.backoff_max, backoff_max < backoff_base) {
        return Err(src.invalid("edge.backoff_max", at, "must not be smaller than backoff_base"));
    }
    let liveness = liveness(src, raw)?;
    let rebalance = raw.rebalance_interval.as_ref();
    let rebalance_interval =
        src.positive_duration("edge.rebalance_interval", rebalance, defaults::REBALANCE_INTERVAL)?;
    let mut addresses = Vec::new();
    for (i, a) in raw.addresses.iter().flatten().enumerate() {
        addresses.push(edge_addr(src, &format!("edge.addresses[{i}]"), a)?);
    }
    let connections = match &raw.connections {
        None => 1,
        Some(n) => u32::try_from(*n.get_ref())
            .ok()
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| src.invalid("edge.connections", n, "expected 1 to 16"))?,
    };
    Ok(EdgeTarget {
        address,
        addresses,
        connections,
        tcp_address,
        transport,
        quic_retry_interval,
        backoff_base,
        backoff_max,
        liveness,
        rebalance_interval,
        server_name,
        ca,
        identity,
    })
}

/// `edge.keepalive_interval` and `edge.dead_after`: `dead_after` must leave room for at
/// least two keep-alives (one lost packet is not a dead edge) and fit QUIC's idle timeout.
fn liveness(src: &Source, raw: &RawEdge) -> Result<Liveness, ConfigError> {
    let key = "edge.keepalive_interval";
    let interval = src.positive_duration(key, raw.keepalive_interval.as_ref(), defaults::KEEPALIVE_INTERVAL)?;
    let dead_after = src.positive_duration("edge.dead_after", raw.dead_after.as_ref(), defaults::DEAD_AFTER)?;
    // The defaults satisfy both rules, so a broken one has a key that was set: name it.
    let set = raw
        .dead_after
        .as_ref()
        .map(|at| ("edge.dead_after", at))
        .or(raw.keepalive_interval.as_ref().map(|at| (key, at)));
    if let (Some((key, at)), true) = (set, dead_after < interval.saturating_mul(2)) {
        return Err(src.invalid(key, at, "dead_after must be at least twice keepalive_interval"));
    }
    if let (Some(at), true) = (&raw.dead_after, dead_after > defaults::DEAD_AFTER_MAX) {
        return Err(src.invalid("edge.dead_after", at, "must be at most 10m"));
    }
    Ok(Liveness { keepalive_interval: interval, dead_after })
}

/// Validates an edge address and adds the default port when it has none.
fn edge_addr(src: &Source, key: &str, v: &Spanned<String>) -> Result<String, ConfigError> {
    let (host, port) = split_host_port(v.get_ref().trim(), defaults::EDGE_PORT)
        .ok_or_else(|| src.invalid(key, v, "expected \"host:port\""))?;
    Ok(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
}

/// Splits `host:port`, `[v6]:port` or a bare host; `None` on a malformed port.
pub fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !host.is_empty() => Some((host.to_owned(), port.parse().ok()?)),
        Some(_) => None,
        None if !s.is_empty() => Some((s.to_owned(), default_port)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("edge.test:7000", 1), Some(("edge.test".into(), 7000)));
        assert_eq!(split_host_port("edge.test", 1), Some(("edge.test".into(), 1)));
        assert_eq!(split_host_port("[::1]:9", 1), Some(("::1".into(), 9)));
        assert_eq!(split_host_port("[::1]", 1), Some(("::1".into(), 1)));
        for bad in ["", "a:b", "::1", "[::1]x", ":80"] {
            assert_eq!(split_host_port(bad, 1), None, "{bad}");
        }
    }
}
