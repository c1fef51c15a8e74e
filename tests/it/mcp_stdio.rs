//! A stdio-only MCP server (the official Python SDK's stdio transport) behind a route,
//! reached through edge, tunnel and gateway by the SDK's Streamable HTTP client: policy
//! and streaming apply as for HTTP upstreams, and each session's child ends with it.

use std::time::Duration;

use crate::common::python::{client, python};
use crate::common::{self, poll, Stack, DOMAIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_route_serves_sessions_through_the_tunnel_with_policy_and_progress() {
    let server = common::python::root().join("tests/py/stdio_server.py");
    let routes = format!(
        "[[routes]]\nhost = \"local\"\nstdio = [\"{}\", \"{}\"]\nstdio_max_sessions = 4\n\
         [routes.policy]\ndeny_tools = [\"add\"]\n",
        python().display(),
        server.display()
    );
    let stack = Stack::start(&routes).await;
    let out = client(
        &stack.url("local"),
        &stack.inner_ca_path(),
        &["--mode", "legacy", "policy", "--denied", "add", "--secret", "s3cr3t-value"],
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    let tools: Vec<&str> = out["tools"].as_array().expect("tools").iter().filter_map(|t| t.as_str()).collect();
    assert!(tools.contains(&"echo") && !tools.contains(&"add"), "{tools:?}");
    assert_eq!(out["denied"]["code"], -32010, "{out}");
    assert_eq!(out["echo"], "s3cr3t-value");

    let out = client(
        &stack.url("local"),
        &stack.inner_ca_path(),
        &["--mode", "legacy", "progress", "--steps", "3", "--delay", "0.3"],
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["progress_times"].as_array().map(Vec::len), Some(3), "{out}");

    // Both clients ended their sessions (DELETE): no child is left running.
    let gateway = stack.gateway.as_ref().expect("in-process gateway");
    let routes = gateway.routes();
    let bridge = routes.lookup(&format!("local.{DOMAIN}"), "/mcp").and_then(|r| r.stdio.clone()).expect("stdio route");
    let ended = poll::within(Duration::from_secs(5), || bridge.live_children() == 0).await;
    assert_eq!((ended, bridge.live_children()), (Some(()), 0), "children outlived their sessions");
}
