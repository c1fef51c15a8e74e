//! `mcp-tunnel doctor`: a preflight for a gateway config that a user runs before filing a
//! ticket. Each check yields one [`Finding`] (OK / WARN / FAIL, and for WARN and FAIL the
//! fix); a FAIL makes the command exit non-zero.
//!
//! Checks, in order: the config loads ([`GatewayConfig::load`], stopping on error), the
//! certificates meet what TLS peers and strict MCP clients require ([`certs`]), the edge
//! answers a real mTLS handshake over QUIC and over TCP ([`edge`]), and every route's
//! upstream answers MCP ([`upstream`]).

pub mod certs;
pub mod edge;
pub mod upstream;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::Serialize;

use crate::config::gateway::GatewayConfig;
use crate::config::ConfigError;
use crate::tls::pem::PemError;
use certs::Role;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Works now, but needs attention (expiring soon, fallback in use...).
    Warn,
    /// Will not work; the command exits non-zero.
    Fail,
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub verdict: Verdict,
    /// Stable name of the check for scripts: `config`, `cert`, `names`, `edge.quic`,
    /// `edge.tcp` or `route`.
    pub check: &'static str,
    /// What was found, naming the file, address or route.
    pub message: String,
    /// What to do about it (WARN and FAIL only).
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self { verdict: Verdict::Ok, check, message: message.into(), fix: None }
    }
    pub fn warn(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { verdict: Verdict::Warn, check, message: message.into(), fix: Some(fix.into()) }
    }
    pub fn fail(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { verdict: Verdict::Fail, check, message: message.into(), fix: Some(fix.into()) }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.verdict {
            Verdict::Ok => "[ OK ]",
            Verdict::Warn => "[WARN]",
            Verdict::Fail => "[FAIL]",
        };
        write!(f, "{tag} {}", self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

/// Settings for a doctor run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time allowed for each network check (one handshake, one MCP request).
    pub timeout: Duration,
}

/// Every finding of a run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether any check failed (the exit status).
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.verdict == Verdict::Fail)
    }

    fn count(&self, v: Verdict) -> usize {
        self.findings.iter().filter(|f| f.verdict == v).count()
    }

    /// `doctor: 9 OK, 1 WARN, 0 FAIL`.
    pub fn summary(&self) -> String {
        let (ok, warn, fail) = (self.count(Verdict::Ok), self.count(Verdict::Warn), self.count(Verdict::Fail));
        format!("doctor: {ok} OK, {warn} WARN, {fail} FAIL")
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        let doc = serde_json::json!({
            "ok": !self.failed(),
            "counts": { "ok": self.count(Verdict::Ok), "warn": self.count(Verdict::Warn), "fail": self.count(Verdict::Fail) },
            "findings": self.findings,
        });
        doc.to_string()
    }
}

/// Collects findings and hands each to the caller as soon as it exists (so a slow
/// network check does not hold back the lines before it).
struct Sink<'a> {
    report: Report,
    on_finding: &'a mut dyn FnMut(&Finding),
}

impl Sink<'_> {
    fn push(&mut self, finding: Finding) {
        (self.on_finding)(&finding);
        self.report.findings.push(finding);
    }
}

/// Runs every check on the gateway config at `path`.
pub async fn run(path: &Path, opts: &Options, mut on_finding: impl FnMut(&Finding)) -> Report {
    let mut sink = Sink { report: Report::default(), on_finding: &mut on_finding };
    let config = match GatewayConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            sink.push(Finding::fail("config", e.to_string(), config_fix(&e)));
            return sink.report;
        }
    };
    sink.push(Finding::ok(
        "config",
        format!(
            "{}: valid gateway config ({} routes, edge {})",
            path.display(),
            config.routes.len(),
            config.edge.address
        ),
    ));
    let paths = ConfigPaths::read(path);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for f in check_certs(&config, &paths, now) {
        sink.push(f);
    }
    for f in edge::check(&config.edge, &paths, opts.timeout).await {
        sink.push(f);
    }
    for f in upstream::check(&config, opts.timeout).await {
        sink.push(f);
    }
    sink.report
}

/// Checks every certificate the config names, each for its role (see [`certs`]).
fn check_certs(config: &GatewayConfig, paths: &ConfigPaths, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let show = |p: &Option<PathBuf>, fallback: &str| {
        p.as_ref().map_or_else(|| fallback.to_owned(), |p| p.display().to_string())
    };
    let edge_cert = show(&paths.edge_cert, &config.edge.identity.source);
    let renew_client = "ask the edge operator for a new gateway certificate (mcp-tunnel certs issue-gateway)";
    let sibling = sibling_ca(Path::new(&config.edge.identity.source));
    // The loader refuses empty chains, so each has a leaf.
    if let Some((leaf, rest)) = config.edge.identity.chain.split_first() {
        let issuer = certs::find_issuer(leaf, rest).or_else(|| certs::find_issuer(leaf, &sibling));
        let label = match crate::tls::identity::tunnel_id(leaf) {
            Ok(id) => format!("edge client certificate {edge_cert} (tunnel {id})"),
            Err(_) => format!("edge client certificate {edge_cert}"),
        };
        report(&mut out, &label, leaf, Role::Client, false, issuer, now, renew_client);
    }

    let edge_ca = show(&paths.edge_ca, "[edge] ca");
    for der in &config.edge.ca {
        let renew = "ask the edge operator for the current edge CA";
        report(&mut out, &format!("edge CA {edge_ca}"), der, Role::Ca, false, None, now, renew);
    }

    let inner = show(&paths.inner_cert, &config.inner.source);
    let dir = Path::new(&config.inner.source).parent().unwrap_or(Path::new("."));
    let renew_inner =
        format!("renew it: mcp-tunnel certs renew --dir {} (the running gateway picks it up)", dir.display());
    let sibling = sibling_ca(Path::new(&config.inner.source));
    if let Some((leaf, rest)) = config.inner.chain.split_first() {
        let from_chain = certs::find_issuer(leaf, rest);
        let issuer = from_chain.or_else(|| certs::find_issuer(leaf, &sibling));
        report(&mut out, &format!("inner certificate {inner}"), leaf, Role::Server, true, issuer, now, &renew_inner);
        for der in rest {
            report(&mut out, &format!("inner chain CA in {inner}"), der, Role::Ca, true, None, now, "renew the CA");
        }
        if let (Some(ca), None) = (issuer, from_chain) {
            let ca_path = dir.join("ca.pem").display().to_string();
            let renew = "replace the inner CA and re-issue the inner certificate (MCP clients must trust the new CA)";
            report(&mut out, &format!("inner CA {ca_path}"), ca, Role::Ca, true, None, now, renew);
        }
        out.push(names(config, leaf, &inner));
    }

    for (host, path) in &paths.route_cas {
        let label = format!("CA {} of route {host}", path.display());
        match crate::tls::pem::load_certs(path) {
            Ok(certs) => {
                for der in &certs {
                    report(&mut out, &label, der, Role::Ca, false, None, now, "get the upstream's current CA");
                }
            }
            Err(e) => out.push(Finding::fail("cert", e.to_string(), "check routes[].ca")),
        }
    }
    out
}

/// The `ca.pem` beside a certificate (the `certs init` layout), if there is one.
fn sibling_ca(cert: &Path) -> Vec<CertificateDer<'static>> {
    let ca = cert.with_file_name("ca.pem");
    if ca == cert {
        return vec![];
    }
    crate::tls::pem::load_certs(&ca).unwrap_or_default()
}

/// One OK line for a certificate without issues, else one line per issue.
#[allow(clippy::too_many_arguments)]
fn report(
    out: &mut Vec<Finding>,
    label: &str,
    der: &[u8],
    role: Role,
    strict: bool,
    issuer: Option<&CertificateDer<'_>>,
    now: i64,
    renew: &str,
) {
    let issues = certs::check_cert(der, role, strict, issuer.map(|c| c.as_ref()), now);
    if issues.is_empty() {
        let note = match (role, issuer) {
            (Role::Server | Role::Client, None) => " (issuer not found beside it; AKI not checked)",
            _ => "",
        };
        out.push(Finding::ok("cert", format!("{label}: {}{note}", certs::describe(der, now))));
    }
    for i in issues {
        let fix = i.fix.unwrap_or_else(|| renew.to_owned());
        out.push(Finding { verdict: i.verdict, check: "cert", message: format!("{label} {}", i.what), fix: Some(fix) });
    }
}

/// The inner certificate must cover every route hostname.
fn names(config: &GatewayConfig, leaf: &[u8], inner: &str) -> Finding {
    let mut hosts: Vec<String> = config.routes.routes().map(|r| r.host.clone()).collect();
    hosts.sort();
    hosts.dedup();
    match certs::uncovered_hosts(leaf, &hosts) {
        Err(e) => Finding::fail("names", format!("inner certificate {inner}: {e}"), "replace it"),
        Ok((_, missing)) if missing.is_empty() => {
            Finding::ok("names", format!("inner certificate covers {} route hostnames", hosts.len()))
        }
        Ok((names, missing)) => Finding::fail(
            "names",
            format!(
                "inner certificate {inner} does not cover route hostname(s) {} (it names {})",
                missing.join(", "),
                if names.is_empty() { "nothing".to_owned() } else { names.join(", ") }
            ),
            "re-issue the inner certificate with these names (or *.<parent>), or change the route's host",
        ),
    }
}

/// The fix for a config that does not load.
fn config_fix(e: &ConfigError) -> &'static str {
    match e {
        ConfigError::Read { .. } => "check the path and that this user may read the file",
        ConfigError::Syntax { .. } => "correct the TOML at that line (docs/configuration.md lists every key)",
        ConfigError::Invalid { .. } => "set a valid value for that key (see docs/configuration.md)",
        ConfigError::Pem { source, .. } => match source {
            PemError::Read { .. } => {
                "check the path (relative paths resolve against the config file's directory) and its permissions"
            }
            PemError::KeyMismatch { .. } => {
                "point `key` at the private key generated together with this certificate, or issue both anew"
            }
            PemError::BadKey { .. } => "use an unencrypted PKCS#8, PKCS#1 or SEC1 PEM private key",
            _ => "the file must hold PEM certificates ('-----BEGIN CERTIFICATE-----' blocks)",
        },
    }
}

/// File names from the config as written (for messages), and the route CA files, which
/// the validated config keeps only inside TLS settings.
#[derive(Debug, Default)]
pub struct ConfigPaths {
    pub edge_ca: Option<PathBuf>,
    pub edge_cert: Option<PathBuf>,
    pub inner_cert: Option<PathBuf>,
    /// (route host as written, CA file) for every `https` route.
    pub route_cas: Vec<(String, PathBuf)>,
}

impl ConfigPaths {
    /// Reads the paths from an (already validated) config file; missing ones stay `None`.
    pub fn read(path: &Path) -> Self {
        let Ok(table) = std::fs::read_to_string(path).unwrap_or_default().parse::<toml::Table>() else {
            return Self::default();
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let file = |v: Option<&toml::Value>| v.and_then(toml::Value::as_str).map(|p| dir.join(p));
        let edge = table.get("edge");
        let route_cas = table
            .get("routes")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let host = r.get("host").and_then(toml::Value::as_str).unwrap_or("?").to_owned();
                file(r.get("ca")).map(|ca| (host, ca))
            })
            .collect();
        Self {
            edge_ca: file(edge.and_then(|e| e.get("ca"))),
            edge_cert: file(edge.and_then(|e| e.get("cert"))),
            inner_cert: file(table.get("inner_tls").and_then(|t| t.get("cert"))),
            route_cas,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_exit_status() {
        let ok = Finding::ok("config", "fine");
        let warn = Finding::warn("cert", "expires in 9 days", "renew it");
        assert_eq!(ok.to_string(), "[ OK ] fine");
        assert_eq!(warn.to_string(), "[WARN] expires in 9 days — fix: renew it");
        let mut report = Report { findings: vec![ok, warn] };
        assert!(!report.failed(), "warnings alone pass");
        report.findings.push(Finding::fail("route", "down", "start it"));
        assert!(report.failed());
        assert_eq!(report.summary(), "doctor: 1 OK, 1 WARN, 1 FAIL");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["findings"][2]["verdict"], "fail");
        assert_eq!(json["findings"][1]["fix"], "renew it");
    }
}
