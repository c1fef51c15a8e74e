//! Attacks on the gateway's request path (issue 13): each test tries to get a request past
//! a check by another door — a discovery path, another method, a path encoding, a slow or
//! oversized body, spoofed forwarding headers — against the real edge and gateway on
//! loopback, with a recording upstream and the official Python SDK's stdio server and HTTP
//! client. Each test also shows the normal client still served.

use std::time::{Duration, Instant};

use crate::common::recorder::Recorder;
use crate::common::{self, audit_records, http, Stack, DOMAIN};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

mod wire;

const DENIED_CALL: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"charge_card","arguments":{"n":"LEAK-1"}}}"#;

fn request(method: &str, path: &str, host: &str, body: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

async fn send(stack: &Stack, route: &str, req: http::Request<Full<Bytes>>) -> http::Response<Bytes> {
    http::send(stack.public, &format!("{route}.{DOMAIN}"), &stack.inner_ca(), req).await.expect("response")
}

fn stdio_route(name: &str, extra: &str) -> String {
    let server = common::python::root().join("tests/py/stdio_server.py");
    format!(
        "[[routes]]\nhost = \"{name}\"\nstdio = [\"{}\", \"{}\"]\nstdio_max_sessions = 8\n{extra}\n",
        common::python::python().display(),
        server.display()
    )
}

/// A legacy (2025-11-25) session with the stdio child: initialize, initialized; its id.
async fn stdio_session(stack: &Stack, route: &str) -> String {
    let host = format!("{route}.{DOMAIN}");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"attacker","version":"1"}}}"#;
    let resp = send(stack, route, request("POST", "/mcp", &host, init)).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    let session = resp.headers()["mcp-session-id"].to_str().expect("ascii").to_owned();
    let mut done = request("POST", "/mcp", &host, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    done.headers_mut().insert("mcp-session-id", session.parse().expect("header"));
    assert_eq!(send(stack, route, done).await.status(), 202);
    session
}

fn with_session(mut req: http::Request<Full<Bytes>>, session: &str) -> http::Request<Full<Bytes>> {
    req.headers_mut().insert("mcp-session-id", session.parse().expect("header"));
    req.headers_mut().insert("mcp-protocol-version", "2025-11-25".parse().expect("header"));
    req
}

fn text(resp: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(resp.body()).into_owned()
}

/// Item 1: the discovery side door. A `tools/call` POSTed to a well-known path is refused
/// (405) on both kinds of route; a stdio route has no discovery documents at all; a GET
/// with a body is refused; only a bodiless GET reaches an HTTP upstream, at its path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_paths_are_get_only_bodiless_and_never_reach_a_stdio_child() {
    let rec = Recorder::start().await;
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit = audit_dir.path().join("audit.jsonl");
    let routes = format!(
        "[audit]\nsink = \"file\"\npath = \"{}\"\n\
         [[routes]]\nhost = \"rec\"\nupstream = \"{}\"\n[routes.policy]\ndeny_tools = [\"charge_card\"]\n{}",
        audit.display(),
        rec.url(),
        stdio_route("local", "[routes.policy]\ndeny_tools = [\"echo\"]\n[routes.approval]\ntools = [\"add\"]")
    );
    let stack = Stack::start(&routes).await;

    // The stdio child: a real session, in which an allowed call works …
    let session = stdio_session(&stack, "local").await;
    let host = format!("local.{DOMAIN}");
    let leak =
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"text":"LEAKED-echo"}}}"#;
    let gated = r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"add","arguments":{"a":40,"b":2}}}"#;
    let mcp = send(&stack, "local", with_session(request("POST", "/mcp", &host, leak), &session)).await;
    assert!(text(&mcp).contains("-32010"), "the policy refuses echo on /mcp: {}", text(&mcp));
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        for body in [leak, gated] {
            let resp = send(&stack, "local", with_session(request("POST", path, &host, body), &session)).await;
            assert_eq!(resp.status(), 404, "{path}: {}", text(&resp));
            assert!(!text(&resp).contains("LEAKED") && !text(&resp).contains("42"), "{path}: {}", text(&resp));
        }
        let get = send(&stack, "local", with_session(request("GET", path, &host, ""), &session)).await;
        assert_eq!(get.status(), 404, "a stdio route serves no discovery document: {path}");
    }

    // The HTTP upstream: POST and other methods are refused before anything is forwarded.
    let host = format!("rec.{DOMAIN}");
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let resp =
            send(&stack, "rec", request(method, "/.well-known/oauth-protected-resource", &host, DENIED_CALL)).await;
        assert_eq!(resp.status(), 405, "{method}: {}", text(&resp));
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
    }
    let get_with_body =
        send(&stack, "rec", request("GET", "/.well-known/oauth-protected-resource", &host, DENIED_CALL)).await;
    assert_eq!(get_with_body.status(), 400, "{}", text(&get_with_body));
    assert!(rec.bodies_containing("charge_card").is_empty(), "a denied call reached the upstream: {:?}", rec.seen());

    // The normal client: a bodiless GET of the document is forwarded, at its path.
    let doc = send(&stack, "rec", request("GET", "/.well-known/oauth-protected-resource", &host, "")).await;
    assert_eq!(doc.status(), 200);
    let seen = rec.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].method.as_str(), seen[0].target.as_str()), ("GET", "/.well-known/oauth-protected-resource"));
    assert!(seen[0].body.is_empty());

    // Every refusal is audited as a denial, with its reason.
    let records =
        audit_records(&audit, |r| r.iter().filter(|r| r["reason"] == "method_not_allowed").count() >= 4).await;
    assert!(records.iter().all(|r| r["decision"] != "allow" || r["tool"] != "echo"), "{records:#?}");
}

/// Item 1, structurally: every method on every kind of path, each carrying a denied call.
/// Nothing reaches the recording upstream or the stdio child that the policy refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_into_upstream_and_child_passes_the_policy() {
    let rec = Recorder::start().await;
    let routes = format!(
        "[[routes]]\nhost = \"rec\"\nupstream = \"{}\"\n[routes.policy]\ndeny_tools = [\"charge_card\"]\n{}",
        rec.url(),
        stdio_route("local", "[routes.policy]\ndeny_tools = [\"echo\"]")
    );
    let stack = Stack::start(&routes).await;
    let session = stdio_session(&stack, "local").await;
    let leak =
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"text":"LEAKED-echo"}}}"#;
    let methods = ["POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND"];
    let paths = [
        "/mcp",
        "/",
        "/other",
        "/mcp/sub",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/%6Dcp",
    ];
    let mut tried = 0;
    for method in methods {
        for path in paths {
            let resp = send(&stack, "rec", request(method, path, &format!("rec.{DOMAIN}"), DENIED_CALL)).await;
            assert!(!text(&resp).contains("recorder-ran"), "{method} {path} ran upstream: {}", text(&resp));
            let req = with_session(request(method, path, &format!("local.{DOMAIN}"), leak), &session);
            let resp = send(&stack, "local", req).await;
            assert!(!text(&resp).contains("LEAKED"), "{method} {path} ran in the child: {}", text(&resp));
            tried += 2;
        }
    }
    assert_eq!(tried, methods.len() * paths.len() * 2);
    assert!(rec.bodies_containing("charge_card").is_empty(), "{:?}", rec.bodies_containing("charge_card"));
    // The normal client on both routes.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    assert_eq!(send(&stack, "rec", http::mcp_post(&format!("rec.{DOMAIN}"), ping)).await.status(), 200);
    let ok = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}"#;
    let resp =
        send(&stack, "local", with_session(request("POST", "/mcp", &format!("local.{DOMAIN}"), ok), &session)).await;
    assert!(text(&resp).contains('5'), "{}", text(&resp));
}

/// Item 6: a path is judged once, in canonical form, and the upstream gets that form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_and_ambiguous_paths_cannot_reach_a_looser_route() {
    let (open, admin) = (Recorder::start().await, Recorder::start().await);
    let token = mcp_tunnel::auth::generate_token().expect("token");
    let hash = mcp_tunnel::auth::hash_token(&token);
    let routes = format!(
        "[[routes]]\nhost = \"p\"\npath_prefix = \"/mcp\"\nupstream = \"{}\"\n\
         [[routes]]\nhost = \"p\"\npath_prefix = \"/mcp/admin\"\nupstream = \"{}\"\n\
         [routes.auth]\nmode = \"bearer\"\ntokens = [{{ name = \"ops\", hash = \"{hash}\" }}]\n",
        open.url(),
        admin.url()
    );
    let stack = Stack::start(&routes).await;
    let host = format!("p.{DOMAIN}");
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    // Decoded to /mcp/admin/x: the admin route's login applies.
    for path in ["/mcp/%61dmin/x", "/mcp/%61%64%6D%69%6E", "/%6Dcp/admin"] {
        assert_eq!(send(&stack, "p", request("POST", path, &host, ping)).await.status(), 401, "{path}");
    }
    // Forms an upstream may read differently from the router are refused outright.
    for path in [
        "//mcp/admin",
        "/mcp//admin",
        "/mcp;x/admin",
        "/mcp/admin;",
        "/mcp/%2fadmin",
        "/mcp/%2e%2e/mcp/admin",
        "/mcp/%5cadmin",
    ] {
        let resp = send(&stack, "p", request("POST", path, &host, ping)).await;
        assert_eq!(resp.status(), 400, "{path}: {}", text(&resp));
    }
    assert!(open.seen().is_empty(), "the open route got: {:?}", open.seen());
    assert!(admin.seen().is_empty());
    // With the token, the admin upstream receives exactly the path the router judged.
    let mut req = request("POST", "/mcp/%61dmin/x?q=%41", &host, ping);
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    assert_eq!(send(&stack, "p", req).await.status(), 200);
    let seen = admin.seen();
    assert_eq!(seen.iter().map(|s| s.target.as_str()).collect::<Vec<_>>(), ["/mcp/admin/x?q=%41"]);
    // And the open route still serves its own paths.
    assert_eq!(send(&stack, "p", request("POST", "/mcp/tools", &host, ping)).await.status(), 200);
    assert_eq!(open.seen().len(), 1);
}
