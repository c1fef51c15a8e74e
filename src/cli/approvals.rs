//! `mcp-tunnel approvals list | show ID | approve ID | deny ID --reason TEXT`: the
//! approver's side, over the gateway's control socket.

use std::path::PathBuf;

use serde_json::Value;

use crate::control::client::{self, ClientError, DEFAULT_STATE_DIR};
use crate::control::ControlOp;

/// Arguments of `mcp-tunnel approvals`.
#[derive(Debug, clap::Args)]
pub struct ApprovalsArgs {
    /// The gateway's state directory (its control socket is `control.sock` in it).
    #[arg(long, env = "MCPT_STATE_DIR", default_value = DEFAULT_STATE_DIR, global = true)]
    pub state_dir: PathBuf,
    /// Print the gateway's JSON result instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ApprovalsCommand,
}

/// The `approvals` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ApprovalsCommand {
    /// Tool calls waiting for approval now, oldest first.
    List,
    /// One waiting call: route, tool, visible arguments, caller, deadline.
    Show { id: String },
    /// Let the call through: the original request goes to the upstream unchanged.
    Approve {
        id: String,
        /// Why (audited).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Refuse the call: the caller gets a JSON-RPC error naming the approval id and the reason.
    Deny {
        id: String,
        /// Why (sent to the caller and audited).
        #[arg(long)]
        reason: String,
    },
}

/// Runs the command; returns what to print.
pub async fn run(args: ApprovalsArgs) -> Result<String, ClientError> {
    let op = match &args.command {
        ApprovalsCommand::List => ControlOp::ApprovalsList,
        ApprovalsCommand::Show { id } => ControlOp::ApprovalsShow { id: id.clone() },
        ApprovalsCommand::Approve { id, reason } => {
            ControlOp::ApprovalsApprove { id: id.clone(), reason: reason.clone() }
        }
        ApprovalsCommand::Deny { id, reason } => {
            ControlOp::ApprovalsDeny { id: id.clone(), reason: Some(reason.clone()) }
        }
    };
    let result = client::send(&args.state_dir, &op).await?;
    if args.json {
        return Ok(format!("{result}\n"));
    }
    Ok(match &args.command {
        ApprovalsCommand::List => list_text(&result),
        ApprovalsCommand::Show { .. } => show_text(&result),
        ApprovalsCommand::Approve { .. } | ApprovalsCommand::Deny { .. } => {
            let call = &result["call"];
            format!(
                "{} {} (tool {} on route {}, waited {} ms)\n",
                text(&result["decision"]),
                text(&call["id"]),
                text(&call["tool"]),
                text(&call["route"]),
                call["waiting_ms"]
            )
        }
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn seconds(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |ms| format!("{}s", ms / 1000))
}

fn list_text(result: &Value) -> String {
    let calls = result["approvals"].as_array().cloned().unwrap_or_default();
    if calls.is_empty() {
        return "no tool calls are waiting for approval\n".to_owned();
    }
    let mut out = format!("{:<16}  {:<8}  {:<10}  {:<24}  {}\n", "ID", "WAITING", "EXPIRES IN", "TOOL", "ROUTE");
    for c in &calls {
        out.push_str(&format!(
            "{:<16}  {:<8}  {:<10}  {:<24}  {}\n",
            text(&c["id"]),
            seconds(&c["waiting_ms"]),
            seconds(&c["expires_in_ms"]),
            text(&c["tool"]),
            text(&c["route"])
        ));
    }
    out
}

fn show_text(c: &Value) -> String {
    let mut out = String::new();
    for key in ["id", "route", "tool", "created", "deadline", "client_addr", "identity", "session_id", "jsonrpc_id"] {
        out.push_str(&format!("{key:<12} {}\n", text(&c[key])));
    }
    out.push_str(&format!("{:<12} {}\n", "waiting", seconds(&c["waiting_ms"])));
    out.push_str(&format!("{:<12} {}\n", "expires in", seconds(&c["expires_in_ms"])));
    let args = serde_json::to_string_pretty(&c["arguments"]).unwrap_or_default();
    out.push_str(&format!("arguments (keys not in visible_arguments are redacted):\n{args}\n"));
    out
}
