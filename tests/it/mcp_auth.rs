//! Authentication at the gateway (static bearer tokens), the RFC 9728 challenge and
//! metadata document, the Origin allow-list, and the pass-through default.

use crate::common::python::{client, PyServer};
use crate::common::{audit_records, http, Stack, DOMAIN};
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

/// An Ed25519 key pair: its PKCS#8 (to sign with) and its JWK (for the JWKS file).
fn ed25519_key(kid: &str) -> (Vec<u8>, Value) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("keygen");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    (pkcs8.as_ref().to_vec(), serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}))
}

fn signed(pkcs8: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(pkcs8)).expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_route_admits_a_valid_token_audits_its_subject_and_refuses_a_wrong_audience() {
    let server = PyServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pkcs8, jwk) = ed25519_key("k1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).expect("write jwks");
    let audit = dir.path().join("audit.jsonl");
    let host = format!("echo.{DOMAIN}");
    let resource = format!("https://{host}/mcp");
    let auth = format!(
        "[routes.auth]\nmode = \"jwt\"\njwks = \"{}\"\nissuer = \"https://idp.test\"\naudiences = [\"{resource}\"]\n\
         [audit]\nsink = \"file\"\npath = \"{}\"\n",
        jwks.display(),
        audit.display()
    );
    let stack = Stack::start(&route(&server.upstream(), &auth)).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = |aud: &str| {
        serde_json::json!({"iss": "https://idp.test", "aud": aud, "sub": "agent-7", "client_id": "ci-bot",
                           "iat": now, "exp": now + 300})
    };

    // A real SDK session with a valid token; the token stays at the gateway.
    let header = format!("Authorization=Bearer {}", signed(&pkcs8, "k1", &claims(&resource)));
    let out =
        client(&stack.url("echo"), &stack.inner_ca_path(), &["--mode", "legacy", "--header", &header, "whoami"]).await;
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["headers"]["authorization"], Value::Null, "token passed upstream: {out}");

    // A token for another audience: 401 with an invalid_token challenge.
    let mut req = http::mcp_post(&host, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    let other = signed(&pkcs8, "k1", &claims("https://elsewhere.test/mcp"));
    req.headers_mut().insert("authorization", format!("Bearer {other}").parse().expect("header"));
    let resp = raw(&stack, req).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().expect("ascii").contains("invalid_token"));

    // The audit trail names the caller for the allowed calls and the reason for the refusal.
    let records =
        audit_records(&audit, |r| r.iter().any(|r| r["tool"] == "whoami") && r.iter().any(|r| r["decision"] == "deny"))
            .await;
    let call = records.iter().find(|r| r["tool"] == "whoami").expect("tools/call record");
    assert_eq!((call["auth"].as_str(), call["identity"].as_str()), (Some("jwt"), Some("agent-7 (client ci-bot)")));
    let denied = records.iter().find(|r| r["decision"] == "deny").expect("refusal record");
    assert_eq!((denied["auth"].as_str(), denied["http_status"].as_u64()), (Some("jwt"), Some(401)), "{denied}");
    let text = std::fs::read_to_string(&audit).expect("audit");
    assert!(!text.contains(&other[..40]), "a token reached the audit trail");
}
