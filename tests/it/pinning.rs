//! Tool-definition pinning end to end: the official Python SDK server as the upstream
//! (restarted on the same port with `--variant N`, which changes the `stamp` tool's
//! description), the Python SDK client through edge and gateway, and the `mcp-tunnel
//! tools` CLI binary talking to the gateway's control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::python::{client, PyServer};
use crate::common::{self, audit_records, poll, Stack};
use mcp_tunnel::config::gateway::GatewayConfig;
use mcp_tunnel::gateway::{Gateway, GatewayShared, TunnelState};
use mcp_tunnel::pinning::PinStatus;
use serde_json::Value;

use crate::common::procs::BIN;
const ROUTE: &str = "pin.tunnel.test";

/// Runs `mcp-tunnel tools <args> --state-dir <dir>`; returns (success, stdout + stderr).
async fn tools_cli(state_dir: &Path, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(BIN)
        .arg("tools")
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run mcp-tunnel tools");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn tools_json(state_dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, text) = tools_cli(state_dir, &all).await;
    assert!(ok, "tools {args:?} failed: {text}");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("tools {args:?}: not JSON ({e}): {text}"))
}

/// The Python client's `calls` scenario: optionally list tools, then each call in order.
async fn calls(stack: &Stack, list: bool, calls: &[&str]) -> Vec<Value> {
    let mut args = vec!["calls"];
    if list {
        args.push("--list");
    }
    for c in calls {
        args.extend(["--call", c]);
    }
    let out = client(&stack.url("pin"), &stack.inner_ca_path(), &args).await;
    assert_eq!(out["ok"], true, "{out}");
    out["calls"].as_array().expect("calls").clone()
}

/// Waits (bounded) until the gateway has seen `tool` on the route (its own listing at start).
async fn wait_seen(shared: &GatewayShared, tool: &str) {
    let seen = || shared.pins.status(ROUTE, tool).0 != PinStatus::Unknown;
    poll::eventually(Duration::from_secs(15), &format!("the gateway listing {tool} on {ROUTE}"), seen).await;
}

/// A route to `server` with `pinning = mode`, a state directory and an audit file.
fn config(dir: &Path, server: &PyServer, mode: &str) -> (String, PathBuf, PathBuf) {
    let (state, audit) = (dir.join("state"), dir.join("audit.jsonl"));
    let text = format!(
        "state_dir = \"{}\"\n[audit]\nsink = \"file\"\npath = \"{}\"\n[[routes]]\nhost = \"pin\"\nupstream = \"{}\"\n\
         pinning = \"{mode}\"\n",
        state.display(),
        audit.display(),
        server.upstream()
    );
    (text, state, audit)
}

/// Stops the upstream and starts it again on the same port as `--variant variant`.
async fn restart_upstream(server: PyServer, variant: u32) -> PyServer {
    let port = server.port.to_string();
    server.stop().await;
    let again = PyServer::start_with(&["--port", &port, "--variant", &variant.to_string()]).await;
    assert_eq!(again.port.to_string(), port);
    again
}

fn counts(v: &Value) -> Value {
    serde_json::from_str(v["text"].as_str().expect("calls text")).expect("calls JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_refuses_a_changed_tool_until_an_operator_repins_and_pins_survive_a_restart() {
    let server = PyServer::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (text, state, audit) = config(tmp.path(), &server, "enforce");
    let stack = Stack::start(&text).await;
    let shared = stack.gateway.clone().expect("gateway");

    // `enforce` without a state directory is a config error naming the key and its line.
    let no_state = text.replace(&format!("state_dir = \"{}\"\n", state.display()), "");
    let path = stack.dir.path().join("no-state.toml");
    std::fs::write(&path, stack.gateway_toml("certs", "certs/tunnel", &no_state)).expect("write");
    let err = GatewayConfig::load(&path).expect_err("enforce needs state_dir").to_string();
    assert!(err.contains("`routes[0].pinning`") && err.contains("state_dir") && err.contains(".toml:"), "{err}");

    // Nothing is pinned yet: the gateway listed the tools at start, and refuses them all.
    wait_seen(&shared, "stamp").await;
    let refused = calls(&stack, false, &["stamp={\"text\":\"a\"}"]).await;
    assert_eq!(refused[0]["code"], -32014, "{refused:?}");
    assert!(refused[0]["message"].as_str().unwrap_or("").contains("not been pinned"), "{refused:?}");

    let (ok, out) = tools_cli(&state, &["pin", "--route", "pin", "--note", "reviewed in SEC-1"]).await;
    assert!(ok && out.contains("on route pin.tunnel.test") && out.contains("stamp sha256:"), "{out}");
    let done = calls(&stack, false, &["stamp={\"text\":\"a\"}", "calls={}"]).await;
    assert_eq!(done[0]["text"], "stamped:a", "{done:?}");
    assert_eq!(counts(&done[1])["stamp"], 1);
    let pinned_v0 = shared.pins.snapshot(ROUTE).pinned["stamp"].fingerprint.clone();

    // The upstream comes back with another description for `stamp`: a client lists the
    // tools (the gateway learns the change on the way through) and the call is refused
    // without reaching the upstream.
    let server = restart_upstream(server, 1).await;
    let after = calls(&stack, true, &["stamp={\"text\":\"b\"}", "calls={}", "echo={\"text\":\"e\"}"]).await;
    assert_eq!(after[0]["code"], -32014, "{after:?}");
    assert!(after[0]["message"].as_str().unwrap_or("").contains("changed since it was pinned"), "{after:?}");
    assert_eq!(counts(&after[1]), serde_json::json!({}), "the upstream never ran stamp");
    assert_eq!(after[2]["text"], "e", "unchanged tools still work");
    let (_, seen_v1) = shared.pins.status(ROUTE, "stamp");
    let seen_v1 = seen_v1.expect("stamp seen");
    assert_ne!(seen_v1, pinned_v0);

    let records = audit_records(&audit, |r| {
        r.iter().any(|x| x["tool"] == "stamp" && x["reason"] == "tool_changed")
            && r.iter().any(|x| x["event"] == "tool" && x["pin"] == "changed")
            && r.iter().any(|x| x["event"] == "control")
    })
    .await;
    let refusal = records.iter().find(|x| x["tool"] == "stamp" && x["reason"] == "tool_changed").expect("refusal");
    assert_eq!(refusal["decision"], "deny");
    assert_eq!(refusal["jsonrpc_error"], -32014);
    assert_eq!(refusal["pin"], "changed");
    assert_eq!(refusal["tool_fingerprint"], seen_v1.as_str());
    let change = records.iter().find(|x| x["event"] == "tool" && x["pin"] == "changed").expect("change record");
    assert_eq!(change["tool"], "stamp");
    assert_eq!(change["reason"], "tool_definition_changed");
    assert_eq!(change["tool_fingerprint"], seen_v1.as_str());
    let allowed = records.iter().find(|x| x["tool"] == "stamp" && x["decision"] == "allow").expect("allowed call");
    assert_eq!((allowed["pin"].as_str(), allowed["tool_fingerprint"].as_str()), (Some("pinned"), Some(&*pinned_v0)));
    let pin = records.iter().find(|x| x["event"] == "control").expect("pin record");
    assert_eq!(pin["action"], "pin");
    assert_eq!(pin["note"], "reviewed in SEC-1");
    assert_eq!(pin["actor"], format!("uid:{} via socket", rustix::process::getuid().as_raw()));
    assert_eq!(pin["route"], ROUTE);

    // On call: what changed?
    let (ok, diff) = tools_cli(&state, &["diff", "--route", ROUTE]).await;
    assert!(ok, "{diff}");
    assert!(diff.contains("stamp: changed") && diff.contains("description changed"), "{diff}");
    assert!(diff.contains("    + Return text prefixed with 'stamped:'. Revision 1"), "{diff}");
    assert!(!diff.contains("echo:"), "only changed tools are shown: {diff}");
    let json = tools_json(&state, &["diff", "--route", "pin"]).await;
    let stamp = json["tools"].as_array().expect("tools").iter().find(|t| t["tool"] == "stamp").expect("stamp");
    assert_eq!(stamp["changes"][0]["path"], "description");
    assert_eq!(stamp["changes"][0]["pinned"], "Return text prefixed with 'stamped:'.");
    let (ok, list) = tools_cli(&state, &["list", "--route", "pin"]).await;
    assert!(ok && list.contains("changed") && list.contains(&seen_v1[..19]), "{list}");

    // Re-pin the one tool: calls pass again.
    let (ok, out) = tools_cli(&state, &["pin", "--route", "pin", "--tool", "stamp"]).await;
    assert!(ok && out.contains("pinned 1 tool(s)"), "{out}");
    let again = calls(&stack, false, &["stamp={\"text\":\"c\"}"]).await;
    assert_eq!(again[0]["text"], "stamped:c", "{again:?}");

    // A new gateway process with the same state directory keeps the pins.
    stack.gateway_stop.cancel();
    let socket = state.join("control.sock");
    poll::eventually(Duration::from_secs(5), "the stopped gateway removing its control socket", || !socket.exists())
        .await;
    let gateway = Gateway::new(GatewayConfig::load(&stack.gateway_path()).expect("config")).expect("gateway");
    let (mut status, restarted) = (gateway.status(), gateway.shared());
    tokio::spawn(gateway.run(stack.shutdown.child_token()));
    let state_now = common::wait_settled(&mut status).await;
    assert!(matches!(state_now, TunnelState::Registered { .. }), "{state_now:?}");
    assert_eq!(restarted.pins.snapshot(ROUTE).pinned["stamp"].fingerprint, seen_v1, "pin loaded from the state dir");
    // No client lists tools first: the restarted gateway knows `stamp` from its own listing
    // (at start, or, if that has not finished, the one `enforce` makes for an unseen tool).
    let restarted_call = calls(&stack, false, &["stamp={\"text\":\"d\"}"]).await;
    assert_eq!(restarted_call[0]["text"], "stamped:d", "{restarted_call:?}");
    let listed = tools_json(&state, &["list", "--route", ROUTE]).await;
    let stamp = listed["tools"].as_array().expect("tools").iter().find(|t| t["tool"] == "stamp").expect("stamp");
    assert_eq!((stamp["status"].as_str(), stamp["pinned"].as_str()), (Some("pinned"), Some(&*seen_v1)));
    let mode = std::fs::metadata(state.join("pins/pin.tunnel.test.json")).expect("pin file");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_audits_and_counts_a_changed_tool_and_lets_the_call_pass() {
    let server = PyServer::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (text, state, audit) = config(tmp.path(), &server, "warn");
    let stack = Stack::start(&text).await;
    let shared = stack.gateway.clone().expect("gateway");
    wait_seen(&shared, "stamp").await;
    let (ok, out) = tools_cli(&state, &["pin", "--route", "pin"]).await;
    assert!(ok, "{out}");

    let server = restart_upstream(server, 2).await;
    let out = calls(&stack, true, &["stamp={\"text\":\"w\"}", "calls={}"]).await;
    assert_eq!(out[0]["text"], "stamped:w", "warn lets the call through: {out:?}");
    assert_eq!(counts(&out[1])["stamp"], 1);

    let records = audit_records(&audit, |r| {
        r.iter().any(|x| x["event"] == "tool" && x["tool"] == "stamp")
            && r.iter().any(|x| x["tool"] == "stamp" && x["jsonrpc_method"] == "tools/call" && x["outcome"].is_string())
    })
    .await;
    // At start every tool was new (unpinned); after the pin, `stamp` changed once.
    let new = records.iter().filter(|x| x["event"] == "tool" && x["pin"] == "unpinned").count();
    assert!(new >= 6, "each tool first seen unpinned is recorded: {records:#?}");
    let changes: Vec<&Value> = records.iter().filter(|x| x["event"] == "tool" && x["pin"] == "changed").collect();
    assert_eq!(changes.len(), 1, "one record when the change is first seen: {changes:?}");
    assert_eq!(changes[0]["tool"], "stamp");
    let call = records.iter().find(|x| x["tool"] == "stamp" && x["jsonrpc_method"] == "tools/call").expect("call");
    assert_eq!((call["decision"].as_str(), call["pin"].as_str()), (Some("allow"), Some("changed")));
    assert_eq!(call["tool_fingerprint"], changes[0]["tool_fingerprint"]);
    let scrape = shared.metrics.render(&[]);
    let line = format!("mcp_tunnel_gateway_tool_definition_changes_total{{route=\"{ROUTE}\",change=\"changed\"}} 1");
    assert!(scrape.contains(&line), "{scrape}");

    // Listing again reports nothing new.
    calls(&stack, true, &[]).await;
    let records =
        audit_records(&audit, |r| r.iter().filter(|x| x["jsonrpc_method"] == "tools/list").count() >= 2).await;
    assert_eq!(records.iter().filter(|x| x["event"] == "tool" && x["pin"] == "changed").count(), 1, "{records:#?}");
    drop(server);
}
