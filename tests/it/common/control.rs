//! Helpers for control-plane tests: the admin endpoint over plain HTTP, audit records
//! from a file sink, and running a child process as an unprivileged user.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One request to the admin endpoint: `(status, www-authenticate present, JSON body)`.
pub async fn admin(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, bool, Value) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect admin");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder().method(method).uri(path).header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
        .await
        .expect("admin answered within 60 s")
        .expect("admin response");
    let status = resp.status().as_u16();
    let challenge = resp.headers().contains_key("www-authenticate");
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, challenge, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Whether this process runs as root (owner of /proc/self).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A command prefix that runs a program as uid/gid 65534 (nobody), from the tools this
/// system has: `setpriv`, `runuser`. `None` when neither exists.
pub fn as_nobody() -> Option<Vec<String>> {
    let exists = |p: &str| Path::new(p).exists();
    for setpriv in ["/usr/bin/setpriv", "/bin/setpriv"] {
        if exists(setpriv) {
            return Some(
                [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"].map(str::to_owned).to_vec(),
            );
        }
    }
    for runuser in ["/usr/sbin/runuser", "/sbin/runuser"] {
        if exists(runuser) {
            return Some([runuser, "-u", "nobody", "--"].map(str::to_owned).to_vec());
        }
    }
    None
}

/// Runs `mcp-tunnel ctl --state-dir STATE ARGS...`, as the given user (`as_user`, a
/// prefix from [`as_nobody`]) or as this process's user; returns (success, stdout, stderr).
pub async fn ctl(as_user: &[String], state: &Path, args: &[&str]) -> (bool, String, String) {
    let bin = super::procs::BIN;
    let mut cmd = match as_user.split_first() {
        Some((first, rest)) => {
            let mut c = tokio::process::Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => tokio::process::Command::new(bin),
    };
    cmd.arg("ctl").arg("--state-dir").arg(state).args(args).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("ctl finished within 120 s")
        .expect("run mcp-tunnel ctl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}
