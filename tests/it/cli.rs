//! The `mcp-tunnel` binary as an operator uses it: certs, check, demo, and edge +
//! gateway as separate processes stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::config::{EdgeToml, GatewayToml};
use crate::common::{free_port, poll};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-tunnel");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("RUST_LOG").output().expect("run mcp-tunnel")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn certs_init(dir: &Path) -> Output {
    run(&[
        "certs",
        "init",
        "--out",
        dir.to_str().expect("utf8"),
        "--tunnel-id",
        "acme",
        "--tunnel-domain",
        "mcp.acme.test",
    ])
}

#[test]
fn certs_init_writes_private_keys_0600_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = certs_init(dir.path());
    assert!(out.status.success(), "{}", text(&out));
    for key in
        ["edge/ca.key", "edge/server.key", "tunnel/ca.key", "tunnel/gateway.key", "inner/ca.key", "inner/server.key"]
    {
        let mode = std::fs::metadata(dir.path().join(key)).expect(key).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let before = std::fs::read(dir.path().join("inner/server.key")).expect("key");
    let again = certs_init(dir.path());
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists; refusing to overwrite"), "{}", text(&again));
    assert_eq!(std::fs::read(dir.path().join("inner/server.key")).expect("key"), before, "key untouched");

    let issued = run(&[
        "certs",
        "issue-gateway",
        "--ca-dir",
        dir.path().join("tunnel").to_str().expect("utf8"),
        "--tunnel-id",
        "globex",
        "--out",
        dir.path().join("globex").to_str().expect("utf8"),
    ]);
    assert!(issued.status.success(), "{}", text(&issued));
    let mode = std::fs::metadata(dir.path().join("globex/gateway.key")).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

fn write_configs(dir: &Path, edge_port: u16, public_port: u16) {
    let edge = EdgeToml {
        tunnel_listen: format!("127.0.0.1:{edge_port}"),
        public_listen: format!("127.0.0.1:{public_port}"),
        tables: "[tunnels.acme]\nhostnames = [\"*.mcp.acme.test\"]\n".into(),
        ..EdgeToml::new("")
    };
    // `check` names line 14 of this file: the route's upstream.
    let gateway = GatewayToml {
        tunnel_domain: "mcp.acme.test".into(),
        tables: "[[routes]]\nhost = \"tickets\"\nupstream = \"http://127.0.0.1:9\"\n".into(),
        ..GatewayToml::new(format!("127.0.0.1:{edge_port}"), "")
    };
    std::fs::write(dir.join("edge.toml"), edge.render()).expect("edge.toml");
    std::fs::write(dir.join("gateway.toml"), gateway.render()).expect("gateway.toml");
}

#[test]
fn check_accepts_valid_configs_and_names_the_problem_in_bad_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    write_configs(dir.path(), 7844, 8443);
    for (file, what) in [("edge.toml", "valid edge config"), ("gateway.toml", "valid gateway config")] {
        let out = run(&["check", "--config", dir.path().join(file).to_str().expect("utf8")]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains(what), "{}", text(&out));
    }
    let bad = dir.path().join("gateway.toml");
    let fixed = std::fs::read_to_string(&bad).expect("read");
    std::fs::write(&bad, fixed.replace("http://127.0.0.1:9", "127.0.0.1:9")).expect("write");
    let out = run(&["check", "--config", bad.to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("gateway.toml:14: `routes[0].upstream`: scheme must be http:// or https://"),
        "{}",
        text(&out)
    );
}

#[test]
fn demo_runs_a_real_mcp_session_through_the_tunnel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&["demo", "--once", "--dir", dir.path().join("demo").to_str().expect("utf8")]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("tools/list -> echo, add, countdown"), "{all}");
    assert!(all.contains("tools/call echo -> hello through the tunnel"), "{all}");
    assert!(all.contains("3 progress events streamed"), "{all}");
    assert!(all.contains("MCP session through the tunnel: OK"), "{all}");
}

/// Waits (bounded) until a process's stderr shows `needle`.
fn wait_for_log(child: &mut std::process::Child, needle: &str) {
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&needle) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("log line did not appear within 20 s");
}

#[test]
fn edge_and_gateway_processes_register_and_exit_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    write_configs(dir.path(), free_port(), free_port());
    let spawn = |role: &str| {
        Command::new(BIN)
            .args([role, "--config", dir.path().join(format!("{role}.toml")).to_str().expect("utf8")])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let mut edge = spawn("edge");
    wait_for_log(&mut edge, "edge listening");
    let mut gateway = spawn("gateway");
    wait_for_log(&mut gateway, "tunnel registered");
    for (name, child) in [("gateway", &mut gateway), ("edge", &mut edge)] {
        let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        assert!(killed.success());
        let what = format!("{name} exiting after SIGTERM");
        let status = poll::eventually_blocking(Duration::from_secs(20), &what, || child.try_wait().expect("wait"));
        assert!(status.success(), "{name} exited with {status}");
    }
}

fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect admin");
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).expect("read");
    out
}

/// The admin endpoint and `probe`: not ready before the tunnel registers, ready after;
/// `/metrics` in Prometheus text with the tunnel's connection and the request counted.
#[test]
fn admin_endpoint_and_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    let (gw_admin, edge_admin) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    write_configs(dir.path(), free_port(), free_port());
    for (file, addr) in [("gateway.toml", &gw_admin), ("edge.toml", &edge_admin)] {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, format!("{}\n[admin]\nlisten = \"{addr}\"\n", text)).expect("write");
    }
    let spawn = |role: &str| {
        Command::new(BIN)
            .args([role, "--config", dir.path().join(format!("{role}.toml")).to_str().expect("utf8")])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    // Gateway first: its edge is not up yet, so it is alive but not ready.
    let mut gateway = spawn("gateway");
    wait_for_log(&mut gateway, "admin endpoint listening");
    assert!(run(&["probe", "--admin", &gw_admin, "live"]).status.success());
    let not_ready = run(&["probe", "--admin", &gw_admin, "ready"]);
    assert!(!not_ready.status.success(), "{}", text(&not_ready));
    assert!(get(&gw_admin, "/readyz").starts_with("HTTP/1.1 503"));

    let mut edge = spawn("edge");
    wait_for_log(&mut edge, "edge listening");
    let ready = || run(&["probe", "--admin", &gw_admin, "ready"]).status.success();
    poll::eventually_blocking(Duration::from_secs(20), "the gateway becoming ready", ready);
    let ready = get(&gw_admin, "/readyz");
    assert!(ready.contains("\"ready\":true") && ready.contains("\"state\":\"registered\""), "{ready}");
    let metrics = get(&gw_admin, "/metrics");
    assert!(
        metrics.contains("mcp_tunnel_gateway_tunnel_connections{transport=\"quic\",state=\"registered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_tunnel_gateway_certificate_expiry_timestamp_seconds{certificate=\"inner\"}"),
        "{metrics}"
    );
    let edge_metrics = get(&edge_admin, "/metrics");
    assert!(edge_metrics.contains("mcp_tunnel_edge_tunnel_connections{tunnel=\"acme\"} 1"), "{edge_metrics}");
    assert!(edge_metrics.contains("# TYPE mcp_tunnel_edge_public_connections counter"), "{edge_metrics}");
    for child in [&mut gateway, &mut edge] {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
    }
}
