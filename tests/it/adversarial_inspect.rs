//! Attacks on the gateway's response side (issue 13 items 3, 7, 8): a server that asks the
//! client for sampling or elicitation the route denies, a denied tool smuggled into a
//! batch, an encoded, oversized, duplicate-keyed or mistyped answer, a GET replay, and an
//! upstream restarted with a changed tool before the client lists tools. Real edge and
//! gateway on loopback; the official Python SDK as client and server where one is needed, a
//! hand-written upstream where the attack needs bytes no SDK sends.

use std::sync::Arc;

use crate::common::python::{client, PyServer};
use crate::common::recorder::{canned, ran, Recorder, Seen};
use crate::common::{audit_records, http, poll, Stack, DOMAIN};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

/// A listing with one allowed and one denied tool.
fn listing(id: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
        {"name": "echo", "inputSchema": {"type": "object"}},
        {"name": "shell_exec", "inputSchema": {"type": "object"}}
    ]}})
}

fn ids_of(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items.iter().map(|m| m["id"].clone()).collect(),
        Ok(m) => vec![m["id"].clone()],
        Err(_) => vec![],
    }
}

fn route(name: &str, upstream: &str, extra: &str) -> String {
    format!("[[routes]]\nhost = \"{name}\"\nupstream = \"{upstream}\"\n{extra}\n[routes.policy]\ndeny_tools = [\"shell*\"]\ndeny_methods = [\"sampling/*\", \"elicitation/*\"]\n")
}

async fn post(stack: &Stack, name: &str, body: &str, headers: &[(&str, &str)]) -> http::Response<Bytes> {
    let mut req = http::mcp_post(&format!("{name}.{DOMAIN}"), body);
    for (k, v) in headers {
        req.headers_mut()
            .insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("header"));
    }
    http::send(stack.public, &format!("{name}.{DOMAIN}"), &stack.inner_ca(), req).await.expect("response")
}

fn body_text(r: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_server_requests_never_reach_the_client_and_the_server_gets_an_error() {
    let server = PyServer::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let audit = tmp.path().join("audit.jsonl");
    let routes = format!(
        "[audit]\nsink = \"file\"\npath = \"{}\"\n{}{}",
        audit.display(),
        route("ask", &server.upstream(), ""),
        route("open", &server.upstream(), "").replace("deny_methods = [\"sampling/*\", \"elicitation/*\"]\n", "")
    );
    let stack = Stack::start(&routes).await;

    // The SDK server asks the SDK client to sample and to elicit during `ask`.
    let out = client(&stack.url("ask"), &stack.inner_ca_path(), &["--mode", "legacy", "ask"]).await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["reached"], json!({"sampling": 0, "elicitation": 0}), "nothing reached the client: {out}");
    assert_eq!(out["asked"]["sampling"], "error:-32010", "the server got the gateway's refusal: {out}");
    assert_eq!(out["asked"]["elicitation"], "error:-32010", "{out}");
    assert_eq!(out["echo"], "after", "the session goes on: {out}");

    // Without the deny, the same exchange reaches the client (the test can see it).
    let open = client(&stack.url("open"), &stack.inner_ca_path(), &["--mode", "legacy", "ask"]).await;
    assert_eq!(open["reached"], json!({"sampling": 1, "elicitation": 1}), "{open}");
    assert_eq!(open["asked"]["sampling"], "answered:sampled", "{open}");

    let records =
        audit_records(&audit, |r| r.iter().filter(|x| x["direction"] == "server_to_client").count() >= 2).await;
    let refused: Vec<&Value> = records.iter().filter(|x| x["direction"] == "server_to_client").collect();
    let methods: Vec<&str> = refused.iter().filter_map(|x| x["jsonrpc_method"].as_str()).collect();
    assert!(methods.contains(&"sampling/createMessage") && methods.contains(&"elicitation/create"), "{refused:?}");
    for r in refused {
        assert_eq!((r["decision"].as_str(), r["reason"].as_str()), (Some("deny"), Some("method_denied")), "{r}");
        assert_eq!(r["jsonrpc_error"], -32010);
        assert_eq!(r["route"], format!("ask.{DOMAIN}"));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_filtered_in_batches_sse_and_replays_and_unreadable_answers_are_refused() {
    // The upstream answers by what the test put in the request: a marker header picks the
    // attack, the body's ids are answered (so each answer matches its request).
    let answer = Arc::new(|seen: &Seen| {
        let attack = seen.headers.get("x-attack").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let ids = ids_of(&seen.body);
        let first = ids.first().cloned().unwrap_or(Value::Null);
        let json_ct = [("content-type", "application/json")];
        let sse_ct = [("content-type", "text/event-stream")];
        match attack.as_str() {
            // [tools/list, ping] answered as a batch.
            "batch" => canned(
                200,
                &json_ct,
                json!([listing(&ids[0]), {"jsonrpc": "2.0", "id": ids[1], "result": {}}]).to_string(),
            ),
            // The listing as an SSE event, after a notification.
            "sse" => canned(
                200,
                &sse_ct,
                format!(
                    "event: message\ndata: {}\n\nid: 2\ndata: {}\n\n",
                    json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}}),
                    listing(&first)
                ),
            ),
            "gzip" => canned(
                200,
                &[("content-type", "application/json"), ("content-encoding", "gzip")],
                listing(&first).to_string(),
            ),
            "plain" => canned(200, &[("content-type", "text/plain")], listing(&first).to_string()),
            "dup" => canned(
                200,
                &json_ct,
                format!(
                    r#"{{"jsonrpc":"2.0","id":{first},"result":{{"tools":[{{"name":"echo"}}]}},"result":{{"tools":[{{"name":"shell_exec"}}]}}}}"#
                ),
            ),
            "huge" => {
                let mut v = listing(&first);
                v["result"]["tools"][0]["description"] = json!("x".repeat(5 << 20));
                canned(200, &json_ct, v.to_string())
            }
            _ if seen.method == "GET" => canned(200, &sse_ct, format!("id: 9\ndata: {}\n\n", listing(&json!(1)))),
            _ => ran(seen),
        }
    });
    let upstream = Recorder::answering(answer).await;
    let stack = Stack::start(&route("list", &upstream.url(), "")).await;
    let list = |id: u32| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);

    let batch = format!(r#"[{},{{"jsonrpc":"2.0","id":2,"method":"ping"}}]"#, list(1));
    let r = post(&stack, "list", &batch, &[("x-attack", "batch")]).await;
    let v: Value = serde_json::from_slice(r.body()).expect("json");
    assert_eq!(v[0]["result"]["tools"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["result"]["tools"][0]["name"], "echo");
    assert_eq!(v[1]["id"], 2);

    let r = post(&stack, "list", &list(3), &[("x-attack", "sse")]).await;
    let text = body_text(&r);
    assert!(text.contains("\"echo\"") && !text.contains("shell_exec"), "{text}");
    assert!(text.contains("notifications/message"), "allowed events pass: {text}");

    // A GET stream resumed with Last-Event-ID replays a listing: filtered too.
    let host = format!("list.{DOMAIN}");
    let get = hyper::Request::get("/mcp")
        .header("host", &host)
        .header("accept", "text/event-stream")
        .header("last-event-id", "1")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let r = http::send(stack.public, &host, &stack.inner_ca(), get).await.expect("response");
    let text = body_text(&r);
    assert!(text.contains("id: 9") && text.contains("\"echo\"") && !text.contains("shell_exec"), "{text}");

    // Encoded or mistyped: refused before anything reaches the client.
    for attack in ["gzip", "plain"] {
        let r = post(&stack, "list", &list(4), &[("x-attack", attack)]).await;
        let text = body_text(&r);
        assert_eq!(r.status(), 502, "{attack}: {text}");
        assert!(text.contains("-32016") && !text.contains("shell_exec"), "{attack}: {text}");
    }
    // Duplicate keys (the client's parser may read the other one) and over the 4 MiB cap:
    // replaced by the gateway's error for the request's id.
    for attack in ["dup", "huge"] {
        let r = post(&stack, "list", &list(5), &[("x-attack", attack)]).await;
        let v: Value = serde_json::from_slice(r.body()).unwrap_or(Value::Null);
        assert_eq!((v["id"].clone(), v["error"]["code"].clone()), (json!(5), json!(-32016)), "{attack}: {v}");
    }
    // The gateway asked for an unencoded answer.
    let asked = upstream.seen();
    assert!(asked.iter().all(|s| s.headers.get("accept-encoding").is_some_and(|v| v == "identity")), "{asked:?}");
    // And an ordinary call still works.
    let r =
        post(&stack, "list", r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo"}}"#, &[]).await;
    assert!(body_text(&r).contains("recorder-ran"), "{}", body_text(&r));
}

/// One SDK session calling `stamp` without listing tools first (as `mcp.Client` does).
async fn call_stamp(stack: &Stack) -> Value {
    let out = client(
        &stack.url("pin"),
        &stack.inner_ca_path(),
        &["--mode", "legacy", "calls", "--call", "stamp={\"text\":\"x\"}"],
    )
    .await;
    out["calls"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_refuses_a_changed_tool_on_the_first_call_after_an_upstream_restart() {
    let server = PyServer::start().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let routes = format!(
        "state_dir = \"{}\"\n[[routes]]\nhost = \"pin\"\nupstream = \"{}\"\npinning = \"enforce\"\n",
        state.display(),
        server.upstream()
    );
    let stack = Stack::start(&routes).await;
    let shared = stack.gateway.clone().expect("gateway");
    let route = format!("pin.{DOMAIN}");
    // Wait for the listing at start, then pin what it saw.
    let listed = || shared.pins.status(&route, "stamp").1.is_some();
    poll::eventually(std::time::Duration::from_secs(20), "the gateway listing the tools", listed).await;
    let pinned = shared.pins.pin(&route, None, true, "test", "2026-12-03T00:00:00Z").expect("pin");
    assert!(pinned.iter().any(|(tool, _)| tool == "stamp"), "{pinned:?}");
    assert_eq!(call_stamp(&stack).await["text"], "stamped:x");

    // The upstream restarts on the same port with another `stamp` description. The client
    // calls without listing first: the new upstream connection makes the gateway re-list,
    // and the call is refused.
    let port = server.port.to_string();
    server.stop().await;
    let server = PyServer::start_with(&["--port", &port, "--variant", "1"]).await;
    let refused = call_stamp(&stack).await;
    assert_eq!(refused["code"], -32014, "{refused}");
    assert!(refused["message"].as_str().unwrap_or("").contains("changed since it was pinned"), "{refused}");

    // Under enforce, listings show only pinned tools: the changed one is hidden.
    let out = client(&stack.url("pin"), &stack.inner_ca_path(), &["--mode", "legacy", "calls", "--list"]).await;
    let tools: Vec<&str> =
        out["tools"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(tools.contains(&"echo") && !tools.contains(&"stamp"), "{out}");
    server.stop().await;
}
