//! The MCP-aware gateway with the official Python SDK on both ends: tool policy (denied
//! calls answered by the gateway, `tools/list` filtered), the audit trail with redacted
//! arguments, and a secret argument that reaches no log and no audit record.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::common::own_process;
use crate::common::python::{client, PyServer};
use crate::common::{self, audit_records, Stack};
use serde_json::Value;

/// Everything the process logs, at every level, from every crate.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Shared(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_tool_is_hidden_refused_and_audited_and_secrets_stay_out_of_logs() {
    // The capture is the process's global subscriber: installed where no other suite runs,
    // so it sees this test's gateway alone and no other test logs at TRACE into it.
    if own_process::ran_elsewhere(
        module_path!(),
        "denied_tool_is_hidden_refused_and_audited_and_secrets_stay_out_of_logs",
    )
    .await
    {
        return;
    }
    let logs = capture_logs();
    let server = PyServer::start().await;
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit = audit_dir.path().join("audit.jsonl");
    let config = format!(
        "[audit]\nsink = \"file\"\npath = \"{}\"\n[[routes]]\nhost = \"echo\"\nupstream = \"{}\"\n\
         [routes.policy]\ndeny_tools = [\"big\", \"rm_*\"]\n",
        audit.display(),
        server.upstream()
    );
    let stack = Stack::start(&config).await;
    for mode in ["legacy", "modern"] {
        let secret = format!("sk-live-{mode}-7f3a9c1e5b2d4f60");
        let out = client(
            &stack.url("echo"),
            &stack.inner_ca_path(),
            &["--mode", mode, "policy", "--denied", "big", "--secret", &secret],
        )
        .await;
        assert_eq!(out["ok"], true, "{mode}: {out}");
        let tools: Vec<&str> = out["tools"].as_array().expect("tools").iter().filter_map(Value::as_str).collect();
        assert!(tools.contains(&"echo") && !tools.contains(&"big"), "{mode}: tools/list not filtered: {tools:?}");
        assert_eq!(out["denied"]["called"], false, "{mode}: {out}");
        assert_eq!(out["denied"]["code"], -32010, "{mode}: {out}");
        assert_eq!(out["echo"], secret.as_str(), "{mode}: allowed tools still work");

        let records = audit_records(&audit, |r| {
            r.iter().any(|x| x["tool"] == "echo" && x["arguments"]["text"] == "[redacted]" && x["outcome"].is_string())
                && r.iter().filter(|x| x["tool"] == "big").count() >= if mode == "legacy" { 1 } else { 2 }
        })
        .await;
        let denied = records.iter().rev().find(|r| r["tool"] == "big").expect("denied call audited");
        assert_eq!(denied["decision"], "deny");
        assert_eq!(denied["reason"], "tool_denied");
        assert_eq!(denied["jsonrpc_error"], -32010);
        assert_eq!(denied["jsonrpc_method"], "tools/call");
        let echo = records.iter().rev().find(|r| r["tool"] == "echo").expect("echo audited");
        assert_eq!(echo["decision"], "allow");
        assert_eq!(echo["http_status"], 200);
        assert_eq!(echo["route"], format!("echo.{}", common::DOMAIN));
        assert!(echo["latency_ms"].is_number() && echo["bytes_out"].as_u64() > Some(0), "{echo}");
        let listed = records.iter().any(|r| r["jsonrpc_method"] == "tools/list" && r["decision"] == "allow");
        assert!(listed, "tools/list audited");
        if mode == "legacy" {
            assert!(echo["session_id"].is_string(), "a 2025-11-25 session id is recorded: {echo}");
        } else {
            assert_eq!(echo["protocol_version"], "2026-07-28", "{echo}");
        }
        let audit_text = std::fs::read_to_string(&audit).expect("audit file");
        assert!(!audit_text.contains(&secret[8..]), "{mode}: the secret reached the audit trail");
        let log_text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
        assert!(log_text.contains("proxied"), "the capture saw the gateway's debug log");
        assert!(!log_text.contains(&secret[8..]), "{mode}: the secret reached the log");
    }
}
