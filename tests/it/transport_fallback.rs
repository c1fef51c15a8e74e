//! The HTTP/2-over-TCP transport: real MCP sessions over it, and `auto` falling back to
//! it when UDP is blocked and moving back to QUIC when UDP works again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::python::{client, PyServer};
use crate::common::{self, udp, Stack};
use mcp_tunnel::gateway::TunnelState;
use mcp_tunnel::transport::Transport;

fn routes(server: &PyServer) -> String {
    format!("[[routes]]\nhost = \"echo\"\nupstream = \"{}\"\n", server.upstream())
}

fn transport_of(state: &TunnelState) -> Option<Transport> {
    match state {
        TunnelState::Registered { transport, .. } => Some(*transport),
        _ => None,
    }
}

/// Fault: none; transport forced to HTTP/2. Expect: MCP sessions in both protocol
/// generations, a 5 MB result and streamed progress all work over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_sessions_over_the_http2_transport() {
    let server = PyServer::start().await;
    let mut stack = Stack::start_with(&routes(&server), "transport = \"http2\"").await;
    assert_eq!(transport_of(&stack.wait_state().await), Some(Transport::Http2));
    let (url, ca) = (stack.url("echo"), stack.inner_ca_path());
    for mode in ["legacy", "modern"] {
        let out = client(&url, &ca, &["--mode", mode, "basic", "--marker", "over-h2"]).await;
        assert_eq!(out["result"], "over-h2", "{mode}: {out}");
    }
    let out = client(&url, &ca, &["big", "--size", "5000000"]).await;
    assert_eq!(out["length"], 5_000_000, "{out}");
    let out = client(&url, &ca, &["progress", "--steps", "3", "--delay", "0.5"]).await;
    let first = out["progress_times"][0].as_f64().expect("progress time");
    let result = out["result_time"].as_f64().expect("result time");
    assert!(first + 1.0 < result, "progress streamed over HTTP/2: {out}");
    let out = client(&url, &ca, &["concurrent", "--n", "50"]).await;
    assert_eq!(out["ok_count"], 50, "{out}");
}

/// Fault: UDP to the edge is silently dropped. Expect: `auto` registers over HTTP/2 and
/// requests succeed; once UDP passes again, the tunnel moves back to QUIC by itself, and
/// a streaming call in flight during the move completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_to_http2_and_returns_to_quic() {
    let server = PyServer::start().await;
    let stack = Stack::start(&routes(&server)).await;
    // The gateway under test dials QUIC through a gate that drops UDP, and HTTP/2 directly.
    let (gate_addr, gate_open) = udp::gate(stack.tunnel).await;
    let extra = format!("transport = \"auto\"\ntcp_address = \"{}\"\nquic_retry_interval = \"1s\"", stack.tunnel_tcp);
    let text = stack.gateway_toml_at(gate_addr, &extra, "certs", "certs/tunnel", &routes(&server));
    let mut status = stack.spawn_gateway(stack.load_gateway(&text));
    let state = common::wait_settled(&mut status).await;
    assert_eq!(transport_of(&state), Some(Transport::Http2), "{state:?}");
    let TunnelState::Registered { connection_id: h2_conn, .. } = state else { unreachable!() };

    // Stop the stack's own (QUIC) gateway from answering: drain it by ending its token is
    // not possible separately, so requests may land on either connection; both must work.
    let (url, ca) = (stack.url("echo"), stack.inner_ca_path());
    let out = client(&url, &ca, &["basic", "--marker", "while-udp-blocked"]).await;
    assert_eq!(out["ok"], true, "{out}");

    // Unblock UDP while a streaming call is in flight; the tunnel moves back to QUIC.
    let in_flight = tokio::spawn({
        let (url, ca) = (url.clone(), ca.clone());
        async move { client(&url, &ca, &["progress", "--steps", "6", "--delay", "0.5"]).await }
    });
    gate_open.store(true, Ordering::Relaxed);
    let on_quic = |s: &TunnelState| matches!(s, TunnelState::Registered { transport: Transport::Quic, .. });
    let moved =
        tokio::time::timeout(Duration::from_secs(20), status.wait_for(on_quic)).await.map(|r| r.map(|s| s.clone()));
    let Ok(Ok(TunnelState::Registered { connection_id: quic_conn, .. })) = moved else {
        panic!("gateway did not move back to QUIC: {:?}", *status.borrow());
    };
    assert_ne!(quic_conn, h2_conn);
    let out = in_flight.await.expect("join");
    assert_eq!(out["ok"], true, "the call in flight during the move completed: {out}");
    let out = client(&url, &ca, &["basic", "--marker", "after-move"]).await;
    assert_eq!(out["result"], "after-move", "{out}");
}
