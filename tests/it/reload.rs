//! Hot reload under steady load: routes and the inner certificate change while requests
//! flow, and not one request fails.

use std::sync::Arc;
use std::time::Duration;

use crate::common::config::EdgeToml;
use crate::common::load::Load;
use crate::common::{self, demo_upstream, http, poll, Stack, DOMAIN};

async fn ping(stack: &Stack, route: &str) -> Result<u16, http::Error> {
    let host = format!("{route}.{DOMAIN}");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    Ok(http::send(stack.public, &host, &stack.inner_ca(), http::mcp_post(&host, body)).await?.status().as_u16())
}

/// Fault: the gateway's config file changes twice under load — a new route, then a new
/// inner certificate (same CA) — and once it becomes invalid. Expect: zero failed requests,
/// the new route answers, new handshakes see the new certificate, the invalid version is
/// ignored and the tunnel is never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_inner_certificate_reload_under_load_without_failures() {
    let (port, stop_upstream) = demo_upstream().await;
    let route = |name: &str| format!("[[routes]]\nhost = \"{name}\"\nupstream = \"http://127.0.0.1:{port}\"\n");
    let stack = Arc::new(Stack::start(&route("steady")).await);
    let shared = stack.gateway.clone().expect("gateway");
    let mut reloads = shared.reloads();
    let registered = stack.edge.stats.streams_opened.get();

    // Steady load: 4 clients, each a new TLS connection per request, until told to stop.
    let load = Load::start(4, 2_000, {
        let stack = stack.clone();
        move || {
            let stack = stack.clone();
            async move {
                let result = ping(&stack, "steady").await;
                if !matches!(result, Ok(200)) {
                    eprintln!("request failed: {result:?}");
                }
                matches!(result, Ok(200))
            }
        }
    });
    load.wait_ok(20).await;
    let sni = format!("steady.{DOMAIN}");
    let old_cert = http::peer_cert(stack.public, &sni, &stack.inner_ca()).await.expect("old cert");
    assert_eq!(ping(&stack, "added").await.expect("404 answer"), 404);

    // 1. A new route.
    let path = stack.gateway_path();
    let text = std::fs::read_to_string(&path).expect("read config");
    std::fs::write(&path, format!("{text}\n{}", route("added"))).expect("write config");
    tokio::time::timeout(Duration::from_secs(15), reloads.changed()).await.expect("reload 1").expect("watch");
    assert_eq!(ping(&stack, "added").await.expect("new route"), 200);

    // 2. An invalid config: rejected, the running one stays.
    std::fs::write(&path, "tunnel_domain = 12\n").expect("write bad config");
    stack.reload.notify_one();
    // 3. A rotated inner certificate (same CA), written after the bad file is fixed.
    let ca_dir = stack.dir.path().join("certs/inner");
    let read = |n: &str| std::fs::read_to_string(ca_dir.join(n)).expect("read inner CA");
    let issued = mcp_tunnel::pki::issue_inner_server(&read("ca.pem"), &read("ca.key"), DOMAIN).expect("issue");
    issued.write(&ca_dir, "server", true).expect("write rotated cert");
    std::fs::write(&path, format!("{text}\n{}", route("added"))).expect("restore config");
    tokio::time::timeout(Duration::from_secs(15), reloads.changed()).await.expect("reload 2").expect("watch");
    assert_eq!(*reloads.borrow(), 2, "the invalid version did not count as a reload");
    let new_cert = http::peer_cert(stack.public, &sni, &stack.inner_ca()).await.expect("new cert");
    assert_ne!(old_cert, new_cert, "new handshakes use the rotated certificate");
    assert_eq!(new_cert, issued.cert_der);

    let (ok, failed) = load.stop().await;
    eprintln!("requests during reloads: {ok} ok, {failed} failed");
    assert!(ok > 20, "the load actually ran ({ok} requests)");
    assert_eq!(failed, 0);
    assert_eq!(stack.edge.registry.live_count(common::TUNNEL), 1, "the tunnel was never dropped");
    assert!(stack.edge.stats.streams_opened.get() > registered);
    stop_upstream.cancel();
}

/// The edge reloads its tunnel → hostnames table: a hostname added to the file starts
/// routing to the tunnel, an invalid file is ignored, and live gateways stay connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_reloads_its_tunnel_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_pki(dir.path(), "certs", common::TUNNEL);
    let base = EdgeToml::new("certs").render();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, format!("{base}[tunnels.acme]\nhostnames = [\"a.example\"]\n")).expect("write");
    let edge = mcp_tunnel::edge::Edge::bind(&mcp_tunnel::config::edge::EdgeConfig::load(&path).expect("config"))
        .await
        .expect("bind");
    let shared = edge.shared();
    let trigger = Arc::new(tokio::sync::Notify::new());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(edge.watch_config(path.clone(), trigger.clone()).run(stop.clone()));
    assert_eq!(shared.registry.tunnel_for("b.example"), None);

    std::fs::write(&path, "[tunnel_listener]\nlisten = 5\n").expect("write invalid");
    trigger.notify_one();
    std::fs::write(&path, format!("{base}[tunnels.acme]\nhostnames = [\"a.example\", \"b.example\"]\n"))
        .expect("write");
    trigger.notify_one();
    let reloaded = || shared.registry.tunnel_for("b.example").is_some();
    poll::eventually(Duration::from_secs(15), "the edge reloading its table", reloaded).await;
    assert_eq!(shared.registry.tunnel_for("a.example").as_deref(), Some("acme"));
    stop.cancel();
}
