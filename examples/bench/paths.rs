//! The paths under test, each started on loopback with its own processes:
//! direct (plain HTTP to the upstream), TLS floor (nginx), mcp-tunnel over QUIC and over
//! HTTP/2 (edge and gateway as separate processes of the release binary), and rathole
//! (TLS transport) carrying traffic to nginx terminating the inner TLS.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;

use crate::load::{self, Target, TlsTarget};
use crate::peers;
use crate::procs::Proc;

/// Tunnel domain of the bench PKI; clients ask for `HOST`.
pub const DOMAIN: &str = "bench.localhost";
pub const HOST: &str = "mcp.bench.localhost";
/// How long a path may take to answer its first request after start.
const READY_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Floor,
    Quic,
    Http2,
    Rathole,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Direct, Kind::Floor, Kind::Quic, Kind::Http2, Kind::Rathole];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Floor => "tls-floor",
            Kind::Quic => "tunnel-quic",
            Kind::Http2 => "tunnel-h2",
            Kind::Rathole => "rathole",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s || k.name().ends_with(s))
    }
}

/// What every path needs: the work dir (PKI under `certs/`), the release binary and the
/// upstream's address.
pub struct Env {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub upstream: SocketAddr,
    pub inner_ca: Vec<CertificateDer<'static>>,
    /// Extra environment of the edge and gateway processes (e.g. TOKIO_WORKER_THREADS).
    pub tunnel_env: Vec<(String, String)>,
}

impl Env {
    fn cert(&self, rel: &str) -> PathBuf {
        self.dir.join("certs").join(rel)
    }
}

/// A started path.
pub struct Path {
    pub kind: Kind,
    pub target: Arc<Target>,
    pub procs: Vec<Proc>,
    /// Index in `procs` of the process an edge restart kills (edge, rathole server).
    pub edge: Option<usize>,
    /// The gateway's state directory (its control socket), for the kill scenario.
    pub state_dir: Option<PathBuf>,
}

impl Path {
    pub async fn stop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            p.stop(Duration::from_secs(3)).await;
        }
    }
}

/// A loopback port free on TCP (and UDP when `udp`), for configs of other processes.
pub fn free_port(udp: bool) -> Result<u16, String> {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        if !udp || UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port".into())
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn tls_target(env: &Env, port: u16) -> Result<Target, String> {
    let tls = TlsTarget::new(&env.inner_ca, HOST).map_err(|e| e.to_string())?;
    Ok(Target { addr: addr(port), tls: Some(tls), host: HOST.into() })
}

/// Starts a path; `Ok(None)` when a peer it needs is not installed (the caller says so).
pub async fn start(kind: Kind, env: &Env) -> Result<Option<Path>, String> {
    let path = match kind {
        Kind::Direct => {
            let target = Target { addr: env.upstream, tls: None, host: env.upstream.to_string() };
            Path { kind, target: Arc::new(target), procs: vec![], edge: None, state_dir: None }
        }
        Kind::Floor => {
            let Some(nginx) = peers::find_nginx() else { return Ok(None) };
            let port = free_port(false)?;
            let p = start_nginx(&nginx, env, "floor", port)?;
            Path { kind, target: Arc::new(tls_target(env, port)?), procs: vec![p], edge: None, state_dir: None }
        }
        Kind::Quic | Kind::Http2 => start_tunnel(kind, env).await?,
        Kind::Rathole => {
            let (Some(nginx), Some(rathole)) = (peers::find_nginx(), peers::find_rathole()) else { return Ok(None) };
            let dir = env.dir.join("rathole");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let (nginx_port, control, public) = (free_port(false)?, free_port(false)?, free_port(false)?);
            let ng = start_nginx(&nginx, env, "rathole-nginx", nginx_port)?;
            let p12 = dir.join("edge.p12");
            peers::pkcs12(&env.cert("edge/server.pem"), &env.cert("edge/server.key"), &p12)?;
            let server_toml = write(&dir, "server.toml", &peers::rathole_server(addr(control), addr(public), &p12))?;
            let client_toml = write(
                &dir,
                "client.toml",
                &peers::rathole_client(addr(control), addr(nginx_port), &env.cert("edge/ca.pem")),
            )?;
            let server = spawn("rathole-server", &rathole, &["--server".into(), arg(&server_toml)], &dir)?;
            wait_tcp(addr(control), READY_LIMIT).await?;
            let client = spawn("rathole-client", &rathole, &["--client".into(), arg(&client_toml)], &dir)?;
            Path {
                kind,
                target: Arc::new(tls_target(env, public)?),
                procs: vec![ng, server, client],
                edge: Some(1),
                state_dir: None,
            }
        }
    };
    wait_ready(&path.target, READY_LIMIT).await.map_err(|e| format!("{}: not ready: {e}", kind.name()))?;
    Ok(Some(path))
}

async fn start_tunnel(kind: Kind, env: &Env) -> Result<Path, String> {
    let dir = env.dir.join(kind.name());
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (tunnel, public) = (free_port(true)?, free_port(false)?);
    let c = |rel: &str| env.cert(rel).display().to_string();
    let edge_toml = format!(
        r#"[tunnel_listener]
listen = "127.0.0.1:{tunnel}"
cert = "{cert}"
key = "{key}"
client_ca = "{client_ca}"
[public_listener]
listen = "127.0.0.1:{public}"
max_connections = 30000
# Every bench client connects from 127.0.0.1.
max_connections_per_source = 30000
[tunnels.bench]
hostnames = ["*.{DOMAIN}"]
"#,
        cert = c("edge/server.pem"),
        key = c("edge/server.key"),
        client_ca = c("tunnel/ca.pem"),
    );
    let transport = if kind == Kind::Quic { "quic" } else { "http2" };
    let gateway_toml = format!(
        r#"tunnel_domain = "{DOMAIN}"
state_dir = "state"
[edge]
address = "127.0.0.1:{tunnel}"
server_name = "localhost"
ca = "{edge_ca}"
cert = "{gw_cert}"
key = "{gw_key}"
transport = "{transport}"
[inner_tls]
cert = "{inner_cert}"
key = "{inner_key}"
[[routes]]
host = "mcp"
upstream = "http://{upstream}"
[routes.limits]
# Above the SSE scenarios' stream counts (the default, 256, would answer the rest 503).
max_concurrent = 30000
"#,
        edge_ca = c("edge/ca.pem"),
        gw_cert = c("tunnel/gateway.pem"),
        gw_key = c("tunnel/gateway.key"),
        inner_cert = c("inner/server.pem"),
        inner_key = c("inner/server.key"),
        upstream = env.upstream,
    );
    let edge_path = write(&dir, "edge.toml", &edge_toml)?;
    let gateway_path = write(&dir, "gateway.toml", &gateway_toml)?;
    let edge =
        spawn_env("edge", &env.bin, &["edge".into(), "--config".into(), arg(&edge_path)], &env.tunnel_env, &dir)?;
    wait_tcp(addr(public), READY_LIMIT).await?;
    let gateway_args = ["gateway".into(), "--config".into(), arg(&gateway_path)];
    let gateway = spawn_env("gateway", &env.bin, &gateway_args, &env.tunnel_env, &dir)?;
    let (target, state_dir) = (Arc::new(tls_target(env, public)?), Some(dir.join("state")));
    Ok(Path { kind, target, procs: vec![edge, gateway], edge: Some(0), state_dir })
}

fn start_nginx(nginx: &FsPath, env: &Env, name: &str, port: u16) -> Result<Proc, String> {
    let dir = env.dir.join(name);
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
    }
    // Workers drop to an unprivileged user when started as root; let them use the dir.
    let _ = std::process::Command::new("chmod").args(["-R", "a+rwX"]).arg(&dir).status();
    let conf =
        peers::nginx_conf(&dir, addr(port), env.upstream, &env.cert("inner/server.pem"), &env.cert("inner/server.key"));
    let conf_path = write(&dir, "nginx.conf", &conf)?;
    spawn("nginx", nginx, &["-c".into(), arg(&conf_path), "-p".into(), arg(&dir), "-e".into(), "stderr".into()], &dir)
}

fn spawn(role: &'static str, program: &FsPath, args: &[String], dir: &FsPath) -> Result<Proc, String> {
    spawn_env(role, program, args, &[], dir)
}

fn spawn_env(
    role: &'static str,
    program: &FsPath,
    args: &[String],
    env: &[(String, String)],
    dir: &FsPath,
) -> Result<Proc, String> {
    Proc::spawn(role, program, args, env, dir.join(format!("{role}.log"))).map_err(|e| format!("start {role}: {e}"))
}

fn write(dir: &FsPath, name: &str, text: &str) -> Result<PathBuf, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}

fn arg(p: &FsPath) -> String {
    p.display().to_string()
}

/// Polls until something accepts TCP on `addr`.
pub async fn wait_tcp(addr: SocketAddr, limit: Duration) -> Result<Instant, String> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(format!("nothing accepts on {addr} after {limit:?}"))
}

/// Polls with small calls (a new connection each) until one succeeds.
pub async fn wait_ready(t: &Target, limit: Duration) -> Result<Instant, String> {
    let until = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < until {
        let attempt = async {
            let mut s = load::connect(t, true).await?;
            load::call(&mut s, &t.host).await
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(())) => return Ok(Instant::now()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(last)
}
