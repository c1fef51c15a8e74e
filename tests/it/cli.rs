//! The `mcp-tunnel` binary as an operator uses it: certs, check, demo, and edge +
//! gateway as separate processes stopped with SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::procs::{acme_configs, admin_get, certs_init, run, start_role, BIN};
use crate::common::{free_port, poll};

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs `mcp-tunnel <args>` to its end with backtraces asked for (`RUST_BACKTRACE=1`,
/// `RUST_LIB_BACKTRACE=1`) and `env` set, `RUST_LOG` and `MCPT_CONFIG` removed.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG").env_remove("MCPT_CONFIG");
    cmd.env("RUST_BACKTRACE", "1").env("RUST_LIB_BACKTRACE", "1");
    cmd.envs(env.iter().copied()).output().expect("run mcp-tunnel")
}

/// Asserts the run printed an `error: …` line and no backtrace, and exited with `status`.
fn assert_error(out: &Output, status: i32) -> String {
    let all = text(out);
    assert_eq!(out.status.code(), Some(status), "{all}");
    assert!(!all.to_lowercase().contains("stack backtrace"), "{all}");
    assert!(!all.contains("Caused by:") && !all.contains("Error: "), "anyhow's Debug form: {all}");
    all
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

/// The edge and gateway configs on the given ports; the route's upstream (line 14 of
/// `gateway.toml`, which `check` names) is a closed port.
fn write_configs(dir: &Path, edge_port: u16, public_port: u16) {
    let (edge, gateway) = acme_configs(edge_port, public_port, "http://127.0.0.1:9");
    crate::common::procs::write_configs(dir, &edge, &gateway);
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
    // A config error: one `error:` line naming the line and key, status 2, no backtrace
    // even when one is asked for.
    let out = run_env(&["check", "--config", bad.to_str().expect("utf8")], &[]);
    let all = assert_error(&out, 2);
    assert!(
        all.contains("error: ")
            && all.contains("gateway.toml:14: `routes[0].upstream`: scheme must be http:// or https://"),
        "{all}"
    );
}

/// Exit statuses (src/cli/exit.rs): 2 for a usage or config error, 1 for a runtime
/// failure; every error is `error: …` plus its causes, never a backtrace.
#[test]
fn exit_statuses_and_error_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.toml");
    let out = run_env(&["check", "--config", missing.to_str().expect("utf8")], &[]);
    let all = assert_error(&out, 2);
    assert!(all.starts_with("error: ") && all.contains("missing.toml: cannot read config"), "{all}");
    for role in ["gateway", "edge", "doctor"] {
        let out = run_env(&[role, "--config", missing.to_str().expect("utf8")], &[]);
        let all = assert_error(&out, if role == "doctor" { 1 } else { 2 });
        assert!(all.contains("missing.toml"), "{role}: {all}");
    }

    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "tunnel_domain = \"a.test\"\n[edge\n").expect("write");
    let all = assert_error(&run_env(&["check", "--config", syntax.to_str().expect("utf8")], &[]), 2);
    assert!(all.contains("syntax.toml: TOML parse error at line 2"), "{all}");

    let neither = dir.path().join("neither.toml");
    std::fs::write(&neither, "colour = \"red\"\n").expect("write");
    let all = assert_error(&run_env(&["check", "--config", neither.to_str().expect("utf8")], &[]), 2);
    assert!(all.contains("neither an edge config"), "{all}");

    // Usage errors found by clap, and by us after clap.
    assert_error(&run_env(&["check"], &[]), 2);
    assert_error(&run_env(&["no-such-command"], &[]), 2);
    let all = assert_error(&run_env(&["certs", "renew", "--dir", ".", "--renew-before", "3x"], &[]), 2);
    assert!(all.contains("error: --renew-before: unknown unit"), "{all}");

    // A runtime failure: nothing listens on the probed port.
    let port = free_port().to_string();
    let all = assert_error(&run_env(&["probe", "--admin", &format!("127.0.0.1:{port}"), "live"], &[]), 1);
    assert!(all.starts_with("error: live: "), "{all}");
    assert!(run_env(&["--help"], &[]).status.success());
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

#[test]
fn edge_and_gateway_processes_register_and_exit_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    write_configs(dir.path(), free_port(), free_port());
    let mut edge = start_role("edge", dir.path(), "edge listening");
    let mut gateway = start_role("gateway", dir.path(), "tunnel registered");
    for (name, proc) in [("gateway", &mut gateway), ("edge", &mut edge)] {
        let status = proc.terminate(Duration::from_secs(20));
        assert!(status.success(), "{name} exited with {status}");
    }
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
    // Gateway first: its edge is not up yet, so it is alive but not ready.
    let mut gateway = start_role("gateway", dir.path(), "admin endpoint listening");
    assert!(run(&["probe", "--admin", &gw_admin, "live"]).status.success());
    let not_ready = run(&["probe", "--admin", &gw_admin, "ready"]);
    assert!(!not_ready.status.success(), "{}", text(&not_ready));
    assert_eq!(admin_get(&gw_admin, "/readyz").0, 503);

    let mut edge = start_role("edge", dir.path(), "edge listening");
    let ready = || run(&["probe", "--admin", &gw_admin, "ready"]).status.success();
    poll::eventually_blocking(Duration::from_secs(20), "the gateway becoming ready", ready);
    let (_, ready) = admin_get(&gw_admin, "/readyz");
    assert!(ready.contains("\"ready\":true") && ready.contains("\"state\":\"registered\""), "{ready}");
    let (_, metrics) = admin_get(&gw_admin, "/metrics");
    assert!(
        metrics.contains("mcp_tunnel_gateway_tunnel_connections{transport=\"quic\",state=\"registered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_tunnel_gateway_certificate_expiry_timestamp_seconds{certificate=\"inner\"}"),
        "{metrics}"
    );
    let (_, edge_metrics) = admin_get(&edge_admin, "/metrics");
    assert!(edge_metrics.contains("mcp_tunnel_edge_tunnel_connections{tunnel=\"acme\"} 1"), "{edge_metrics}");
    assert!(edge_metrics.contains("# TYPE mcp_tunnel_edge_public_connections counter"), "{edge_metrics}");
    for proc in [&mut gateway, &mut edge] {
        proc.terminate(Duration::from_secs(20));
    }
}

/// `MCPT_CONFIG` stands in for `--config` (the flag wins), and `${VAR}` in a gateway
/// config's string values comes from the environment; an unset one names itself, the key
/// and the line.
#[test]
fn config_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(certs_init(dir.path()).status.success());
    write_configs(dir.path(), 7844, 8443);
    let gateway = dir.path().join("gateway.toml");
    let (edge, gateway_str) = (dir.path().join("edge.toml"), gateway.to_str().expect("utf8"));

    let out = run_env(&["check"], &[("MCPT_CONFIG", gateway_str)]);
    assert!(out.status.success() && text(&out).contains("valid gateway config"), "{}", text(&out));
    let out = run_env(&["check", "--config", edge.to_str().expect("utf8")], &[("MCPT_CONFIG", "missing.toml")]);
    assert!(out.status.success() && text(&out).contains("valid edge config"), "flag wins: {}", text(&out));

    let plain = std::fs::read_to_string(&gateway).expect("read");
    let domain = format!("tunnel_domain = \"{}\"", crate::common::procs::ACME_DOMAIN);
    assert!(plain.contains(&domain), "{plain}");
    let templated = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:9\"\ntoken_sha256 = \"${{MCPT_IT_ADMIN_HASH}}\"\n",
        plain.replace(&domain, "tunnel_domain = \"${MCPT_IT_DOMAIN}\"")
    );
    std::fs::write(&gateway, &templated).expect("write");
    let hash = format!("sha256:{}", "ab".repeat(32));
    let both = [("MCPT_IT_DOMAIN", crate::common::procs::ACME_DOMAIN), ("MCPT_IT_ADMIN_HASH", hash.as_str())];
    let out = run_env(&["check", "--config", gateway_str], &both);
    assert!(out.status.success() && text(&out).contains("valid gateway config"), "{}", text(&out));

    let out = run_env(&["check", "--config", gateway_str], &both[..1]);
    let all = assert_error(&out, 2);
    let line = templated.lines().count();
    let expected =
        format!("gateway.toml:{line}: `admin.token_sha256`: environment variable `MCPT_IT_ADMIN_HASH` is not set");
    assert!(all.contains(&expected), "{all}");

    // The edge config too.
    let wildcard = format!("\"*.{}\"", crate::common::procs::ACME_DOMAIN);
    let edge_text = std::fs::read_to_string(&edge).expect("read");
    assert!(edge_text.contains(&wildcard), "{edge_text}");
    std::fs::write(&edge, edge_text.replace(&wildcard, "\"*.${MCPT_IT_DOMAIN}\"")).expect("write");
    let edge_str = edge.to_str().expect("utf8");
    let out = run_env(&["check", "--config", edge_str], &both[..1]);
    assert!(out.status.success() && text(&out).contains("valid edge config"), "{}", text(&out));
    let all = assert_error(&run_env(&["check", "--config", edge_str], &[]), 2);
    assert!(all.contains("`tunnels.acme.hostnames[0]`: environment variable `MCPT_IT_DOMAIN` is not set"), "{all}");
}

/// `completions` and `man` come from the clap definitions: they run and know the
/// subcommands.
#[test]
fn completions_and_man_pages() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_env(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("gateway") && script.contains("doctor"), "{shell}: {script}");
    }
    assert_error(&run_env(&["completions", "tcsh"], &[]), 2);
    let out = run_env(&["man"], &[]);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && page.contains(".TH mcp-tunnel 1"), "{}", text(&out));
    assert!(page.contains("gateway") && page.contains("doctor"), "{page}");

    let dir = tempfile::tempdir().expect("tempdir");
    let pages = dir.path().join("man1");
    let out = run_env(&["man", "--dir", pages.to_str().expect("utf8")], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let gateway = std::fs::read_to_string(pages.join("mcp-tunnel-gateway.1")).expect("gateway page");
    assert!(gateway.contains("MCPT_CONFIG"), "{gateway}");
    assert!(pages.join("mcp-tunnel-certs-renew.1").exists());
}
