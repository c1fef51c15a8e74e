//! `mcp-tunnel doctor` as a user runs it: the binary as a process against a real edge
//! (in-process, port 0), real upstream MCP servers, and configs broken on purpose.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::common::config::GatewayToml;
use crate::common::python::PyServer;
use crate::common::{self, free_port, udp, Stack, DOMAIN, TUNNEL};

use crate::common::procs::BIN;

/// Runs `doctor` on `config`; returns (exit success, stdout).
async fn doctor(config: &Path, extra: &[&str]) -> (bool, String) {
    let out: Output = tokio::process::Command::new(BIN)
        .args(["doctor", "--config", config.to_str().expect("utf8"), "--timeout", "2s"])
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run mcp-tunnel doctor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("--- doctor {}:\n{stdout}{}", config.display(), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout)
}

/// Lines of the report that are not OK (and not the summary).
fn problems(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("[WARN]") || l.starts_with("[FAIL]")).collect()
}

fn line_with<'a>(stdout: &'a str, needle: &str) -> &'a str {
    stdout.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{stdout}"))
}

fn write(stack: &Stack, name: &str, text: &str) -> PathBuf {
    let path = stack.dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn route(host: &str, upstream: &str) -> String {
    format!("[[routes]]\nhost = \"{host}\"\nupstream = \"{upstream}\"\n")
}

/// Fault: none. Expect: every check OK (edge over both transports, certificates, an
/// upstream of each protocol generation), exit 0; `--json` agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_stack_is_all_ok() {
    let (demo_port, _demo) = common::demo_upstream().await;
    let py = PyServer::start().await;
    let routes = format!("{}{}", route("echo", &format!("http://127.0.0.1:{demo_port}")), route("py", &py.upstream()));
    let stack = Stack::start(&routes).await;
    let (ok, out) = doctor(&stack.gateway_path(), &[]).await;
    assert!(ok, "{out}");
    assert_eq!(problems(&out), Vec::<&str>::new());
    assert!(line_with(&out, "edge over QUIC").starts_with("[ OK ]"));
    assert!(line_with(&out, "edge over TCP/TLS").contains(&stack.tunnel_tcp.to_string()));
    assert!(line_with(&out, "inner certificate covers 2 route hostnames").starts_with("[ OK ]"));
    assert!(line_with(&out, &format!("route echo.{DOMAIN}")).contains("protocol 2025-11-25"));
    assert!(line_with(&out, &format!("route py.{DOMAIN}")).contains("MCP initialize answered"));
    assert!(out.lines().last().unwrap_or_default().contains(" 0 WARN, 0 FAIL"), "{out}");

    let (ok, json) = doctor(&stack.gateway_path(), &["--json"]).await;
    let doc: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON document");
    assert!(ok && doc["ok"] == true && doc["counts"]["fail"] == 0, "{doc}");
    assert!(doc["findings"].as_array().expect("findings").iter().any(|f| f["check"] == "edge.quic"));

    // The sessionless generation, as a server that only speaks 2026-07-28 is probed.
    let config = stack.load_gateway(&std::fs::read_to_string(stack.gateway_path()).expect("read"));
    let py_route = config.routes.lookup(&format!("py.{DOMAIN}"), "/mcp").expect("route").clone();
    let answer = mcp_tunnel::doctor::upstream::discover(&py_route, "/mcp", Duration::from_secs(5)).await;
    assert!(
        matches!(&answer, Ok(mcp_tunnel::doctor::upstream::Answer::Discovered { server }) if server == "mcp-tunnel-test-upstream"),
        "{answer:?}"
    );
}

/// Fault: nothing listens at the edge address. Expect: QUIC and TCP FAIL naming the
/// address (TCP: connection refused), exit non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_down_fails_both_transports() {
    let (demo_port, _demo) = common::demo_upstream().await;
    let stack = Stack::start(&route("echo", &format!("http://127.0.0.1:{demo_port}"))).await;
    let down: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let text = stack.gateway_toml_at(
        down,
        "",
        "certs",
        "certs/tunnel",
        &route("echo", &format!("http://127.0.0.1:{demo_port}")),
    );
    let (ok, out) = doctor(&write(&stack, "down.toml", &text), &[]).await;
    assert!(!ok, "{out}");
    let quic = line_with(&out, "edge over QUIC");
    assert!(quic.starts_with("[FAIL]") && quic.contains(&down.to_string()), "{quic}");
    let tcp = line_with(&out, "edge over TCP/TLS");
    assert!(
        tcp.starts_with("[FAIL]") && tcp.contains(&down.to_string()) && tcp.contains("connection refused"),
        "{tcp}"
    );
    assert!(tcp.contains("— fix: nothing listens on TCP"), "{tcp}");
}

/// Fault: UDP to the edge is dropped, TCP works. Expect: the "UDP looks blocked" warning,
/// TCP OK, exit 0 (warnings alone pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_udp_is_a_warning_with_the_fallback_named() {
    let (demo_port, _demo) = common::demo_upstream().await;
    let routes = route("echo", &format!("http://127.0.0.1:{demo_port}"));
    let stack = Stack::start(&routes).await;
    let (gate, _open) = udp::gate(stack.tunnel).await;
    let extra = format!("transport = \"auto\"\ntcp_address = \"{}\"", stack.tunnel_tcp);
    let text = stack.gateway_toml_at(gate, &extra, "certs", "certs/tunnel", &routes);
    let (ok, out) = doctor(&write(&stack, "blocked.toml", &text), &[]).await;
    assert!(ok, "warnings alone exit 0:\n{out}");
    let quic = line_with(&out, "edge over QUIC");
    assert!(quic.starts_with("[WARN]"), "{quic}");
    assert!(quic.contains(&format!("UDP to {gate} looks blocked; the gateway will use the HTTP/2 fallback")), "{quic}");
    assert!(line_with(&out, "edge over TCP/TLS").starts_with("[ OK ]"), "{out}");
}

/// Faults: the inner certificate lacks a route's hostname; another config's inner
/// certificate expires in 10 days. Expect: FAIL naming the hostname; WARN with days left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_certificate_names_and_expiry() {
    let (demo_port, _demo) = common::demo_upstream().await;
    let up = format!("http://127.0.0.1:{demo_port}");
    let stack = Stack::start(&route("echo", &up)).await;
    let routes = format!("{}{}", route("echo", &up), route("tickets.elsewhere.test", &up));
    let (ok, out) =
        doctor(&write(&stack, "names.toml", &stack.gateway_toml("certs", "certs/tunnel", &routes)), &[]).await;
    assert!(!ok, "{out}");
    let names = line_with(&out, "does not cover");
    assert!(names.starts_with("[FAIL]") && names.contains("tickets.elsewhere.test"), "{names}");
    assert!(!names.contains(&format!("echo.{DOMAIN},")), "only the uncovered host is named: {names}");

    // A 10-day certificate from the same inner CA.
    let ca_dir = stack.dir.path().join("certs/inner");
    let read = |n: &str| std::fs::read_to_string(ca_dir.join(n)).expect("read inner CA");
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&read("ca.pem"), rcgen::KeyPair::from_pem(&read("ca.key")).expect("key"))
            .expect("issuer");
    let mut params = rcgen::CertificateParams::new(vec![format!("*.{DOMAIN}")]).expect("params");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    let short = stack.dir.path().join("short");
    std::fs::create_dir_all(&short).expect("mkdir");
    std::fs::write(short.join("server.pem"), cert.pem()).expect("cert");
    std::fs::write(short.join("server.key"), key.serialize_pem()).expect("key");
    std::fs::copy(ca_dir.join("ca.pem"), short.join("ca.pem")).expect("ca");
    let text = stack
        .gateway_toml("certs", "certs/tunnel", &route("echo", &up))
        .replace("certs/inner/server.", "short/server.");
    let (ok, out) = doctor(&write(&stack, "expiring.toml", &text), &[]).await;
    assert!(ok, "a warning alone exits 0:\n{out}");
    let warn = line_with(&out, "expires in");
    assert!(warn.starts_with("[WARN] inner certificate") && warn.contains("short/server.pem"), "{warn}");
    assert!(warn.contains("— fix: renew it: mcp-tunnel certs renew --dir"), "{warn}");
    assert_eq!(problems(&out).len(), 1, "{out}");
}

/// Faults: an upstream outside `allowed_networks`, and one that is down. Expect: a FAIL
/// for each, naming the networks and the refused connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_outside_the_allow_list_or_down_fail() {
    let (demo_port, _demo) = common::demo_upstream().await;
    let stack = Stack::start(&route("echo", &format!("http://127.0.0.1:{demo_port}"))).await;
    let routes = format!(
        "[upstream]\nallowed_networks = [\"127.0.0.1/32\"]\n{}{}{}",
        route("ok", &format!("http://127.0.0.1:{demo_port}")),
        route("outside", &format!("http://127.0.0.2:{demo_port}")),
        route("down", &format!("http://127.0.0.1:{}", free_port())),
    );
    let (ok, out) = doctor(&write(&stack, "up.toml", &stack.gateway_toml("certs", "certs/tunnel", &routes)), &[]).await;
    assert!(!ok, "{out}");
    assert!(line_with(&out, &format!("route ok.{DOMAIN}")).starts_with("[ OK ]"), "{out}");
    let outside = line_with(&out, &format!("route outside.{DOMAIN}"));
    assert!(
        outside.starts_with("[FAIL]") && outside.contains("outside [upstream] allowed_networks (127.0.0.1/32)"),
        "{outside}"
    );
    let down = line_with(&out, &format!("route down.{DOMAIN}"));
    assert!(down.starts_with("[FAIL]") && down.to_lowercase().contains("refused"), "{down}");
}

/// Faults: a bad value, then a key that belongs to another certificate. Expect: the
/// loader's `file:line: key: reason` as the only finding, exit non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_stops_at_the_first_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_pki(dir.path(), "certs", TUNNEL);
    // Line 2 is shutdown_timeout, line 11 `[inner_tls] key`.
    let base = GatewayToml {
        shutdown_timeout: Some("5 parsecs".into()),
        ..GatewayToml::new(format!("127.0.0.1:{}", free_port()), "certs")
    }
    .render();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &base).expect("write");
    let (ok, out) = doctor(&path, &[]).await;
    assert!(!ok, "{out}");
    let line = format!("[FAIL] {}:2: `shutdown_timeout`: ", path.display());
    assert!(out.starts_with(&line), "{out}");
    assert_eq!(out.lines().count(), 2, "the failure and the summary only: {out}");

    let text = base.replace("5 parsecs", "5s").replace("certs/inner/server.key", "certs/edge/server.key");
    std::fs::write(&path, text).expect("write");
    let (ok, out) = doctor(&path, &[]).await;
    assert!(!ok, "{out}");
    let fail = line_with(&out, "[FAIL]");
    assert!(fail.contains(":11: `inner_tls.key`:") && fail.contains("does not match the certificate"), "{fail}");
    assert!(fail.contains("— fix: point `key` at the private key generated together"), "{fail}");
}

/// Faults: the edge's CA not pinned, the wrong server name, a client certificate from a
/// CA the edge does not trust. Expect: each named as such, on both transports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_are_told_apart() {
    let (demo_port, _demo) = common::demo_upstream().await;
    let routes = route("echo", &format!("http://127.0.0.1:{demo_port}"));
    let stack = Stack::start(&routes).await;
    common::write_pki(stack.dir.path(), "other", TUNNEL);
    let cases = [
        ("unknown-ca.toml", stack.gateway_toml("other", "certs/tunnel", &routes), "unknown CA"),
        (
            "rejected.toml",
            stack.gateway_toml("certs", "other/tunnel", &routes),
            "rejected this gateway's client certificate",
        ),
        (
            "name.toml",
            stack
                .gateway_toml("certs", "certs/tunnel", &routes)
                .replace("server_name = \"localhost\"", "server_name = \"wrong.test\""),
            "name mismatch",
        ),
    ];
    for (name, text, expect) in cases {
        let (ok, out) = doctor(&write(&stack, name, &text), &[]).await;
        assert!(!ok, "{name}: {out}");
        for transport in ["edge over QUIC", "edge over TCP/TLS"] {
            let line = line_with(&out, transport);
            assert!(line.starts_with("[FAIL]") && line.contains(expect), "{name}: {line}");
        }
    }
}
