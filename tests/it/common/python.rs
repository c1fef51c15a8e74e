//! The official Python MCP SDK as a real third-party peer: `tests/py/mcp_server.py`
//! (a server on port 0) and `tests/py/mcp_client.py` (one scenario per run, JSON out).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python (`MCPT_PYTHON`, or `target/py-venv` as `scripts/test.sh` makes it).
pub fn python() -> PathBuf {
    let path =
        std::env::var_os("MCPT_PYTHON").map(PathBuf::from).unwrap_or_else(|| root().join("target/py-venv/bin/python"));
    assert!(
        path.exists(),
        "Python with the MCP SDK not found at {}: run ./scripts/test.sh, which creates it",
        path.display()
    );
    path
}

/// A running `mcp_server.py`, killed on drop.
pub struct PyServer {
    child: Child,
    pub port: u16,
}

impl PyServer {
    pub async fn start() -> PyServer {
        Self::start_with(&["--port", "0"]).await
    }

    /// Starts the server with extra arguments (`--port N` to reuse a port, `--variant N`).
    pub async fn start_with(args: &[&str]) -> PyServer {
        let mut child = Command::new(python())
            .arg(root().join("tests/py/mcp_server.py"))
            .args(["--host", "127.0.0.1"])
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mcp_server.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("mcp_server.py did not start within 30 s")
            .expect("read mcp_server.py stdout")
            .expect("mcp_server.py exited before listening");
        let port = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        PyServer { child, port }
    }

    /// Kills the server and waits until it has exited (its port is free again).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// `http://127.0.0.1:<port>` for a route's `upstream`.
    pub fn upstream(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Runs `mcp_client.py` against `url` (resolving the test domain to loopback and
/// trusting `ca`), returning its JSON result. `args` are mode/scenario arguments.
pub async fn client(url: &str, ca: &std::path::Path, args: &[&str]) -> Value {
    let host = url.split("://").nth(1).and_then(|r| r.split(':').next()).expect("host in url");
    let out = Command::new(python())
        .arg(root().join("tests/py/mcp_client.py"))
        .args(["--url", url, "--ca"])
        .arg(ca)
        .args(["--resolve", &format!("{host}=127.0.0.1"), "--timeout", "90"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run mcp_client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "mcp_client.py printed no JSON (status {}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
