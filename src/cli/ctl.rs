//! `mcp-tunnel ctl`: the kill switch and status of a running gateway, over its control
//! socket. Human-readable output by default; `--json` prints the raw result.

use std::path::PathBuf;

use serde_json::Value;

use crate::control::client::{send, ClientError, DEFAULT_STATE_DIR};
use crate::control::ControlOp;

/// `ctl` arguments.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The gateway's state directory (where its control socket is).
    #[arg(long, global = true, env = "MCPT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Print the raw JSON result.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `ctl` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// What is stopped, the routes, and where each tunnel connection is (edge, transport, RTT).
    Status,
    /// Stop one route (--route) or the whole gateway: in-flight calls and streams are cut,
    /// new ones refused (503), and the stop survives restarts. Returns when the cut is complete.
    Kill {
        /// The route's name as `ctl status` lists it (default: everything, tunnel included).
        #[arg(long)]
        route: Option<String>,
        /// Why (shown to clients and written to the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Lift the stop of one route (--route) or the whole-gateway stop.
    Resume {
        #[arg(long)]
        route: Option<String>,
    },
}

/// Runs a `ctl` command; returns what to print.
pub async fn run(args: &CtlArgs) -> Result<String, ClientError> {
    let op = match &args.command {
        CtlCommand::Status => ControlOp::Status,
        CtlCommand::Kill { route, reason } => ControlOp::Kill { route: route.clone(), reason: reason.clone() },
        CtlCommand::Resume { route } => ControlOp::Resume { route: route.clone() },
    };
    let result = send(&args.state_dir, &op).await?;
    if args.json {
        return Ok(result.to_string());
    }
    Ok(match &args.command {
        CtlCommand::Status => describe_status(&result),
        CtlCommand::Kill { .. } => describe_kill(&result),
        CtlCommand::Resume { .. } => describe_resume(&result),
    })
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

fn stop_line(what: &str, k: &Value) -> String {
    format!("{what}: STOPPED since {} by {}: {}", text(k, "at"), text(k, "actor"), text(k, "reason"))
}

fn describe_status(v: &Value) -> String {
    let kill = &v["kill"];
    let mut out = Vec::new();
    match kill.get("all").filter(|a| !a.is_null()) {
        Some(all) => out.push(stop_line("gateway", all)),
        None => out.push("gateway: running".to_owned()),
    }
    for route in v["routes"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        match kill["routes"].get(route) {
            Some(k) => out.push(stop_line(&format!("route {route}"), k)),
            None => out.push(format!("route {route}: running")),
        }
    }
    // Stops of routes no longer in the config still apply if the route comes back.
    let listed: Vec<&str> = v["routes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for (route, k) in kill["routes"].as_object().into_iter().flatten() {
        if !listed.contains(&route.as_str()) {
            out.push(stop_line(&format!("route {route} (not in the config)"), k));
        }
    }
    out.extend(v["connections"].as_array().into_iter().flatten().map(connection_line));
    out.join("\n")
}

/// `connection 0: registered to 10.0.0.7:7844 over quic, up 3600 s, rtt 1.2 ms (last error: …)`.
fn connection_line(c: &Value) -> String {
    let mut line = format!("connection {}: {}", c["index"], text(c, "state"));
    if text(c, "state") == "registered" {
        line.push_str(&format!(" to {} over {}, up {} s", text(c, "edge"), text(c, "transport"), c["uptime_s"]));
        if let Some(ms) = c["rtt_ms"].as_f64() {
            line.push_str(&format!(", rtt {ms:.1} ms"));
        }
    }
    let why = c["reason"].as_str().or(c["last_error"].as_str());
    if let Some(why) = why {
        line.push_str(&format!(" (last error: {why})"));
    }
    line
}

fn describe_kill(v: &Value) -> String {
    let scope = match text(v, "scope") {
        "all" => "the gateway (tunnel closed)".to_owned(),
        r => format!("route {r}"),
    };
    let ms = v["elapsed_ms"].as_f64().unwrap_or(f64::NAN);
    let mut out = format!("stopped {scope}: cut {} in-flight exchanges in {ms:.1} ms", v["cut"]);
    if v["remaining"].as_u64().unwrap_or(0) > 0 {
        out.push_str(&format!("\nWARNING: {} exchanges had not ended when the wait ran out", v["remaining"]));
    }
    if let Some(e) = v["persist_error"].as_str() {
        out.push_str(&format!("\nWARNING: the stop holds but was not saved (a restart would lift it): {e}"));
    }
    out
}

fn describe_resume(v: &Value) -> String {
    let scope = match text(v, "scope") {
        "all" => "the gateway".to_owned(),
        r => format!("route {r}"),
    };
    let mut out =
        format!("resumed {scope} (stopped since {} by {})", text(&v["lifted"], "at"), text(&v["lifted"], "actor"));
    let still = &v["still_stopped"];
    if still.get("all").is_some_and(|a| !a.is_null()) {
        out.push_str("\nthe whole gateway is still stopped (`ctl resume` without --route lifts it)");
    }
    for route in still["routes"].as_object().into_iter().flatten().map(|(r, _)| r) {
        out.push_str(&format!("\nroute {route} is still stopped"));
    }
    if let Some(e) = v["persist_error"].as_str() {
        out.push_str(&format!("\nWARNING: not saved (a restart would stop it again): {e}"));
    }
    out
}
