use super::*;
use http::{HeaderName, HeaderValue};
use serde_json::json;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn tools_call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": name, "arguments": {"city": "Oslo", "token": "s3cr3t"}}})
}

#[test]
fn legacy_session_request() {
    let h = headers(&[("Mcp-Session-Id", "abc-123"), ("MCP-Protocol-Version", "2025-11-25")]);
    let info = inspect_request(&h, &body(tools_call("get_weather"))).unwrap();
    assert_eq!(info.session_id.as_deref(), Some("abc-123"));
    assert_eq!(info.protocol_version.as_deref(), Some("2025-11-25"));
    assert!(!info.batch);
    let m = &info.messages[0];
    assert_eq!(m.kind, MessageKind::Request);
    assert_eq!(m.method.as_deref(), Some("tools/call"));
    assert_eq!(m.id, Some(json!(1)));
    assert_eq!(m.tool.as_deref(), Some("get_weather"));
    assert_eq!(m.arguments, Some(json!({"city": "Oslo", "token": "s3cr3t"})));
}

#[test]
fn initialize_reports_the_requested_version() {
    let b = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                   "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}});
    let info = inspect_request(&HeaderMap::new(), &body(b)).unwrap();
    assert_eq!(info.protocol_version.as_deref(), Some("2025-06-18"));
    assert_eq!(info.messages[0].method.as_deref(), Some("initialize"));
}

#[test]
fn modern_request_with_mirrored_headers_and_meta() {
    let b = json!({"jsonrpc": "2.0", "id": "r1", "method": "tools/call", "params": {
        "name": "get_weather", "arguments": {"location": "Seattle"},
        "_meta": {META_PROTOCOL_VERSION: "2026-07-28", "traceparent": TP,
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let h =
        headers(&[("mcp-method", "tools/call"), ("mcp-name", "get_weather"), ("mcp-protocol-version", "2026-07-28")]);
    let info = inspect_request(&h, &body(b.clone())).unwrap();
    assert_eq!(info.protocol_version.as_deref(), Some("2026-07-28"));
    assert_eq!(info.trace_id.as_deref(), Some(TRACE));
    assert_eq!(info.header_method.as_deref(), Some("tools/call"));
    assert_eq!(info.header_name.as_deref(), Some("get_weather"));
    assert_eq!(info.messages[0].tool.as_deref(), Some("get_weather"));
    // Without the version header, the body's `_meta` supplies it.
    let info = inspect_request(&HeaderMap::new(), &body(b)).unwrap();
    assert_eq!(info.protocol_version.as_deref(), Some("2026-07-28"));
}

#[test]
fn header_mismatches_are_refused() {
    let b = body(tools_call("get_weather"));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("mcp-method", "tools/list")], "Mcp-Method"),
        (&[("mcp-method", "tools/call"), ("mcp-name", "delete_all")], "Mcp-Name"),
        (&[("mcp-name", "delete_all")], "Mcp-Name"),
        (&[("mcp-method", "Tools/Call")], "Mcp-Method"), // values are case-sensitive
    ];
    for (pairs, header) in cases {
        let err = inspect_request(&headers(pairs), &b).unwrap_err();
        assert_eq!(err, InspectError::HeaderMismatch { header, id: Some(json!(1)) }, "{pairs:?}");
        assert_eq!(err.jsonrpc_code(), -32020);
        assert_eq!(err.request_id(), Some(&json!(1)));
    }
    // Protocol version header vs `_meta`.
    let b = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}}});
    let err = inspect_request(&headers(&[("mcp-protocol-version", "2025-11-25")]), &body(b)).unwrap_err();
    assert!(matches!(err, InspectError::HeaderMismatch { header: "MCP-Protocol-Version", .. }));
    // resources/read compares Mcp-Name with params.uri; prompts/get with params.name.
    let b = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "file:///a"}});
    assert!(inspect_request(&headers(&[("mcp-name", "file:///a")]), &body(b.clone())).is_ok());
    assert!(inspect_request(&headers(&[("mcp-name", "file:///b")]), &body(b)).is_err());
    let b = json!({"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "review"}});
    let info = inspect_request(&headers(&[("mcp-name", "review")]), &body(b.clone())).unwrap();
    assert_eq!(info.messages[0].prompt.as_deref(), Some("review"));
    assert!(inspect_request(&headers(&[("mcp-name", "other")]), &body(b)).is_err());
}

#[test]
fn header_on_a_response_body_is_a_mismatch() {
    let b = json!({"jsonrpc": "2.0", "id": 9, "result": {}});
    let err = inspect_request(&headers(&[("mcp-method", "tools/call")]), &body(b.clone())).unwrap_err();
    assert!(matches!(err, InspectError::HeaderMismatch { header: "Mcp-Method", .. }));
    let info = inspect_request(&HeaderMap::new(), &body(b)).unwrap();
    assert_eq!(info.messages[0].kind, MessageKind::Response);
    assert_eq!(info.messages[0].id, Some(json!(9)));
}

#[test]
fn base64_sentinel_names_are_decoded_before_comparing() {
    // "Hello, 世界" as the spec's example encodes it.
    let b = body(tools_call("Hello, 世界"));
    let info = inspect_request(&headers(&[("mcp-name", "=?base64?SGVsbG8sIOS4lueVjA==?=")]), &b).unwrap();
    assert_eq!(info.header_name.as_deref(), Some("Hello, 世界"));
    // The encoded form itself is not the body's value.
    let b2 = body(tools_call("=?base64?SGVsbG8sIOS4lueVjA==?="));
    assert!(inspect_request(&headers(&[("mcp-name", "=?base64?SGVsbG8sIOS4lueVjA==?=")]), &b2).is_err());
    for bad in ["=?base64?!!!?=", "=?base64?SGVsbG8?=", "=?base64?/w==?="] {
        let err = inspect_request(&headers(&[("mcp-name", bad)]), &b).unwrap_err();
        assert!(matches!(err, InspectError::InvalidHeader { header: "Mcp-Name", .. }), "{bad}: {err}");
    }
}

#[test]
fn repeated_or_non_ascii_headers_are_refused() {
    let err =
        inspect_request(&headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/list")]), b"").unwrap_err();
    assert_eq!(err, InspectError::InvalidHeader { header: "Mcp-Method", reason: "repeated" });
    let mut h = HeaderMap::new();
    h.insert("mcp-name", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
    assert!(matches!(inspect_request(&h, b"").unwrap_err(), InspectError::InvalidHeader { header: "Mcp-Name", .. }));
    let err = inspect_request(&headers(&[("mcp-session-id", "has space")]), b"").unwrap_err();
    assert!(matches!(err, InspectError::InvalidHeader { header: "Mcp-Session-Id", .. }));
}

#[test]
fn empty_body_uses_headers_only() {
    let h = headers(&[("mcp-session-id", "s1"), ("mcp-method", "tools/call"), ("mcp-name", "x"), ("traceparent", TP)]);
    for b in [&b""[..], b"  \r\n"] {
        let info = inspect_request(&h, b).unwrap();
        assert!(info.messages.is_empty());
        assert!(!info.batch);
        assert_eq!(info.session_id.as_deref(), Some("s1"));
        assert_eq!(info.header_method.as_deref(), Some("tools/call"));
        assert_eq!(info.header_name.as_deref(), Some("x"));
        assert_eq!(info.trace_id.as_deref(), Some(TRACE));
    }
}

#[test]
fn batches_notifications_and_responses() {
    let b = json!([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 5, "method": "resources/subscribe", "params": {"uri": "file:///x"}},
        {"jsonrpc": "2.0", "id": "s-1", "error": {"code": -1, "message": "no"}},
        {"jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": ["positional"]}
    ]);
    let info = inspect_request(&HeaderMap::new(), &body(b)).unwrap();
    assert!(info.batch);
    let kinds: Vec<_> = info.messages.iter().map(|m| m.kind).collect();
    use MessageKind::*;
    assert_eq!(kinds, [Notification, Request, Response, Request]);
    assert_eq!(info.messages[0].id, None);
    assert_eq!(info.messages[1].resource_uri.as_deref(), Some("file:///x"));
    assert_eq!(info.messages[2].id, Some(json!("s-1")));
    // With Mcp-Method, every message of a batch must carry that method.
    let b = json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "x"}}]);
    let err = inspect_request(&headers(&[("mcp-method", "tools/list")]), &body(b)).unwrap_err();
    assert_eq!(err, InspectError::HeaderMismatch { header: "Mcp-Method", id: Some(json!(2)) });
}

#[test]
fn malformed_json_rpc_is_refused_with_a_reason() {
    let cases: &[(Value, &str)] = &[
        (json!([]), "empty batch"),
        (json!("x"), "top-level value is not an object or array"),
        (json!({"id": 1, "method": "x"}), "jsonrpc member is not \"2.0\""),
        (json!({"jsonrpc": "1.0", "id": 1, "method": "x"}), "jsonrpc member is not \"2.0\""),
        (json!({"jsonrpc": "2.0", "id": 1, "method": 5}), "method is not a string"),
        (json!({"jsonrpc": "2.0", "id": null, "method": "x"}), "request id must be a string or number"),
        (json!({"jsonrpc": "2.0", "id": {}, "method": "x"}), "request id must be a string or number"),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": 3}), "params must be an object or array"),
        (json!({"jsonrpc": "2.0", "id": 1}), "response must have exactly one of result and error"),
        (
            json!({"jsonrpc": "2.0", "id": 1, "result": 1, "error": {}}),
            "response must have exactly one of result and error",
        ),
        (json!({"jsonrpc": "2.0", "result": 1}), "response id must be a string, number or null"),
        (json!({"jsonrpc": "2.0", "id": 1, "method": "x", "result": 1}), "message has both method and result/error"),
    ];
    for (v, reason) in cases {
        let err = inspect_request(&HeaderMap::new(), &body(v.clone())).unwrap_err();
        assert_eq!(err, InspectError::NotJsonRpc { index: 0, reason }, "{v}");
        assert_eq!(err.jsonrpc_code(), -32600);
    }
    let err = inspect_request(&HeaderMap::new(), &body(json!([{"jsonrpc": "2.0", "method": "a"}, 7]))).unwrap_err();
    assert_eq!(err, InspectError::NotJsonRpc { index: 1, reason: "batch element is not an object" });
}

#[test]
fn name_bearing_methods_need_their_name() {
    let cases = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": {}}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 7}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": ["x"]}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"name": "x"}}),
    ];
    for v in cases {
        let err = inspect_request(&HeaderMap::new(), &body(v.clone())).unwrap_err();
        assert!(matches!(err, InspectError::InvalidParams { index: 0, .. }), "{v}: {err}");
        assert_eq!(err.jsonrpc_code(), -32602);
        assert_eq!(err.request_id(), Some(&json!(1)));
    }
}

#[test]
fn bad_json_errors_do_not_echo_the_payload() {
    let secret = "sk-live-SECRET-VALUE";
    let cases: Vec<Vec<u8>> = vec![
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{{"t":"{secret}"}}}}"#
        )
        .into_bytes(),
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{secret}"#).into_bytes(),
        format!(r#"{{"{secret}": tru}}"#).into_bytes(),
        format!("\"{secret}\u{1}\"").into_bytes(),
        b"\xff\xfe".to_vec(),
    ];
    for c in cases {
        let err = inspect_request(&HeaderMap::new(), &c).unwrap_err();
        assert!(matches!(err, InspectError::InvalidJson { .. }), "{err}");
        assert_eq!(err.jsonrpc_code(), -32700);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}

#[test]
fn deeply_nested_body_is_an_error_not_a_crash() {
    let depth = 200_000;
    let mut b = String::with_capacity(depth * 2 + 64);
    b.push_str(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":"#);
    b.push_str(&"[".repeat(depth));
    b.push_str(&"]".repeat(depth));
    b.push_str("}}");
    let err = inspect_request(&HeaderMap::new(), b.as_bytes()).unwrap_err();
    assert!(matches!(err, InspectError::InvalidJson { reason: "nested too deeply", .. }), "{err}");
}

#[test]
fn traceparent_validation() {
    assert_eq!(trace_id_of(TP), Some(TRACE));
    assert_eq!(trace_id_of(&format!("01{}-extra", &TP[2..])), Some(TRACE)); // future version, more fields
    for bad in [
        "",
        &TP[..54],
        &format!("{TP}-x"), // version 00 must be exactly 55 bytes
        &TP.to_uppercase(),
        &format!("ff{}", &TP[2..]),
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        &format!("01{}x", &TP[2..]),
    ] {
        assert_eq!(trace_id_of(bad), None, "{bad:?}");
    }
    // A header wins over `_meta`; an invalid or repeated header falls back to `_meta`.
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let b =
        body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"traceparent": other}}}));
    let info = inspect_request(&headers(&[("traceparent", TP)]), &b).unwrap();
    assert_eq!(info.trace_id.as_deref(), Some(TRACE));
    let info = inspect_request(&headers(&[("traceparent", "garbage")]), &b).unwrap();
    assert_eq!(info.trace_id.as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
    let info = inspect_request(&headers(&[("traceparent", TP), ("traceparent", TP)]), &b).unwrap();
    assert_eq!(info.trace_id.as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
}

#[test]
fn duplicate_keys_cannot_smuggle_a_second_tool_name() {
    let b = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","name":"shell_exec"}}"#;
    let err = inspect_request(&HeaderMap::new(), b).unwrap_err();
    assert!(matches!(err, InspectError::InvalidJson { reason: "duplicate object key", .. }), "{err}");
    let b = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}"#;
    assert!(inspect_request(&HeaderMap::new(), b).is_err());
}

#[test]
fn called_tool_names_the_tool_of_a_call_sent_as_request_or_notification() {
    let h = headers(&[]);
    let request = inspect_request(&h, &body(tools_call("get_weather"))).unwrap();
    assert_eq!(request.messages[0].called_tool(), Some("get_weather"));
    // No id: a notification no conforming server runs, but a lax one might, so the
    // policy, pinning and approval gates must still see the tool.
    let note = json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "drop_tables"}});
    let notification = inspect_request(&h, &body(note)).unwrap();
    assert_eq!(notification.messages[0].kind, MessageKind::Notification);
    assert_eq!(notification.messages[0].called_tool(), Some("drop_tables"));
    let other = json!({"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "p"}});
    assert_eq!(inspect_request(&h, &body(other)).unwrap().messages[0].called_tool(), None);
}
