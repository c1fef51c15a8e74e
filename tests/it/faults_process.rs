//! Faults that need real processes: the edge killed (SIGKILL) and restarted under load,
//! and the gateway stopped with SIGTERM while 50 requests are in flight.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_tunnel::config::edge::EdgeConfig;
use mcp_tunnel::config::gateway::GatewayConfig;
use mcp_tunnel::demo::client::McpClient;
use mcp_tunnel::edge::Edge;
use mcp_tunnel::gateway::{Gateway, TunnelState};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::common::config::GatewayToml;
use crate::common::procs::{acme_configs, certs_init, start_role, write_configs};
use crate::common::{self, poll};

const HOST: &str = "tickets.mcp.acme.test";

/// Certificates, an edge config on fixed ports and a gateway config routing `tickets`
/// to `upstream_port`.
fn setup(dir: &Path, upstream_port: u16) -> (u16, u16) {
    assert!(certs_init(dir).status.success());
    let (tunnel, public) = (common::free_port(), common::free_port());
    let (edge, gateway) = acme_configs(tunnel, public, &format!("http://127.0.0.1:{upstream_port}"));
    let gateway = GatewayToml { shutdown_timeout: Some("20s".into()), edge: "transport = \"quic\"".into(), ..gateway };
    write_configs(dir, &edge, &gateway);
    (tunnel, public)
}

/// One `countdown` call on its own connection; reports its first progress event on
/// `started`. Returns whether the result arrived.
async fn countdown(
    public: u16,
    ca: Arc<Vec<rustls::pki_types::CertificateDer<'static>>>,
    steps: u64,
    started: mpsc::Sender<()>,
) -> bool {
    let addr = ([127, 0, 0, 1], public).into();
    let Ok(mut client) = McpClient::connect(addr, HOST, &ca).await else { return false };
    if client.initialize().await.is_err() {
        return false;
    }
    let mut first = Some(started);
    let result = client
        .request("tools/call", json!({ "name": "countdown", "arguments": { "steps": steps } }), |_| {
            if let Some(tx) = first.take() {
                let _ = tx.try_send(());
            }
        })
        .await;
    matches!(result, Ok((r, _)) if r["content"][0]["text"].as_str().is_some_and(|t| t.starts_with("liftoff")))
}

/// Fault: the edge process is killed (SIGKILL) with an SSE stream and calls in flight,
/// then restarted. Expect: only the calls in flight fail; the gateway re-registers on its
/// own (the time from the edge listening again to registration is printed); new calls work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_killed_and_restarted_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (up_port, stop_up) = common::demo_upstream().await;
    let (_, public) = setup(dir.path(), up_port);
    let mut edge = start_role("edge", dir.path(), "edge listening");
    let gateway =
        Gateway::new(GatewayConfig::load(&dir.path().join("gateway.toml")).expect("config")).expect("gateway");
    let mut status = gateway.status();
    let stop_gw = CancellationToken::new();
    tokio::spawn(gateway.run(stop_gw.clone()));
    let registered = |s: &TunnelState| matches!(s, TunnelState::Registered { .. });
    tokio::time::timeout(Duration::from_secs(15), status.wait_for(registered))
        .await
        .expect("registered")
        .expect("watch");
    let ca = Arc::new(mcp_tunnel::tls::pem::load_certs(&dir.path().join("inner/ca.pem")).expect("ca"));

    // Five long streaming calls in flight when the edge dies.
    const IN_FLIGHT: usize = 5;
    let (tx, mut rx) = mpsc::channel(IN_FLIGHT);
    let calls: Vec<_> = (0..IN_FLIGHT).map(|_| tokio::spawn(countdown(public, ca.clone(), 15, tx.clone()))).collect();
    for _ in 0..IN_FLIGHT {
        tokio::time::timeout(Duration::from_secs(15), rx.recv()).await.expect("call started");
    }
    edge.signal("-KILL");
    edge.wait_exit(Duration::from_secs(10));
    let mut failed = 0;
    for call in calls {
        if !call.await.expect("join") {
            failed += 1;
        }
    }
    assert!(failed <= IN_FLIGHT, "only calls in flight may fail ({failed})");

    edge = start_role("edge", dir.path(), "edge listening");
    let back = Instant::now();
    let reregistered = async {
        status.wait_for(|s| !registered(s)).await.expect("watch");
        status.wait_for(registered).await.expect("watch");
    };
    // Either the stateless reset from the restarted edge or the idle timeout ends the
    // old connection; bounded generously, the actual time is printed.
    tokio::time::timeout(Duration::from_secs(40), reregistered).await.expect("gateway re-registered");
    eprintln!(
        "re-registered {:?} after the edge listened again; {failed} of {IN_FLIGHT} in-flight calls failed",
        back.elapsed()
    );
    let (tx, _rx) = mpsc::channel(8);
    for _ in 0..3 {
        assert!(countdown(public, ca.clone(), 1, tx.clone()).await, "new calls succeed after the restart");
    }
    stop_gw.cancel();
    edge.terminate(Duration::from_secs(20));
    stop_up.cancel();
}

/// Fault: SIGTERM to the gateway process while 50 streaming calls are in flight.
/// Expect: all 50 complete with their result, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigterm_lets_50_in_flight_calls_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (up_port, stop_up) = common::demo_upstream().await;
    let (_, public) = setup(dir.path(), up_port);
    let edge = Edge::bind(&EdgeConfig::load(&dir.path().join("edge.toml")).expect("edge config")).await.expect("bind");
    let stop_edge = CancellationToken::new();
    tokio::spawn(edge.run(stop_edge.clone()));
    let mut gateway = start_role("gateway", dir.path(), "tunnel registered");
    let ca = Arc::new(mcp_tunnel::tls::pem::load_certs(&dir.path().join("inner/ca.pem")).expect("ca"));

    const CALLS: usize = 50;
    let (tx, mut rx) = mpsc::channel(CALLS);
    let calls: Vec<_> = (0..CALLS).map(|_| tokio::spawn(countdown(public, ca.clone(), 6, tx.clone()))).collect();
    for _ in 0..CALLS {
        tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("every call started");
    }
    gateway.signal("-TERM");
    let mut completed = 0;
    for call in calls {
        if call.await.expect("join") {
            completed += 1;
        }
    }
    assert_eq!(completed, CALLS, "every in-flight call completed");
    let exited = || gateway.try_exit();
    let status = poll::eventually(Duration::from_secs(30), "the gateway exiting after SIGTERM", exited).await;
    assert!(status.success(), "gateway exited with {status}");
    stop_edge.cancel();
    stop_up.cancel();
}
