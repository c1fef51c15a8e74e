//! What a stdio route runs ([`StdioSpec`]: command, environment, caps, timeouts, confinement)
//! and why a child could not be started ([`StdioError`]). Shared by the bridge's root and
//! its parts ([`super::table`], [`super::child`]), so it lives below both.

use std::path::PathBuf;
use std::time::Duration;

use super::sandbox::{Limits, RunAs};

/// How to run one route's stdio MCP server. A reload that changes any of it ends the
/// route's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioSpec {
    /// Program to run (an absolute path is best: `PATH` is the gateway's).
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment for the child, on top of `PATH` and `HOME` (all else is cleared).
    pub env: Vec<(String, String)>,
    /// Working directory (default: the gateway's).
    pub cwd: Option<PathBuf>,
    /// Live children at most (one per session).
    pub max_children: usize,
    /// A session with no request in flight and no HTTP activity for this long is ended.
    pub idle_timeout: Duration,
    /// Longest wait for the child's response(s) to one POST.
    pub request_timeout: Duration,
    /// Longest stdout line (one JSON-RPC message) read from the child; longer ones are
    /// skipped, so a child cannot make the gateway buffer without bound.
    pub max_message_bytes: usize,
    /// Run children as this user (`stdio_user`); `None`: the gateway's own uid.
    pub user: Option<RunAs>,
    /// Memory and CPU limits of each child.
    pub limits: Limits,
}

impl StdioSpec {
    /// A spec with defaults: 16 children, 10 min idle, 5 min per request, 16 MiB messages,
    /// the gateway's uid, 2 GiB of data and 1 h of CPU per child.
    pub fn new(command: impl Into<PathBuf>) -> Self {
        Self {
            command: command.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            max_children: 16,
            idle_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(300),
            max_message_bytes: 16 << 20,
            user: None,
            limits: Limits::default(),
        }
    }
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("cannot start {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("stdio pipes of the child are missing")]
    Pipes,
    #[error("the system random generator failed")]
    Random,
    #[error("cannot set the child's resource limits: {0}")]
    Limits(std::io::Error),
}
