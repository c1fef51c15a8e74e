//! The control plane as a target: the control socket is 0600 in a 0700 state directory,
//! answers its owner (library client and `mcp-tunnel ctl`), refuses other users; a bad
//! `state_dir` is refused with its line; the admin API's control operations need the
//! admin token (401 and a `control` audit record otherwise) while read-only endpoints
//! stay open.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::control::{admin, as_nobody, ctl, is_root};
use crate::common::python::PyServer;
use crate::common::{self, audit_records, Stack};
use mcp_tunnel::config::gateway::GatewayConfig;
use mcp_tunnel::control::client;
use serde_json::{json, Value};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Connects to a Unix socket, sends a `status` request and prints `CONNECTED` or
/// `ERROR <errno name>`.
const PROBE: &str = r#"
import errno, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
    s.sendall(b'{"op":"status","args":{}}\n')
    print("CONNECTED", s.recv(65536).decode(errors="replace").strip())
except OSError as e:
    print("ERROR", errno.errorcode.get(e.errno, str(e.errno)))
"#;

fn python() -> PathBuf {
    let system = PathBuf::from("/usr/bin/python3");
    if system.exists() {
        system
    } else {
        common::python::python()
    }
}

/// Runs [`PROBE`] against `socket` as uid 65534; its one output line.
fn probe_as_nobody(prefix: &[String], socket: &Path) -> String {
    let out = Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg(python())
        .args(["-c", PROBE])
        .arg(socket)
        .output()
        .expect("run the probe as nobody");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!text.is_empty(), "probe printed nothing: {}", String::from_utf8_lossy(&out.stderr));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_socket_is_private_and_answers_its_owner() {
    let server = PyServer::start().await;
    let routes = format!("state_dir = \"state\"\n[[routes]]\nhost = \"echo\"\nupstream = \"{}\"\n", server.upstream());
    let stack = Stack::start(&routes).await;
    let state = stack.dir.path().join("state");
    let socket = client::socket_path(&state);
    assert_eq!(mode(&state), 0o700, "state_dir mode");
    assert_eq!(mode(&socket), 0o600, "control.sock mode");

    let status = client::call(&state, "status", json!({})).await.expect("status over the socket");
    assert_eq!(status["routes"], json!(["echo.tunnel.test"]), "{status}");
    assert!(status["kill"]["all"].is_null(), "{status}");
    let conn = &status["connections"][0];
    assert_eq!((conn["state"].as_str(), conn["transport"].as_str()), (Some("registered"), Some("quic")), "{status}");
    assert_eq!(conn["edge"], stack.tunnel.to_string(), "{status}");
    let err = client::call(&state, "no.such.op", json!({})).await.expect_err("unknown op refused");
    assert!(err.to_string().contains("unknown_op"), "{err}");

    // The CLI, as the owner.
    let (ok, text, stderr) = ctl(&[], &state, &["status"]).await;
    assert!(ok, "ctl status failed: {text} {stderr}");
    assert!(text.contains("gateway: running") && text.contains("route echo.tunnel.test: running"), "{text}");
    let connection = format!("connection 0: registered to {} over quic, up ", stack.tunnel);
    assert!(text.contains(&connection) && text.contains("ms"), "{text}");
    let (_, text, _) = ctl(&[], &state, &["--json", "status"]).await;
    let parsed: Value = serde_json::from_str(&text).expect("ctl --json prints JSON");
    assert_eq!(parsed["routes"], json!(["echo.tunnel.test"]));

    // Another user.
    if !is_root() {
        println!("SKIP non-root check: the test does not run as root, so it cannot switch to another user");
        return;
    }
    let Some(prefix) = as_nobody() else {
        println!("SKIP non-root check: neither setpriv nor runuser exists here");
        return;
    };
    // The mechanism works: nobody can use a socket that allows it.
    let open_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(open_dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let open_socket = open_dir.path().join("open.sock");
    let listener = std::os::unix::net::UnixListener::bind(&open_socket).expect("bind open socket");
    std::fs::set_permissions(&open_socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let accept = std::thread::spawn(move || {
        let (s, _) = listener.accept().expect("accept");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut line).expect("request line");
        std::io::Write::write_all(&mut &s, b"{\"ok\":true}\n").expect("reply");
    });
    let probe = probe_as_nobody(&prefix, &open_socket);
    assert!(probe.starts_with("CONNECTED"), "the probe as nobody could not use an open socket: {probe}");
    accept.join().expect("accept thread");

    // The parents are opened up so only the state directory and the socket decide.
    std::fs::set_permissions(stack.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(probe_as_nobody(&prefix, &socket), "ERROR EACCES", "nobody reached the socket in its 0700 dir");
    // Even with the directory opened by mistake, the socket's own mode refuses.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(probe_as_nobody(&prefix, &socket), "ERROR EACCES", "nobody reached the 0600 socket");
    let (ok, _, stderr) = ctl(&prefix, &state, &["status"]).await;
    assert!(!ok && stderr.contains("Permission denied"), "ctl as nobody: {stderr}");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_state_dir_is_refused_with_its_line() {
    let stack = Stack::start("").await;
    for bad in ["\"\"", "\"   \""] {
        let text = stack.gateway_toml("certs", "certs/tunnel", &format!("state_dir = {bad}\n"));
        let path = stack.dir.path().join("bad.toml");
        std::fs::write(&path, &text).expect("write");
        let err = GatewayConfig::load(&path).expect_err("empty state_dir refused").to_string();
        assert!(err.contains("bad.toml:3") && err.contains("`state_dir`"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_control_needs_the_token_and_refusals_are_audited() {
    let token = "mcpt_test-admin-token-0123456789";
    let audit = tempfile::tempdir().expect("tempdir");
    let audit_path = audit.path().join("audit.jsonl");
    let routes = format!(
        "state_dir = \"state\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n\
         [audit]\nsink = \"file\"\npath = \"{}\"\n",
        mcp_tunnel::auth::hash_token(token),
        audit_path.display()
    );
    let stack = Stack::start(&routes).await;
    let addr = stack.gateway_admin.expect("admin endpoint bound");

    let (status, challenge, body) = admin(addr, "POST", "/control/status", None, "").await;
    assert_eq!((status, challenge), (401, true), "{body}");
    let (status, _, body) = admin(addr, "POST", "/control/kill", Some("wrong"), r#"{"reason":"x"}"#).await;
    assert_eq!(status, 401, "{body}");
    assert!(stack.gateway.as_ref().expect("gateway").kill.state().all.is_none(), "a refused kill changed nothing");

    let (status, _, body) = admin(addr, "POST", "/control/status", Some(token), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    let (status, _, body) = admin(addr, "POST", "/control/resume", Some(token), "{}").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    let (status, _, body) = admin(addr, "POST", "/control/status", Some(token), "[1]").await;
    assert_eq!(status, 400, "{body}");
    // The approval operations are on the same API.
    let (status, _, body) = admin(addr, "POST", "/control/approvals.list", Some(token), "").await;
    assert_eq!((status, body["result"]["approvals"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
    let id = r#"{"id":"0123456789abcdef"}"#;
    let (status, _, body) = admin(addr, "POST", "/control/approvals.approve", Some(token), id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");

    // Read-only endpoints stay open; other methods stay refused.
    let (status, _, body) = admin(addr, "GET", "/readyz", None, "").await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = admin(addr, "POST", "/readyz", Some(token), "").await;
    assert_eq!(status, 405);

    let records = audit_records(&audit_path, |r| r.iter().filter(|r| r["event"] == "control").count() >= 2).await;
    let control: Vec<&Value> = records.iter().filter(|r| r["event"] == "control").collect();
    let missing = control.iter().find(|r| r["reason"] == "admin_token_missing").expect("missing-token record");
    assert_eq!(missing["action"], "status");
    assert_eq!(missing["http_status"], 401);
    assert!(missing["actor"].as_str().is_some_and(|a| a.contains("unauthenticated via http")), "{missing}");
    let wrong = control.iter().find(|r| r["reason"] == "admin_token_invalid").expect("wrong-token record");
    assert_eq!(wrong["action"], "kill");
    let text = std::fs::read_to_string(&audit_path).expect("audit");
    assert!(!text.contains(token) && !text.contains("wrong"), "no token in the audit trail");
}

/// An admin address that cannot be bound stops the gateway's start, naming the address
/// (before binding moved into `Gateway::new`, the gateway logged an error and ran on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_address_in_use_refuses_the_start() {
    let stack = Stack::start("").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let config = stack.gateway_config("certs", "certs/tunnel", &format!("[admin]\nlisten = \"{addr}\"\n"));
    let Err(err) = mcp_tunnel::gateway::Gateway::new(config) else { panic!("a gateway started on {addr} in use") };
    assert!(matches!(err, mcp_tunnel::gateway::GatewayError::AdminBind { addr: a, .. } if a == addr), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// The edge binds its admin endpoint in `bind` too: the address is known before `run`,
/// and an address in use stops the start. `run` returns once its background tasks ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_reports_its_admin_address_and_refuses_one_in_use() {
    use mcp_tunnel::config::edge::EdgeConfig;
    use mcp_tunnel::edge::{Edge, EdgeError};
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_pki(dir.path(), "certs", common::TUNNEL);
    let load = |listen: &str| {
        let tables = format!("[admin]\nlisten = \"{listen}\"\n");
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, common::config::EdgeToml { tables, ..common::config::EdgeToml::new("certs") }.render())
            .expect("write edge.toml");
        EdgeConfig::load(&path).expect("edge config")
    };
    let edge = Edge::bind(&load("127.0.0.1:0")).await.expect("bind");
    let addr = edge.admin_addr().expect("admin address");
    assert_ne!(addr.port(), 0);
    let (shared, stop) = (edge.shared(), tokio_util::sync::CancellationToken::new());
    let run = tokio::spawn(edge.run(stop.clone()));
    let (status, _, _) = admin(addr, "GET", "/readyz", None, "").await;
    assert_eq!(status, 200);
    let Err(err) = Edge::bind(&load(&addr.to_string())).await else { panic!("an edge started on {addr} in use") };
    assert!(matches!(err, EdgeError::Bind { what: "admin endpoint", addr: a, .. } if a == addr), "{err}");

    stops_with_no_task_left("edge", run, &stop, &shared.tasks, addr).await;
}

/// Cancels `stop` with an idle admin connection open on `admin`; `run` must return in
/// time, with no task of `tasks` left and the admin endpoint closed.
async fn stops_with_no_task_left(
    role: &str,
    run: tokio::task::JoinHandle<()>,
    stop: &tokio_util::sync::CancellationToken,
    tasks: &mcp_tunnel::tasks::Tasks,
    admin: std::net::SocketAddr,
) {
    let idle = tokio::net::TcpStream::connect(admin).await.expect("connect admin");
    assert!(!tasks.is_empty(), "{role}: background tasks run");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("stopped in time").expect("run task");
    assert!(tasks.is_empty(), "{role}: {} tasks left after run", tasks.len());
    assert!(tokio::net::TcpStream::connect(admin).await.is_err(), "{role}: the admin endpoint closed");
    drop(idle);
}

/// `Gateway::run` returns only once its background tasks ended: the admin endpoint (with
/// an idle connection open) is closed and the control socket removed by then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_shutdown_waits_for_its_background_tasks() {
    let stack = Stack::start("").await;
    let config =
        stack.gateway_config("certs", "certs/tunnel", "state_dir = \"state\"\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    let gateway = mcp_tunnel::gateway::Gateway::new(config).expect("gateway");
    let (shared, addr, mut status) = (gateway.shared(), gateway.admin_addr().expect("admin"), gateway.status());
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(gateway.run(stop.clone()));
    let state = common::wait_settled(&mut status).await;
    assert!(matches!(state, mcp_tunnel::gateway::TunnelState::Registered { .. }), "{state:?}");
    stops_with_no_task_left("gateway", run, &stop, &shared.tasks, addr).await;
    assert!(!stack.dir.path().join("state/control.sock").exists(), "the control socket removed");
}
