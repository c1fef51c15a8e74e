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
use crate::common::{self, http, poll, tcp, udp, Stack};

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

/// An edge process with its own listeners on `ip`, serving tunnel `acme` from the PKI in
/// `dir` (written by `certs init`). Returns it with its public address.
fn edge_on(dir: &Path, name: &str, ip: &str) -> (Proc, SocketAddr, SocketAddr) {
    let (tunnel, public): (SocketAddr, SocketAddr) = (free_on(ip), free_on(ip));
    let mut toml = acme_configs(tunnel.port(), public.port(), "http://127.0.0.1:1").0;
    toml = EdgeToml { tunnel_listen: tunnel.to_string(), public_listen: public.to_string(), ..toml };
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml.render()).expect("write edge config");
    let proc = Proc::spawn(name, &["edge", "--config", path.to_str().expect("utf8")], &[("RUST_LOG", "info")]);
    proc.wait_line("edge listening", Duration::from_secs(20), |l| l.contains("edge listening"));
    (proc, tunnel, public)
}

/// A port on `ip` free for both UDP and TCP right now.
fn free_on(ip: &str) -> SocketAddr {
    let udp = std::net::UdpSocket::bind((ip, 0)).expect("bind UDP");
    let addr = udp.local_addr().expect("UDP address");
    std::net::TcpListener::bind(addr).map(|_| addr).unwrap_or_else(|_| free_on(ip))
}

/// An in-process gateway from `gateway.toml` in `dir`, with its admin endpoint.
fn start_gateway(
    dir: &Path,
    gateway: GatewayToml,
    stop: &CancellationToken,
) -> (Vec<watch::Receiver<TunnelState>>, String) {
    let tables = format!("[admin]\nlisten = \"127.0.0.1:0\"\n{}", gateway.tables);
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
    let (mut edge, tunnel, _) = edge_on(dir.path(), "edge", "127.0.0.1");
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
        assert!(registered(&common::wait_settled(&mut status).await), "{transport}: {:?}", *status.borrow());

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
/// keeping one connection to each; one edge is SIGKILLed under load through the other.
/// Expect: not one request through the surviving edge fails, `/readyz` stays 200 all the
/// while, and the lost connection fails over to the surviving edge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_edge_killed_the_other_serves_without_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    let (up_port, stop_up) = common::demo_upstream().await;
    let (edge_a, tunnel_a, _) = edge_on(dir.path(), "edge-a", "127.0.0.1");
    let (_edge_b, tunnel_b, public_b) = edge_on(dir.path(), "edge-b", "127.0.0.2");
    let (_, gateway) = acme_configs(tunnel_a.port(), 1, &format!("http://127.0.0.1:{up_port}"));
    let edge = format!("transport = \"quic\"\nconnections = 2\naddresses = [\"{tunnel_b}\"]");
    let stop = CancellationToken::new();
    let (mut statuses, admin) = start_gateway(dir.path(), GatewayToml { edge, ..gateway }, &stop);
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
    assert_eq!(edge_of(&statuses[0].borrow()), Some(tunnel_a));
    assert_eq!(edge_of(&statuses[1].borrow()), Some(tunnel_b));

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
        edge_of(&statuses[0].borrow()) == Some(tunnel_b)
    };
    poll::eventually_async(Duration::from_secs(20), "connection 0 failing over to edge B", moved).await;
    load.wait_ok(20).await;
    let (ok, failed) = load.stop().await;
    eprintln!("through edge B during the kill: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "requests through the surviving edge never fail");
    stop.cancel();
    stop_up.cancel();
}
