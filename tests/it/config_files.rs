//! Config files: every shipped example loads, and mistakes are reported with the file,
//! the line, the key and the reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common;
use mcp_tunnel::config::edge::EdgeConfig;
use mcp_tunnel::config::gateway::GatewayConfig;

/// A temp dir holding a PKI under `certs/` (the layout the examples reference).
fn dir_with_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_pki(dir.path(), "certs", "acme");
    std::fs::copy(dir.path().join("certs/inner/ca.pem"), dir.path().join("certs/internal-ca.pem")).expect("copy CA");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// `text` with its commented-out settings enabled: `#` directly followed by a key or table.
fn uncommented(text: &str) -> String {
    fn enable(line: &str) -> Option<&str> {
        line.strip_prefix('#').filter(|rest| rest.starts_with(|c: char| c.is_alphabetic() || c == '['))
    }
    text.lines().map(|l| enable(l).unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_example_config_loads() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = dir_with_certs();
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read example");
        let copy = write(dir.path(), path.file_name().and_then(|n| n.to_str()).expect("name"), &text);
        if text.contains("[tunnel_listener]") {
            let c = EdgeConfig::load(&copy).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!c.tunnels.is_empty());
        } else {
            let c = GatewayConfig::load(&copy).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!c.routes.is_empty());
            // The commented-out route shapes (`#` directly before the key) are valid too.
            let all = write(dir.path(), "uncommented.toml", &uncommented(&text));
            let c = GatewayConfig::load(&all).unwrap_or_else(|e| panic!("{} uncommented: {e}", path.display()));
            assert!(c.routes.len() > 1, "{}: no commented-out routes", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 2, "expected the edge and gateway examples, found {seen}");
}

const GATEWAY: &str = r#"tunnel_domain = "t.test"
[edge]
address = "127.0.0.1:7844"
ca = "certs/edge/ca.pem"
cert = "certs/tunnel/gateway.pem"
key = "certs/tunnel/gateway.key"
[inner_tls]
cert = "certs/inner/server.pem"
key = "certs/inner/server.key"
"#;

fn gateway_error(extra: &str) -> String {
    gateway_error_text(&format!("{GATEWAY}{extra}"))
}

fn gateway_error_text(text: &str) -> String {
    let dir = dir_with_certs();
    let path = write(dir.path(), "g.toml", text);
    let err = GatewayConfig::load(&path).expect_err("config must be refused").to_string();
    err.replace(&dir.path().display().to_string(), "DIR")
}

#[test]
fn gateway_mistakes_name_file_line_and_key() {
    let cases = [
        ("[[routes]]\nhost = \"a\"\nupstream = \"ftp://x:1\"\n", "DIR/g.toml:12: `routes[0].upstream`: scheme must be http:// or https://"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"https://x:1\"\n", "DIR/g.toml:12: `routes[0].upstream`: https:// upstreams need `ca`"),
        ("[[routes]]\nhost = \"a b\"\nupstream = \"http://x:1\"\n", "DIR/g.toml:11: `routes[0].host`: expected a subdomain"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\ntimeout = \"soon\"\n", "DIR/g.toml:13: `routes[0].timeout`: expected a duration"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1/mcp\"\n", "`routes[0].upstream`: give only scheme://host:port"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://u:secret@x:1\"\n", "`routes[0].upstream`: credentials in the URL are not supported"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\n[[routes]]\nhost = \"a.t.test\"\nupstream = \"http://y:1\"\n", "DIR/g.toml:14: `routes[1].host`: route a.t.test is defined twice"),
        ("[upstream]\nallowed_networks = [\"10.0.0.0/33\"]\n", "DIR/g.toml:11: `upstream.allowed_networks[0]`: expected a CIDR"),
        ("colour = \"blue\"\n", "unknown field `colour`"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\n[routes.limits]\nmax_body = \"4MB\"\n", "DIR/g.toml:14: `routes[0].limits.max_body`: unknown unit"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\n[routes.limits]\nmax_concurrent = 0\n", "DIR/g.toml:14: `routes[0].limits.max_concurrent`: expected 1 to 100000"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\n[routes.policy]\ndeny_tools = [\"ok\", \"\"]\n", "DIR/g.toml:14: `routes[0].policy.deny_tools[1]`"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\n[routes.auth]\nmode = \"magic\"\n", "DIR/g.toml:14: `routes[0].auth.mode`: expected \"bearer\" or \"jwt\""),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\n[routes.auth]\nmode = \"bearer\"\ntokens = [{ name = \"ci\", hash = \"abc\" }]\n", "DIR/g.toml:14: `routes[0].auth.tokens`"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\n[routes.auth]\nmode = \"jwt\"\nissuer = \"https://i\"\naudiences = [\"a\"]\njwks = \"missing.json\"\n", "`routes[0].auth.jwks`"),
        ("[[routes]]\nhost = \"a\"\nupstream = \"http://x:1\"\nallowed_origins = [\"not an origin\"]\n", "DIR/g.toml:13: `routes[0].allowed_origins`"),
        ("[audit]\nsink = \"syslog\"\n", "DIR/g.toml:11: `audit.sink`: expected \"stdout\", \"file\" or \"off\""),
        ("[audit]\nsink = \"file\"\n", "DIR/g.toml:11: `audit.path`: sink \"file\" needs `path`"),
    ];
    for (extra, expected) in cases {
        let err = gateway_error(extra);
        assert!(err.contains(expected), "for {extra:?}\n  got: {err}\n want: {expected}");
        assert!(err.starts_with("DIR/g.toml"), "error must start with the file: {err}");
        assert!(!err.contains("secret"), "the error repeats a credential: {err}");
    }
}

#[test]
fn top_level_gateway_mistakes_name_the_line() {
    for (top, expected) in [
        ("max_streams = 0\n", "DIR/g.toml:1: `max_streams`: expected 1 to 1000000"),
        ("max_streams = \"many\"\n", "at line 1, column 15"),
    ] {
        let err = gateway_error_text(&format!("{top}{GATEWAY}"));
        assert!(err.contains(expected), "for {top:?}\n  got: {err}\n want: {expected}");
    }
}

/// The dead-edge timings: `dead_after` must leave room for two keep-alives and stay
/// within QUIC's idle-timeout range; the error names the key that was set.
#[test]
fn liveness_mistakes_name_the_line() {
    for (keys, expected) in [
        (
            "dead_after = \"1s\"\n",
            "DIR/g.toml:3: `edge.dead_after`: dead_after must be at least twice keepalive_interval",
        ),
        ("keepalive_interval = \"2s\"\n", "DIR/g.toml:3: `edge.keepalive_interval`: dead_after must be at least twice"),
        ("keepalive_interval = \"0s\"\n", "DIR/g.toml:3: `edge.keepalive_interval`: must be greater than zero"),
        ("dead_after = \"11m\"\n", "DIR/g.toml:3: `edge.dead_after`: must be at most 10m"),
        ("dead_after = \"soon\"\n", "DIR/g.toml:3: `edge.dead_after`: expected a duration"),
    ] {
        let err = gateway_error_text(&GATEWAY.replace("[edge]\n", &format!("[edge]\n{keys}")));
        assert!(err.contains(expected), "for {keys:?}\n  got: {err}\n want: {expected}");
    }
    let dir = dir_with_certs();
    let path = write(
        dir.path(),
        "g.toml",
        &GATEWAY.replace("[edge]\n", "[edge]\nkeepalive_interval = \"500ms\"\ndead_after = \"1s\"\n"),
    );
    let live = GatewayConfig::load(&path).expect("valid timings").edge.liveness;
    assert_eq!((live.keepalive_interval, live.dead_after), (Duration::from_millis(500), Duration::from_secs(1)));
    assert_eq!(live.answer_deadline(), Duration::from_millis(500));
}

#[test]
fn syntax_errors_carry_the_line() {
    let err = gateway_error("[[routes]\n");
    assert!(err.starts_with("DIR/g.toml: TOML parse error at line 10"), "{err}");
}

#[test]
fn certificate_problems_name_the_file_and_why() {
    let dir = dir_with_certs();
    std::fs::write(dir.path().join("certs/inner/server.pem"), "garbage").expect("corrupt cert");
    let path = write(dir.path(), "g.toml", GATEWAY);
    let err = GatewayConfig::load(&path).expect_err("bad cert").to_string();
    assert!(
        err.contains("`inner_tls.cert`") && err.contains("certs/inner/server.pem: no PEM certificate found"),
        "{err}"
    );

    // A key that belongs to another certificate.
    let dir = dir_with_certs();
    std::fs::copy(dir.path().join("certs/edge/server.key"), dir.path().join("certs/inner/server.key"))
        .expect("swap key");
    let err = GatewayConfig::load(&write(dir.path(), "g.toml", GATEWAY)).expect_err("mismatch").to_string();
    assert!(err.contains("private key does not match the certificate in"), "{err}");

    // A missing file.
    let dir = dir_with_certs();
    std::fs::remove_file(dir.path().join("certs/edge/ca.pem")).expect("rm");
    let err = GatewayConfig::load(&write(dir.path(), "g.toml", GATEWAY)).expect_err("missing").to_string();
    assert!(err.contains("g.toml:4: `edge.ca`") && err.contains("cannot read"), "{err}");

    // The inner certificate used as the gateway's client certificate carries no tunnel id.
    let dir = dir_with_certs();
    let swapped = GATEWAY.replace("certs/tunnel/gateway", "certs/inner/server");
    let err = GatewayConfig::load(&write(dir.path(), "g.toml", &swapped)).expect_err("no tunnel id").to_string();
    assert!(err.contains("`edge.cert`: not a gateway certificate"), "{err}");
}

#[test]
fn edge_mistakes_name_file_line_and_key() {
    let dir = dir_with_certs();
    let base = "[tunnel_listener]\nlisten = \"127.0.0.1:0\"\ncert = \"certs/edge/server.pem\"\nkey = \"certs/edge/server.key\"\nclient_ca = \"certs/tunnel/ca.pem\"\n[public_listener]\nlisten = \"127.0.0.1:0\"\n";
    let cases = [
        (
            "[tunnels.a]\nhostnames = [\"x.test\"]\n[tunnels.b]\nhostnames = [\"x.test\"]\n",
            ":11: `tunnels.b.hostnames[0]`: x.test is already served by tunnel \"a\"",
        ),
        ("[tunnels.Bad_Id]\nhostnames = [\"x.test\"]\n", ":8: `tunnels.Bad_Id`: tunnel ids use"),
        ("[tunnels.a]\nhostnames = []\n", "`tunnels.a`: `hostnames` is empty"),
    ];
    for (extra, expected) in cases {
        let path = write(dir.path(), "e.toml", &format!("{base}{extra}"));
        let err = EdgeConfig::load(&path).expect_err("refused").to_string();
        assert!(err.contains(expected), "got: {err}\nwant: {expected}");
    }
    let path = write(dir.path(), "e.toml", &base.replacen("127.0.0.1:0", "localhost", 1));
    let err = EdgeConfig::load(&path).expect_err("bad addr").to_string();
    assert!(err.contains("e.toml:2: `tunnel_listener.listen`: expected \"ip:port\""), "{err}");
}
