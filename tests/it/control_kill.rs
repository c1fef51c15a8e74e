//! The kill switch end to end, with real Python SDK clients through edge and gateway:
//! a route kill cuts dozens of open SSE streams and returns only when they have ended;
//! new calls get 503 with a JSON-RPC error naming the reason; the stop survives a
//! gateway restart; `ctl resume` restores service; a whole-gateway kill takes the tunnel
//! offline at the edge until resumed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::control::{admin, ctl};
use crate::common::http::{mcp_post, send};
use crate::common::python::{client, python, root, PyServer};
use crate::common::{audit_records, poll, wait_settled, Stack, TUNNEL};
use mcp_tunnel::gateway::TunnelState;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const ROUTE: &str = "echo.tunnel.test";
const STREAMS: usize = 40;

/// `mcp_client.py hold`: `n` sessions each streaming a long `slow_progress` call.
struct Hold {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Hold {
    /// Starts the clients and waits (bounded) until every call is streaming.
    async fn start(stack: &Stack, n: usize) -> Hold {
        let url = stack.url("echo");
        let mut child = tokio::process::Command::new(python())
            .arg(root().join("tests/py/mcp_client.py"))
            .args(["--url", &url, "--ca"])
            .arg(stack.inner_ca_path())
            .args(["--resolve", "echo.tunnel.test=127.0.0.1", "--timeout", "120", "hold", "--n", &n.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcp_client.py hold");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("every call streams within 90 s")
            .expect("read")
            .expect("clients exited before streaming");
        assert_eq!(ready, "READY", "unexpected line");
        Hold { child, lines }
    }

    /// Waits (bounded) for the clients to finish; their report.
    async fn finish(mut self) -> Value {
        let last = tokio::time::timeout(Duration::from_secs(60), async {
            let mut last = String::new();
            while let Ok(Some(line)) = self.lines.next_line().await {
                last = line;
            }
            last
        })
        .await
        .expect("every client saw its call end within 60 s of the kill");
        let _ = self.child.wait().await;
        serde_json::from_str(&last).unwrap_or_else(|_| panic!("no JSON report: {last:?}"))
    }
}

/// A raw JSON-RPC `tools/list` POST through the edge: (status, body).
async fn post(stack: &Stack) -> (u16, Value) {
    let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#;
    let resp = send(stack.public, ROUTE, &stack.inner_ca(), mcp_post(ROUTE, body)).await.expect("response");
    (resp.status().as_u16(), serde_json::from_slice(resp.body()).unwrap_or(Value::Null))
}

async fn basic_ok(stack: &Stack, marker: &str) -> bool {
    let out = client(&stack.url("echo"), &stack.inner_ca_path(), &["basic", "--marker", marker]).await;
    out["ok"] == true
}

/// Waits (up to 15 s) until the edge has `n` live connections for the tunnel.
async fn edge_live(stack: &Stack, n: usize) {
    if poll::within(Duration::from_secs(15), || stack.edge.registry.live_count(TUNNEL) == n).await.is_none() {
        panic!("edge never had {n} live gateway connections (has {})", stack.edge.registry.live_count(TUNNEL));
    }
}

fn kill_ms(text: &str) -> f64 {
    // "stopped route X: cut N in-flight exchanges in 12.3 ms"
    let before = text.split(" ms").next().unwrap_or_default();
    before.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no time in {text:?}"))
}

fn config(server: &PyServer, audit: &Path) -> String {
    format!(
        "state_dir = \"state\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [audit]\nsink = \"file\"\npath = \"{}\"\n[[routes]]\nhost = \"echo\"\nupstream = \"{}\"\n",
        audit.display(),
        server.upstream()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_kill_cuts_streams_refuses_calls_survives_restart_and_resumes() {
    let server = PyServer::start().await;
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit = audit_dir.path().join("audit.jsonl");
    let stack = Stack::start(&config(&server, &audit)).await;
    let state = stack.dir.path().join("state");
    let admin_addr = stack.gateway_admin.expect("admin endpoint bound");
    assert!(basic_ok(&stack, "before").await);

    let hold = Hold::start(&stack, STREAMS).await;
    let (ok, text, stderr) = ctl(&[], &state, &["kill", "--route", ROUTE, "--reason", "incident 7"]).await;
    assert!(ok, "ctl kill: {text} {stderr}");
    println!("ctl kill: {}", text.trim());
    let (_, json, _) = ctl(&[], &state, &["--json", "status"]).await;
    let status: Value = serde_json::from_str(&json).expect("status JSON");
    assert_eq!(status["kill"]["routes"][ROUTE]["reason"], "incident 7", "{status}");
    assert!(kill_ms(&text) >= 0.0);
    assert!(text.contains("cut "), "{text}");
    let cut: usize =
        text.split("cut ").nth(1).and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).expect("cut N");
    assert!(cut >= STREAMS, "the kill cut {cut} exchanges, {STREAMS} calls were streaming: {text}");
    let report = hold.finish().await;
    assert_eq!(report["ended"], STREAMS, "{report}");
    assert_eq!(report["completed"], 0, "no call completed after the kill: {report}");
    assert_eq!(report["kinds"], serde_json::json!(["error"]), "{report}");

    // New calls: 503 and a JSON-RPC error naming the reason.
    let (status, body) = post(&stack).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], -32015, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("incident 7")), "{body}");
    assert!(!basic_ok(&stack, "while-killed").await, "an SDK session works on a stopped route");
    // Ready (only a route is stopped), with the stop in the detail and the metric.
    let (code, _, ready) = admin(admin_addr, "GET", "/readyz", None, "").await;
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["detail"]["kill"]["routes"][ROUTE]["reason"], "incident 7");

    // Restart the gateway on the same state directory: still stopped.
    let mut status_rx = stack.status.clone();
    stack.gateway_stop.cancel();
    let stopped =
        tokio::time::timeout(Duration::from_secs(30), status_rx.wait_for(|s| *s == TunnelState::Stopped)).await;
    assert!(stopped.is_ok(), "the gateway stopped within 30 s");
    let socket = state.join("control.sock");
    poll::eventually(Duration::from_secs(5), "the stopped gateway removing its socket", || !socket.exists()).await;
    let restarted = mcp_tunnel::config::gateway::GatewayConfig::load(&stack.gateway_path()).expect("config");
    let mut restarted_status = stack.spawn_gateway(restarted);
    assert!(matches!(wait_settled(&mut restarted_status).await, TunnelState::Registered { .. }));
    let (status, body) = post(&stack).await;
    assert_eq!(status, 503, "the restarted gateway forgot the stop: {body}");

    let (ok, text, stderr) = ctl(&[], &state, &["resume", "--route", ROUTE]).await;
    assert!(ok, "ctl resume: {text} {stderr}");
    assert!(basic_ok(&stack, "after-resume").await, "service restored");
    let (ok, _, stderr) = ctl(&[], &state, &["resume", "--route", ROUTE]).await;
    assert!(!ok && stderr.contains("not stopped"), "{stderr}");

    let records = audit_records(&audit, |r| r.iter().filter(|r| r["event"] == "control").count() >= 2).await;
    let kill = records.iter().find(|r| r["action"] == "kill").expect("kill record");
    assert_eq!((kill["route"].as_str(), kill["note"].as_str()), (Some(ROUTE), Some("incident 7")), "{kill}");
    assert!(
        kill["actor"].as_str().is_some_and(|a| a.starts_with("uid:0 via socket") || a.starts_with("uid:")),
        "{kill}"
    );
    assert!(kill["time"].is_string());
    assert!(records.iter().any(|r| r["action"] == "resume" && r["route"] == ROUTE));
    assert!(
        records.iter().any(|r| r["event"] == "mcp" && r["reason"] == "killed" && r["http_status"] == 503),
        "refused calls are audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_gateway_kill_takes_the_tunnel_offline_until_resumed() {
    let server = PyServer::start().await;
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let stack = Stack::start(&config(&server, &audit_dir.path().join("audit.jsonl"))).await;
    let state = stack.dir.path().join("state");
    let admin_addr = stack.gateway_admin.expect("admin endpoint bound");
    edge_live(&stack, 1).await;

    let hold = Hold::start(&stack, 12).await;
    let (ok, text, stderr) = ctl(&[], &state, &["kill", "--reason", "stop everything"]).await;
    assert!(ok, "ctl kill: {text} {stderr}");
    assert!(text.contains("the gateway (tunnel closed)"), "{text}");
    let report = hold.finish().await;
    assert_eq!((report["ended"].as_u64(), report["completed"].as_u64()), (Some(12), Some(0)), "{report}");
    edge_live(&stack, 0).await;

    let (code, _, ready) = admin(admin_addr, "GET", "/readyz", None, "").await;
    assert_eq!(code, 503, "{ready}");
    assert_eq!(ready["detail"]["kill"]["all"]["reason"], "stop everything", "{ready}");
    let text = metrics_text(admin_addr).await;
    assert!(text.contains("mcp_tunnel_gateway_killed{route=\"*\"} 1"), "{text}");
    // No redial while stopped: after the whole round trip above, still nothing live.
    assert!(
        send(stack.public, ROUTE, &stack.inner_ca(), mcp_post(ROUTE, "{}")).await.is_err(),
        "edge served a stopped tunnel"
    );
    assert_eq!(stack.edge.registry.live_count(TUNNEL), 0, "the gateway redialed while stopped");

    let (ok, text, stderr) = ctl(&[], &state, &["resume"]).await;
    assert!(ok, "ctl resume: {text} {stderr}");
    edge_live(&stack, 1).await;
    assert!(basic_ok(&stack, "after-resume").await, "service restored");
    let text = metrics_text(admin_addr).await;
    assert!(text.contains("mcp_tunnel_gateway_killed{route=\"*\"} 0"), "{text}");
}

async fn metrics_text(addr: std::net::SocketAddr) -> String {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::get("/metrics")
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let body = sender.send_request(req).await.expect("metrics").into_body().collect().await.expect("body");
    String::from_utf8_lossy(&body.to_bytes()).into_owned()
}

/// A call whose upstream has not answered when its route is killed gets the kill's 503 and
/// JSON-RPC error, and an audit record of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_before_its_answer_gets_503_and_its_own_record() {
    // An upstream that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
            let _ = arrived_tx.send(()).await;
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit.jsonl");
    let stack = Stack::start(&format!(
        "[audit]\nsink = \"file\"\npath = \"{}\"\n[[routes]]\nhost = \"echo\"\nupstream = \"http://127.0.0.1:{port}\"\ntimeout = \"30s\"\n",
        audit.display()
    ))
    .await;
    let call = {
        let (public, ca) = (stack.public, stack.inner_ca());
        let body = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#;
        tokio::spawn(async move { send(public, ROUTE, &ca, mcp_post(ROUTE, body)).await })
    };
    tokio::time::timeout(Duration::from_secs(10), arrived.recv()).await.expect("the call reached the upstream");

    let shared = stack.gateway.clone().expect("gateway");
    let caller = mcp_tunnel::control::Caller { via: mcp_tunnel::control::Via::Socket, uid: Some(0) };
    let args = serde_json::json!({ "route": ROUTE, "reason": "cut test" });
    let ops = mcp_tunnel::gateway::ops::GatewayOps(shared);
    mcp_tunnel::control::Operator::run(
        &ops,
        &caller,
        &mcp_tunnel::control::ControlOp::parse("kill", args).expect("a kill"),
    )
    .await
    .expect("kill");
    let resp = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("answered within 10 s of the kill")
        .expect("task")
        .expect("response");
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = serde_json::from_slice(resp.body()).expect("JSON");
    assert_eq!(body["error"]["code"], -32015, "{body}");

    let records = audit_records(&audit, |r| r.iter().any(|r| r["event"] == "mcp" && r["reason"] == "killed")).await;
    let rec = records.iter().find(|r| r["event"] == "mcp" && r["reason"] == "killed").expect("record");
    assert_eq!((rec["route"].as_str(), rec["http_status"].as_u64()), (Some(ROUTE), Some(503)), "{rec}");
    assert_eq!((rec["decision"].as_str(), rec["jsonrpc_error"].as_i64()), (Some("deny"), Some(-32015)), "{rec}");
}
