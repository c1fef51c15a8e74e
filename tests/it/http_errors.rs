//! What a client sees when routing or the upstream fails: 404 for an unknown host,
//! 502 for an unreachable or forbidden upstream, 504 for a slow one — and recovery.

use std::time::Duration;

use crate::common::{demo_upstream, free_port, http, Stack, DOMAIN};
use serde_json::Value;
use tokio::net::TcpListener;

async fn post(stack: &Stack, route: &str) -> (u16, Value) {
    let host = format!("{route}.{DOMAIN}");
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let resp = http::send(stack.public, &host, &stack.inner_ca(), http::mcp_post(&host, ping)).await.expect("response");
    let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status().as_u16(), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_is_404_naming_the_host() {
    let stack = Stack::start("").await;
    let (status, body) = post(&stack, "ghost").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no_route");
    assert_eq!(body["host"], format!("ghost.{DOMAIN}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_502_and_recovers_when_it_comes_back() {
    let port = free_port();
    let stack = Stack::start(&format!("[[routes]]\nhost = \"down\"\nupstream = \"http://127.0.0.1:{port}\"\n")).await;
    let (status, body) = post(&stack, "down").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_unreachable");
    assert_eq!(body["route"], format!("down.{DOMAIN}"));

    // The upstream comes back on the same port: the next request succeeds, no restart.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("rebind upstream port");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(mcp_tunnel::demo::server::run(listener, stop.clone()));
    let (status, body) = post(&stack, "down").await;
    assert_eq!(status, 200, "{body}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_is_504() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let stack = Stack::start(&format!(
        "[[routes]]\nhost = \"slow\"\nupstream = \"http://127.0.0.1:{port}\"\ntimeout = \"300ms\"\n"
    ))
    .await;
    let started = std::time::Instant::now();
    let (status, body) = post(&stack, "slow").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_outside_the_allow_list_is_refused() {
    let (port, stop) = demo_upstream().await;
    let stack = Stack::start(&format!(
        "[upstream]\nallowed_networks = [\"10.0.0.0/8\"]\n[[routes]]\nhost = \"loop\"\nupstream = \"http://localhost:{port}\"\n"
    ))
    .await;
    let (status, body) = post(&stack, "loop").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "upstream_forbidden");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefix_routes_and_strips() {
    let (port, stop) = demo_upstream().await;
    let routes = format!(
        "[[routes]]\nhost = \"api\"\npath_prefix = \"/tools\"\nstrip_prefix = true\nupstream = \"http://127.0.0.1:{port}\"\n"
    );
    let stack = Stack::start(&routes).await;
    let host = format!("api.{DOMAIN}");
    let ca = stack.inner_ca();
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let req = |path: &str| {
        http::Request::post(path)
            .header("host", &host)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(list)))
            .expect("request")
    };
    let ok = http::send(stack.public, &host, &ca, req("/tools/mcp")).await.expect("response");
    assert_eq!(ok.status(), 200);
    let body: Value = serde_json::from_slice(ok.body()).expect("json");
    assert_eq!(body["result"]["tools"][0]["name"], "echo");
    let miss = http::send(stack.public, &host, &ca, req("/other/mcp")).await.expect("response");
    assert_eq!(miss.status(), 404);
    stop.cancel();
}

/// A client may not use one route's TLS name to reach another route by `Host`, nor walk
/// out of a path prefix with dot segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_must_match_sni_and_paths_must_be_clean() {
    let (port, stop) = demo_upstream().await;
    let routes = format!(
        "[[routes]]\nhost = \"public\"\nupstream = \"http://127.0.0.1:{port}\"\n\
         [[routes]]\nhost = \"admin\"\nupstream = \"http://127.0.0.1:{port}\"\n"
    );
    let stack = Stack::start(&routes).await;
    let ca = stack.inner_ca();
    let sni = format!("public.{DOMAIN}");
    let resp =
        http::send(stack.public, &sni, &ca, http::mcp_post(&format!("admin.{DOMAIN}"), "{}")).await.expect("response");
    assert_eq!(resp.status(), 421);
    let body: Value = serde_json::from_slice(resp.body()).expect("json");
    assert_eq!(body["error"], "misdirected_request");

    for path in ["/mcp/../admin", "/mcp/%2e%2e/admin", "/a%2Fb"] {
        let req = http::Request::post(path)
            .header("host", &sni)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let resp = http::send(stack.public, &sni, &ca, req).await.expect("response");
        assert_eq!(resp.status(), 400, "{path}");
    }
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let ok = http::send(stack.public, &sni, &ca, http::mcp_post(&format!("Public.{DOMAIN}:443"), ping))
        .await
        .expect("response");
    assert_eq!(ok.status(), 200, "Host compares without port and case");
    stop.cancel();
}
