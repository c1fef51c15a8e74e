//! Authentication at the gateway (static bearer tokens), the RFC 9728 challenge and
//! metadata document, the Origin allow-list, and the pass-through default.

mod common;

use common::python::{client, PyServer};
use common::{http, Stack, DOMAIN};
use serde_json::Value;

fn route(upstream: &str, extra: &str) -> String {
    format!("[[routes]]\nhost = \"echo\"\nupstream = \"{upstream}\"\n{extra}\n")
}

async fn raw(stack: &Stack, req: http::Request<http_body_util::Full<bytes::Bytes>>) -> http::Response<bytes::Bytes> {
    http::send(stack.public, &format!("echo.{DOMAIN}"), &stack.inner_ca(), req).await.expect("response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_route_admits_the_token_strips_it_and_challenges_everyone_else() {
    let server = PyServer::start().await;
    let token = mcp_tunnel::auth::generate_token().expect("token");
    let hash = mcp_tunnel::auth::hash_token(&token);
    let auth = format!("allowed_origins = [\"https://agent.example.com\"]\n[routes.auth]\nmode = \"bearer\"\ntokens = [{{ name = \"ci\", hash = \"{hash}\" }}]");
    let stack = Stack::start(&route(&server.upstream(), &auth)).await;
    let host = format!("echo.{DOMAIN}");

    // With the token: a real SDK session works, and the upstream never sees the token.
    for mode in ["legacy", "modern"] {
        let header = format!("Authorization=Bearer {token}");
        let out =
            client(&stack.url("echo"), &stack.inner_ca_path(), &["--mode", mode, "--header", &header, "whoami"]).await;
        assert_eq!(out["ok"], true, "{mode}: {out}");
        assert_eq!(out["headers"]["authorization"], Value::Null, "{mode}: token passed upstream: {out}");
    }

    // Without it (or with a wrong one): 401 and a challenge naming the metadata document.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let resp = raw(&stack, http::mcp_post(&host, ping)).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    let metadata = format!("https://{host}/.well-known/oauth-protected-resource");
    assert!(challenge.starts_with("Bearer ") && challenge.contains(&metadata), "{challenge}");
    let mut wrong = http::mcp_post(&host, ping);
    wrong.headers_mut().insert("authorization", "Bearer mcpt_not-the-token".parse().expect("header"));
    let resp = raw(&stack, wrong).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().expect("ascii").contains("invalid_token"));

    // The metadata document is served by the gateway, unauthenticated.
    let get = http::Request::get("/.well-known/oauth-protected-resource/mcp")
        .header("host", &host)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let resp = raw(&stack, get).await;
    assert_eq!(resp.status(), 200);
    let doc: Value = serde_json::from_slice(resp.body()).expect("json");
    assert_eq!(doc["resource"], format!("https://{host}/mcp"));

    // A browser origin not on the list is refused before authentication.
    let mut evil = http::mcp_post(&host, ping);
    evil.headers_mut().insert("origin", "https://evil.example".parse().expect("header"));
    evil.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    let resp = raw(&stack, evil).await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_route_forwards_authorization_and_discovery_documents() {
    let server = PyServer::start().await;
    let stack = Stack::start(&route(&server.upstream(), "")).await;
    let out = client(
        &stack.url("echo"),
        &stack.inner_ca_path(),
        &["--mode", "legacy", "--header", "Authorization=Bearer upstream-token", "whoami"],
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["headers"]["authorization"], "Bearer upstream-token", "{out}");

    // Discovery goes to the upstream (which runs no OAuth here, so it answers 404 itself).
    let host = format!("echo.{DOMAIN}");
    let get = http::Request::get("/.well-known/oauth-protected-resource/mcp")
        .header("host", &host)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let resp = raw(&stack, get).await;
    assert_eq!(resp.status(), 404);
    assert_ne!(
        serde_json::from_slice::<Value>(resp.body()).ok().and_then(|v| v.get("error").cloned()),
        Some(Value::from("no_route")),
        "the gateway must forward discovery, not answer no_route"
    );
}
