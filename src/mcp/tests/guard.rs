use super::*;
use crate::mcp::policy::Glob;
use serde_json::json;
use std::sync::Mutex;

fn policy() -> Arc<ToolPolicy> {
    Arc::new(ToolPolicy {
        deny: vec![Glob::new("shell*").unwrap()],
        deny_methods: vec![Glob::new("sampling/*").unwrap(), Glob::new("elicitation/*").unwrap()],
        ..Default::default()
    })
}

fn judge(guard: &Guard, v: &Value) -> (Judged, Findings) {
    let mut found = Findings::default();
    let judged = guard.judge(v.to_string().as_bytes(), &mut found);
    (judged, found)
}

fn rewritten(j: Judged) -> Value {
    match j {
        Judged::Rewritten(bytes) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("expected a rewrite, got {other:?}"),
    }
}

#[test]
fn denied_server_requests_are_dropped_and_handed_to_the_sink() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let guard = Guard::new(policy()).on_refused(Some(Box::new(move |m| s.lock().unwrap().push(m))));
    let sampling = json!({"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage", "params": {}});
    assert_eq!(judge(&guard, &sampling).0, Judged::Dropped);
    let note = json!({"jsonrpc": "2.0", "method": "elicitation/complete"});
    assert_eq!(judge(&guard, &note).0, Judged::Dropped);
    // In a batch: the denied one goes, the rest stays.
    let batch = json!([sampling, {"jsonrpc": "2.0", "id": 1, "result": {}}]);
    let (j, found) = judge(&guard, &batch);
    assert_eq!(rewritten(j), json!([{"jsonrpc": "2.0", "id": 1, "result": {}}]));
    assert_eq!(found.server_refused, 1);
    assert_eq!(judge(&guard, &json!([note])).0, Judged::Dropped, "a batch of nothing allowed is dropped whole");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], ServerMessage { method: "sampling/createMessage".into(), id: Some(json!(7)) });
    assert_eq!(seen[1].id, None);
    assert_eq!(seen.len(), 4);
    // Allowed server requests pass byte for byte.
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    assert_eq!(judge(&guard, &ping).0, Judged::Same);
}

#[test]
fn listings_are_learned_whole_then_filtered_in_batches_too() {
    let pages = Arc::new(Mutex::new(Vec::new()));
    let p = pages.clone();
    let guard = Guard::new(policy())
        .learn(Some(Box::new(move |tools: &[Value]| p.lock().unwrap().push(tools.len()))))
        .hide(Some(Box::new(|name: &str| name == "unpinned")));
    let listing = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "echo"}, {"name": "shell_exec"}, {"name": "unpinned"}, {"title": "no name"}
    ]}});
    let batch = json!([listing, {"jsonrpc": "2.0", "id": 2, "result": {}}]);
    let (j, found) = judge(&guard, &batch);
    let out = rewritten(j);
    assert_eq!(out[0]["result"]["tools"], json!([{"name": "echo"}]));
    assert_eq!(out[1]["id"], 2);
    assert_eq!(found.tools_removed, 3);
    assert_eq!(*pages.lock().unwrap(), vec![4], "the sink saw the upstream's whole list");
}

#[test]
fn unreadable_text_is_uninspectable_and_answered_for_each_request() {
    let guard = Guard::new(policy()).answering(vec![json!(3), json!("b")], true);
    let mut found = Findings::default();
    for bad in [&b"not json"[..], br#"{"id":1,"result":{"tools":[]},"result":{"tools":[{"name":"shell"}]}}"#] {
        assert_eq!(guard.judge(bad, &mut found), Judged::Uninspectable, "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(guard.judge(b"  \n", &mut found), Judged::Same, "an empty priming event is no message");
    // A method beside a result full of tools: a client could read either.
    let both = json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "result": {"tools": [{"name": "shell"}]}});
    assert_eq!(judge(&guard, &both).0, Judged::Uninspectable);
    assert_eq!(judge(&guard, &json!([{"jsonrpc": "2.0", "id": 2, "result": {}}, both])).0, Judged::Uninspectable);
    assert_eq!(judge(&guard, &json!({"jsonrpc": "2.0", "method": 5})).0, Judged::Uninspectable);
    let reply: Value = serde_json::from_slice(&guard.uninspectable_reply()).unwrap();
    assert_eq!(reply[0]["id"], 3);
    assert_eq!(reply[1]["id"], "b");
    assert_eq!(reply[1]["error"]["code"], -32016);
    let single: Value = serde_json::from_slice(&Guard::new(policy()).uninspectable_reply()).unwrap();
    assert!(single["id"].is_null() && single["error"]["code"] == -32016, "{single}");
}

#[test]
fn list_changed_is_noticed_and_errors_recorded() {
    let hits = Arc::new(Mutex::new(0));
    let h = hits.clone();
    let guard = Guard::new(policy()).on_list_changed(Some(Box::new(move || *h.lock().unwrap() += 1)));
    let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
    assert_eq!(judge(&guard, &changed).0, Judged::Same);
    assert_eq!(*hits.lock().unwrap(), 1);
    let err = json!([{"jsonrpc": "2.0", "id": 9, "error": {"code": -32000, "message": "x"}}]);
    let (j, found) = judge(&guard, &err);
    assert_eq!((j, found.errors), (Judged::Same, vec![(json!(9), -32000)]));
    assert_eq!(probe_errors(err.to_string().as_bytes()), vec![(json!(9), -32000)]);
}
