//! Edge and gateway config files as the suites write them, typed once: the listeners,
//! the dial and the PKI paths (laid out as `certs init` writes them: `edge/`, `tunnel/`,
//! `inner/` under one directory), with the parts a test varies as fields. Tables and
//! keys a builder does not model go in as TOML text.

use super::DOMAIN;

/// `dir/rest`, or `rest` when `dir` is empty (a PKI in the config's own directory).
fn under(dir: &str, rest: &str) -> String {
    if dir.is_empty() {
        rest.to_owned()
    } else {
        format!("{dir}/{rest}")
    }
}

/// `text` and a newline, or nothing when it is empty.
fn lines(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

/// An edge config.
#[derive(Debug, Clone)]
pub struct EdgeToml {
    /// Directory holding the PKI, relative to the config file ("" = the same directory).
    pub pki: String,
    /// `[tunnel_listener] listen`.
    pub tunnel_listen: String,
    /// Extra `[tunnel_listener]` lines.
    pub tunnel_listener: String,
    /// `[public_listener] listen`.
    pub public_listen: String,
    /// Extra `[public_listener]` lines.
    pub public_listener: String,
    /// Everything after the listeners: `[tunnels.*]`, `[admin]`.
    pub tables: String,
}

impl EdgeToml {
    /// Both listeners on 127.0.0.1 port 0, the PKI under `pki`, no tunnels yet.
    pub fn new(pki: &str) -> EdgeToml {
        EdgeToml {
            pki: pki.to_owned(),
            tunnel_listen: "127.0.0.1:0".into(),
            tunnel_listener: String::new(),
            public_listen: "127.0.0.1:0".into(),
            public_listener: String::new(),
            tables: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let EdgeToml { pki, tunnel_listen, tunnel_listener, public_listen, public_listener, tables } = self;
        format!(
            "[tunnel_listener]\nlisten = \"{tunnel_listen}\"\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n{}\
             [public_listener]\nlisten = \"{public_listen}\"\n{}{}",
            under(pki, "edge/server.pem"),
            under(pki, "edge/server.key"),
            under(pki, "tunnel/ca.pem"),
            lines(tunnel_listener),
            lines(public_listener),
            lines(tables),
        )
    }
}

/// A gateway config. Rendered line by line in a fixed order (tunnel_domain on line 1,
/// shutdown_timeout on 2, then `[edge]`, `[inner_tls]`), so tests can name the line a
/// loader error points at.
#[derive(Debug, Clone)]
pub struct GatewayToml {
    pub tunnel_domain: String,
    /// `shutdown_timeout`, when set.
    pub shutdown_timeout: Option<String>,
    /// Other top-level keys (`state_dir`); they precede every table.
    pub top: String,
    /// `[edge] address`.
    pub address: String,
    /// The PKI whose `edge/ca.pem` the gateway pins.
    pub edge_ca: String,
    /// Directory of the gateway's `gateway.pem` and `gateway.key`.
    pub client: String,
    /// Extra `[edge]` lines (`transport`, `tcp_address`).
    pub edge: String,
    /// Directory of the inner `server.pem` and `server.key`.
    pub inner: String,
    /// Everything after `[inner_tls]`: `[audit]`, `[admin]`, `[[routes]]`.
    pub tables: String,
}

impl GatewayToml {
    /// Dialing `address` with the PKI under `pki` (its tunnel's client certificate, its
    /// inner certificate), in the harness's tunnel domain, stopping within 5 s.
    pub fn new(address: impl std::fmt::Display, pki: &str) -> GatewayToml {
        GatewayToml {
            tunnel_domain: DOMAIN.into(),
            shutdown_timeout: Some("5s".into()),
            top: String::new(),
            address: address.to_string(),
            edge_ca: pki.to_owned(),
            client: under(pki, "tunnel"),
            edge: String::new(),
            inner: under(pki, "inner"),
            tables: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let GatewayToml { tunnel_domain, shutdown_timeout, top, address, edge_ca, client, edge, inner, tables } = self;
        let shutdown = shutdown_timeout.as_ref().map(|t| format!("shutdown_timeout = \"{t}\"\n")).unwrap_or_default();
        format!(
            "tunnel_domain = \"{tunnel_domain}\"\n{shutdown}{}\
             [edge]\naddress = \"{address}\"\nserver_name = \"localhost\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{}\
             [inner_tls]\ncert = \"{}\"\nkey = \"{}\"\n{}",
            lines(top),
            under(edge_ca, "edge/ca.pem"),
            under(client, "gateway.pem"),
            under(client, "gateway.key"),
            lines(edge),
            under(inner, "server.pem"),
            under(inner, "server.key"),
            lines(tables),
        )
    }
}
