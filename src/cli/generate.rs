//! `mcp-tunnel completions SHELL` and `mcp-tunnel man`: shell completion scripts and man
//! pages, generated from the clap definitions in this module's parent, so they always list
//! the commands and flags the binary really has.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// The binary's name, as completions and man pages call it.
const NAME: &str = "mcp-tunnel";

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> anyhow::Result<()> {
    // Into memory first: `clap_complete::generate` panics when its writer fails (a closed
    // pipe, `… | head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), NAME, &mut script);
    out.write_all(&script).context("cannot write the completion script")
}

/// Without `dir`: writes the man page of `mcp-tunnel` (section 1, roff) to `out`. With
/// `dir`: writes one page per command and subcommand there (`mcp-tunnel.1`,
/// `mcp-tunnel-gateway.1`, `mcp-tunnel-certs-init.1`, …) and says so on `out`.
pub fn man(dir: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(dir) = dir else {
        return clap_mangen::Man::new(Cli::command()).render(out).context("cannot write the man page");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the directory", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("{}: cannot write the man pages", dir.display()))?;
    writeln!(out, "wrote the man pages to {}", dir.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out).expect("generate");
            let text = String::from_utf8_lossy(&out);
            for word in ["gateway", "doctor", "--config"] {
                assert!(text.contains(word), "{shell}: {word} missing");
            }
        }
    }

    #[test]
    fn man_page_lists_the_subcommands() {
        let mut out = Vec::new();
        man(None, &mut out).expect("render");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{text}");
        assert!(text.contains("mcp\\-tunnel\\-gateway") && text.contains("doctor"), "{text}");
    }
}
