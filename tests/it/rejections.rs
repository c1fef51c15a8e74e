//! Each refusal gives a clear error and leaves the rest of the tunnel's traffic working.

use crate::common::{self, http, poll, wait_settled, Stack, DOMAIN};
use mcp_tunnel::gateway::TunnelState;

const ROUTES: &str = "[[routes]]\nhost = \"echo\"\nupstream = \"http://127.0.0.1:9\"\n";

/// The tunnel still carries traffic: a request reaches the gateway (which answers 502
/// for the route's closed upstream port, or 404 for an unknown host).
async fn assert_tunnel_works(stack: &Stack) {
    let host = format!("nobody.{DOMAIN}");
    let resp = http::send(stack.public, &host, &stack.inner_ca(), http::mcp_post(&host, "{}")).await.expect("request");
    assert_eq!(resp.status(), 404);
}

fn reason(state: &TunnelState) -> String {
    match state {
        TunnelState::Rejected { reason } | TunnelState::Disconnected { reason } => reason.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_certificate_from_another_ca_is_refused() {
    let stack = Stack::start(ROUTES).await;
    common::write_pki(stack.dir.path(), "rogue", common::TUNNEL);
    let mut status = stack.spawn_gateway(stack.gateway_config("certs", "rogue/tunnel", ROUTES));
    let state = wait_settled(&mut status).await;
    let why = reason(&state);
    assert!(matches!(state, TunnelState::Disconnected { .. }), "{state:?}");
    assert!(why.contains("refused this gateway's client certificate"), "{why}");
    // The edge counts the refusal in its own task, which may run just after the gateway
    // has seen the close: wait for it (bounded).
    let counted = || stack.edge.stats.tunnel_refused.get() >= 1;
    poll::eventually(std::time::Duration::from_secs(10), "the edge counting the refusal", counted).await;
    assert_eq!(stack.edge.registry.live_count(common::TUNNEL), 1, "only the legitimate gateway is registered");
    assert_tunnel_works(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_the_gateway_does_not_trust_is_refused() {
    let stack = Stack::start(ROUTES).await;
    common::write_pki(stack.dir.path(), "rogue", common::TUNNEL);
    // Pins a different edge CA: the real edge's certificate must not be accepted.
    let mut status = stack.spawn_gateway(stack.gateway_config("rogue", "certs/tunnel", ROUTES));
    let state = wait_settled(&mut status).await;
    let why = reason(&state);
    assert!(why.contains("handshake") && why.contains("invalid peer certificate"), "{why}");
    assert_tunnel_works(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tunnel_id_is_rejected_and_known_ones_are_welcomed() {
    let stack = Stack::start(ROUTES).await;
    let intruder = stack.issue_gateway("intruder", "intruder");
    let mut status = stack.spawn_gateway(stack.gateway_config("certs", &intruder, ROUTES));
    let state = wait_settled(&mut status).await;
    assert!(matches!(state, TunnelState::Rejected { .. }), "{state:?}");
    assert!(reason(&state).contains("\"intruder\" is not configured"), "{state:?}");

    // A second tunnel the edge does know registers with its own hostnames.
    let other = stack.issue_gateway("other", "other");
    let mut status = stack.spawn_gateway(stack.gateway_config("certs", &other, ROUTES));
    match wait_settled(&mut status).await {
        TunnelState::Registered { tunnel_id, hostnames, .. } => {
            assert_eq!(tunnel_id, "other");
            assert_eq!(hostnames, vec!["other.example".to_owned()]);
        }
        s => panic!("expected registration, got {s:?}"),
    }
    assert_tunnel_works(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sni_is_closed_with_an_alert() {
    let stack = Stack::start(ROUTES).await;
    let err =
        http::send(stack.public, "nope.unknown.test", &stack.inner_ca(), http::mcp_post("nope.unknown.test", "{}"))
            .await
            .expect_err("unknown SNI must fail");
    assert!(err.to_string().contains("UnrecognisedName") || err.to_string().contains("UnrecognizedName"), "{err}");
    assert_eq!(stack.edge.stats.unknown_sni.get(), 1);
    assert_tunnel_works(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_of_a_tunnel_without_live_gateway_is_closed() {
    let stack = Stack::start(ROUTES).await;
    let err = http::send(stack.public, "other.example", &stack.inner_ca(), http::mcp_post("other.example", "{}"))
        .await
        .expect_err("no gateway for tunnel 'other'");
    assert!(err.to_string().contains("InternalError"), "{err}");
    assert_eq!(stack.edge.stats.no_gateway.get(), 1);
    assert_tunnel_works(&stack).await;
}
