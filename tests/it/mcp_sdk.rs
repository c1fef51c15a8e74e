//! The official Python MCP SDK, client and server, talking through edge and gateway.

use crate::common::python::{client, PyServer};
use crate::common::{self, Stack};

async fn stack_with_python() -> (Stack, PyServer) {
    let server = PyServer::start().await;
    let stack = Stack::start(&format!("[[routes]]\nhost = \"echo\"\nupstream = \"{}\"\n", server.upstream())).await;
    (stack, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_session_in_both_protocol_generations() {
    let (stack, _server) = stack_with_python().await;
    for mode in ["legacy", "modern"] {
        let out =
            client(&stack.url("echo"), &stack.inner_ca_path(), &["--mode", mode, "basic", "--marker", "hello-tunnel"])
                .await;
        assert_eq!(out["ok"], true, "{mode}: {out}");
        assert_eq!(out["result"], "hello-tunnel", "{mode}: {out}");
        let tools = out["tools"].as_array().expect("tools");
        assert!(tools.iter().any(|t| t == "slow_progress"), "{mode}: {out}");
    }
    assert_eq!(stack.edge.stats.unknown_sni.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_megabyte_tool_result_arrives_intact() {
    let (stack, _server) = stack_with_python().await;
    for mode in ["legacy", "modern"] {
        let out =
            client(&stack.url("echo"), &stack.inner_ca_path(), &["--mode", mode, "big", "--size", "5000000"]).await;
        assert_eq!(out["ok"], true, "{mode}: {out}");
        assert_eq!(out["length"], 5_000_000, "{mode}: {out}");
    }
}

/// A buffering proxy would deliver every progress notification together with the
/// result; streaming delivers the first one a whole step (0.5 s) earlier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_stream_before_the_result() {
    let (stack, _server) = stack_with_python().await;
    for mode in ["legacy", "modern"] {
        let out = client(
            &stack.url("echo"),
            &stack.inner_ca_path(),
            &["--mode", mode, "progress", "--steps", "3", "--delay", "0.5"],
        )
        .await;
        assert_eq!(out["ok"], true, "{mode}: {out}");
        let times: Vec<f64> =
            out["progress_times"].as_array().expect("times").iter().filter_map(|t| t.as_f64()).collect();
        let result = out["result_time"].as_f64().expect("result_time");
        assert_eq!(times.len(), 3, "{mode}: {out}");
        assert!(times[0] + 1.0 < result, "{mode}: first progress at {}s, result at {result}s: not streamed", times[0]);
        assert!(times[1] + 0.4 < result, "{mode}: second progress too late: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_sessions_over_one_tunnel_connection() {
    let (stack, _server) = stack_with_python().await;
    let out =
        client(&stack.url("echo"), &stack.inner_ca_path(), &["--mode", "legacy", "concurrent", "--n", "100"]).await;
    assert_eq!(out["ok_count"], 100, "{out}");
    assert_eq!(out["fail_count"], 0, "{out}");
    assert_eq!(stack.edge.registry.live_count(common::TUNNEL), 1, "all sessions share one gateway connection");
    assert!(stack.edge.stats.streams_opened.get() >= 100);
}

/// Host is rewritten to the upstream's authority (the SDK's DNS-rebinding protection
/// accepts it), forwarding headers are set, and Authorization passes untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_seen_by_the_upstream() {
    let (stack, server) = stack_with_python().await;
    let out = client(
        &stack.url("echo"),
        &stack.inner_ca_path(),
        &["--mode", "legacy", "--header", "Authorization=Bearer secret-token-123", "whoami"],
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    let h = &out["headers"];
    assert_eq!(h["host"], format!("127.0.0.1:{}", server.port), "{out}");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{out}");
    assert_eq!(h["x-forwarded-proto"], "https", "{out}");
    assert_eq!(h["x-forwarded-host"], format!("echo.{}:{}", common::DOMAIN, stack.public.port()), "{out}");
    assert_eq!(h["authorization"], "Bearer secret-token-123", "{out}");
    assert!(h["mcp-session-id"].as_str().is_some_and(|s| !s.is_empty()), "session id passes through: {out}");
}
