//! Unit tests for the MCP probe: response parsing, candidate paths, and two behaviours no
//! real server in the test kit has (OAuth-protected; 2026-07-28 only), served by a small
//! hyper server on loopback.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;
use crate::gateway::route::UpstreamTarget;
use crate::outbound::allowlist::AllowList;
use crate::outbound::UpstreamClient;

fn route(port: u16, prefix: Option<&str>, strip: bool) -> Route {
    let upstream = UpstreamTarget { scheme: Scheme::Http, host: "127.0.0.1".into(), port, tls: None };
    let client = UpstreamClient::new(&upstream, Arc::new(AllowList::default_private()), Duration::from_secs(1));
    Route {
        name: "r.test".into(),
        host: "r.test".into(),
        path_prefix: prefix.map(Into::into),
        strip_prefix: strip,
        upstream,
        preserve_host: false,
        timeout: Duration::from_secs(1),
        client,
        limits: Default::default(),
        inflight: Arc::new(tokio::sync::Semaphore::new(1)),
        controls: Default::default(),
        stdio: None,
    }
}

fn headers(content_type: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    h
}

#[test]
fn results_from_json_and_sse_bodies() {
    let json = br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}"#;
    assert_eq!(rpc_result(json, &headers("application/json")).unwrap()["protocolVersion"], "2025-11-25");
    let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"ok\":1}}\n\n";
    assert_eq!(rpc_result(sse, &headers("text/event-stream")).unwrap()["ok"], 1);
    let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"bad"}}"#;
    let e = rpc_result(err, &headers("application/json")).unwrap_err();
    assert_eq!(e.to_string(), "not an MCP answer: JSON-RPC error -32600: bad");
    assert!(rpc_result(b"<html>", &headers("text/html")).is_err());
}

#[test]
fn candidate_paths_follow_the_route() {
    assert_eq!(candidate_paths(&route(1, None, false)), vec!["/mcp", "/"]);
    assert_eq!(candidate_paths(&route(1, Some("/tickets"), true)), vec!["/", "/mcp"]);
    assert_eq!(candidate_paths(&route(1, Some("/mcp"), false)), vec!["/mcp", "/mcp/mcp"]);
}

/// Serves `answer(method header, body)` on loopback; returns the port and the requests seen.
async fn serve(answer: fn(&str, &Value) -> Response<Full<Bytes>>) -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = log.clone();
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let log = log.clone();
                async move {
                    let method = req.method().to_string();
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let rpc = msg.get("method").and_then(Value::as_str).unwrap_or("").to_owned();
                    log.lock().unwrap().push((method.clone(), rpc.clone()));
                    Ok::<_, std::convert::Infallible>(answer(&method, &msg))
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc));
        }
    });
    (port, seen)
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[tokio::test]
async fn a_modern_only_server_is_found_with_server_discover() {
    let (port, seen) = serve(|_, msg| match msg["method"].as_str() {
        Some("server/discover") => reply(
            200,
            json!({"jsonrpc":"2.0","id":2,"result":{"supportedVersions":["2026-07-28"],
                "_meta":{"io.modelcontextprotocol/serverInfo":{"name":"modern"}}}}),
        ),
        _ => reply(400, json!({"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"initialize is gone"}})),
    })
    .await;
    let (path, answer) = probe(&route(port, None, false), Duration::from_secs(5)).await;
    assert_eq!(path, "/mcp");
    assert_eq!(answer.unwrap(), Answer::Discovered { server: "modern".into() });
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![("POST".into(), "initialize".into()), ("POST".into(), "server/discover".into())]);
}

#[tokio::test]
async fn oauth_is_reachable_and_sessions_are_deleted() {
    let (port, _) = serve(|_, _| {
        let mut r = reply(401, json!({"error": "unauthorized"}));
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer resource_metadata=\"x\""));
        r
    })
    .await;
    let (_, answer) = probe(&route(port, None, false), Duration::from_secs(5)).await;
    assert!(matches!(answer, Ok(Answer::NeedsAuth { challenge }) if challenge.starts_with("Bearer")));

    let (port, seen) = serve(|method, _| {
        let mut r = reply(
            200,
            json!({"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","serverInfo":{"name":"s"}}}),
        );
        if method == "POST" {
            r.headers_mut().insert("mcp-session-id", HeaderValue::from_static("abc"));
        }
        r
    })
    .await;
    let (_, answer) = probe(&route(port, None, false), Duration::from_secs(5)).await;
    assert_eq!(answer.unwrap(), Answer::Initialized { version: "2025-11-25".into(), server: "s".into() });
    assert_eq!(seen.lock().unwrap().last().unwrap().0, "DELETE", "the probe's session is ended");
}
