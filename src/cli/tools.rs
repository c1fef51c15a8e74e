//! `mcp-tunnel tools list | diff | pin`: tool pinning on a running gateway, through its
//! control socket. Human-readable output by default; `--json` prints the gateway's answer.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::control::client::{send, ClientError, DEFAULT_STATE_DIR};
use crate::control::ControlOp;

/// The `tools` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ToolsCommand {
    /// Pinned and last-seen fingerprint and status of every tool of a route.
    List {
        #[command(flatten)]
        common: Common,
        /// List the upstream's tools first (the gateway's own MCP session).
        #[arg(long)]
        fetch: bool,
    },
    /// What changed in each tool that is not pinned as last seen, field by field.
    Diff {
        #[command(flatten)]
        common: Common,
        /// List the upstream's tools first (the gateway's own MCP session).
        #[arg(long)]
        fetch: bool,
    },
    /// Accept the current definitions (the gateway lists the upstream's tools first).
    Pin {
        #[command(flatten)]
        common: Common,
        /// Pin only this tool (default: every tool the upstream lists).
        #[arg(long)]
        tool: Option<String>,
        /// Why, for the audit record (e.g. a review ticket).
        #[arg(long)]
        note: Option<String>,
    },
}

/// Arguments every `tools` subcommand takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The route: its full name as in audit records (`tickets.mcp.example.com`,
    /// `tools.mcp.example.com/crm`) or the subdomain alone when that is unambiguous.
    #[arg(long)]
    route: String,
    /// The gateway's state directory (where its control socket is).
    #[arg(long, env = "MCPT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Print the gateway's JSON answer.
    #[arg(long)]
    json: bool,
}

/// Runs a `tools` subcommand; returns what to print.
pub async fn run(command: ToolsCommand) -> Result<String, ClientError> {
    let (common, op) = match command {
        ToolsCommand::List { common, fetch } => {
            let route = common.route.clone();
            (common, ControlOp::ToolsList { route, fetch: Some(fetch) })
        }
        ToolsCommand::Diff { common, fetch } => {
            let route = common.route.clone();
            (common, ControlOp::ToolsDiff { route, fetch: Some(fetch) })
        }
        ToolsCommand::Pin { common, tool, note } => {
            let route = common.route.clone();
            (common, ControlOp::ToolsPin { route, tool, note })
        }
    };
    let result = send(&common.state_dir, &op).await?;
    if common.json {
        return Ok(format!("{result}\n"));
    }
    Ok(match op {
        ControlOp::ToolsList { .. } => list_text(&result),
        ControlOp::ToolsDiff { .. } => diff_text(&result),
        _ => pin_text(&result),
    })
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// `sha256:` and the first 12 hex digits: enough to tell versions apart on screen.
fn short(fp: &str) -> String {
    fp.get(..19).unwrap_or(fp).to_owned()
}

fn header(v: &Value) -> String {
    let mut out = format!("route {} (pinning {})", s(v, "route"), s(v, "mode"));
    if v.get("persistent") == Some(&Value::Bool(false)) {
        out.push_str(", pins in memory only (no state_dir)");
    }
    if let Some(f) = v.get("fetch") {
        match f.get("error").and_then(Value::as_str) {
            Some(e) => write!(out, "\nlisting the upstream's tools failed: {e}").unwrap_or(()),
            None => write!(out, "\nlisted {} tools from the upstream", f["tools"]).unwrap_or(()),
        }
    }
    out.push('\n');
    out
}

fn tools(v: &Value) -> &[Value] {
    v.get("tools").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Tool, status, short pinned and short last-seen fingerprint of one entry.
fn row(t: &Value) -> (&str, &str, String, String) {
    (s(t, "tool"), s(t, "status"), short(s(t, "pinned")), short(s(t, "seen")))
}

fn list_text(v: &Value) -> String {
    let mut out = header(v);
    let width = tools(v).iter().map(|t| s(t, "tool").len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "{:width$}  {:9} {:20} {:20}", "TOOL", "STATUS", "PINNED", "LAST SEEN");
    for t in tools(v) {
        let (tool, status, pinned, seen) = row(t);
        let _ = writeln!(out, "{tool:width$}  {status:9} {pinned:20} {seen:20}");
    }
    if tools(v).is_empty() {
        out.push_str("(no tools pinned or seen yet)\n");
    }
    out
}

fn diff_text(v: &Value) -> String {
    let mut out = header(v);
    let differing: Vec<&Value> = tools(v).iter().filter(|t| s(t, "status") != "pinned").collect();
    if differing.is_empty() {
        out.push_str("every tool seen is pinned as seen: no changes\n");
    }
    for t in differing {
        let (tool, status, pinned, seen) = row(t);
        let _ = writeln!(out, "\n{tool}: {status} (pinned {pinned}, last seen {seen})");
        for c in t.get("changes").and_then(Value::as_array).into_iter().flatten() {
            let _ = writeln!(out, "  {} {}", s(c, "path"), s(c, "change"));
            if let Some(p) = c.get("pinned") {
                let _ = writeln!(out, "    - {}", shown(p));
            }
            if let Some(n) = c.get("seen") {
                let _ = writeln!(out, "    + {}", shown(n));
            }
        }
    }
    out
}

/// A value on one line: text as is (escaped control characters), anything else as JSON.
fn shown(v: &Value) -> String {
    let text = match v {
        // Control characters escaped, so a description cannot rewrite the terminal.
        Value::String(t) => {
            t.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.into() }).collect()
        }
        other => other.to_string(),
    };
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

fn pin_text(v: &Value) -> String {
    let pinned = v.get("pinned").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let mut out = format!("pinned {} tool(s) on route {}", pinned.len(), s(v, "route"));
    if v.get("persistent") == Some(&Value::Bool(false)) {
        out.push_str(" (in memory only: the gateway has no state_dir)");
    }
    out.push('\n');
    for p in pinned {
        let _ = writeln!(out, "  {} {}", s(p, "tool"), s(p, "fingerprint"));
    }
    out
}
