//! Approval gates end to end: the official Python SDK client through edge and gateway to
//! the official Python SDK server, approvers using the real `mcp-tunnel approvals` binary
//! over the control socket, a loopback webhook receiver, and a raw HTTP client watching
//! the SSE keepalive comments.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::common::python::{python, root, PyServer};
use crate::common::{self, audit_records, poll, Stack, DOMAIN};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mcp_tunnel::approval::PendingCall;
use mcp_tunnel::gateway::GatewayShared;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::common::procs::BIN;
const WAIT: Duration = Duration::from_secs(60);

/// The calls waiting on the gateway, once there are exactly `n` (polled, at most [`WAIT`]).
async fn pending(shared: &GatewayShared, n: usize) -> Vec<Arc<PendingCall>> {
    let listed = || Some(shared.approvals.list()).filter(|l| l.len() == n);
    poll::eventually(WAIT, &format!("{n} pending approvals"), listed).await
}

/// `approval_client.py` calling one tool, running in the background.
struct PyCall {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl PyCall {
    /// Starts the call and waits until the client's session is up.
    async fn start(stack: &Stack, route: &str, tool: &str, arguments: Value) -> PyCall {
        let mut child = Command::new(python())
            .arg(root().join("tests/py/approval_client.py"))
            .args(["--url", &stack.url(route), "--ca"])
            .arg(stack.inner_ca_path())
            .args(["--resolve", &format!("{route}.{DOMAIN}=127.0.0.1"), "--timeout", "90"])
            .args(["--tool", tool, "--arguments", &arguments.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn approval_client.py");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(WAIT, lines.next_line()).await.expect("client connects").expect("read");
        assert_eq!(first.as_deref(), Some("CONNECTED"), "client did not connect: {first:?}");
        PyCall { child, lines }
    }

    /// The client's JSON result line.
    async fn result(mut self) -> Value {
        let mut last = String::new();
        let read = async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                last = line;
            }
        };
        tokio::time::timeout(WAIT, read).await.expect("client finishes");
        let _ = self.child.wait().await;
        serde_json::from_str(&last).unwrap_or_else(|_| panic!("no JSON from approval_client.py: {last:?}"))
    }

    /// Runs a call to completion.
    async fn run(stack: &Stack, route: &str, tool: &str, arguments: Value) -> Value {
        Self::start(stack, route, tool, arguments).await.result().await
    }
}

/// The upstream's own per-tool call counter (its ungated `calls` tool).
async fn upstream_calls(stack: &Stack, route: &str) -> Value {
    let out = PyCall::run(stack, route, "calls", json!({})).await;
    assert_eq!(out["ok"], true, "{out}");
    serde_json::from_str(out["result"].as_str().expect("calls result")).expect("calls JSON")
}

/// Runs `mcp-tunnel approvals ARGS --state-dir DIR`.
async fn approvals_cli(state: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("approvals")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run mcp-tunnel approvals");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A loopback HTTP server that hands every request body it gets to the returned channel.
async fn webhook_receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind webhook");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (port, rx)
}

struct Setup {
    stack: Stack,
    _server: PyServer,
    state: PathBuf,
    audit: PathBuf,
    shared: Arc<GatewayShared>,
}

/// A stack whose `pay` route gates `charge` with `approval` (extra keys of `[routes.approval]`).
async fn setup(approval: &str) -> Setup {
    let server = PyServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let (state, audit) = (dir.join("state"), dir.join("audit.jsonl"));
    let config = format!(
        "state_dir = \"{}\"\n[audit]\nsink = \"file\"\npath = \"{}\"\n\
         [[routes]]\nhost = \"pay\"\nupstream = \"{}\"\n\
         [routes.approval]\ntools = [\"charge\", \"refund_*\"]\nvisible_arguments = [\"amount\"]\n{approval}\n",
        state.display(),
        audit.display(),
        server.upstream()
    );
    let stack = Stack::start(&config).await;
    let shared = stack.gateway.clone().expect("gateway shared state");
    Setup { stack, _server: server, state, audit, shared }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_and_deny_through_the_cli_while_ungated_calls_pass_and_the_webhook_hears_of_it() {
    let (port, mut notices) = webhook_receiver().await;
    let s = setup(&format!("timeout = \"5m\"\nwebhook = \"http://127.0.0.1:{port}/hooks/approval\"\n")).await;
    let state = s.state.as_path();

    // A gated call is held: the upstream's counter stays at zero, ungated calls complete.
    let held = PyCall::start(&s.stack, "pay", "charge", json!({"amount": 42, "card": "4111-1111-secret"})).await;
    let call = pending(&s.shared, 1).await.remove(0);
    assert_eq!((call.tool.as_str(), call.route.as_str()), ("charge", format!("pay.{DOMAIN}").as_str()));
    assert_eq!(call.id.len(), 16);
    assert_eq!(upstream_calls(&s.stack, "pay").await, json!({}), "the held call reached the upstream");
    assert_eq!(s.shared.approvals.len(), 1, "the gated call still waits after the ungated one finished");
    let scrape = s.shared.metrics.render(&[]);
    assert!(scrape.contains("mcp_tunnel_gateway_approvals_pending 1\n"), "{scrape}");

    // The webhook notice: id, route, tool, visible arguments only, deadline.
    let notice = tokio::time::timeout(WAIT, notices.recv()).await.expect("webhook notice").expect("notice");
    assert_eq!(notice["id"], call.id.as_str());
    assert_eq!(notice["tool"], "charge");
    assert_eq!(notice["route"], format!("pay.{DOMAIN}"));
    assert_eq!(notice["arguments"], json!({"amount": 42, "card": "[redacted]"}));
    assert!(notice["deadline"].as_str().is_some_and(|d| d.ends_with('Z')), "{notice}");

    // What the approver sees.
    let (ok, list) = approvals_cli(state, &["list"]).await;
    assert!(ok && list.contains(&call.id) && list.contains("charge"), "{list}");
    let (ok, show) = approvals_cli(state, &["show", &call.id, "--json"]).await;
    assert!(ok, "{show}");
    let shown: Value = serde_json::from_str(show.trim()).expect("show --json");
    assert_eq!(shown["arguments"], json!({"amount": 42, "card": "[redacted]"}));
    assert!(!show.contains("1111-secret"), "a redacted argument reached the approver");

    let (ok, out) = approvals_cli(state, &["approve", &call.id, "--reason", "ticket OPS-7"]).await;
    assert!(ok && out.contains("approved"), "{out}");
    let out = held.result().await;
    assert_eq!(out["result"], "charged 42", "{out}");
    assert_eq!(upstream_calls(&s.stack, "pay").await, json!({"charge": 1}));
    let (ok, again) = approvals_cli(state, &["approve", &call.id]).await;
    assert!(!ok && again.contains("not found"), "a decided call cannot be decided again: {again}");

    // Denied: a JSON-RPC error naming the id and the reason; the upstream never sees it.
    let held = PyCall::start(&s.stack, "pay", "charge", json!({"amount": 9000})).await;
    let denied = pending(&s.shared, 1).await.remove(0);
    let (ok, out) = approvals_cli(state, &["deny", &denied.id]).await;
    assert!(!ok, "deny without --reason is refused by the CLI: {out}");
    let (ok, out) = approvals_cli(state, &["deny", &denied.id, "--reason", "over budget"]).await;
    assert!(ok && out.contains("denied"), "{out}");
    let out = held.result().await;
    assert_eq!(out["error"]["code"], -32011, "{out}");
    let message = out["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&denied.id) && message.contains("over budget"), "{message}");
    assert_eq!(upstream_calls(&s.stack, "pay").await, json!({"charge": 1}), "a denied call reached the upstream");

    let scrape = s.shared.metrics.render(&[]);
    assert!(scrape.contains("mcp_tunnel_gateway_approvals_pending 0\n"), "{scrape}");
    for outcome in ["approved", "denied"] {
        let line = format!("mcp_tunnel_gateway_approval_decisions_total{{outcome=\"{outcome}\"}} 1\n");
        assert!(scrape.contains(&line), "{line} not in {scrape}");
    }
    let uid = rustix::process::getuid().as_raw();
    let approver = format!("uid:{uid} via socket");
    let records = audit_records(&s.audit, |r| {
        r.iter().filter(|x| x["tool"] == "charge" && x["event"] == "mcp").count() >= 2
            && r.iter().filter(|x| x["event"] == "control").count() >= 2
    })
    .await;
    let approved = records.iter().find(|r| r["approval"] == "approved").expect("approved call audited");
    assert_eq!(approved["approval_id"], call.id.as_str());
    assert_eq!(approved["approver"], approver.as_str());
    assert_eq!(approved["decision"], "allow");
    assert!(approved["approval_wait_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{approved}");
    let refused = records.iter().find(|r| r["approval"] == "denied").expect("denied call audited");
    assert_eq!(
        (refused["approval_id"].as_str(), refused["reason"].as_str()),
        (Some(&*denied.id), Some("approval_denied"))
    );
    assert_eq!(refused["jsonrpc_error"], -32011);
    let ungated = records.iter().find(|r| r["tool"] == "calls").expect("ungated call audited");
    assert_eq!(ungated["approval"], "not_required");
    let control: Vec<&Value> = records.iter().filter(|r| r["event"] == "control").collect();
    assert_eq!(control[0]["action"], "approve");
    assert_eq!(control[0]["note"], "ticket OPS-7");
    assert_eq!(control[1]["action"], "deny");
    assert_eq!((control[1]["actor"].as_str(), control[1]["note"].as_str()), (Some(&*approver), Some("over budget")));
    assert!(!std::fs::read_to_string(&s.audit).unwrap_or_default().contains("1111-secret"), "secret reached the audit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_call_expires_with_an_error_naming_it() {
    let s = setup("timeout = \"3s\"\n").await;
    // Timeout: an error naming the id; the upstream never sees the call.
    let out = PyCall::run(&s.stack, "pay", "charge", json!({"amount": 1})).await;
    assert_eq!(out["error"]["code"], -32012, "{out}");
    assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains("expired")), "{out}");
    assert!(s.shared.approvals.is_empty());
    assert_eq!(upstream_calls(&s.stack, "pay").await, json!({}));
    let records = audit_records(&s.audit, |r| r.iter().any(|x| x["approval"] == "expired")).await;
    assert!(records.iter().any(|r| r["approval"] == "expired" && r["jsonrpc_error"] == -32012), "{records:#?}");
}

/// The timeout here is far longer than the test: a call that expired while a slow
/// machine started the next Python client would look like a cancellation that never came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_is_refused_and_a_departed_client_cancels() {
    let s = setup("timeout = \"300s\"\nmax_pending = 1\n").await;

    // The cap: while one call waits, the next one is refused at once.
    let first = PyCall::start(&s.stack, "pay", "charge", json!({"amount": 2})).await;
    let waiting = pending(&s.shared, 1).await.remove(0);
    let over = PyCall::run(&s.stack, "pay", "refund_all", json!({})).await;
    assert_eq!(over["error"]["code"], -32013, "{over}");

    // Client gone: the approval is cancelled and withdrawn.
    drop(first); // kill_on_drop: the client process dies, its connections close
    pending(&s.shared, 0).await;
    assert_eq!(upstream_calls(&s.stack, "pay").await, json!({}));
    let records = audit_records(&s.audit, |r| r.iter().any(|x| x["approval"] == "cancelled")).await;
    let cancelled = records.iter().find(|r| r["approval"] == "cancelled").expect("cancelled");
    assert_eq!(cancelled["approval_id"], waiting.id.as_str());
    assert_eq!(cancelled["outcome"], "aborted");
    assert!(records.iter().any(|r| r["reason"] == "approval_queue_full" && r["tool"] == "refund_all"), "{records:#?}");
}

/// One HTTP/1.1 connection through the edge to `pay`, for requests whose bodies are read
/// frame by frame.
async fn raw_connection(stack: &Stack) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tls = crate::common::http::tls(stack.public, &format!("pay.{DOMAIN}"), &stack.inner_ca()).await.expect("tls");
    crate::common::http::h1(tls).await.expect("h1").0
}

fn post(body: Value, session: Option<&str>, accept: &str) -> hyper::Request<Full<Bytes>> {
    let mut req = hyper::Request::post("/mcp")
        .header("host", format!("pay.{DOMAIN}"))
        .header("content-type", "application/json")
        .header("accept", accept)
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.body(Full::new(Bytes::from(body.to_string()))).expect("request")
}

const BOTH: &str = "application/json, text/event-stream";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_clients_get_keepalive_comments_then_the_answer_and_plain_clients_just_wait() {
    let s = setup("keepalive = \"100ms\"\n").await;
    let mut h = raw_connection(&s.stack).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}});
    let resp = h.send_request(post(init, None, BOTH)).await.expect("initialize");
    let session = resp.headers()["mcp-session-id"].to_str().expect("session").to_owned();
    resp.into_body().collect().await.expect("initialize body");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    h.ready().await.expect("connection ready");
    let resp = h.send_request(post(note, Some(&session), BOTH)).await.expect("initialized");
    resp.into_body().collect().await.expect("initialized body");

    // Headers at once, then comment lines while the call waits.
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "charge", "arguments": {"amount": 7}}});
    h.ready().await.expect("connection ready");
    let resp = tokio::time::timeout(WAIT, h.send_request(post(call, Some(&session), BOTH)))
        .await
        .expect("headers arrive while the call waits")
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let id = pending(&s.shared, 1).await.remove(0).id.clone();
    let mut body = resp.into_body();
    let mut seen = String::new();
    let comment = format!(": waiting for approval {id}\n\n");
    while seen.matches(&comment).count() < 3 {
        let frame = tokio::time::timeout(WAIT, body.frame()).await.expect("keepalive").expect("frame").expect("ok");
        seen.push_str(&String::from_utf8_lossy(frame.data_ref().expect("data")));
    }
    assert_eq!(seen.replace(&comment, ""), "", "only comment lines while waiting: {seen:?}");

    // Approved: the upstream's answer follows in the same stream.
    let decision = mcp_tunnel::approval::Decision { approved: true, approver: "test".into(), reason: None };
    s.shared.approvals.decide(&id, decision).expect("decide");
    let rest = tokio::time::timeout(WAIT, body.collect()).await.expect("answer").expect("body").to_bytes();
    let rest = String::from_utf8_lossy(&rest);
    let data = rest
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find(|d| d.contains("\"id\":7"))
        .unwrap_or_else(|| panic!("no answer to id 7 in {rest:?}"));
    let answer: Value = serde_json::from_str(data).expect("answer JSON");
    assert_eq!(answer["result"]["content"][0]["text"], "charged 7", "{answer}");

    // A client that does not accept SSE just waits, then gets the JSON-RPC refusal.
    let mut h = raw_connection(&s.stack).await;
    let call = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "charge", "arguments": {"amount": 8}}});
    let waiting = tokio::spawn(h.send_request(post(call, Some(&session), "application/json")));
    let id = pending(&s.shared, 1).await.remove(0).id.clone();
    assert!(!waiting.is_finished());
    let decision =
        mcp_tunnel::approval::Decision { approved: false, approver: "test".into(), reason: Some("no".into()) };
    s.shared.approvals.decide(&id, decision).expect("decide");
    let resp = tokio::time::timeout(WAIT, waiting).await.expect("answer").expect("join").expect("response");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.expect("body").to_bytes()).expect("json");
    assert_eq!((body["id"].clone(), body["error"]["code"].clone()), (json!(8), json!(-32011)), "{body}");
    assert_eq!(body["error"]["data"]["approval_id"], id.as_str());
}

#[test]
fn approval_config_mistakes_name_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_pki(dir.path(), "certs", "acme");
    let head = "tunnel_domain = \"t.test\"\n[edge]\naddress = \"127.0.0.1:7844\"\nca = \"certs/edge/ca.pem\"\n\
                cert = \"certs/tunnel/gateway.pem\"\nkey = \"certs/tunnel/gateway.key\"\n[inner_tls]\n\
                cert = \"certs/inner/server.pem\"\nkey = \"certs/inner/server.key\"\n\
                [[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\n[routes.approval]\n";
    let cases = [
        ("tools = []\n", ":14: `routes[0].approval.tools`: name at least one tool"),
        ("tools = [\"\"]\n", ":14: `routes[0].approval.tools[0]`: empty name pattern"),
        ("tools = [\"x\"]\nmax_pending = 0\n", ":15: `routes[0].approval.max_pending`: expected 1 to 10000"),
        ("tools = [\"x\"]\ntimeout = \"0s\"\n", ":15: `routes[0].approval.timeout`: must be greater than zero"),
        ("tools = [\"x\"]\nkeepalive = \"soon\"\n", ":15: `routes[0].approval.keepalive`: expected a duration"),
        (
            "tools = [\"x\"]\nwebhook = \"ftp://h/x\"\n",
            ":15: `routes[0].approval.webhook`: scheme must be http:// or https://",
        ),
        (
            "tools = [\"x\"]\nwebhook = \"https://10.0.0.1/x\"\n",
            ":15: `routes[0].approval.webhook`: an https:// webhook needs `webhook_ca`",
        ),
        ("tools = [\"x\"]\nwebhook = \"http://u:p@10.0.0.1/x\"\n", ":15: `routes[0].approval.webhook`: credentials"),
        (
            "tools = [\"x\"]\nwebhook_ca = \"certs/inner/ca.pem\"\n",
            ":15: `routes[0].approval.webhook_ca`: only applies with `webhook`",
        ),
        ("tools = [\"x\"]\ncolour = 1\n", "unknown field `colour`"),
    ];
    for (table, want) in cases {
        let path = dir.path().join("g.toml");
        std::fs::write(&path, format!("{head}{table}")).expect("write");
        let err = mcp_tunnel::config::gateway::GatewayConfig::load(&path).expect_err(table).to_string();
        assert!(err.contains(want), "{table:?}: got {err}");
    }
    let path = dir.path().join("g.toml");
    let ok = "tools = [\"x\"]\nwebhook = \"https://10.0.0.1/x\"\nwebhook_ca = \"certs/inner/ca.pem\"\n";
    std::fs::write(&path, format!("{head}{ok}")).expect("write");
    mcp_tunnel::config::gateway::GatewayConfig::load(&path).expect("valid approval table loads");
}
