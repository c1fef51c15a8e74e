//! Several tunnel connections: one gateway keeping N of them, and several gateway
//! replicas with the same tunnel identity, restarted one at a time under load.

use std::sync::Arc;
use std::time::Duration;

use crate::common::load::Load;
use crate::common::{demo_upstream, http, poll, wait_settled, Stack, DOMAIN, TUNNEL};
use mcp_tunnel::gateway::{Gateway, TunnelState};
use tokio_util::sync::CancellationToken;

/// Awaits `f`, failing the test if it takes more than 30 s.
async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 30 s"))
}

/// Four clients pinging `app` back to back.
fn load(stack: &Arc<Stack>) -> Load {
    let stack = stack.clone();
    Load::start(4, 5_000, move || {
        let stack = stack.clone();
        async move { ping(&stack).await }
    })
}

async fn ping(stack: &Stack) -> bool {
    let host = format!("app.{DOMAIN}");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    matches!(http::send(stack.public, &host, &stack.inner_ca(), http::mcp_post(&host, body)).await, Ok(r) if r.status() == 200)
}

/// `connections = 3`: the edge registers three connections for the tunnel and spreads
/// new streams over all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_spread_over_several_connections() {
    let (port, stop) = demo_upstream().await;
    let routes = format!("[[routes]]\nhost = \"app\"\nupstream = \"http://127.0.0.1:{port}\"\n");
    let stack = Stack::start_with(&routes, "connections = 3").await;
    tokio::time::timeout(Duration::from_secs(15), stack.edge.registry.wait_live(TUNNEL, 3))
        .await
        .expect("3 connections");
    for _ in 0..30 {
        assert!(ping(&stack).await);
    }
    let conns = stack.edge.registry.connections(TUNNEL);
    assert_eq!(conns.len(), 3);
    for (id, opened) in &conns {
        assert!(*opened >= 5, "connection {id} carried {opened} of 30 streams: {conns:?}");
    }
    stop.cancel();
}

/// Fault: a rolling restart of two gateway replicas (same tunnel identity) under steady
/// load — replica A stops gracefully, comes back, then B does the same. Expect: not one
/// failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_replicas_loses_no_request() {
    let (port, stop_up) = demo_upstream().await;
    let routes = format!("[[routes]]\nhost = \"app\"\nupstream = \"http://127.0.0.1:{port}\"\n");
    let stack = Arc::new(Stack::start(&routes).await);
    let start_replica = |stack: &Stack| {
        let token = CancellationToken::new();
        let gateway = Gateway::new(stack.gateway_config("certs", "certs/tunnel", &routes)).expect("gateway");
        let status = gateway.status();
        let done = tokio::spawn(gateway.run(token.clone()));
        (token, status, done)
    };
    // Replica A is the stack's own gateway; B starts here.
    let (b_stop, mut b_status, b_done) = start_replica(&stack);
    assert!(matches!(wait_settled(&mut b_status).await, TunnelState::Registered { .. }));
    assert_eq!(stack.edge.registry.live_count(TUNNEL), 2);

    let load = load(&stack);
    load.wait_ok(50).await;
    // A stops gracefully, then comes back as A'.
    stack.gateway_stop.cancel();
    let mut a_status = stack.status.clone();
    bounded("A stopped", a_status.wait_for(|s| *s == TunnelState::Stopped)).await.expect("watch");
    load.wait_ok(50).await;
    let (a2_stop, mut a2_status, a2_done) = start_replica(&stack);
    assert!(matches!(wait_settled(&mut a2_status).await, TunnelState::Registered { .. }));
    // Then B stops gracefully and comes back as B'.
    b_stop.cancel();
    bounded("B stopped", b_done).await.expect("join");
    load.wait_ok(50).await;
    let (b2_stop, mut b2_status, b2_done) = start_replica(&stack);
    assert!(matches!(wait_settled(&mut b2_status).await, TunnelState::Registered { .. }));
    load.wait_ok(50).await;

    let (ok, failed) = load.stop().await;
    for (token, done) in [(a2_stop, a2_done), (b2_stop, b2_done)] {
        token.cancel();
        let _ = done.await;
    }
    eprintln!("rolling restart: {ok} requests ok, {failed} failed");
    assert_eq!(failed, 0);
    stop_up.cancel();
}

/// Fault: the edge asks the gateway's connection to drain (as for an edge deploy) while
/// requests flow. Expect: the gateway registers a replacement before the old connection
/// goes, and not one request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_drain_is_make_before_break() {
    let (port, stop_up) = demo_upstream().await;
    let routes = format!("[[routes]]\nhost = \"app\"\nupstream = \"http://127.0.0.1:{port}\"\n");
    let stack = Arc::new(Stack::start(&routes).await);
    let before = stack.edge.registry.connections(TUNNEL);
    assert_eq!(before.len(), 1);

    let load = load(&stack);
    load.wait_ok(50).await;
    assert_eq!(stack.edge.registry.drain(TUNNEL), 1);
    let replaced = || {
        let now = stack.edge.registry.connections(TUNNEL);
        now.len() == 1 && now[0].0 != before[0].0
    };
    poll::eventually(Duration::from_secs(30), "a replacement connection", replaced).await;
    load.wait_ok(200).await;
    let (ok, failed) = load.stop().await;
    eprintln!("edge drain: {ok} requests ok, {failed} failed");
    assert_eq!(failed, 0);
    stop_up.cancel();
}

/// `connections = 2` with two edge addresses: connection 0 goes to the first edge,
/// connection 1 to the second, and requests through either edge reach the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_over_several_edges() {
    let (port, stop_up) = demo_upstream().await;
    let routes = format!("[[routes]]\nhost = \"app\"\nupstream = \"http://127.0.0.1:{port}\"\n");
    let stack = Stack::start(&routes).await;
    // A second edge instance with the same certificates and tunnel table.
    let config = mcp_tunnel::config::edge::EdgeConfig::load(&stack.dir.path().join("edge.toml")).expect("edge config");
    let second = mcp_tunnel::edge::Edge::bind(&config).await.expect("bind second edge");
    let (second_tunnel, second_public, second_shared) = (second.tunnel_addr(), second.public_addr(), second.shared());
    tokio::spawn(second.run(stack.shutdown.child_token()));

    let extra = format!("connections = 2\naddresses = [\"{second_tunnel}\"]");
    let text = stack.gateway_toml_at(stack.tunnel, &extra, "certs", "certs/tunnel", &routes);
    let gateway = Gateway::new(stack.load_gateway(&text)).expect("gateway");
    let mut statuses = gateway.statuses();
    tokio::spawn(gateway.run(stack.shutdown.child_token()));
    for status in &mut statuses {
        assert!(matches!(wait_settled(status).await, TunnelState::Registered { .. }));
    }
    assert_eq!(stack.edge.registry.live_count(TUNNEL), 2, "the stack's own gateway plus connection 0");
    assert_eq!(second_shared.registry.live_count(TUNNEL), 1, "connection 1 dialed the second edge");
    let host = format!("app.{DOMAIN}");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let resp =
        http::send(second_public, &host, &stack.inner_ca(), http::mcp_post(&host, body)).await.expect("via edge 2");
    assert_eq!(resp.status(), 200);
    stop_up.cancel();
}
