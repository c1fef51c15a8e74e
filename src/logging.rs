//! Log setup for the binary: the output format (`text` or `json`) and which filter wins
//! when both `RUST_LOG` and `--log-level` are given. Logs go to stderr; stdout is left to
//! commands that print results.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colours only on a terminal, and not with NO_COLOR),
    /// after its spans: `tunnel{index=0}:connection{id=3 transport=quic edge=127.0.0.1:7844}:stream{id=7}:`.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`)
    /// and, inside a span, `span`/`spans`.
    Json,
}

/// Where the log filter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSource {
    /// The `RUST_LOG` environment variable (set and not blank).
    Env,
    /// The `--log-level` flag.
    Flag,
    /// The command's default.
    Default,
}

/// A log filter that did not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter {directives:?} (from {source_name}): {reason}")]
pub struct LogFilterError {
    directives: String,
    source_name: &'static str,
    reason: String,
}

/// Picks the filter directives: `RUST_LOG` when set and not blank, else `--log-level`,
/// else `default`. RUST_LOG wins so an operator can raise verbosity without editing the
/// unit, manifest or compose file that fixes the flag.
pub fn pick_filter<'a>(rust_log: Option<&'a str>, flag: Option<&'a str>, default: &'a str) -> (&'a str, FilterSource) {
    match (rust_log.filter(|s| !s.trim().is_empty()), flag) {
        (Some(env), _) => (env, FilterSource::Env),
        (None, Some(flag)) => (flag, FilterSource::Flag),
        (None, None) => (default, FilterSource::Default),
    }
}

/// Parses directives into a filter; a bad filter is an error, not silently `info`.
pub fn parse_filter(directives: &str, source: FilterSource) -> Result<EnvFilter, LogFilterError> {
    EnvFilter::try_new(directives).map_err(|e| LogFilterError {
        directives: directives.to_owned(),
        source_name: match source {
            FilterSource::Env => "RUST_LOG",
            FilterSource::Flag => "--log-level",
            FilterSource::Default => "the default",
        },
        reason: e.to_string(),
    })
}

/// Installs the global subscriber writing to stderr. `flag` is `--log-level`, `default`
/// the command's default level; `RUST_LOG` is read here.
pub fn init(format: LogFormat, flag: Option<&str>, default: &str) -> Result<(), LogFilterError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (directives, source) = pick_filter(rust_log.as_deref(), flag, default);
    let filter = parse_filter(directives, source)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(ansi).init();
        }
        // The ids of the tunnel connection, stream and request live in spans: `span` is
        // the innermost one, `spans` all of them from the outermost.
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).with_ansi(false).init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_over_the_flag_and_the_flag_over_the_default() {
        assert_eq!(pick_filter(Some("warn"), Some("debug"), "info"), ("warn", FilterSource::Env));
        assert_eq!(pick_filter(None, Some("debug"), "info"), ("debug", FilterSource::Flag));
        assert_eq!(pick_filter(Some("  "), Some("debug"), "info"), ("debug", FilterSource::Flag));
        assert_eq!(pick_filter(Some(""), None, "warn"), ("warn", FilterSource::Default));
    }

    #[test]
    fn a_bad_filter_names_its_source() {
        assert!(parse_filter("mcp_tunnel=debug,info", FilterSource::Flag).is_ok());
        let err = parse_filter("info,=[", FilterSource::Env).unwrap_err().to_string();
        assert!(err.starts_with("invalid log filter \"info,=[\" (from RUST_LOG):"), "{err}");
    }
}
