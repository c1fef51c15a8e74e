//! Logs and metrics of the real binary: an edge and a gateway run as processes, MCP
//! requests go through them, then
//! - every stderr line of `--log-format json` (flag or MCPT_LOG_FORMAT) is one JSON object
//!   with `timestamp`, `level`, `target` and `fields.message`, and RUST_LOG wins over
//!   `--log-level`;
//! - every metric in docs/metrics.md is in the scrape with its documented type and labels,
//!   and every metric in the scrape is documented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::common::config::{EdgeToml, GatewayToml};
use crate::common::procs::{self, admin_get, json_field, json_line, json_message_is, Proc};
use crate::common::{free_port, http, poll, write_pki, DOMAIN, TUNNEL};

const WAIT: Duration = Duration::from_secs(20);

/// Edge and gateway processes, an upstream MCP server, and what they told us.
struct Running {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    edge: Proc,
    gateway: Proc,
    public: std::net::SocketAddr,
    edge_admin: String,
    gateway_admin: String,
}

/// Starts the edge (with `edge_args` before the subcommand, `edge_env`), then the gateway
/// the same way, and waits until the tunnel is registered. Routes: `echo` (the example MCP
/// server) and `down` (a closed port).
fn start(edge_args: &[&str], edge_env: &[(&str, &str)], gw_args: &[&str], gw_env: &[(&str, &str)]) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path(), "certs", TUNNEL);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let upstream = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind upstream");
    let up_port = upstream.local_addr().expect("addr").port();
    rt.spawn(mcp_tunnel::demo::server::run(upstream, tokio_util::sync::CancellationToken::new()));

    let edge_toml = EdgeToml {
        tables: format!("[tunnels.{TUNNEL}]\nhostnames = [\"*.{DOMAIN}\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n"),
        ..EdgeToml::new("certs")
    }
    .render();
    let edge_path = dir.path().join("edge.toml");
    std::fs::write(&edge_path, edge_toml).expect("write edge.toml");
    let edge = spawn("edge", edge_args, &edge_path, edge_env);
    let listening = edge.wait_line("edge listening", WAIT, |l| l.contains("edge listening"));
    let field = |line: &str, name: &str| {
        json_field(line, name).unwrap_or_else(|| panic!("no fields.{name} in a JSON log line: {line}"))
    };
    let tunnel = field(&listening, "tunnel");
    let public = field(&listening, "public").parse().expect("public address");
    let edge_admin =
        field(&edge.wait_line("admin endpoint", WAIT, |l| json_message_is(l, "admin endpoint listening")), "addr");

    let gateway_toml = GatewayToml {
        tables: format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n\
             [[routes]]\nhost = \"echo\"\nupstream = \"http://127.0.0.1:{up_port}\"\npinning = \"warn\"\n\
             [[routes]]\nhost = \"down\"\nupstream = \"http://127.0.0.1:{}\"\n\
             [[routes]]\nhost = \"closed\"\nupstream = \"http://127.0.0.1:{up_port}\"\n[routes.policy]\ndeny_methods = [\"initialize\"]\n",
            free_port()
        ),
        ..GatewayToml::new(tunnel, "certs")
    }
    .render();
    let gateway_path = dir.path().join("gateway.toml");
    std::fs::write(&gateway_path, gateway_toml).expect("write gateway.toml");
    let gateway = spawn("gateway", gw_args, &gateway_path, gw_env);
    let gateway_admin =
        field(&gateway.wait_line("admin endpoint", WAIT, |l| json_message_is(l, "admin endpoint listening")), "addr");
    gateway.wait_line("tunnel registered", WAIT, |l| json_message_is(l, "tunnel registered"));
    Running { dir, rt, edge, gateway, public, edge_admin, gateway_admin }
}

fn spawn(role: &str, global: &[&str], config: &Path, env: &[(&str, &str)]) -> Proc {
    let config = config.to_str().expect("utf8");
    let args: Vec<&str> = global.iter().copied().chain([role, "--config", config]).collect();
    Proc::spawn(role, &args, env)
}

impl Running {
    /// POSTs an MCP `initialize` to `route`; returns the HTTP status.
    fn initialize(&self, route: &str) -> u16 {
        let host = format!("{route}.{DOMAIN}");
        let ca = mcp_tunnel::tls::pem::load_certs(&self.dir.path().join("certs/inner/ca.pem")).expect("inner CA");
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"observability","version":"1"}}}"#;
        let resp =
            self.rt.block_on(http::send(self.public, &host, &ca, http::mcp_post(&host, body))).expect("response");
        resp.status().as_u16()
    }

    /// Some traffic for every counter: a good request, an upstream failure, no route, a
    /// policy denial.
    fn traffic(&self) {
        assert_eq!(self.initialize("echo"), 200);
        assert_eq!(self.initialize("down"), 502);
        assert_eq!(self.initialize("nope"), 404);
        // Refused by the route's policy: answered by the gateway with a JSON-RPC error.
        assert_eq!(self.initialize("closed"), 200);
    }

    fn stop(mut self) -> (Vec<String>, Vec<String>) {
        assert!(self.gateway.terminate(WAIT).success(), "gateway exit status");
        assert!(self.edge.terminate(WAIT).success(), "edge exit status");
        (self.edge.lines(), self.gateway.lines())
    }
}

/// Fails unless every line is a JSON object with the fields log pipelines index on.
fn assert_json_lines(who: &str, lines: &[String], at_least: usize) {
    assert!(lines.len() >= at_least, "{who}: only {} log lines", lines.len());
    for line in lines {
        let obj = json_line(line).unwrap_or_else(|| panic!("{who}: not a JSON object: {line}"));
        for key in ["timestamp", "level", "target", "fields"] {
            assert!(obj.contains_key(key), "{who}: no `{key}` in {line}");
        }
        let level = obj["level"].as_str().unwrap_or_default();
        assert!(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level), "{who}: level {level:?} in {line}");
        assert!(obj["target"].as_str().is_some_and(|t| !t.is_empty()), "{who}: target in {line}");
        assert!(obj["fields"]["message"].is_string(), "{who}: no fields.message in {line}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_and_rust_log_wins() {
    // Flag on the edge, environment variable on the gateway; debug for more kinds of lines.
    let run = start(
        &["--log-format", "json", "--log-level", "debug"],
        &[],
        &["--log-level", "debug"],
        &[("MCPT_LOG_FORMAT", "json")],
    );
    run.traffic();
    let (edge, gateway) = run.stop();
    assert_json_lines("edge", &edge, 5);
    assert_json_lines("gateway", &gateway, 5);
    let has = |lines: &[String], level: &str, message: &str| {
        lines.iter().any(|l| {
            json_line(l).is_some_and(|o| o["level"] == level)
                && json_field(l, "message").is_some_and(|m| m.starts_with(message))
        })
    };
    assert!(has(&gateway, "WARN", "upstream request failed"), "the 502 is logged at WARN");
    assert!(has(&gateway, "DEBUG", "proxied"), "--log-level debug reached the gateway");
    assert!(has(&edge, "DEBUG", "stream opened"), "--log-level debug reached the edge");
    assert!(has(&gateway, "INFO", "gateway stopped") && has(&edge, "INFO", "edge stopped"));
    // The ids sit in spans (`span`: the innermost, `spans`: outermost first).
    let spans = |lines: &[String], message: &str| {
        let line = lines.iter().find(|l| json_message_is(l, message)).unwrap_or_else(|| panic!("no {message:?} line"));
        let o = serde_json::Value::Object(json_line(line).expect("JSON"));
        let names: Vec<String> = o["spans"].as_array().map_or_else(Vec::new, |spans| {
            spans.iter().map(|s| s["name"].as_str().unwrap_or("?").to_owned()).collect()
        });
        (o, names, line.clone())
    };
    let (o, names, line) = spans(&gateway, "proxied");
    assert_eq!(names, ["tunnel", "connection", "stream", "request"], "{line}");
    assert!(o["spans"][0]["index"].is_u64() && o["spans"][1]["id"].is_u64() && o["spans"][2]["id"].is_u64(), "{line}");
    assert!(o["span"]["route"].is_string() && o["span"]["method"].is_string(), "{line}");
    let (o, names, line) = spans(&edge, "stream opened");
    assert_eq!(names, ["stream"], "{line}");
    assert!(o["span"]["id"].is_u64() && o["span"]["client"].is_string(), "{line}");

    // RUST_LOG=warn beats --log-level debug: only WARN and ERROR lines. The edge is a closed
    // port, so the gateway logs a WARN for every failed attempt.
    let dir = tempfile::tempdir().expect("tempdir");
    write_pki(dir.path(), "certs", TUNNEL);
    let config = dir.path().join("gateway.toml");
    let toml = GatewayToml {
        shutdown_timeout: None,
        edge: "transport = \"http2\"".into(),
        tables: "[[routes]]\nhost = \"echo\"\nupstream = \"http://127.0.0.1:9\"\n".into(),
        ..GatewayToml::new(format!("127.0.0.1:{}", free_port()), "certs")
    }
    .render();
    std::fs::write(&config, toml).expect("write");
    let mut gw = spawn("gateway", &["--log-format", "json", "--log-level", "debug"], &config, &[("RUST_LOG", "warn")]);
    gw.wait_line("a WARN", WAIT, |l| l.contains("tunnel connection failed"));
    gw.terminate(WAIT);
    let lines = gw.lines();
    assert_json_lines("gateway (RUST_LOG=warn)", &lines, 1);
    for line in &lines {
        let level = json_line(line).map(|o| o["level"].clone()).unwrap_or_default();
        assert!(level == "WARN" || level == "ERROR", "RUST_LOG=warn let through: {line}");
    }

    // A filter that does not parse is an error naming its source.
    let out = std::process::Command::new(procs::BIN)
        .args(["check", "--config", "/nonexistent"])
        .env("RUST_LOG", "info,=[")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid log filter \"info,=[\" (from RUST_LOG)"), "{stderr}");
}

/// One row of a table in docs/metrics.md.
#[derive(Debug)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
}

/// The metric tables of docs/metrics.md: name -> type and labels, without [planned] rows.
fn documented() -> BTreeMap<String, Documented> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
    let text = std::fs::read_to_string(&path).expect("read docs/metrics.md");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `mcp_tunnel_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (name, kind, labels, meaning) = (cells[1].trim_matches('`'), cells[2], cells[3], cells[4]);
        if meaning.contains("[planned]") {
            continue;
        }
        let labels = labels.split(',').map(|l| l.trim().trim_matches('`').to_owned()).filter(|l| l != "—").collect();
        out.insert(name.to_owned(), Documented { kind: kind.to_owned(), labels });
    }
    assert!(out.len() >= 20, "docs/metrics.md: only {} metrics parsed", out.len());
    out
}

/// A scrape: family name (as in `# TYPE`) -> type, and sample name -> label-name sets.
struct Scrape {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, Vec<(BTreeSet<String>, f64)>>,
}

fn parse_scrape(text: &str) -> Scrape {
    let mut scrape = Scrape { types: BTreeMap::new(), samples: BTreeMap::new() };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            scrape.types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let names = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_owned()))
                        .filter(|k| k != "le")
                        .collect();
                    (name, names)
                }
                None => (series, BTreeSet::new()),
            };
            let value = value.parse().unwrap_or(f64::NAN);
            scrape.samples.entry(name.to_owned()).or_default().push((labels, value));
        }
    }
    scrape
}

/// Compares one component's scrape with its documented metrics (by name prefix).
fn compare(prefix: &str, docs: &BTreeMap<String, Documented>, scrape: &Scrape) -> Vec<String> {
    let mut problems = Vec::new();
    let mut documented_families = BTreeSet::new();
    for (name, doc) in docs.iter().filter(|(n, _)| n.starts_with(prefix)) {
        let family = match doc.kind.as_str() {
            "counter" => match name.strip_suffix("_total") {
                Some(f) => f.to_owned(),
                None => {
                    problems.push(format!("{name}: a counter must end in _total"));
                    continue;
                }
            },
            _ => name.clone(),
        };
        documented_families.insert(family.clone());
        match scrape.types.get(&family) {
            None => problems.push(format!("{name}: documented but not in the scrape")),
            Some(kind) if *kind != doc.kind => {
                problems.push(format!("{name}: scraped as {kind}, documented as {}", doc.kind))
            }
            Some(_) => {}
        }
        let sample_names: Vec<String> = match doc.kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{family}{s}")).collect(),
            _ => vec![name.clone()],
        };
        for sample in sample_names {
            for (labels, _) in scrape.samples.get(&sample).into_iter().flatten() {
                if *labels != doc.labels {
                    problems.push(format!("{sample}: labels {labels:?}, documented {:?}", doc.labels));
                }
            }
        }
    }
    for family in scrape.types.keys().filter(|f| !documented_families.contains(*f)) {
        problems.push(format!("{family}: exported but not documented in docs/metrics.md"));
    }
    problems
}

/// The sum of a sample's values over all its series.
fn total(scrape: &Scrape, sample: &str) -> f64 {
    scrape.samples.get(sample).map_or(0.0, |s| s.iter().map(|(_, v)| v).sum())
}

#[test]
fn every_documented_metric_is_exported_and_every_exported_metric_documented() {
    let json = ["--log-format", "json"];
    let run = start(&json, &[], &json, &[]);
    run.traffic();
    let (gw_status, gw_text) = admin_get(&run.gateway_admin, "/metrics");
    let (edge_status, edge_text) = admin_get(&run.edge_admin, "/metrics");
    assert_eq!((gw_status, edge_status), (200, 200));
    let docs = documented();
    let (gateway, edge) = (parse_scrape(&gw_text), parse_scrape(&edge_text));
    let mut problems = compare("mcp_tunnel_gateway_", &docs, &gateway);
    problems.extend(compare("mcp_tunnel_edge_", &docs, &edge));
    assert!(problems.is_empty(), "docs/metrics.md and /metrics disagree:\n{}\n", problems.join("\n"));

    // The traffic shows up where the doc says it does.
    for (scrape, sample, at_least) in [
        (&gateway, "mcp_tunnel_gateway_requests_total", 3.0),
        (&gateway, "mcp_tunnel_gateway_request_duration_seconds_count", 3.0),
        (&gateway, "mcp_tunnel_gateway_upstream_errors_total", 1.0),
        (&gateway, "mcp_tunnel_gateway_streams_total", 3.0),
        (&gateway, "mcp_tunnel_gateway_stream_bytes_total", 1000.0),
        (&gateway, "mcp_tunnel_gateway_tunnel_registrations_total", 1.0),
        (&edge, "mcp_tunnel_edge_streams_opened_total", 3.0),
        (&edge, "mcp_tunnel_edge_bytes_to_gateway_total", 500.0),
        (&edge, "mcp_tunnel_edge_bytes_to_client_total", 500.0),
        (&edge, "mcp_tunnel_edge_tunnel_registrations_total", 1.0),
        (&edge, "mcp_tunnel_edge_tunnel_connections", 1.0),
    ] {
        assert!(total(scrape, sample) >= at_least, "{sample} = {} < {at_least}", total(scrape, sample));
    }
    for (text, series) in [
        (
            &gw_text,
            format!("mcp_tunnel_gateway_upstream_errors_total{{route=\"down.{DOMAIN}\",kind=\"unreachable\"}} 1"),
        ),
        (&gw_text, format!("mcp_tunnel_gateway_requests_total{{route=\"echo.{DOMAIN}\",status=\"200\"}} 1")),
        (&gw_text, "mcp_tunnel_gateway_requests_total{route=\"-\",status=\"404\"} 1".to_owned()),
        (&gw_text, "mcp_tunnel_gateway_tunnel_connections{transport=\"quic\",state=\"registered\"} 1".to_owned()),
    ] {
        assert!(text.contains(&series), "no `{series}` in:\n{text}");
    }
    // Expiry gauges: every documented certificate, in the future.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as f64;
    for (text, name, certs) in [
        (
            &gw_text,
            "mcp_tunnel_gateway_certificate_expiry_timestamp_seconds",
            &["inner", "gateway_client", "edge_ca"][..],
        ),
        (&edge_text, "mcp_tunnel_edge_certificate_expiry_timestamp_seconds", &["edge_server", "tunnel_ca"][..]),
    ] {
        for cert in certs {
            let prefix = format!("{name}{{certificate=\"{cert}\"}} ");
            let value: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {prefix}"))
                .parse()
                .expect("number");
            assert!(value > now, "{cert} expires at {value}, before now ({now})");
        }
    }
    // After the streams ended, nothing is active any more.
    let active = |admin: &str, name: &str| {
        let (_, text) = admin_get(admin, "/metrics");
        total(&parse_scrape(&text), name)
    };
    let idle = || {
        active(&run.gateway_admin, "mcp_tunnel_gateway_streams_active") == 0.0
            && active(&run.edge_admin, "mcp_tunnel_edge_streams_active") == 0.0
    };
    poll::eventually_blocking(WAIT, "no stream active after the requests", idle);
    run.stop();
}
