//! The subcommands that look and report: `check` (is this config valid), `doctor` (would
//! this gateway config work here) and `probe` (is that running process alive or ready).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use super::exit::{Reported, UsageError, FAILURE};
use crate::config::{edge::EdgeConfig, gateway::GatewayConfig, Source};

/// `mcp-tunnel check`: validates an edge or gateway config, telling which by its top-level
/// keys.
pub fn config(path: &Path) -> Result<()> {
    let table: toml::Table = Source::read(path)?.parse()?;
    if table.contains_key("tunnel_listener") || table.contains_key("public_listener") {
        let c = EdgeConfig::load(path)?;
        println!("{}: valid edge config ({} tunnels)", path.display(), c.tunnels.len());
    } else if table.contains_key("tunnel_domain") || table.contains_key("routes") {
        let c = GatewayConfig::load(path)?;
        println!("{}: valid gateway config ({} routes, edge {})", path.display(), c.routes.len(), c.edge.address);
    } else {
        let what = "neither an edge config (needs [tunnel_listener]) nor a gateway config (needs tunnel_domain)";
        return Err(UsageError(format!("{}: {what}", path.display())).into());
    }
    Ok(())
}

/// `mcp-tunnel doctor`: prints each finding as it comes (or one JSON document at the end)
/// and exits with status 1 if any check failed.
pub async fn doctor(config: &Path, timeout: &str, json: bool) -> Result<()> {
    let timeout = crate::config::parse_duration(timeout).map_err(|e| UsageError(format!("--timeout: {e}")))?;
    let opts = crate::doctor::Options { timeout };
    let report = crate::doctor::run(config, &opts, |f| {
        if !json {
            println!("{f}")
        }
    })
    .await;
    println!("{}", if json { report.to_json() } else { report.summary() });
    if report.failed() {
        // A failed check is a finding, already printed: exit 1 without an `error: …` line.
        return Err(Reported(FAILURE).into());
    }
    Ok(())
}

/// `mcp-tunnel probe live | ready`: exit 0 and `CHECK: ok` if the admin endpoint answers
/// 200, an error (exit 1) otherwise.
pub async fn probe(admin: &str, check: &str) -> Result<()> {
    let path = if check == "live" { "/healthz" } else { "/readyz" };
    match crate::admin::probe(admin, path, Duration::from_secs(2)).await {
        Ok(true) => println!("{check}: ok"),
        Ok(false) => bail!("{check}: not {check} ({admin}{path} did not answer 200)"),
        Err(e) => bail!("{check}: {e}"),
    }
    Ok(())
}
