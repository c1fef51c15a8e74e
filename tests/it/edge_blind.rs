//! The edge relays ciphertext only: a marker sent in an MCP request, and echoed back in
//! the response, never appears in the bytes the edge receives or sends.

use crate::common::python::{client, PyServer};
use crate::common::{tap, Stack, DOMAIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_never_sees_mcp_plaintext() {
    let server = PyServer::start().await;
    let stack = Stack::start(&format!("[[routes]]\nhost = \"echo\"\nupstream = \"{}\"\n", server.upstream())).await;
    let (tap_addr, capture) = tap::start(stack.public).await;
    let marker = "PLAINTEXT-MARKER-7f3a9c41";
    let url = format!("https://echo.{DOMAIN}:{}/mcp", tap_addr.port());
    for mode in ["legacy", "modern"] {
        let out = client(&url, &stack.inner_ca_path(), &["--mode", mode, "basic", "--marker", marker]).await;
        assert_eq!(out["ok"], true, "{mode}: {out}");
        assert_eq!(out["result"], marker, "the marker made the round trip in clear at both ends");
    }
    let (up, down) = capture.lock().expect("capture").clone();
    assert!(up.len() > 1000 && down.len() > 1000, "the tap saw the sessions ({} / {} bytes)", up.len(), down.len());
    for (dir, bytes) in [("client → edge", &up), ("edge → client", &down)] {
        assert!(!tap::contains(bytes, marker.as_bytes()), "marker visible {dir}");
        assert!(!tap::contains(bytes, b"tools/call"), "JSON-RPC method visible {dir}");
        assert!(!tap::contains(bytes, b"mcp-session-id"), "MCP header visible {dir}");
    }
    // The only cleartext the edge needs is the SNI in the ClientHello.
    assert!(tap::contains(&up, format!("echo.{DOMAIN}").as_bytes()));
}
