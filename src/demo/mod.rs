//! `mcp-tunnel demo`: a whole deployment in one process. It generates a PKI, writes the
//! same config files an operator would, starts an example MCP server, an edge and a
//! gateway on loopback, and runs a real MCP session through the tunnel.

pub mod body;
pub mod client;
pub mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::edge::EdgeConfig;
use crate::config::gateway::GatewayConfig;
use crate::edge::Edge;
use crate::gateway::{Gateway, TunnelState};
use crate::pki::{self, PkiOptions};
use client::McpClient;

/// Tunnel domain of the demo; `*.localhost` names resolve to loopback in most clients.
pub const DEMO_DOMAIN: &str = "mcp.localhost";
/// Route (subdomain) the example server is published under.
pub const DEMO_ROUTE: &str = "demo";

/// Demo failures, reported by `main` as they are.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Pki(#[from] pki::PkiError),
    #[error("{0}")]
    Pem(#[from] crate::tls::pem::PemError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Edge(#[from] crate::edge::EdgeError),
    #[error("{0}")]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("the gateway did not register with the edge: {0}")]
    NotRegistered(String),
    #[error("MCP session through the tunnel failed: {0}")]
    Session(#[from] client::ClientError),
}

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Public port of the edge (0 picks a free one).
    pub public_port: u16,
    /// Directory for the generated certificates and configs (a fresh temp dir if `None`).
    pub dir: Option<PathBuf>,
    /// Exit after the MCP session instead of serving until Ctrl-C.
    pub once: bool,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io { what: what.to_owned(), source }
}

/// Runs the demo; returns after the session (`once`) or when `shutdown` fires.
pub async fn run(opts: DemoOptions, shutdown: CancellationToken) -> Result<(), DemoError> {
    let dir = opts
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("mcp-tunnel-demo-{}", std::process::id())));
    let pki = pki::generate(&PkiOptions {
        tunnel_id: "demo".into(),
        tunnel_domain: DEMO_DOMAIN.into(),
        edge_names: vec!["localhost".into()],
    })?;
    pki.write(&dir, false)?;
    println!("generated a PKI and configs in {}", dir.display());

    let tasks = tokio_util::task::TaskTracker::new();
    let mcp = TcpListener::bind("127.0.0.1:0").await.map_err(io("bind the example MCP server"))?;
    let mcp_addr = mcp.local_addr().map_err(io("example MCP server address"))?;
    tasks.spawn(server::run(mcp, shutdown.clone()));

    let edge_path = write(&dir, "edge.toml", &edge_toml(opts.public_port))?;
    let edge = Edge::bind(&EdgeConfig::load(&edge_path)?).await?;
    let (tunnel_addr, public_addr, edge_state) = (edge.tunnel_addr(), edge.public_addr(), edge.shared());
    tasks.spawn(edge.run(shutdown.clone()));

    let gateway_path = write(&dir, "gateway.toml", &gateway_toml(tunnel_addr, mcp_addr))?;
    let gateway = Gateway::new(GatewayConfig::load(&gateway_path)?)?;
    let mut status = gateway.status();
    tasks.spawn(gateway.run(shutdown.clone()));
    let registered = tokio::time::timeout(
        Duration::from_secs(15),
        status.wait_for(|s| matches!(s, TunnelState::Registered { .. } | TunnelState::Rejected { .. })),
    )
    .await
    .map_err(|_| DemoError::NotRegistered("timed out".into()))?
    .map(|s| s.clone())
    .map_err(|_| DemoError::NotRegistered("gateway stopped".into()))?;
    if let TunnelState::Rejected { reason } = registered {
        return Err(DemoError::NotRegistered(reason));
    }
    println!("edge: tunnel listener udp://{tunnel_addr}, public listener tcp://{public_addr}");
    println!("gateway: registered over QUIC + mTLS; route {DEMO_ROUTE}.{DEMO_DOMAIN} -> http://{mcp_addr}");

    let result = session(public_addr, &dir).await;
    let summary = match &result {
        Ok(()) => "MCP session through the tunnel: OK".to_owned(),
        Err(e) => format!("MCP session through the tunnel FAILED: {e}"),
    };
    println!("{summary}");
    if result.is_ok() && !opts.once {
        print_try_it(public_addr, &dir);
        shutdown.cancelled().await;
    }
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    let stats = &edge_state.stats;
    println!(
        "edge relayed {} streams ({} bytes up, {} bytes down) as ciphertext; it never held the inner key",
        stats.streams_opened.get(),
        stats.bytes_to_gateway.get(),
        stats.bytes_to_client.get()
    );
    println!("audit trail of the session: {}", dir.join("audit.jsonl").display());
    result
}

async fn session(public: SocketAddr, dir: &Path) -> Result<(), DemoError> {
    let ca = crate::tls::pem::load_certs(&dir.join("inner/ca.pem"))?;
    let host = format!("{DEMO_ROUTE}.{DEMO_DOMAIN}");
    let mut client = McpClient::connect(public, &host, &ca).await?;
    let info = client.initialize().await?;
    println!("  initialize -> {} (protocol {})", info["serverInfo"]["name"], info["protocolVersion"]);
    let (tools, _) = client.request("tools/list", json!({}), |_| {}).await?;
    let names: Vec<&str> = tools["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    println!("  tools/list -> {}", names.join(", "));
    let (echo, _) = client
        .request("tools/call", json!({ "name": "echo", "arguments": { "text": "hello through the tunnel" } }), |_| {})
        .await?;
    println!("  tools/call echo -> {}", first_text(&echo));
    let (done, progress) = client
        .request("tools/call", json!({ "name": "countdown", "arguments": { "steps": 3 } }), |p| {
            println!("    progress at {:>4} ms: {}", p.at_ms, p.message)
        })
        .await?;
    println!(
        "  tools/call countdown -> {} ({} progress events streamed as they happened)",
        first_text(&done),
        progress.len()
    );
    Ok(())
}

fn first_text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or("")
}

fn print_try_it(public: SocketAddr, dir: &Path) {
    let port = public.port();
    let host = format!("{DEMO_ROUTE}.{DEMO_DOMAIN}");
    println!("\nThe tunnel stays up until Ctrl-C. Point an MCP client at:");
    println!("  https://{host}:{port}/mcp   (trust {})", dir.join("inner/ca.pem").display());
    println!("or try it with curl:");
    println!(
        "  curl --cacert {} --resolve {host}:{port}:127.0.0.1 https://{host}:{port}/mcp \\\n    -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\\n    -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'",
        dir.join("inner/ca.pem").display()
    );
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, DemoError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(io(name))?;
    Ok(path)
}

fn edge_toml(public_port: u16) -> String {
    format!(
        r#"# Generated by `mcp-tunnel demo`.
[tunnel_listener]
listen = "127.0.0.1:0"
cert = "edge/server.pem"
key = "edge/server.key"
client_ca = "tunnel/ca.pem"

[public_listener]
listen = "127.0.0.1:{public_port}"

[tunnels.demo]
hostnames = ["*.{DEMO_DOMAIN}"]
"#
    )
}

fn gateway_toml(edge: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        r#"# Generated by `mcp-tunnel demo`.
tunnel_domain = "{DEMO_DOMAIN}"

[edge]
address = "{edge}"
server_name = "localhost"
ca = "edge/ca.pem"
cert = "tunnel/gateway.pem"
key = "tunnel/gateway.key"

[inner_tls]
cert = "inner/server.pem"
key = "inner/server.key"

# One JSON record per MCP message; tool arguments redacted except `text`.
[audit]
sink = "file"
path = "audit.jsonl"

[[routes]]
host = "{DEMO_ROUTE}"
upstream = "http://{upstream}"

[routes.audit]
clear_arguments = ["text"]
"#
    )
}
