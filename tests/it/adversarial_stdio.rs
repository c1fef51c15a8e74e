//! Stdio children are not operators, and stdio sessions belong to their creator (issue 13
//! items 2 and 12), against real processes: the gateway in-process with an edge, the
//! official Python SDK's stdio server (tests/py/stdio_server.py) as the child, the SDK
//! client where a client is needed, raw HTTP where the attack is a replayed session id.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::control::{ctl, is_root};
use crate::common::http::{mcp_post, send};
use crate::common::python::{client, python, root};
use crate::common::{audit_records, poll, Stack, DOMAIN};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::procs::BIN;
const HOST: &str = "local";

/// A stdio route named `host` running tests/py/stdio_server.py, with `extra` route keys.
fn stdio_route(host: &str, extra: &str) -> String {
    let server = root().join("tests/py/stdio_server.py");
    format!(
        "[[routes]]\nhost = \"{host}\"\nstdio = [\"{}\", \"{}\"]\nstdio_max_sessions = 4\n{extra}\n",
        python().display(),
        server.display()
    )
}

/// `state_dir` and a file audit sink in a kept temporary directory, as top-level config.
fn state_and_audit() -> (PathBuf, PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let (state, audit) = (dir.join("state"), dir.join("audit.jsonl"));
    let top =
        format!("state_dir = \"{}\"\n[audit]\nsink = \"file\"\npath = \"{}\"\n", state.display(), audit.display());
    (state, audit, top)
}

/// One SDK session making `calls` (`NAME=JSON`) on `route`; the per-call results.
async fn sdk_calls(stack: &Stack, route: &str, calls: &[String]) -> Vec<Value> {
    let mut args: Vec<&str> = vec!["calls"];
    for c in calls {
        args.extend(["--call", c]);
    }
    let out = client(&stack.url(route), &stack.inner_ca_path(), &args).await;
    assert_eq!(out["ok"], true, "{out}");
    out["calls"].as_array().expect("calls").clone()
}

/// A tool's JSON text result.
fn text_json(call: &Value) -> Value {
    assert_eq!(call["ok"], true, "{call}");
    serde_json::from_str(call["text"].as_str().expect("text")).expect("tool JSON")
}

/// Raw JSON-RPC over HTTPS: the status, and the JSON-RPC message (from JSON or SSE).
async fn rpc(stack: &Stack, token: Option<&str>, session: Option<&str>, body: Value) -> (u16, Option<String>, Value) {
    let host = format!("{HOST}.{DOMAIN}");
    let mut req = mcp_post(&host, &body.to_string());
    let h = req.headers_mut();
    h.insert("mcp-protocol-version", "2025-11-25".parse().expect("header"));
    if let Some(t) = token {
        h.insert("authorization", format!("Bearer {t}").parse().expect("header"));
    }
    if let Some(s) = session {
        h.insert("mcp-session-id", s.parse().expect("header"));
    }
    let resp = send(stack.public, &host, &stack.inner_ca(), req).await.expect("response");
    let sid = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (resp.status().as_u16(), sid, message(resp.body()))
}

fn message(body: &Bytes) -> Value {
    let text = String::from_utf8_lossy(body);
    serde_json::from_str(&text).unwrap_or_else(|_| {
        let data = text.lines().filter_map(|l| l.strip_prefix("data:")).find(|d| d.contains("\"jsonrpc\""));
        data.and_then(|d| serde_json::from_str(d.trim()).ok()).unwrap_or(Value::Null)
    })
}

/// Opens a raw session (initialize + initialized); its id.
async fn open_session(stack: &Stack, token: Option<&str>) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, sid, msg) = rpc(stack, token, None, init).await;
    assert_eq!(status, 200, "{msg}");
    let sid = sid.expect("session id");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(rpc(stack, token, Some(&sid), note).await.0, 202);
    sid
}

/// `tools/call` on a raw session: status and message.
async fn call(stack: &Stack, token: Option<&str>, sid: &str, tool: &str, args: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let (status, _, msg) = rpc(stack, token, Some(sid), body).await;
    (status, msg)
}

/// The PID of a raw session's child.
async fn child_pid(stack: &Stack, token: Option<&str>, sid: &str) -> u64 {
    let (status, msg) = call(stack, token, sid, "pid", json!({})).await;
    assert_eq!(status, 200, "{msg}");
    msg["result"]["content"][0]["text"].as_str().and_then(|t| t.parse().ok()).expect("pid")
}

fn running(pid: u64) -> bool {
    // A zombie is dead for this purpose: it runs nothing.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Polls until `pid` runs no more; false after `limit`.
async fn gone_within(pid: u64, limit: Duration) -> bool {
    poll::within(limit, || !running(pid)).await.is_some()
}

/// Item 2: a tool of a stdio child connects to the control socket, itself and through a
/// subprocess, to approve its own held call: refused and audited, the call stays held;
/// the test (an operator, not a descendant of a child) is served and decides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_child_cannot_use_the_control_socket_but_the_operator_can() {
    let (state, audit, top) = state_and_audit();
    let stack = Stack::start(&format!("{top}{}", stdio_route(HOST, "[routes.approval]\ntools = [\"add\"]\n"))).await;
    let shared = stack.gateway.clone().expect("gateway");
    let mut held = tokio::process::Command::new(python())
        .arg(root().join("tests/py/approval_client.py"))
        .args(["--url", &stack.url(HOST), "--ca"])
        .arg(stack.inner_ca_path())
        .args(["--resolve", &format!("{HOST}.{DOMAIN}=127.0.0.1"), "--timeout", "90"])
        .args(["--tool", "add", "--arguments", r#"{"a": 1, "b": 2}"#])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn approval_client.py");
    let mut lines = BufReader::new(held.stdout.take().expect("stdout")).lines();
    poll::eventually(Duration::from_secs(60), "the gated call waiting", || !shared.approvals.is_empty()).await;
    let pending = shared.approvals.list().remove(0);
    assert_eq!(pending.session_id.as_deref().map(str::len), Some(16), "approvals carry the session hash");

    let socket = state.join("control.sock");
    let approve = json!({"op": "approvals.approve", "args": {"id": pending.id, "reason": "self-approved"}});
    let probe = json!({"socket_path": socket, "request": approve.to_string()});
    let ctl_argv = json!({"argv": [BIN, "ctl", "--state-dir", state, "status"]});
    let calls = sdk_calls(&stack, HOST, &[format!("probe={probe}"), format!("run={ctl_argv}")]).await;
    let direct = text_json(&calls[0]);
    let reply = direct["socket"]["reply"].as_str().unwrap_or_default();
    assert!(reply.contains("\"forbidden\"") && reply.contains("stdio_child"), "child was not refused: {direct}");
    let sub = text_json(&calls[1]);
    assert_ne!(sub["code"], 0, "a grandchild ran ctl: {sub}");
    assert!(sub["stderr"].as_str().unwrap_or_default().contains("stdio_child"), "{sub}");

    assert_eq!(shared.approvals.len(), 1, "the child's approval took effect");
    let (ok, out, err) = ctl(&[], &state, &["status"]).await;
    assert!(ok, "the operator was refused: {out}{err}");
    let approved = tokio::process::Command::new(BIN)
        .args(["approvals", "approve", &pending.id, "--reason", "operator", "--state-dir"])
        .arg(&state)
        .output()
        .await
        .expect("approvals approve");
    assert!(approved.status.success(), "{}", String::from_utf8_lossy(&approved.stderr));
    let mut last = String::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await {
        last = line;
    }
    let result: Value = serde_json::from_str(&last).expect("approval_client JSON");
    assert_eq!(result["result"], "3", "{result}");

    let records = audit_records(&audit, |r| r.iter().filter(|r| r["action"] == "connect").count() >= 2).await;
    let refusal = records.iter().find(|r| r["action"] == "connect").expect("refusal record");
    assert_eq!((refusal["decision"].as_str(), refusal["reason"].as_str()), (Some("deny"), Some("stdio_child")));
}

/// Item 2, as root: with `stdio_user = "nobody"` the child runs as nobody and can neither
/// read the gateway's private keys nor write its state directory, whose modes are 0600
/// and 0700.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_running_as_nobody_cannot_read_keys_or_write_state() {
    if !is_root() {
        eprintln!("SKIP: stdio_user needs the gateway to run as root");
        return;
    }
    // The SDK's virtualenv may sit where nobody cannot go (under /root): the child is the
    // stdlib-only server on the system Python.
    let system_python = Path::new("/usr/bin/python3");
    if !system_python.exists() {
        eprintln!("SKIP: no /usr/bin/python3 for a child running as nobody");
        return;
    }
    let (state, _, top) = state_and_audit();
    let server = root().join("tests/py/stdio_min_server.py");
    let route = format!(
        "[[routes]]\nhost = \"{HOST}\"\nstdio = [\"{}\", \"{}\"]\nstdio_user = \"nobody\"\n",
        system_python.display(),
        server.display()
    );
    let stack = Stack::start(&format!("{top}{route}")).await;
    let keys = [stack.dir.path().join("certs/tunnel/gateway.key"), stack.dir.path().join("certs/inner/server.key")];
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    for k in &keys {
        assert_eq!(mode(k), 0o600, "{}", k.display());
    }
    assert_eq!(mode(&state), 0o700);
    let probe = json!({"socket_path": state.join("control.sock"), "request": "{\"op\":\"status\"}",
                       "read": keys, "write_dir": state});
    let calls = sdk_calls(&stack, HOST, &[format!("probe={probe}")]).await;
    let seen = text_json(&calls[0]);
    assert_eq!((seen["uid"].as_u64(), seen["gid"].as_u64()), (Some(65534), Some(65534)), "{seen}");
    assert!(seen["groups"].as_array().is_some_and(|g| g.iter().all(|g| g == 65534)), "{seen}");
    for k in &keys {
        let read = seen["read"][k.display().to_string()].as_str().unwrap_or_default();
        assert!(read.starts_with("PermissionError"), "{}: {read}", k.display());
    }
    assert!(seen["write"].as_str().is_some_and(|w| w.starts_with("PermissionError")), "{seen}");
    assert_eq!(seen["socket"]["connected"], false, "{seen}");
    // Limits hold for another user's child too (the defaults: 2 GiB of data, 1 h of CPU).
    let limits = seen["limits"].as_str().unwrap_or_default();
    assert_eq!(limit_row(limits, "Max data size"), Some("2147483648 2147483648".into()), "{limits}");
    assert_eq!(limit_row(limits, "Max cpu time"), Some("3600 3601".into()), "{limits}");
}

/// The soft and hard values of one row of /proc/<pid>/limits.
fn limit_row(limits: &str, name: &str) -> Option<String> {
    let row = limits.lines().find(|l| l.starts_with(name))?;
    Some(row[name.len()..].split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

/// Item 12: per-child memory and CPU limits. An allocation past the memory limit fails in
/// that child alone; a child that burns CPU past its limit is killed; other sessions work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_have_memory_and_cpu_limits() {
    let limits = "stdio_memory_limit = \"512MiB\"\nstdio_cpu_limit = \"4s\"\n";
    let stack = Stack::start(&stdio_route(HOST, limits)).await;
    let cat = json!({"argv": ["cat", "/proc/self/limits"]});
    let calls = sdk_calls(
        &stack,
        HOST,
        &[
            format!("run={cat}"),
            "alloc={\"mib\": 64}".into(),
            "alloc={\"mib\": 1024}".into(),
            "echo={\"text\": \"hi\"}".into(),
        ],
    )
    .await;
    let limits = text_json(&calls[0])["stdout"].as_str().unwrap_or_default().to_owned();
    assert_eq!(limit_row(&limits, "Max data size"), Some("536870912 536870912".into()), "{limits}");
    assert_eq!(limit_row(&limits, "Max cpu time"), Some("4 5".into()), "{limits}");
    assert_eq!(calls[1]["text"], "allocated 64 MiB", "{calls:?}");
    assert_eq!(calls[2]["text"], "MemoryError", "{calls:?}");
    assert_eq!(calls[3]["text"], "hi", "the session survives a refused allocation");

    let sid = open_session(&stack, None).await;
    let pid = child_pid(&stack, None, &sid).await;
    // The answer streams (SSE), so the failure is in the message, not the status.
    let (_, msg) = call(&stack, None, &sid, "burn", json!({"seconds": 60})).await;
    assert!(msg.get("result").is_none(), "the CPU burner was not stopped: {msg}");
    assert!(gone_within(pid, Duration::from_secs(10)).await, "the CPU burner still runs");
    let calls = sdk_calls(&stack, HOST, &["echo={\"text\": \"still\"}".into()]).await;
    assert_eq!(calls[0]["text"], "still", "another session works");
}

/// Item 12: a session belongs to its creator. Bob replaying Alice's session id gets 404,
/// as for an unknown id; the audit trail has the id's hash, never the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_is_useless_to_another_identity_and_not_in_the_audit() {
    let (_, audit, top) = state_and_audit();
    let (alice, bob) = (mcp_tunnel::auth::generate_token().expect("t"), mcp_tunnel::auth::generate_token().expect("t"));
    let auth = format!(
        "[routes.auth]\nmode = \"bearer\"\ntokens = [{{ name = \"alice\", hash = \"{}\" }}, {{ name = \"bob\", hash = \"{}\" }}]\n",
        mcp_tunnel::auth::hash_token(&alice),
        mcp_tunnel::auth::hash_token(&bob)
    );
    let stack = Stack::start(&format!("{top}{}", stdio_route(HOST, &auth))).await;
    let sid = open_session(&stack, Some(&alice)).await;
    let (status, msg) = call(&stack, Some(&alice), &sid, "echo", json!({"text": "mine"})).await;
    assert_eq!((status, msg["result"]["content"][0]["text"].as_str()), (200, Some("mine")), "{msg}");
    let (status, msg) = call(&stack, Some(&bob), &sid, "echo", json!({"text": "theirs"})).await;
    assert_eq!(status, 404, "{msg}");
    let (unknown, unknown_msg) = call(&stack, Some(&bob), &"0".repeat(64), "echo", json!({"text": "x"})).await;
    assert_eq!((unknown, &unknown_msg), (404, &msg), "a foreign session looks exactly like an unknown one");
    let (status, _) = call(&stack, Some(&alice), &sid, "echo", json!({"text": "still mine"})).await;
    assert_eq!(status, 200, "bob's attempt did not disturb alice's session");

    let hash = mcp_tunnel::audit::record::session_hash(&sid);
    let records = audit_records(&audit, |r| r.iter().filter(|r| r["session_id"] == hash.as_str()).count() >= 3).await;
    assert!(records.iter().any(|r| r["identity"] == "bob" && r["session_id"] == hash.as_str()));
    let text = std::fs::read_to_string(&audit).expect("audit");
    assert!(!text.contains(&sid), "the session id reached the audit trail");
}

/// Item 12: a kill of the route ends its children at once; after a resume it serves
/// again. A reload that changes the route ends its children promptly (not at the idle
/// timeout); one that leaves a route alone keeps that route's sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_reload_end_the_children_of_the_route() {
    let (state, _, top) = state_and_audit();
    let routes = format!("{}{}", stdio_route(HOST, ""), stdio_route("keep", ""));
    let stack = Stack::start(&format!("{top}{routes}")).await;
    let sid = open_session(&stack, None).await;
    let pid = child_pid(&stack, None, &sid).await;
    let route = format!("{HOST}.{DOMAIN}");
    let (ok, out, err) = ctl(&[], &state, &["--json", "kill", "--route", &route, "--reason", "drill"]).await;
    assert!(ok, "{out}{err}");
    assert!(gone_within(pid, Duration::from_secs(10)).await, "the killed route's child still runs");
    let report: Value = serde_json::from_str(out.trim()).expect("kill JSON");
    assert_eq!(report["stdio_sessions_ended"], 1, "{report}");
    let (ok, out, err) = ctl(&[], &state, &["resume", "--route", &route]).await;
    assert!(ok, "{out}{err}");

    let sid = open_session(&stack, None).await;
    let pid = child_pid(&stack, None, &sid).await;
    let kept = {
        let host = format!("keep.{DOMAIN}");
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
        let resp =
            send(stack.public, &host, &stack.inner_ca(), mcp_post(&host, &init.to_string())).await.expect("keep");
        assert_eq!(resp.status(), 200);
        resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).expect("sid").to_owned()
    };
    let shared = stack.gateway.clone().expect("gateway");
    let keep_bridge = || shared.routes().lookup(&format!("keep.{DOMAIN}"), "/mcp").and_then(|r| r.stdio.clone());
    let before = keep_bridge().expect("keep bridge");
    let mut reloads = shared.reloads();
    let changed = format!("{}{}", stdio_route(HOST, "stdio_env = { CHANGED = \"1\" }\n"), stdio_route("keep", ""));
    std::fs::write(stack.gateway_path(), stack.gateway_toml("certs", "certs/tunnel", &format!("{top}{changed}")))
        .expect("write config");
    stack.reload.notify_one();
    tokio::time::timeout(Duration::from_secs(15), reloads.changed()).await.expect("reload").expect("watch");
    assert!(gone_within(pid, Duration::from_secs(10)).await, "a changed route's child outlived the reload");
    let after = keep_bridge().expect("keep bridge");
    assert!(std::sync::Arc::ptr_eq(&before, &after), "an unchanged route lost its bridge");
    assert_eq!(after.live_children(), 1, "an unchanged route's session ended: {kept}");
}
