//! The stdio bridge served on a real hyper server on loopback, driven by the official
//! Python MCP SDK client (tests/py/stdio_client.py) against a real stdio MCP server built
//! with the same SDK (tests/py/stdio_server.py), one process per session.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use mcp_tunnel::stdio::{StdioBridge, StdioSpec};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::stdio::{
    alive, body_json, client, client_cmd, http_log, peak_rss_kib, python, request, root, serve, served_bridge, spec,
};
use crate::common::{own_process, poll};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_get_their_own_process_and_delete_kills_it() {
    let Some(py) = python() else { return };
    let (bridge, url) = served_bridge(&py).await;
    let out = client(&py, &url, &["sessions", "--n", "2"]).await;
    assert_eq!(out["ok"], true, "{out}");
    let pids: Vec<u64> = out["pids"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    assert_eq!(pids.len(), 2, "{out}");
    assert_ne!(pids[0], pids[1], "two sessions shared one process: {out}");
    // DELETE is answered only after the child is reaped, and the client awaited it.
    let deletes = http_log(&out).iter().filter(|e| e.starts_with("DELETE") && e.ends_with("-> 204")).count();
    assert_eq!(deletes, 2, "{out}");
    assert_eq!(bridge.live_children(), 0);
    for pid in pids {
        assert!(!alive(pid), "stdio server {pid} still running after DELETE");
    }
}

/// Streaming: the first progress notification reaches the client a whole step before the
/// result, so the SSE relay does not buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_stream_before_the_result() {
    let Some(py) = python() else { return };
    let (_bridge, url) = served_bridge(&py).await;
    let out = client(&py, &url, &["progress", "--steps", "3", "--delay", "0.5"]).await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["result"], "done", "{out}");
    let times: Vec<f64> = out["progress_times"].as_array().unwrap().iter().filter_map(Value::as_f64).collect();
    let result = out["result_time"].as_f64().unwrap();
    assert_eq!(times.len(), 3, "{out}");
    assert!(times[0] + 1.0 < result, "first progress at {}s, result at {result}s: not streamed", times[0]);
    assert_eq!(out["progress"][2]["message"], "step 2", "{out}");
}

/// `mcp.Client(mode="auto")` probes `server/discover`; the bridge's -32601 (HTTP 404)
/// makes it fall back to the initialize handshake without spawning a process for the probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_client_falls_back_to_the_handshake() {
    let Some(py) = python() else { return };
    let (bridge, url) = served_bridge(&py).await;
    let out = client(&py, &url, &["modern"]).await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["result"], "via-auto", "{out}");
    assert_eq!(out["protocol_version"], "2025-11-25", "{out}");
    let log = http_log(&out);
    assert_eq!(log.first().map(String::as_str), Some("POST server/discover -> 404"), "{out}");
    assert_eq!(log.get(1).map(String::as_str), Some("POST - -> 200"), "initialize follows the probe: {out}");
    assert_eq!(bridge.live_children(), 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_reached_refuses_initialize_with_503() {
    let Some(py) = python() else { return };
    let bridge = StdioBridge::new("stdio-test".into(), StdioSpec { max_children: 1, ..spec(&py) });
    let url = serve(Arc::clone(&bridge)).await;
    let out = client(&py, &url, &["cap"]).await;
    assert_eq!(out["ok"], true, "{out}");
    assert_ne!(out["second"], "opened", "{out}");
    assert!(http_log(&out).iter().any(|e| e == "POST - -> 503 retry-after=5"), "{out}");
    assert_eq!(out["first_after"], "still-alive", "the refused client must not disturb the first: {out}");
    assert_eq!(bridge.live_children(), 0, "{out}");
}

/// An idle session is reaped even while the client keeps its GET stream open; the client's
/// next request then finds the session gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_session_is_reaped() {
    let Some(py) = python() else { return };
    let bridge = StdioBridge::new("stdio-test".into(), StdioSpec { idle_timeout: Duration::from_secs(1), ..spec(&py) });
    let url = serve(Arc::clone(&bridge)).await;
    let mut child =
        client_cmd(&py, &url, &["hold"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn client");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().expect("pid line")).unwrap();
    let pid = first["pid"].as_u64().unwrap_or_else(|| panic!("{first}"));
    assert!(alive(pid));
    poll::eventually(Duration::from_secs(20), "idle session reaped", || bridge.live_children() == 0).await;
    assert!(!alive(pid), "idle stdio server {pid} still running");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    let last: Value = serde_json::from_str(&lines.next_line().await.unwrap().expect("result line")).unwrap();
    assert!(last["after"]["error_message"].is_string(), "call on a reaped session must fail: {last}");
    assert!(last["http"].as_array().unwrap().iter().any(|e| e == "POST - -> 404"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_child_fails_the_request_and_ends_the_session() {
    let Some(py) = python() else { return };
    let (bridge, url) = served_bridge(&py).await;
    let out = client(&py, &url, &["crash"]).await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["crash"]["error_code"], -32603, "{out}");
    assert!(out["crash"]["elapsed"].as_f64().unwrap() < 10.0, "crash took the request timeout: {out}");
    assert!(out["after"]["error_message"].is_string(), "{out}");
    assert!(http_log(&out).iter().any(|e| e == "POST - -> 404"), "later requests must get 404: {out}");
    assert_eq!(bridge.live_children(), 0);
    assert!(!alive(out["pid"].as_u64().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_becomes_a_jsonrpc_error() {
    let Some(py) = python() else { return };
    // The timeout also bounds the child's `initialize`: 8 s leaves a loaded machine time
    // to start the Python server, and is still far below the 60 s the tool sleeps.
    let bridge =
        StdioBridge::new("stdio-test".into(), StdioSpec { request_timeout: Duration::from_secs(8), ..spec(&py) });
    let url = serve(Arc::clone(&bridge)).await;
    let out = client(&py, &url, &["call", "--tool", "sleep", "--arguments", r#"{"seconds": 60}"#]).await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["error_code"], -32001, "{out}");
    assert!(out["elapsed"].as_f64().unwrap() < 40.0, "{out}");
}

/// The child sees PATH, HOME and its configured variables, nothing else of the gateway's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_environment_is_cleared() {
    let Some(py) = python() else { return };
    let secret = std::env::vars().map(|(k, _)| k).find(|k| k != "PATH" && k != "HOME").expect("some env var");
    let (_bridge, url) = served_bridge(&py).await;
    let names = serde_json::json!({"names": ["PATH", "STDIO_TEST_MARKER", secret]}).to_string();
    let out = client(&py, &url, &["call", "--tool", "env", "--arguments", &names]).await;
    assert_eq!(out["ok"], true, "{out}");
    let env: Value = serde_json::from_str(out["result"].as_str().unwrap()).unwrap();
    assert_eq!(env["STDIO_TEST_MARKER"], "marker-42", "{env}");
    assert_eq!(env["PATH"].as_str(), std::env::var("PATH").ok().as_deref(), "{env}");
    assert!(env[&secret].is_null(), "{secret} leaked into the child: {env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_child() {
    let Some(py) = python() else { return };
    let (bridge, url) = served_bridge(&py).await;
    let mut child =
        client_cmd(&py, &url, &["hold"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn client");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().expect("pid line")).unwrap();
    let pid = first["pid"].as_u64().unwrap_or_else(|| panic!("{first}"));
    assert_eq!(bridge.live_children(), 1);
    tokio::time::timeout(Duration::from_secs(15), bridge.shutdown()).await.expect("shutdown hung");
    assert_eq!(bridge.live_children(), 0);
    assert!(!alive(pid), "stdio server {pid} survived shutdown");
}

/// Requests the bridge answers itself, without any child (no Python needed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_without_a_child() {
    let bridge = StdioBridge::new("stdio-test".into(), StdioSpec::new("/nonexistent/stdio-server"));
    let post = |session: Option<&str>, body: &'static str| {
        let mut b = hyper::Request::post("/mcp").header("content-type", "application/json");
        if let Some(s) = session {
            b = b.header("mcp-session-id", s);
        }
        b.body(Bytes::from_static(body.as_bytes())).unwrap()
    };
    let status = |r: hyper::Response<_>| r.status().as_u16();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    assert_eq!(status(bridge.handle(post(Some("feedbeef"), list)).await), 404);
    assert_eq!(status(bridge.handle(post(None, list)).await), 400);
    assert_eq!(status(bridge.handle(post(None, "{not json")).await), 400);
    assert_eq!(status(bridge.handle(post(None, r#"{"jsonrpc":"2.0","id":3,"method":"server/discover"}"#)).await), 404);
    // The command does not exist: 502 and no slot kept.
    let resp = bridge.handle(post(None, init)).await;
    assert_eq!(resp.status(), 502);
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["code"], -32603);
    assert_eq!(bridge.live_children(), 0);
    let put = hyper::Request::put("/mcp").body(Bytes::new()).unwrap();
    assert_eq!(status(bridge.handle(put).await), 405);
}

/// A request running longer than the idle timeout keeps its session (and child) alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_in_flight_is_not_idle() {
    let Some(py) = python() else { return };
    let bridge = StdioBridge::new("stdio-test".into(), StdioSpec { idle_timeout: Duration::from_secs(1), ..spec(&py) });
    let url = serve(Arc::clone(&bridge)).await;
    let out = client(&py, &url, &["call", "--tool", "sleep", "--arguments", r#"{"seconds": 3}"#]).await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["result"], "slept", "{out}");
}

/// Calls `handle` directly (the same entry point the gateway uses): JSON-only clients,
/// batches, 202 for notifications, GET replacement, DELETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_batches_and_get_replacement() {
    let Some(py) = python() else { return };
    let bridge = StdioBridge::new("stdio-test".into(), spec(&py));
    let json = "application/json";
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",
        "capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    let resp = bridge.handle(request("POST", None, json, init)).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers().get("mcp-session-id").expect("session id").to_str().unwrap().to_owned();
    assert_eq!(sid.len(), 64, "256-bit hex session id");
    assert!(sid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(body_json(resp).await["result"]["serverInfo"]["name"], "mcp-tunnel-test-stdio");
    let s = Some(sid.as_str());

    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let resp = bridge.handle(request("POST", s, json, note)).await;
    assert_eq!(resp.status(), 202);
    assert!(resp.into_body().collect().await.unwrap().to_bytes().is_empty());

    let batch = r#"[{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":20,"b":22}}},
        {"jsonrpc":"2.0","id":"three","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}]"#;
    let resp = bridge.handle(request("POST", s, json, batch)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let answers = body_json(resp).await;
    let answers = answers.as_array().expect("batch answer is an array");
    let by_id = |id: Value| answers.iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("{answers:?}")).clone();
    assert_eq!(by_id(2.into())["result"]["content"][0]["text"], "42");
    assert_eq!(by_id("three".into())["result"]["content"][0]["text"], "hi");

    // A second GET replaces the first, whose stream then ends.
    let first = bridge.handle(request("GET", s, "text/event-stream", "")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "text/event-stream");
    let second = bridge.handle(request("GET", s, "text/event-stream", "")).await;
    assert_eq!(second.status(), 200);
    let mut first = first.into_body();
    let end = tokio::time::timeout(Duration::from_secs(10), first.frame()).await.expect("old GET stream kept open");
    assert!(end.is_none(), "old GET stream must end");

    assert_eq!(bridge.live_children(), 1);
    assert_eq!(bridge.handle(request("DELETE", s, json, "")).await.status(), 204);
    assert_eq!(bridge.live_children(), 0);
    let mut second = second.into_body();
    let end = tokio::time::timeout(Duration::from_secs(10), second.frame()).await.expect("GET stream outlived DELETE");
    assert!(end.is_none());
    let list = r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#;
    assert_eq!(bridge.handle(request("POST", s, json, list)).await.status(), 404);
}

/// A child flooding 512 MiB of notifications at a client that does not read yet: the
/// bounded queues stop reading its stdout (the child blocks on its pipe), so the gateway's
/// peak memory stays far below the flood; every message still arrives once read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_child_does_not_grow_memory() {
    let Some(py) = python() else { return };
    // Peak RSS is the whole process's: measured where no other suite runs.
    if own_process::ran_elsewhere(module_path!(), "flooding_child_does_not_grow_memory").await {
        return;
    }
    let spec = StdioSpec { args: vec![root().join("tests/py/stdio_flood.py").display().to_string()], ..spec(&py) };
    let bridge = StdioBridge::new("stdio-flood".into(), spec);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#;
    let resp = bridge.handle(request("POST", None, "application/json", init)).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let (count, size) = (2048u64, 256 * 1024u64);
    let flood = format!(r#"{{"jsonrpc":"2.0","id":2,"method":"flood","params":{{"count":{count},"size":{size}}}}}"#);
    let before = peak_rss_kib();
    let resp = bridge.handle(request("POST", Some(&sid), "application/json, text/event-stream", &flood)).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // Not reading for a while gives an unbounded relay ample time to absorb the whole flood
    // (the child writes it in about a second); the assertion below is on memory, not time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut body = resp.into_body();
    let (mut events, mut last) = (0u64, Bytes::new());
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame()).await.expect("stalled") {
        if let Ok(data) = frame.unwrap().into_data() {
            events += 1;
            last = data;
        }
    }
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    eprintln!("flood: peak RSS grew by {grown_mib} MiB");
    assert_eq!(events, count + 1, "every notification and the response");
    assert!(String::from_utf8_lossy(&last).contains(r#""result":{"sent":2048}"#));
    assert!(grown_mib < 128, "peak memory grew by {grown_mib} MiB for a {} MiB flood", (count * size) >> 20);
    assert_eq!(bridge.handle(request("DELETE", Some(&sid), "application/json", "")).await.status(), 204);
}
