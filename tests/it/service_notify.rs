//! The systemd notification protocol (`Type=notify`), spoken to a socket the test owns as
//! systemd would provide it (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`): the
//! gateway says `READY=1` only once it has registered with the edge, pings the watchdog
//! meanwhile, and says `STOPPING=1` on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mcp_tunnel::config::edge::EdgeConfig;
use mcp_tunnel::edge::Edge;
use tokio::net::UnixDatagram;
use tokio_util::sync::CancellationToken;

use crate::common::config::GatewayToml;
use crate::common::free_port;
use crate::common::procs::{acme_configs, certs_init, write_configs, BIN};

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next notification: its `KEY=value` lines (bounded wait).
async fn next(socket: &UnixDatagram, what: &str) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), socket.recv(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no notification within 20 s while waiting for {what}"))
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_is_ready_after_registering_pings_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    let (tunnel, public) = (free_port(), free_port());
    let (edge, gateway) = acme_configs(tunnel, public, "http://127.0.0.1:1");
    let gateway = GatewayToml { edge: "transport = \"quic\"\nbackoff_max = \"500ms\"".into(), ..gateway };
    write_configs(dir.path(), &edge, &gateway);
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");

    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the shell's.
    let config = dir.path().join("gateway.toml");
    let child = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" gateway --config \"$1\"", BIN, config.to_str().expect("utf8")])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let mut gateway = Running(child);

    // No edge yet: status and watchdog pings, but not ready.
    let mut pings = 0;
    while pings < 3 {
        let lines = next(&socket, "watchdog pings before the edge is up").await;
        assert!(!lines.iter().any(|l| l == "READY=1"), "ready before registering: {lines:?}");
        pings += lines.iter().filter(|l| *l == "WATCHDOG=1").count();
    }

    let edge = Edge::bind(&EdgeConfig::load(&dir.path().join("edge.toml")).expect("edge config")).await.expect("bind");
    let stop_edge = CancellationToken::new();
    tokio::spawn(edge.run(stop_edge.clone()));
    loop {
        let lines = next(&socket, "READY=1 after the edge came up").await;
        if lines.iter().any(|l| l == "READY=1") {
            assert!(lines.iter().any(|l| l == "STATUS=1 of 1 tunnel connections registered"), "{lines:?}");
            break;
        }
    }

    let pid = gateway.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    loop {
        if next(&socket, "STOPPING=1 after SIGTERM").await.iter().any(|l| l == "STOPPING=1") {
            break;
        }
    }
    let exited = tokio::task::spawn_blocking(move || gateway.0.wait());
    let status = tokio::time::timeout(Duration::from_secs(20), exited).await.expect("exit in time").expect("join");
    assert!(status.expect("wait").success(), "clean exit after SIGTERM");
    stop_edge.cancel();
}
