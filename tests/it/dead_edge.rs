//! A dead edge is noticed within `[edge] dead_after` (3 s by default) on both transports,
//! whether its process was SIGKILLed (no reset, no close: what a host crash looks like) or
//! the path to it became a black hole (a partition). Then `/readyz` says so and the gateway
//! redials; with several edge addresses it fails over, and requests through the surviving
//! edge do not fail.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_tunnel::config::gateway::GatewayConfig;
use mcp_tunnel::gateway::{Gateway, TunnelState};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::common::config::{EdgeToml, GatewayToml};
use crate::common::load::Load;
use crate::common::procs::{acme_configs, admin_get, certs_init, Proc, ACME_DOMAIN};
use crate::common::{self, free_on, http, poll, tcp, udp, Stack};

/// The default `dead_after`.
const DEAD_AFTER: Duration = Duration::from_secs(3);
/// Slack on top of `dead_after` for a loaded 2-core machine (timer and scheduling delay);
/// the measured time is printed.
const SLACK: Duration = Duration::from_millis(1_000);

fn registered(s: &TunnelState) -> bool {
    matches!(s, TunnelState::Registered { .. })
}

/// Waits until `status` leaves `Registered`; returns how long that took from `since`.
async fn noticed(status: &mut watch::Receiver<TunnelState>, since: Instant, what: &str) -> Duration {
    let limit = DEAD_AFTER + SLACK;
    let left = tokio::time::timeout(limit, status.wait_for(|s| !registered(s))).await.map(|r| r.is_ok());
    if left != Ok(true) {
        panic!("{what}: still {:?} {limit:?} later", *status.borrow());
    }
    let took = since.elapsed();
    eprintln!("{what}: noticed after {took:?}");
    took
}

/// An edge process with its tunnel listener on `tunnel` and its public one on a free
/// port of the same IP, serving tunnel `acme` from the PKI in `dir` (written by `certs
/// init`). Returns it with its public address.
fn edge_at(dir: &Path, name: &str, tunnel: SocketAddr) -> (Proc, SocketAddr) {
    let public = free_on(&tunnel.ip().to_string(), |_| true);
    let mut toml = acme_configs(tunnel.port(), public.port(), "http://127.0.0.1:1").0;
    toml = EdgeToml { tunnel_listen: tunnel.to_string(), public_listen: public.to_string(), ..toml };
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml.render()).expect("write edge config");
    (spawn_edge(dir, name), public)
}

/// Starts (or restarts) the edge process whose config `edge_at` wrote.
fn spawn_edge(dir: &Path, name: &str) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    let proc = Proc::spawn(name, &["edge", "--config", path.to_str().expect("utf8")], &[("RUST_LOG", "info")]);
    proc.wait_line("edge listening", Duration::from_secs(20), |l| l.contains("edge listening"));
    proc
}

/// Whether `port` is free for UDP and TCP on `ip`.
fn free_at(ip: &str, port: u16) -> bool {
    std::net::UdpSocket::bind((ip, port)).is_ok() && std::net::TcpListener::bind((ip, port)).is_ok()
}

/// An in-process gateway from `gateway.toml` in `dir`, with its admin endpoint.
fn start_gateway(
    dir: &Path,
    gateway: GatewayToml,
    stop: &CancellationToken,
) -> (Vec<watch::Receiver<TunnelState>>, String) {
    // Audit records (stdout by default) stay out of the test output.
    let tables = format!("[audit]\nsink = \"off\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}", gateway.tables);
    let path = dir.join("gateway.toml");
    std::fs::write(&path, GatewayToml { tables, ..gateway }.render()).expect("write gateway.toml");
    let gateway = Gateway::new(GatewayConfig::load(&path).expect("gateway config")).expect("gateway");
    let admin = gateway.admin_addr().expect("admin address").to_string();
    let statuses = gateway.statuses();
    tokio::spawn(gateway.run(stop.clone()));
    (statuses, admin)
}

async fn ready(admin: &str) -> (u16, String) {
    let admin = admin.to_owned();
    tokio::task::spawn_blocking(move || admin_get(&admin, "/readyz")).await.expect("join")
}

/// Fault: the edge process is SIGKILLed and stays down (QUIC; nothing tells the gateway).
/// Expect: the gateway notices within `dead_after`, `/readyz` turns 503 naming the reason,
/// and the gateway keeps redialing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_is_noticed_within_dead_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    let tunnel = free_on("127.0.0.1", |_| true);
    let (mut edge, _) = edge_at(dir.path(), "edge", tunnel);
    let gateway =
        GatewayToml { edge: "transport = \"quic\"".into(), ..acme_configs(tunnel.port(), 1, "http://127.0.0.1:1").1 };
    let stop = CancellationToken::new();
    let (mut statuses, admin) = start_gateway(dir.path(), gateway, &stop);
    let status = &mut statuses[0];
    tokio::time::timeout(Duration::from_secs(15), status.wait_for(registered))
        .await
        .expect("registered")
        .expect("watch");
    let (code, body) = ready(&admin).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("\"edge\":\"{tunnel}\"")), "readyz names the edge: {body}");

    edge.signal("-KILL");
    let killed = Instant::now();
    edge.wait_exit(Duration::from_secs(10));
    noticed(status, killed, "QUIC, edge SIGKILLed").await;
    let (code, body) = ready(&admin).await;
    assert_eq!(code, 503, "no connection left: {body}");
    // Redialing goes on (each attempt fails: nothing listens).
    let dialing = |s: &TunnelState| matches!(s, TunnelState::Connecting);
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(dialing)).await.expect("redial").expect("watch");
    stop.cancel();
}

/// Fault: the path to a live edge turns into a black hole — UDP datagrams dropped (QUIC),
/// or a TCP connection that stays open but delivers nothing (HTTP/2, so only the PING
/// deadline can tell). Expect: noticed within `dead_after` on both transports, and the
/// gateway registers again once the path heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_edge_is_noticed_within_dead_after_on_both_transports() {
    let stack = Stack::start("").await;
    for transport in ["quic", "http2"] {
        let (gate, open) = match transport {
            "quic" => udp::gate(stack.tunnel).await,
            _ => tcp::gate(stack.tunnel_tcp).await,
        };
        open.store(true, Ordering::Relaxed);
        let extra = format!("transport = \"{transport}\"");
        let text = stack.gateway_toml_at(gate, &extra, "certs", "certs/tunnel", "");
        let mut status = stack.spawn_gateway(stack.load_gateway(&text));
        let TunnelState::Registered { rtt, .. } = common::wait_settled(&mut status).await else {
            panic!("{transport}: {:?}", *status.borrow());
        };
        // The RTT operators see: QUIC's estimate at once, HTTP/2's after the first PONG.
        let measured = poll::eventually(Duration::from_secs(5), "an RTT measurement", || rtt.get()).await;
        assert!(measured < Duration::from_secs(1), "{transport}: loopback RTT {measured:?}");

        open.store(false, Ordering::Relaxed);
        let cut = Instant::now();
        noticed(&mut status, cut, &format!("{transport}, path black-holed")).await;
        open.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(20), status.wait_for(registered))
            .await
            .unwrap_or_else(|_| panic!("{transport}: no registration after the path healed"))
            .expect("watch");
    }
}

/// Fault: two edges on different loopback addresses (127.0.0.1, 127.0.0.2), the gateway
/// keeping one connection to each (`address` + `addresses`); one edge is SIGKILLed under
/// load through the other, then restarted. Expect: not one request through the surviving
/// edge fails, `/readyz` stays 200 all the while, the lost connection fails over to the
/// survivor and returns to its own edge once that is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_edge_killed_the_other_serves_without_a_failure() {
    let (a, b) = (free_on("127.0.0.1", |_| true), free_on("127.0.0.2", |_| true));
    let edge = format!("transport = \"quic\"\nconnections = 2\naddresses = [\"{b}\"]\nrebalance_interval = \"1s\"");
    fleet_survives_a_kill(a, b, format!("127.0.0.1:{}", a.port()), edge).await;
}

/// The same with one name for both edges (`/etc/hosts` lists it twice, as round-robin DNS
/// or a headless Service would): `connections = 2` lands one connection on each address
/// the name resolves to, and the lost one fails over to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_behind_one_name_gets_a_connection_per_edge_and_survives_one_dying() {
    let a = free_on("127.0.0.1", |port| free_at("127.0.0.2", port));
    let b = SocketAddr::from(([127, 0, 0, 2], a.port()));
    let Some(hosts) = HostsEntry::add(&format!("fleet-{}.mcpt.test", std::process::id()), &[a.ip(), b.ip()]) else {
        eprintln!("SKIP: /etc/hosts is not writable here (not root)");
        return;
    };
    let edge = "transport = \"quic\"\nconnections = 2\nrebalance_interval = \"1s\"".to_owned();
    fleet_survives_a_kill(a, b, format!("{}:{}", hosts.name, a.port()), edge).await;
}

/// Edges on `a` and `b`, a gateway dialing `address` with `edge` lines: each of its two
/// connections on its own edge; SIGKILL `a` under load through `b`.
async fn fleet_survives_a_kill(a: SocketAddr, b: SocketAddr, address: String, edge: String) {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    let (up_port, stop_up) = common::demo_upstream().await;
    let (edge_a, _) = edge_at(dir.path(), "edge-a", a);
    let (_edge_b, public_b) = edge_at(dir.path(), "edge-b", b);
    let (_, gateway) = acme_configs(a.port(), 1, &format!("http://127.0.0.1:{up_port}"));
    let stop = CancellationToken::new();
    let (mut statuses, admin) = start_gateway(dir.path(), GatewayToml { address, edge, ..gateway }, &stop);
    for status in &mut statuses {
        tokio::time::timeout(Duration::from_secs(15), status.wait_for(registered))
            .await
            .expect("registered")
            .expect("watch");
    }
    let edge_of = |s: &TunnelState| match s {
        TunnelState::Registered { edge, .. } => Some(*edge),
        _ => None,
    };
    assert_eq!(edge_of(&statuses[0].borrow()), Some(a));
    assert_eq!(edge_of(&statuses[1].borrow()), Some(b));

    let ca = Arc::new(mcp_tunnel::tls::pem::load_certs(&dir.path().join("inner/ca.pem")).expect("inner CA"));
    let load = Load::start(4, 5_000, move || {
        let ca = ca.clone();
        async move {
            let host = format!("tickets.{ACME_DOMAIN}");
            let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
            matches!(http::send(public_b, &host, &ca, http::mcp_post(&host, body)).await, Ok(r) if r.status() == 200)
        }
    });
    load.wait_ok(20).await;
    edge_a.signal("-KILL");
    let killed = Instant::now();
    noticed(&mut statuses[0], killed, "edge A SIGKILLed").await;
    // The lost connection moves to edge B; /readyz never leaves 200 meanwhile.
    let moved = || async {
        let (code, body) = ready(&admin).await;
        assert_eq!(code, 200, "readyz while edge B serves: {body}");
        edge_of(&statuses[0].borrow()) == Some(b)
    };
    poll::eventually_async(Duration::from_secs(20), "connection 0 failing over to edge B", moved).await;
    let (_, body) = ready(&admin).await;
    let report: serde_json::Value = serde_json::from_str(&body).expect("readyz JSON");
    let first = &report["detail"]["connections"][0];
    assert_eq!(first["edge"], b.to_string(), "{report}");
    assert!(first["last_error"].as_str().is_some_and(|e| e.contains("dead_after")), "the edge's death: {report}");
    assert!(first["rtt_ms"].as_f64().is_some() && first["uptime_s"].as_u64().is_some(), "{report}");

    // Edge A comes back: connection 0 returns to it (make-before-break), still no failure.
    let _edge_a = spawn_edge(dir.path(), "edge-a");
    let back = || edge_of(&statuses[0].borrow()) == Some(a);
    poll::eventually(Duration::from_secs(20), "connection 0 returning to edge A", back).await;
    load.wait_ok(20).await;
    let (ok, failed) = load.stop().await;
    eprintln!("through edge B during the kill: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "requests through the surviving edge never fail");
    stop.cancel();
    stop_up.cancel();
}

/// Lines `<ip> <name>` added to `/etc/hosts`, removed again on drop.
struct HostsEntry {
    name: String,
}

impl HostsEntry {
    const PATH: &'static str = "/etc/hosts";

    /// `None` where the file cannot be written. Appends (no moment without `localhost`
    /// for other tests resolving it).
    fn add(name: &str, ips: &[std::net::IpAddr]) -> Option<HostsEntry> {
        use std::io::Write;
        let text = std::fs::read_to_string(Self::PATH).ok()?;
        let mut lines = if text.is_empty() || text.ends_with('\n') { String::new() } else { "\n".into() };
        for ip in ips {
            lines.push_str(&format!("{ip} {name}\n"));
        }
        let mut file = std::fs::OpenOptions::new().append(true).open(Self::PATH).ok()?;
        file.write_all(lines.as_bytes()).ok()?;
        Some(HostsEntry { name: name.to_owned() })
    }
}

impl Drop for HostsEntry {
    /// Removes the lines: by rename where possible (atomic for concurrent readers), in
    /// place where `/etc/hosts` is a bind mount (a container's).
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(Self::PATH) else { return };
        let kept: String = text
            .split_inclusive('\n')
            .filter(|line| line.split_whitespace().nth(1) != Some(self.name.as_str()))
            .collect();
        let tmp = format!("{}.mcpt-{}", Self::PATH, std::process::id());
        let renamed = std::fs::write(&tmp, &kept).is_ok() && std::fs::rename(&tmp, Self::PATH).is_ok();
        if !renamed {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::write(Self::PATH, kept);
        }
    }
}
