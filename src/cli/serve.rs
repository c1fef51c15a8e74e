//! The long-running subcommands: `edge`, `gateway`, `example-server` and `demo`, and the
//! signals they stop (SIGINT, SIGTERM) and reload (SIGHUP) on.
//!
//! The handlers are installed here, by the command that needs them, and not in `main` for
//! every command: a short command (`ctl kill`, `approvals list`) keeps the default Ctrl-C,
//! which ends the process at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::sd;
use crate::config::{edge::EdgeConfig, gateway::GatewayConfig};
use crate::{demo, edge::Edge, gateway::Gateway};

/// `mcp-tunnel edge`: runs the reference edge until SIGINT or SIGTERM.
pub async fn edge(config: PathBuf) -> Result<()> {
    let edge = Edge::bind(&EdgeConfig::load(&config)?).await?;
    let shutdown = shutdown_on_signal()?;
    sd::edge_ready();
    let watchdog = tokio::spawn(sd::watchdog(shutdown.clone()));
    edge.watch_config(config, reload_on_sighup()?).run(shutdown).await;
    let _ = watchdog.await;
    Ok(())
}

/// `mcp-tunnel gateway`: runs the gateway until SIGINT or SIGTERM.
pub async fn gateway(config: PathBuf) -> Result<()> {
    let gateway = Gateway::new(GatewayConfig::load(&config)?)?;
    let shutdown = shutdown_on_signal()?;
    let ready = tokio::spawn(sd::gateway_ready(gateway.statuses(), shutdown.clone()));
    let watchdog = tokio::spawn(sd::watchdog(shutdown.clone()));
    gateway.watch_config(config, reload_on_sighup()?).run(shutdown).await;
    let _ = tokio::join!(ready, watchdog);
    Ok(())
}

/// `mcp-tunnel example-server`: the demo's MCP server on its own.
pub async fn example_server(listen: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    // Port 0 asks for any free port: log the one we got.
    let listen = listener.local_addr().unwrap_or(listen);
    tracing::info!(%listen, "example MCP server listening (endpoint /mcp)");
    demo::server::run(listener, shutdown_on_signal()?).await;
    Ok(())
}

/// `mcp-tunnel demo`.
pub async fn demo(options: demo::DemoOptions) -> Result<()> {
    demo::run(options, shutdown_on_signal()?).await?;
    Ok(())
}

/// A notifier fired on every SIGHUP.
fn reload_on_sighup() -> Result<Arc<Notify>> {
    let notify = Arc::new(Notify::new());
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
