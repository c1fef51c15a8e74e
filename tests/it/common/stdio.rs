//! Helpers for the `stdio_bridge` suite: the SDK's Python, a stdio spec for
//! tests/py/stdio_server.py, a hyper server on 127.0.0.1:0 in front of a bridge, and the
//! tests/py/stdio_client.py runner.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_tunnel::stdio::{BridgeBody, StdioBridge, StdioSpec};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::Command;

pub use super::python::root;

/// The SDK's Python, or None (test skipped) when `MCPT_PYTHON` is unset and the default
/// venv is absent. A set but broken `MCPT_PYTHON` fails the test instead.
pub fn python() -> Option<PathBuf> {
    if std::env::var_os("MCPT_PYTHON").is_none() && !root().join("target/py-venv/bin/python").exists() {
        eprintln!("SKIPPED: MCPT_PYTHON is unset and target/py-venv is missing (run ./scripts/test.sh)");
        return None;
    }
    Some(crate::common::python::python())
}

pub fn spec(py: &Path) -> StdioSpec {
    StdioSpec {
        args: vec![root().join("tests/py/stdio_server.py").display().to_string()],
        env: vec![("STDIO_TEST_MARKER".into(), "marker-42".into())],
        max_children: 4,
        request_timeout: Duration::from_secs(60),
        ..StdioSpec::new(py)
    }
}

/// Serves the bridge over HTTP/1.1 and h2c on 127.0.0.1:0; returns the MCP URL.
pub async fn serve(bridge: Arc<StdioBridge>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let bridge = Arc::clone(&bridge);
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let bridge = Arc::clone(&bridge);
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body.collect().await?.to_bytes();
                        Ok::<_, hyper::Error>(bridge.handle(hyper::Request::from_parts(parts, bytes)).await)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/mcp")
}

/// A bridge to tests/py/stdio_server.py (see [`spec`]) served on loopback; its MCP URL.
pub async fn served_bridge(py: &Path) -> (Arc<StdioBridge>, String) {
    let bridge = StdioBridge::new("stdio-test".into(), spec(py));
    let url = serve(Arc::clone(&bridge)).await;
    (bridge, url)
}

pub fn client_cmd(py: &Path, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(py);
    cmd.arg(root().join("tests/py/stdio_client.py")).args(["--url", url, "--timeout", "60"]).args(args);
    cmd.kill_on_drop(true);
    cmd
}

/// Runs one client scenario to the end; its last JSON line.
pub async fn client(py: &Path, url: &str, args: &[&str]) -> Value {
    let out = client_cmd(py, url, args).output().await.expect("run stdio_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| {
        panic!("stdio_client.py printed no JSON ({}):\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr))
    })
}

pub fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub fn http_log(out: &Value) -> Vec<String> {
    out["http"].as_array().expect("http log").iter().filter_map(|e| e.as_str().map(str::to_owned)).collect()
}

pub fn request(method: &str, session: Option<&str>, accept: &str, body: &str) -> hyper::Request<Bytes> {
    let mut b = hyper::Request::builder().method(method).uri("/mcp").header("accept", accept);
    if let Some(s) = session {
        b = b.header("mcp-session-id", s);
    }
    b.body(Bytes::from(body.to_owned())).unwrap()
}

pub async fn body_json(resp: hyper::Response<BridgeBody>) -> Value {
    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM value")
}
