//! The README's "Five-minute deployment", run as written. The commands are read from the
//! `sh` blocks of that section of README.md (not a copy of them) and run in order, from a
//! temp dir holding the example files they name, as real processes of the binary under
//! test (`mcp-tunnel` is that binary). Only addresses change, by the rules of
//! [`config_rules`] (in the copied example files) and [`at_edge`] (the client's URL, plus
//! a time limit for curl); the session ends with a real MCP client (the official Python
//! SDK) that trusts nothing but the inner CA file the README gives the client.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::free_port;
use crate::common::procs::{run_in, Proc};
use crate::common::python::{client, root, PyServer};

const SECTION: &str = "## Five-minute deployment";

/// The section's text, up to the next `## ` heading.
fn section(readme: &str) -> &str {
    let start = readme.find(SECTION).expect("README has the five-minute deployment section");
    let rest = &readme[start + SECTION.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The commands of the section's ```sh blocks, one per line (`\` continuations joined),
/// split into words.
fn commands(section: &str) -> Vec<Vec<String>> {
    let (mut out, mut in_block, mut line) = (Vec::new(), false, String::new());
    for raw in section.lines().map(str::trim) {
        match raw {
            "```sh" => in_block = true,
            "```" => in_block = false,
            _ if in_block => match raw.strip_suffix('\\') {
                Some(part) => line.push_str(part),
                None => {
                    line.push_str(raw);
                    out.push(words(&std::mem::take(&mut line)));
                }
            },
            _ => {}
        }
    }
    assert!(out.len() >= 5, "too few commands in the README section: {out:?}");
    out
}

/// Shell words with single and double quotes; anything else a shell would interpret is
/// refused, so the commands mean here what they mean in a shell.
fn words(line: &str) -> Vec<String> {
    assert!(!line.contains(['$', '`', '|', ';', '&', '<', '>', '\\', '*']), "shell syntax in {line:?}");
    let (mut out, mut word, mut quote) = (Vec::new(), None::<String>, None);
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.get_or_insert_default().push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c.is_whitespace() => out.extend(word.take()),
            None => word.get_or_insert_default().push(c),
        }
        if quote.is_some() {
            word.get_or_insert_default();
        }
    }
    assert!(quote.is_none(), "unclosed quote in {line:?}");
    out.extend(word);
    out
}

/// The substitution rules for the copied example files: the edge's listeners on loopback
/// ports, the gateway dialing that loopback edge, the route's upstream at the test's MCP
/// server. Each must match.
fn config_rules(tunnel: u16, public: u16, upstream: &str) -> [(&'static str, String); 4] {
    [
        ("\"0.0.0.0:7844\"", format!("\"127.0.0.1:{tunnel}\"")),
        ("\"0.0.0.0:443\"", format!("\"127.0.0.1:{public}\"")),
        ("\"edge.example.com:7844\"", format!("\"127.0.0.1:{tunnel}\"")),
        ("\"http://10.0.0.5:8080\"", format!("\"{upstream}\"")),
    ]
}

/// The rule for the client's URL (DNS for the route's host points at the edge): the edge's
/// public port added; returns the URL and curl's `--resolve` for it.
fn at_edge(url: &str, public: u16) -> (String, String) {
    let rest = url.strip_prefix("https://").expect("an https:// URL");
    let (host, path) = rest.split_once('/').expect("a path");
    (format!("https://{host}:{public}/{path}"), format!("{host}:{public}:127.0.0.1"))
}

/// Copies the repository's example files the commands name into `dir`, applying `rules`.
fn copy_examples(commands: &[Vec<String>], dir: &Path, rules: &[(&str, String)]) {
    let mut matched = vec![false; rules.len()];
    for name in commands.iter().flatten().filter(|w| w.starts_with("examples/")) {
        let Ok(mut text) = std::fs::read_to_string(root().join(name)) else { continue };
        for ((from, to), matched) in rules.iter().zip(&mut matched) {
            *matched |= text.contains(from);
            text = text.replace(from, to);
        }
        std::fs::create_dir_all(dir.join(name).parent().expect("parent")).expect("mkdir");
        std::fs::write(dir.join(name), &text).expect("write example copy");
    }
    for ((from, _), matched) in rules.iter().zip(matched) {
        assert!(matched, "the rule for {from} matched nothing in the example files");
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("entry")) {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        match entry.file_type().expect("file type").is_dir() {
            true => files_under(&entry.path(), &format!("{name}/"), out),
            false => out.push(name),
        }
    }
}

/// `certs init` wrote the twelve files, and the section names each one (who keeps it).
fn section_names_every_file(section: &str, out_dir: &Path) {
    let mut files = Vec::new();
    files_under(out_dir, "", &mut files);
    assert_eq!(files.len(), 12, "{files:?}");
    for file in files {
        assert!(section.contains(&format!("`{file}`")), "the README does not say who keeps {file}");
    }
}

/// curl as the README shows it, with [`at_edge`] applied (and a time limit); returns the
/// URL and the CA file it used.
fn curl(dir: &Path, cmd: &[String], public: u16) -> (String, String) {
    let url = cmd.iter().find(|w| w.starts_with("https://")).expect("curl URL");
    let (url, resolve) = at_edge(url, public);
    let ca = cmd.iter().skip_while(|w| *w != "--cacert").nth(1).expect("curl --cacert").clone();
    let args = cmd[1..].iter().map(|w| if w.starts_with("https://") { &url } else { w });
    let out = Command::new("curl")
        .current_dir(dir)
        .args(args)
        .args(["--resolve", &resolve, "--max-time", "60"])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {}", text(&out));
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("\"serverInfo\""), "not an initialize result: {body}");
    (url, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_minute_deployment_runs_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = section(&readme);
    let commands = commands(section);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let upstream = PyServer::start().await;
    let public = free_port();
    copy_examples(&commands, dir, &config_rules(free_port(), public, &upstream.upstream()));

    let (mut running, mut client_side) = (Vec::new(), None);
    for cmd in &commands {
        let args: Vec<&str> = cmd[1..].iter().map(String::as_str).collect();
        match (cmd[0].as_str(), args.first().copied()) {
            ("mcp-tunnel", Some(role @ ("edge" | "gateway"))) => {
                let ready = if role == "edge" { "edge listening" } else { "tunnel registered" };
                let proc = Proc::spawn_in(dir, role, &args, &[("RUST_LOG", "info")]);
                proc.wait_line(ready, Duration::from_secs(20), |l| l.contains(ready));
                running.push(proc);
            }
            ("mcp-tunnel", _) => {
                let out = run_in(dir, &args);
                assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
                if args.starts_with(&["certs", "init", "--out"]) {
                    section_names_every_file(section, &dir.join(args[3]));
                }
            }
            ("curl", _) => client_side = Some(curl(dir, cmd, public)),
            _ => panic!("the README runs {cmd:?}, which this test does not know how to run"),
        }
    }
    assert_eq!(running.len(), 2, "the README starts an edge and a gateway");

    // A real MCP client: initialize, tools/list, tools/call, trusting the same CA file.
    let (url, ca) = client_side.expect("the README ends with a client request");
    let result = client(&url, &dir.join(&ca), &["basic", "--marker", "through the README"]).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"], "through the README", "{result}");

    for proc in running.iter_mut().rev() {
        let status = proc.terminate(Duration::from_secs(20));
        assert!(status.success(), "exited with {status}");
    }
}
