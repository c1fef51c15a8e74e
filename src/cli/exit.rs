//! How the binary ends: its exit statuses, defined here and nowhere else, and how an error
//! is printed (`error: …` and one `caused by: …` line per cause, never a backtrace, whatever
//! `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` say).
//!
//! | Status | Meaning |
//! |---|---|
//! | [`SUCCESS`] 0 | The command did what it was asked. |
//! | [`FAILURE`] 1 | It ran and failed: a `doctor` check FAILed, `probe` found the process not live or ready, a control operation was refused, a listener could not bind, … |
//! | [`USAGE`] 2 | The command line or a config file is wrong (clap uses 2 for its own usage errors too); running it again unchanged will fail again. |

use std::fmt::Write as _;

use crate::config::ConfigError;
use crate::logging::LogFilterError;

/// The command succeeded.
pub const SUCCESS: u8 = 0;
/// The command ran and failed.
pub const FAILURE: u8 = 1;
/// A usage or config error.
pub const USAGE: u8 = 2;

/// A problem with the command line that clap could not see: a value it accepted as a string
/// but that does not parse (`doctor --timeout 3x`), a file that is no config at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The command's outcome is already on stdout (`doctor`'s FAIL lines): end with this
/// status and print nothing more.
#[derive(Debug, thiserror::Error)]
#[error("exit status {0}")]
pub struct Reported(pub u8);

/// The exit status for an error: [`USAGE`] when a config, usage or log-filter error is
/// anywhere in its chain, the status a [`Reported`] carries, [`FAILURE`] otherwise.
pub fn status_of(err: &anyhow::Error) -> u8 {
    if let Some(Reported(status)) = err.downcast_ref() {
        return *status;
    }
    let usage = err.chain().any(|e| e.is::<ConfigError>() || e.is::<UsageError>() || e.is::<LogFilterError>());
    if usage {
        USAGE
    } else {
        FAILURE
    }
}

/// `error: <message>` and a `caused by: <cause>` line per cause, each ending in a newline.
/// A cause whose text the line before already contains (many messages quote their cause)
/// is left out. Empty for a [`Reported`] error.
pub fn render(err: &anyhow::Error) -> String {
    if err.downcast_ref::<Reported>().is_some() {
        return String::new();
    }
    let mut out = String::new();
    let mut last = err.to_string();
    let _ = writeln!(out, "error: {last}");
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !last.contains(&text) {
            let _ = writeln!(out, "  caused by: {text}");
        }
        last = text;
    }
    out
}

/// Prints the error, if any, on stderr and turns the result into the process's exit status.
pub fn finish(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::from(SUCCESS),
        Err(err) => {
            eprint!("{}", render(&err));
            std::process::ExitCode::from(status_of(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn config_and_usage_errors_are_status_2_others_1() {
        let config = ConfigError::Syntax { path: PathBuf::from("g.toml"), message: "bad".into() };
        assert_eq!(status_of(&anyhow::Error::new(config).context("loading")), USAGE);
        assert_eq!(status_of(&UsageError("--timeout: bad".into()).into()), USAGE);
        assert_eq!(status_of(&anyhow::anyhow!("cannot listen")), FAILURE);
        assert_eq!(status_of(&Reported(FAILURE).into()), FAILURE);
    }

    #[test]
    fn render_prints_the_chain_without_repeating_quoted_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let read = ConfigError::Read { path: PathBuf::from("g.toml"), source: io };
        assert_eq!(render(&read.into()), "error: g.toml: cannot read config: No such file\n");
        let err = anyhow::anyhow!("inner problem").context("outer step");
        assert_eq!(render(&err), "error: outer step\n  caused by: inner problem\n");
        assert_eq!(render(&Reported(FAILURE).into()), "");
    }
}
