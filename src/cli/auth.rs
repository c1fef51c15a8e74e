//! `mcp-tunnel auth generate-token | hash-token`: bearer tokens for routes that
//! authenticate at the gateway (`[routes.auth]`), made and hashed by `crate::auth`.

use anyhow::{bail, Context};
use clap::Subcommand;

/// The `auth` subcommands.
#[derive(Subcommand)]
pub enum AuthCommand {
    /// Print a new random token (256 bits) and, on stderr, its hash for the config.
    GenerateToken,
    /// Read a token on stdin and print its `sha256:` hash for `[routes.auth] tokens`.
    HashToken,
}

/// Runs an `auth` subcommand.
pub fn run(command: AuthCommand) -> anyhow::Result<()> {
    match command {
        AuthCommand::GenerateToken => {
            let token = crate::auth::generate_token()?;
            // The hash goes to stderr so that stdout is the token alone (`TOKEN=$(…)`).
            eprintln!("hash for the config: {}", crate::auth::hash_token(&token));
            println!("{token}");
        }
        AuthCommand::HashToken => {
            let mut token = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut token).context("cannot read stdin")?;
            // `echo TOKEN | mcp-tunnel auth hash-token` must hash the token, not its newline.
            let token = token.trim_end_matches(['\r', '\n']);
            if token.is_empty() {
                bail!("no token on stdin");
            }
            println!("{}", crate::auth::hash_token(token));
        }
    }
    Ok(())
}
