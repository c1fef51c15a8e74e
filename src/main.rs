//! The `mcp-tunnel` binary: argument parsing, logging and signals. All logic lives in
//! the library.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use mcp_tunnel::config::{edge::EdgeConfig, gateway::GatewayConfig};
use mcp_tunnel::logging::{self, LogFormat};
use mcp_tunnel::{certs_cli, demo, edge::Edge, gateway::Gateway, pki};

#[derive(Parser)]
#[command(name = "mcp-tunnel", version, about = "Outbound-only MCP tunnel: gateway, reference edge and tools")]
struct Cli {
    /// Log filter (e.g. info, debug, mcp_tunnel=debug), used when RUST_LOG is unset or
    /// blank (RUST_LOG wins); default: info, or warn for `demo` so its output stays readable.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log line format on stderr: `text` or `json` (one JSON object per line).
    #[arg(long, global = true, env = "MCPT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the reference tunnel edge.
    Edge {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway inside the private network (outbound connections only).
    Gateway {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Certificate tools.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Bearer tokens for routes that authenticate at the gateway (`[routes.auth]`).
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
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
        #[arg(long, short)]
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
        command: mcp_tunnel::pinning::cli::ToolsCommand,
    },
    /// Validate a config file (edge or gateway) and exit.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Approve or deny tool calls held by a running gateway's approval gates.
    Approvals(mcp_tunnel::approval::cli::ApprovalsArgs),
    /// Serve the example MCP server (Streamable HTTP at /mcp; tools echo, add, countdown).
    ExampleServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// Operate a running gateway over its control socket: status, kill switch.
    Ctl(mcp_tunnel::control::cli::CtlArgs),
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
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Print a new random token (256 bits) and, on stderr, its hash for the config.
    GenerateToken,
    /// Read a token on stdin and print its `sha256:` hash for `[routes.auth] tokens`.
    HashToken,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Generate edge, tunnel and inner CAs and certificates for a deployment.
    Init {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        tunnel_id: String,
        #[arg(long)]
        tunnel_domain: String,
        /// DNS name of the edge's tunnel listener (repeatable; loopback IPs are always included).
        #[arg(long = "edge-name", default_value = "localhost")]
        edge_names: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print subject, SANs, issuer, validity, key type and SHA-256 fingerprint.
    Inspect { file: PathBuf },
    /// Renew DIR/server.pem from DIR/ca.pem + ca.key when it expires within the window
    /// (a no-op otherwise; safe to run daily). A running gateway picks it up by itself.
    Renew {
        #[arg(long)]
        dir: PathBuf,
        /// e.g. 720h (30 days).
        #[arg(long, default_value = "720h")]
        renew_before: String,
    },
    /// Issue a gateway client certificate for another tunnel from an existing tunnel CA.
    IssueGateway {
        /// Directory holding the tunnel CA as `ca.pem` and `ca.key` (e.g. certs/tunnel).
        #[arg(long)]
        ca_dir: PathBuf,
        #[arg(long)]
        tunnel_id: String,
        /// Where to write `gateway.pem` and `gateway.key`.
        #[arg(long)]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Demo { .. }) { "warn" } else { "info" };
    logging::init(cli.log_format, cli.log_level.as_deref(), default_level)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Edge { config } => {
            let edge = Edge::bind(&EdgeConfig::load(&config)?).await?;
            edge.watch_config(config, reload_on_sighup()?).run(shutdown_on_signal()?).await;
        }
        Command::Gateway { config } => {
            let gateway = Gateway::new(GatewayConfig::load(&config)?)?;
            gateway.watch_config(config, reload_on_sighup()?).run(shutdown_on_signal()?).await;
        }
        Command::Certs { command: CertsCommand::Init { out, tunnel_id, tunnel_domain, edge_names, force } } => {
            let generated = pki::generate(&pki::PkiOptions { tunnel_id, tunnel_domain, edge_names })?;
            for path in generated.write(&out, force)? {
                println!("wrote {}", path.display());
            }
        }
        Command::Certs { command: CertsCommand::IssueGateway { ca_dir, tunnel_id, out, force } } => {
            let read = |name: &str| {
                let path = ca_dir.join(name);
                std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))
            };
            let issued = pki::issue_gateway_cert(&read("ca.pem")?, &read("ca.key")?, &tunnel_id)?;
            for path in issued.write(&out, "gateway", force)? {
                println!("wrote {}", path.display());
            }
        }
        Command::Certs { command: CertsCommand::Inspect { file } } => print!("{}", certs_cli::inspect(&file)?),
        Command::Certs { command: CertsCommand::Renew { dir, renew_before } } => {
            let window = mcp_tunnel::config::parse_duration(&renew_before).map_err(anyhow::Error::msg)?;
            match certs_cli::renew(&dir, window)? {
                certs_cli::Renewal::NotDue { expires_in } => {
                    println!("not due: expires in {} days", expires_in.as_secs() / 86400)
                }
                certs_cli::Renewal::Renewed { domain } => println!("renewed the certificate for *.{domain}"),
            }
        }
        Command::Auth { command: AuthCommand::GenerateToken } => {
            let token = mcp_tunnel::auth::generate_token()?;
            eprintln!("hash for the config: {}", mcp_tunnel::auth::hash_token(&token));
            println!("{token}");
        }
        Command::Auth { command: AuthCommand::HashToken } => {
            let mut token = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut token).context("cannot read stdin")?;
            let token = token.trim_end_matches(['\r', '\n']);
            if token.is_empty() {
                bail!("no token on stdin");
            }
            println!("{}", mcp_tunnel::auth::hash_token(token));
        }
        Command::Check { config } => check(&config)?,
        Command::Approvals(args) => print!("{}", mcp_tunnel::approval::cli::run(args).await?),
        Command::Tools { command } => print!("{}", mcp_tunnel::pinning::cli::run(command).await?),
        Command::Doctor { config, timeout, json } => {
            let timeout = mcp_tunnel::config::parse_duration(&timeout).map_err(anyhow::Error::msg)?;
            let opts = mcp_tunnel::doctor::Options { timeout };
            let report = mcp_tunnel::doctor::run(&config, &opts, |f| {
                if !json {
                    println!("{f}")
                }
            })
            .await;
            println!("{}", if json { report.to_json() } else { report.summary() });
            if report.failed() {
                std::process::exit(1);
            }
        }
        Command::Probe { admin, check } => {
            let path = if check == "live" { "/healthz" } else { "/readyz" };
            match mcp_tunnel::admin::probe(&admin, path, std::time::Duration::from_secs(2)).await {
                Ok(true) => println!("{check}: ok"),
                Ok(false) => bail!("{check}: not {check} ({admin}{path} did not answer 200)"),
                Err(e) => bail!("{check}: {e}"),
            }
        }
        Command::ExampleServer { listen } => {
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            let listen = listener.local_addr().unwrap_or(listen);
            tracing::info!(%listen, "example MCP server listening (endpoint /mcp)");
            demo::server::run(listener, shutdown_on_signal()?).await;
        }
        Command::Ctl(args) => println!("{}", mcp_tunnel::control::cli::run(&args).await?),
        Command::Demo { public_port, dir, once } => {
            demo::run(demo::DemoOptions { public_port, dir, once }, shutdown_on_signal()?).await?;
        }
    }
    Ok(())
}

/// Validates an edge or gateway config, telling which by its top-level keys.
fn check(path: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read config", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if table.contains_key("tunnel_listener") || table.contains_key("public_listener") {
        let c = EdgeConfig::load(path)?;
        println!("{}: valid edge config ({} tunnels)", path.display(), c.tunnels.len());
    } else if table.contains_key("tunnel_domain") || table.contains_key("routes") {
        let c = GatewayConfig::load(path)?;
        println!("{}: valid gateway config ({} routes, edge {})", path.display(), c.routes.len(), c.edge.address);
    } else {
        bail!(
            "{}: neither an edge config (needs [tunnel_listener]) nor a gateway config (needs tunnel_domain)",
            path.display()
        );
    }
    Ok(())
}

/// A notifier fired on every SIGHUP.
fn reload_on_sighup() -> Result<std::sync::Arc<tokio::sync::Notify>> {
    use tokio::signal::unix::{signal, SignalKind};
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut hup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let n = notify.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            n.notify_one();
        }
    });
    Ok(notify)
}

/// A token cancelled on SIGINT or SIGTERM.
fn shutdown_on_signal() -> Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    Ok(token)
}
