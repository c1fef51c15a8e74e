//! The command line, on top of everything else: the clap definitions of every subcommand
//! ([`Cli`], [`Command`] and the nested ones in the submodules), what each prints, and
//! [`run`], which carries out one parsed command. `main.rs` only parses, starts logging and
//! the runtime, and calls [`run`].
//!
//! - [`serve`]: `edge`, `gateway`, `example-server`, `demo` and their signals.
//! - [`certs`]: `certs init | issue-gateway | inspect | renew`.
//! - [`auth`]: `auth generate-token | hash-token`.
//! - [`check`]: `check`, `doctor`, `probe`.
//! - [`ctl`], [`approvals`], [`tools`]: a running gateway over its control socket
//!   (`crate::control::client`).
//!
//! - [`generate`]: `completions` and `man`, generated from these clap definitions.
//! - [`exit`]: the exit statuses and how `main` prints an error.
//!
//! This is the binary's edge, the one library module whose errors are `anyhow`: all that is
//! done with them is [`exit::finish`] printing them (`error: …` and its causes, no
//! backtrace) and picking the exit status. The modules below keep their typed errors, and
//! none of them imports `cli` (`scripts/module_graph.py` checks it).

pub mod approvals;
pub mod auth;
pub mod certs;
pub mod check;
pub mod ctl;
pub mod exit;
pub mod generate;
mod sd;
pub mod serve;
pub mod tools;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

// The whole command line: global flags and one subcommand. (A `//` comment, not `///`:
// clap would print a doc comment here as the long help.)
#[derive(Parser)]
#[command(name = "mcp-tunnel", version, about = "Outbound-only MCP tunnel: gateway, reference edge and tools")]
pub struct Cli {
    /// Log filter (e.g. info, debug, mcp_tunnel=debug), used when RUST_LOG is unset or
    /// blank (RUST_LOG wins); default: info, or warn for `demo` so its output stays readable.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log line format on stderr: `text` or `json` (one JSON object per line).
    #[arg(long, global = true, env = "MCPT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the reference tunnel edge.
    Edge {
        /// The config file; `--config` wins over `MCPT_CONFIG`.
        #[arg(long, short, env = "MCPT_CONFIG")]
        config: PathBuf,
    },
    /// Run the gateway inside the private network (outbound connections only).
    Gateway {
        /// The config file; `--config` wins over `MCPT_CONFIG`.
        #[arg(long, short, env = "MCPT_CONFIG")]
        config: PathBuf,
    },
    /// Certificate tools.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Bearer tokens for routes that authenticate at the gateway (`[routes.auth]`).
    Auth {
        #[command(subcommand)]
        command: auth::AuthCommand,
    },
    /// Ask a running gateway or edge whether it is alive or ready (exit 0 if so, 1 if
    /// not): for exec probes in images without a shell.
    Probe {
        /// The admin endpoint (`[admin] listen`).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        /// `live` (the process answers) or `ready` (a tunnel connection is registered).
        #[arg(value_parser = ["live", "ready"])]
        check: String,
    },
    /// Preflight a gateway config: certificates, the edge over QUIC and TCP, and every
    /// upstream; one OK/WARN/FAIL line per check (exit 1 if any check fails).
    Doctor {
        /// The config file; `--config` wins over `MCPT_CONFIG`.
        #[arg(long, short, env = "MCPT_CONFIG")]
        config: PathBuf,
        /// Time allowed for each network check, e.g. 3s.
        #[arg(long, default_value = "3s")]
        timeout: String,
        /// Print one JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Tool-definition pinning on a running gateway: list, diff, pin.
    Tools {
        #[command(subcommand)]
        command: tools::ToolsCommand,
    },
    /// Validate a config file (edge or gateway) and exit.
    Check {
        /// The config file; `--config` wins over `MCPT_CONFIG`.
        #[arg(long, short, env = "MCPT_CONFIG")]
        config: PathBuf,
    },
    /// Approve or deny tool calls held by a running gateway's approval gates.
    Approvals(approvals::ApprovalsArgs),
    /// Serve the example MCP server (Streamable HTTP at /mcp; tools echo, add, countdown).
    ExampleServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Operate a running gateway over its control socket: status, kill switch.
    Ctl(ctl::CtlArgs),
    /// Edge, gateway and an example MCP server in one process, with a real MCP session.
    Demo {
        /// Public port of the demo edge (0 = any free port).
        #[arg(long, default_value_t = 0)]
        public_port: u16,
        /// Where to write the demo's certificates and configs (default: a new temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Exit after the MCP session instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Print a shell completion script, e.g. `mcp-tunnel completions bash >
    /// /etc/bash_completion.d/mcp-tunnel`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or with `--dir` write one page per subcommand there.
    Man {
        /// Directory for `mcp-tunnel.1`, `mcp-tunnel-gateway.1`, … (created if missing).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

impl Command {
    /// The log filter when neither `RUST_LOG` nor `--log-level` gives one: `demo` prints
    /// its session on stdout, so it keeps the log to warnings.
    pub fn default_log_level(&self) -> &'static str {
        if matches!(self, Command::Demo { .. }) {
            "warn"
        } else {
            "info"
        }
    }
}

/// Carries out one command (inside the runtime `main` started) and prints its result.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Edge { config } => serve::edge(config).await,
        Command::Gateway { config } => serve::gateway(config).await,
        Command::Certs { command } => certs::run(command),
        Command::Auth { command } => auth::run(command),
        Command::Check { config } => check::config(&config),
        Command::Doctor { config, timeout, json } => check::doctor(&config, &timeout, json).await,
        Command::Probe { admin, check } => check::probe(&admin, &check).await,
        Command::Approvals(args) => {
            print!("{}", approvals::run(args).await?);
            Ok(())
        }
        Command::Tools { command } => {
            print!("{}", tools::run(command).await?);
            Ok(())
        }
        Command::Ctl(args) => {
            println!("{}", ctl::run(&args).await?);
            Ok(())
        }
        Command::ExampleServer { listen } => serve::example_server(listen).await,
        Command::Completions { shell } => generate::completions(shell, &mut std::io::stdout()),
        Command::Man { dir } => generate::man(dir.as_deref(), &mut std::io::stdout()),
        Command::Demo { public_port, dir, once } => {
            serve::demo(crate::demo::DemoOptions { public_port, dir, once }).await
        }
    }
}
