//! Several tunnel connections: one gateway keeping N of them, and several gateway
//! replicas with the same tunnel identity, restarted one at a time under load.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{http, wait_settled, Stack, DOMAIN, TUNNEL};
use mcp_tunnel::gateway::{Gateway, TunnelState};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn demo_upstream() -> (u16, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    tokio::spawn(mcp_tunnel::demo::server::run(listener, stop.clone()));
    (port, stop)
}

/// Awaits `f`, failing the test if it takes more than 30 s.
async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within 30 s"))
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
    // Replica B (replica A is the stack's own gateway, stopped through its token below).
    let start_replica = |stack: &Stack| {
        let token = CancellationToken::new();
        let gateway = Gateway::new(stack.gateway_config("certs", "certs/tunnel", &routes)).expect("gateway");
        let status = gateway.status();
        let done = tokio::spawn(gateway.run(token.clone()));
        (token, status, done)
    };
    let (b_stop, mut b_status, b_done) = start_replica(&stack);
    assert!(matches!(wait_settled(&mut b_status).await, TunnelState::Registered { .. }));
    assert_eq!(stack.edge.registry.live_count(TUNNEL), 2);

    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stack, stop, ok, failed) = (stack.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let counter = if ping(&stack).await { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Waits until the load has made `n` more successful requests.
    let progress = |n: u64| {
        let ok = ok.clone();
        async move {
            let target = ok.load(Ordering::Relaxed) + n;
            while ok.load(Ordering::Relaxed) < target {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    bounded("load before the restart", progress(50)).await;

    // Replica A (the stack's own gateway) stops gracefully, then comes back as A'.
    stack.gateway_stop.cancel();
    let mut a_status = stack.status.clone();
    bounded(
        "A stopped",
        async move { a_status.wait_for(|s| *s == TunnelState::Stopped).await.map(|_| ()).expect("watch") },
    )
    .await;
    bounded("load on B alone", progress(50)).await;
    let (a2_stop, mut a2_status, a2_done) = start_replica(&stack);
    assert!(matches!(wait_settled(&mut a2_status).await, TunnelState::Registered { .. }));

    // Then replica B stops gracefully and comes back as B'.
    b_stop.cancel();
    bounded("B stopped", async move { b_done.await.expect("join") }).await;
    bounded("load on A' alone", progress(50)).await;
    let (b2_stop, mut b2_status, b2_done) = start_replica(&stack);
    assert!(matches!(wait_settled(&mut b2_status).await, TunnelState::Registered { .. }));
    bounded("load after the restart", progress(50)).await;

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load");
    }
    for (token, done) in [(a2_stop, a2_done), (b2_stop, b2_done)] {
        token.cancel();
        let _ = done.await;
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
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

    let (stop, ok, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stack, stop, ok, failed) = (stack.clone(), stop.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..5_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let counter = if ping(&stack).await { &ok } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let wait_ok = |n: u64| {
        let ok = ok.clone();
        async move {
            let target = ok.load(Ordering::Relaxed) + n;
            while ok.load(Ordering::Relaxed) < target {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    bounded("load before the drain", wait_ok(50)).await;
    assert_eq!(stack.edge.registry.drain(TUNNEL), 1);
    let replaced = async {
        loop {
            let now = stack.edge.registry.connections(TUNNEL);
            if now.len() == 1 && now[0].0 != before[0].0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    bounded("replacement connection", replaced).await;
    bounded("load after the drain", wait_ok(200)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("edge drain: {ok} requests ok, {failed} failed");
    assert_eq!(failed, 0);
    stop_up.cancel();
}
