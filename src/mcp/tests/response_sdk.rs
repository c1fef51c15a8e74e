//! The inspected body against captured output of the official Python SDK.

use super::*;

/// Bytes captured from the official Python SDK (`mcp` 2.3.0, `MCPServer` with tools add, search and
/// shell_exec, over Streamable HTTP) as they came off the wire: the `tools/list` answer in a
/// 2025-11-25 session (an SSE event) and as a sessionless 2026-07-28 request (a JSON body).
const PY_SDK_TOOLS_LIST_SSE: &[u8] = include_bytes!("fixtures/py_sdk_tools_list.sse");
const PY_SDK_TOOLS_LIST_2026: &[u8] = include_bytes!("fixtures/py_sdk_tools_list_2026.json");

#[tokio::test]
async fn python_sdk_2026_json_tools_list_is_filtered() {
    let original: Value = serde_json::from_slice(PY_SDK_TOOLS_LIST_2026).unwrap();
    assert_eq!(tool_names(&original), ["add", "search", "shell_exec"]);
    let (done, store) = recorder();
    let b = InspectedBody::new(
        Full::new(Bytes::from_static(PY_SDK_TOOLS_LIST_2026)),
        Some("application/json"),
        Some(guard()),
        done,
    );
    let out: Value = serde_json::from_slice(&b.collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(tool_names(&out), ["add", "search"]);
    // Everything else of the result (2026-07-28 fields included) is kept.
    assert_eq!(out["result"]["resultType"], original["result"]["resultType"]);
    assert_eq!(out["result"]["cacheScope"], original["result"]["cacheScope"]);
    assert_eq!(out["result"]["tools"][0], original["result"]["tools"][0]);
    assert_eq!(store.lock().unwrap()[0].tools_removed, 1);
}

#[tokio::test]
async fn python_sdk_tools_list_stream_is_filtered() {
    let original = PY_SDK_TOOLS_LIST_SSE;
    let mut p = SseParser::new(1 << 20);
    p.push(original);
    let Some(SseItem::Event(ev)) = p.next_item() else { panic!("fixture is not an SSE event") };
    let v: Value = serde_json::from_str(&ev.data).unwrap();
    let names = tool_names(&v);
    assert!(names.contains(&"shell_exec".to_owned()) && names.contains(&"add".to_owned()), "{names:?}");

    for step in [1, 13, original.len()] {
        let (tx, body) = chan();
        for c in original.chunks(step) {
            send(&tx, c);
        }
        drop(tx);
        let (done, store) = recorder();
        let b = InspectedBody::new(body, Some("text/event-stream"), Some(guard()), done);
        let out = b.collect().await.unwrap().to_bytes();
        let mut p = SseParser::new(1 << 20);
        p.push(&out);
        let Some(SseItem::Event(filtered)) = p.next_item() else { panic!("output is not an SSE event") };
        assert_eq!(filtered.event, ev.event);
        assert_eq!(filtered.id, ev.id);
        let fv: Value = serde_json::from_str(&filtered.data).unwrap();
        assert!(!tool_names(&fv).iter().any(|n| n.starts_with("shell")));
        assert_eq!(tool_names(&fv).len(), names.len() - 1);
        assert_eq!(store.lock().unwrap()[0].tools_removed, 1);
    }
}

/// A tool sink that stores the names of every page it gets.
fn tool_recorder() -> (ToolSink, Arc<Mutex<Vec<Vec<String>>>>) {
    let store = Arc::new(Mutex::new(Vec::new()));
    let s = store.clone();
    let sink: ToolSink = Box::new(move |tools: &[Value]| {
        let names = tools.iter().map(|t| t["name"].as_str().unwrap_or("?").to_owned()).collect();
        s.lock().unwrap().push(names);
    });
    (sink, store)
}

#[tokio::test]
async fn tool_sink_gets_each_page_unfiltered_and_the_bytes_pass_unchanged() {
    // Two pages as SSE (a guard that hides nothing), then one JSON body with a filter.
    let (tx, body) = chan();
    let page1 = sse_event(&tools_result(1));
    let page2 = sse_event(&json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "late"}]}}));
    for c in [page1.as_bytes(), PROGRESS.as_bytes(), page2.as_bytes()] {
        send(&tx, c);
    }
    drop(tx);
    let (sink, pages) = tool_recorder();
    let (done, _) = recorder();
    let learning = Guard::new(Arc::default()).learn(Some(sink));
    let b = InspectedBody::new(body, Some("text/event-stream"), Some(learning), done);
    let out = b.collect().await.unwrap().to_bytes();
    let out = std::str::from_utf8(&out).unwrap();
    assert!(out.ends_with(&format!("{PROGRESS}{page2}")), "unchanged events stay byte for byte: {out}");
    assert!(!out.contains("{\"inputSchema\":{\"type\":\"object\"}}"), "a nameless tool is never listed: {out}");
    assert_eq!(*pages.lock().unwrap(), vec![vec!["add", "shell_exec", "search", "?"], vec!["late"]]);

    let (tx, body) = chan();
    send(&tx, tools_result(3).to_string().as_bytes());
    drop(tx);
    let (sink, pages) = tool_recorder();
    let (done, _) = recorder();
    let b = InspectedBody::new(body, Some("application/json"), Some(guard().learn(Some(sink))), done);
    let out: Value = serde_json::from_slice(&b.collect().await.unwrap().to_bytes()).unwrap();
    assert!(!tool_names(&out).contains(&"shell_exec".to_owned()), "still filtered");
    assert!(pages.lock().unwrap()[0].contains(&"shell_exec".to_owned()), "the sink saw the upstream's list");
}
