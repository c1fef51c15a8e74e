//! Test harness: a runtime-generated PKI, an edge and a gateway running in-process on
//! port 0, real Python MCP SDK peers, and a small HTTPS client for status-code checks.

pub mod config;
pub mod control;
pub mod http;
pub mod load;
pub mod own_process;
pub mod poll;
pub mod procs;
pub mod python;
pub mod raw;
pub mod recorder;
pub mod stdio;
pub mod tap;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use config::{EdgeToml, GatewayToml};
use mcp_tunnel::config::edge::EdgeConfig;
use mcp_tunnel::config::gateway::GatewayConfig;
use mcp_tunnel::edge::{Edge, EdgeShared};
use mcp_tunnel::gateway::{Gateway, TunnelState};
use mcp_tunnel::pki::{self, PkiOptions};
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Tunnel domain used by every test.
pub const DOMAIN: &str = "tunnel.test";
/// Tunnel id the default PKI's gateway certificate carries.
pub const TUNNEL: &str = "acme";

/// Writes a PKI (same layout as `certs init`) under `dir/<sub>`.
pub fn write_pki(dir: &Path, sub: &str, tunnel_id: &str) -> PathBuf {
    let out = dir.join(sub);
    let opts =
        PkiOptions { tunnel_id: tunnel_id.into(), tunnel_domain: DOMAIN.into(), edge_names: vec!["localhost".into()] };
    pki::generate(&opts).expect("generate PKI").write(&out, false).expect("write PKI");
    out
}

/// Extra lines for the harness edge's `[tunnel_listener]`, `[public_listener]` and (after
/// the `acme` and `other` tunnels) `[tunnels]`.
#[derive(Debug, Default)]
pub struct EdgeKeys {
    pub tunnel_listener: String,
    pub public_listener: String,
    pub tunnels: String,
}

/// A running edge + gateway, stopped on drop.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub edge: Arc<EdgeShared>,
    pub public: SocketAddr,
    pub tunnel: SocketAddr,
    pub status: watch::Receiver<TunnelState>,
    pub shutdown: CancellationToken,
    /// TCP address of the edge's HTTP/2 fallback listener.
    pub tunnel_tcp: SocketAddr,
    /// Extra lines for the gateway's `[edge]` table (transport settings).
    pub edge_extra: String,
    /// The main gateway's shared state (routes, reload counter).
    pub gateway: Option<Arc<mcp_tunnel::gateway::GatewayShared>>,
    /// Notify to make the main gateway reload (as SIGHUP does).
    pub reload: Arc<tokio::sync::Notify>,
    /// Stops the main gateway alone (gracefully), leaving the edge running.
    pub gateway_stop: CancellationToken,
    /// The main gateway's admin endpoint, bound before it runs (when `[admin]` is set).
    pub gateway_admin: Option<SocketAddr>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Stack {
    /// Edge serving `*.tunnel.test` for tunnel `acme`, and a gateway with `routes`
    /// (TOML `[[routes]]` tables, plus any other top-level gateway keys before them).
    pub async fn start(routes: &str) -> Stack {
        Self::start_with(routes, "").await
    }

    /// Like [`Stack::start`], with extra `[edge]` lines for the gateway (e.g.
    /// `transport = "http2"`).
    pub async fn start_with(routes: &str, edge_extra: &str) -> Stack {
        Self::start_edge(routes, edge_extra, &EdgeKeys::default()).await
    }

    /// Like [`Stack::start_with`], with extra keys in the edge's config tables.
    pub async fn start_edge(routes: &str, edge_extra: &str, keys: &EdgeKeys) -> Stack {
        let EdgeKeys { tunnel_listener, public_listener, tunnels } = keys;
        // The harness's short ClientHello timeout, unless the test sets its own.
        let hello_timeout =
            if public_listener.contains("client_hello_timeout") { "" } else { "client_hello_timeout = \"2s\"" };
        let dir = tempfile::tempdir().expect("tempdir");
        write_pki(dir.path(), "certs", TUNNEL);
        let shutdown = CancellationToken::new();
        let edge_toml = EdgeToml {
            tunnel_listener: tunnel_listener.clone(),
            public_listener: format!("{hello_timeout}\n{public_listener}"),
            tables: format!(
                "[tunnels.{TUNNEL}]\nhostnames = [\"*.{DOMAIN}\"]\n[tunnels.other]\nhostnames = [\"other.example\"]\n{tunnels}"
            ),
            ..EdgeToml::new("certs")
        }
        .render();
        let edge_path = dir.path().join("edge.toml");
        std::fs::write(&edge_path, edge_toml).expect("write edge.toml");
        let edge = Edge::bind(&EdgeConfig::load(&edge_path).expect("edge config")).await.expect("bind edge");
        let (public, tunnel, tunnel_tcp, shared) =
            (edge.public_addr(), edge.tunnel_addr(), edge.tunnel_tcp_addr(), edge.shared());
        tokio::spawn(edge.run(shutdown.clone()));
        let mut stack = Stack {
            dir,
            edge: shared,
            public,
            tunnel,
            status: watch::channel(TunnelState::Connecting).1,
            shutdown,
            tunnel_tcp,
            edge_extra: edge_extra.to_owned(),
            gateway: None,
            reload: Arc::default(),
            gateway_stop: CancellationToken::new(),
            gateway_admin: None,
        };
        // The main gateway runs from `gateway.toml` and reloads it when it changes.
        let path = stack.gateway_path();
        std::fs::write(&path, stack.gateway_toml("certs", "certs/tunnel", routes)).expect("write gateway.toml");
        let gateway = Gateway::new(GatewayConfig::load(&path).unwrap_or_else(|e| panic!("gateway config: {e}")))
            .expect("gateway");
        stack.status = gateway.status();
        stack.gateway = Some(gateway.shared());
        stack.gateway_admin = gateway.admin_addr();
        stack.gateway_stop = stack.shutdown.child_token();
        tokio::spawn(gateway.watch_config(path, stack.reload.clone()).run(stack.gateway_stop.clone()));
        let state = stack.wait_state().await;
        assert!(matches!(state, TunnelState::Registered { .. }), "gateway did not register: {state:?}");
        stack
    }

    /// Gateway config text dialing this stack's edge, pinning the edge CA of the PKI in
    /// `edge_ca_dir` and presenting `<client_dir>/gateway.pem`.
    pub fn gateway_toml(&self, edge_ca_dir: &str, client_dir: &str, routes: &str) -> String {
        self.gateway_toml_at(self.tunnel, &self.edge_extra, edge_ca_dir, client_dir, routes)
    }

    /// Like [`Stack::gateway_toml`], dialing `address` with extra `[edge]` lines.
    pub fn gateway_toml_at(
        &self,
        address: SocketAddr,
        edge_extra: &str,
        edge_ca_dir: &str,
        client_dir: &str,
        routes: &str,
    ) -> String {
        // Audit records stay out of the test output unless a test configures them.
        let audit = if routes.contains("[audit]") { "" } else { "[audit]\nsink = \"off\"\n" };
        // Top-level keys given before the first table (e.g. `state_dir`) must precede every
        // table header of the file to stay top-level.
        let mut split = 0;
        for line in routes.split_inclusive('\n') {
            if line.trim_start().starts_with('[') {
                break;
            }
            split += line.len();
        }
        let (top, routes) = routes.split_at(split);
        GatewayToml {
            top: top.to_owned(),
            edge_ca: edge_ca_dir.to_owned(),
            client: client_dir.to_owned(),
            edge: edge_extra.to_owned(),
            tables: format!("{audit}{routes}"),
            ..GatewayToml::new(address, "certs")
        }
        .render()
    }

    /// The main gateway's config file.
    pub fn gateway_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    /// Writes and loads a gateway config (see [`Stack::gateway_toml`]).
    pub fn gateway_config(&self, edge_ca_dir: &str, client_dir: &str, routes: &str) -> GatewayConfig {
        self.load_gateway(&self.gateway_toml(edge_ca_dir, client_dir, routes))
    }

    /// Writes and loads gateway config text in this stack's directory.
    pub fn load_gateway(&self, text: &str) -> GatewayConfig {
        let path = self.dir.path().join(format!("gateway-{}.toml", fastrand::u32(..)));
        std::fs::write(&path, text).expect("write gateway.toml");
        GatewayConfig::load(&path).unwrap_or_else(|e| panic!("gateway config: {e}"))
    }

    /// Starts another gateway against this edge; returns its state.
    pub fn spawn_gateway(&self, config: GatewayConfig) -> watch::Receiver<TunnelState> {
        let gateway = Gateway::new(config).expect("gateway");
        let status = gateway.status();
        tokio::spawn(gateway.run(self.shutdown.child_token()));
        status
    }

    /// Waits (bounded) for the main gateway to register or be refused.
    pub async fn wait_state(&mut self) -> TunnelState {
        wait_settled(&mut self.status).await
    }

    /// Issues a gateway certificate for `tunnel_id` from this stack's tunnel CA into
    /// `<dir>/<sub>/gateway.{pem,key}`; returns `sub` for [`Stack::gateway_config`].
    pub fn issue_gateway(&self, tunnel_id: &str, sub: &str) -> String {
        let ca = self.dir.path().join("certs/tunnel");
        let read = |n: &str| std::fs::read_to_string(ca.join(n)).expect("read tunnel CA");
        let issued = pki::issue_gateway_cert(&read("ca.pem"), &read("ca.key"), tunnel_id).expect("issue");
        let out = self.dir.path().join(sub);
        std::fs::create_dir_all(&out).expect("mkdir");
        issued.write(&out, "gateway", false).expect("write gateway cert");
        sub.to_owned()
    }

    /// CA certificates MCP clients trust (the inner CA).
    pub fn inner_ca(&self) -> Vec<CertificateDer<'static>> {
        mcp_tunnel::tls::pem::load_certs(&self.inner_ca_path()).expect("inner CA")
    }

    pub fn inner_ca_path(&self) -> PathBuf {
        self.dir.path().join("certs/inner/ca.pem")
    }

    /// `https://<route>.tunnel.test:<public port>/mcp`.
    pub fn url(&self, route: &str) -> String {
        format!("https://{route}.{DOMAIN}:{}/mcp", self.public.port())
    }
}

/// The example MCP server (`demo::server`) on a free loopback port; cancel to stop it.
pub async fn demo_upstream() -> (u16, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let port = listener.local_addr().expect("upstream addr").port();
    let stop = CancellationToken::new();
    tokio::spawn(mcp_tunnel::demo::server::run(listener, stop.clone()));
    (port, stop)
}

/// A loopback port free for both TCP and UDP right now (bound, then released): for
/// processes whose bound address nobody reports (`[admin] listen`, a binary's listeners),
/// and as an address where nothing listens.
pub fn free_port() -> u16 {
    free_on("127.0.0.1", |_| true).port()
}

/// Like [`free_port`], on `ip` (any of 127.0.0.0/8), for which `also` holds too (e.g.
/// free on another IP as well).
pub fn free_on(ip: &str, also: impl Fn(u16) -> bool) -> SocketAddr {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind((ip, 0)).expect("bind UDP");
        let addr = udp.local_addr().expect("UDP address");
        if std::net::TcpListener::bind(addr).is_ok() && also(addr.port()) {
            return addr;
        }
    }
    panic!("no port on {ip} free for both TCP and UDP in 100 tries");
}

/// Waits up to 15 s for a gateway to reach Registered, Rejected or Disconnected.
pub async fn wait_settled(status: &mut watch::Receiver<TunnelState>) -> TunnelState {
    let settled = |s: &TunnelState| !matches!(s, TunnelState::Connecting);
    let result =
        tokio::time::timeout(Duration::from_secs(15), status.wait_for(settled)).await.map(|r| r.map(|s| s.clone()));
    match result {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => TunnelState::Stopped,
        Err(_) => panic!("gateway state did not settle within 15 s (still {:?})", *status.borrow()),
    }
}

/// Audit records in `path` (the writer is a background task), polling until `done` holds
/// for them; panics after 10 s.
pub async fn audit_records(path: &Path, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    let complete = poll::within(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // The writer may be mid-line: a partial last line is read again next time.
        records = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        done(&records).then(|| std::mem::take(&mut records))
    })
    .await;
    complete.unwrap_or_else(|| panic!("audit records never complete: {records:#?}"))
}

/// A real ClientHello from rustls' client for `sni` (what an MCP client would send).
pub fn client_hello(stack: &Stack, sni: &str) -> Vec<u8> {
    let config = mcp_tunnel::tls::configs::client_trusting(&stack.inner_ca(), &[b"http/1.1"]).expect("client config");
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).expect("server name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client connection");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("write ClientHello");
    let parsed = mcp_tunnel::edge::sni::parse_sni(&hello).expect("a valid ClientHello");
    assert_eq!(parsed.as_deref(), Some(sni), "complete hello");
    hello
}
