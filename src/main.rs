//! The `mcp-tunnel` binary: parse the command line, start logging and the async runtime,
//! and hand the command to `mcp_tunnel::cli::run`. All logic lives in the library; how an
//! error is printed and which exit status it gives is `mcp_tunnel::cli::exit`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use mcp_tunnel::cli::{self, Cli};
use mcp_tunnel::logging;

fn main() -> ExitCode {
    // Usage errors, `--help` and `--version` end here, with clap's message and status.
    let cli = Cli::parse();
    cli::exit::finish(start(cli))
}

fn start(cli: Cli) -> Result<()> {
    logging::init(cli.log_format, cli.log_level.as_deref(), cli.command.default_log_level())?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(cli::run(cli.command))
}
