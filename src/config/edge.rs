//! The edge's config file: its two listeners, its identity, the tunnel CA it trusts,
//! and which hostnames each tunnel serves.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use toml::Spanned;

use super::{normalize_host_pattern, ConfigError, Source};
use crate::tls::identity::is_valid_tunnel_id;
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublic {
    listen: Spanned<String>,
    client_hello_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunnel {
    hostnames: Vec<Spanned<String>>,
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
    /// Tunnel id → hostname patterns it serves.
    pub tunnels: HashMap<String, Vec<String>>,
    /// The config file and every file it refers to (watched for hot reload).
    pub files: Vec<std::path::PathBuf>,
    /// Admin endpoint (`/healthz`, `/readyz`, `/metrics`), when configured.
    pub admin: Option<SocketAddr>,
}

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
        let tunnels = tunnel_map(src, &raw.tunnels)?;
        Ok(Self {
            tunnel_listen,
            tunnel_tcp_listen,
            identity,
            tunnel_ca,
            public_listen,
            client_hello_timeout,
            idle_timeout,
            max_connections,
            tunnels,
            files: src.files(),
            admin: edge_admin(src, raw.admin.as_ref())?,
        })
    }
}

fn tunnel_map(
    src: &Source,
    raw: &BTreeMap<Spanned<String>, RawTunnel>,
) -> Result<HashMap<String, Vec<String>>, ConfigError> {
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut tunnels = HashMap::new();
    for (id, t) in raw {
        let key = format!("tunnels.{}", id.get_ref());
        if !is_valid_tunnel_id(id.get_ref()) {
            return Err(src.invalid(&key, id, "tunnel ids use 1-63 characters of a-z, 0-9 and '-'"));
        }
        if t.hostnames.is_empty() {
            return Err(src.invalid(&key, id, "`hostnames` is empty; list at least one"));
        }
        let mut names = Vec::new();
        for (i, h) in t.hostnames.iter().enumerate() {
            let hkey = format!("{key}.hostnames[{i}]");
            let name = normalize_host_pattern(h.get_ref()).map_err(|why| src.invalid(&hkey, h, why))?;
            if let Some(other) = owner.insert(name.clone(), id.get_ref().clone()) {
                return Err(src.invalid(&hkey, h, format!("{name} is already served by tunnel {other:?}")));
            }
            names.push(name);
        }
        tunnels.insert(id.get_ref().clone(), names);
    }
    Ok(tunnels)
}

/// The edge's `[admin]`: listen only (it has no control operations).
fn edge_admin(src: &Source, admin: Option<&super::RawAdmin>) -> Result<Option<SocketAddr>, ConfigError> {
    if let Some(v) = admin.and_then(|a| a.token_sha256.as_ref()) {
        return Err(src.invalid("admin.token_sha256", v, "only the gateway has control operations"));
    }
    src.admin_listen(admin)
}
