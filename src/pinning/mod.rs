//! Tool-definition pinning: the gateway notices when a tool's definition (description,
//! schemas, annotations) changes under the same name after it was reviewed, records it,
//! and, where asked, refuses calls to it until an operator accepts the new definition.
//!
//! In the order things happen:
//! - [`fingerprint`]: `sha256:` of a tool definition's canonical JSON (the tool schema
//!   version).
//! - [`store`]: per route name, the pinned definitions (persisted in
//!   `<state_dir>/pins/<route>.json`) and the last-seen ones (in memory).
//! - [`learn`]: last-seen definitions come from `tools/list` responses passing through
//!   (each page as it passes) and from the gateway's own listing ([`fetch`]) at start and
//!   before a pin. New and changed definitions are logged, audited and counted.
//! - [`fresh`]: whether the own listing is stale (never made, `list_changed`, a new
//!   upstream connection, older than `pinning_refresh`).
//! - the request path's pinning stage (`crate::gateway::pins`): every `tools/call` is
//!   checked after the route's policy: its audit record carries the fingerprint and pin
//!   status; `enforce` re-lists a stale route first and refuses what is not pinned. Under
//!   `enforce`, listings that pass show pinned tools only. It uses this module, never the
//!   other way round.
//! - [`metrics`]: the definition-change counter.
//! - [`diff`]: what changed between the pinned and the last-seen definition, field by field.
//! - `mcp-tunnel tools …` is `crate::cli::tools`; the `tools.list`, `tools.diff` and
//!   `tools.pin` control operations it calls are `crate::gateway::ops::tools`.

pub mod diff;
pub mod fetch;
pub mod fingerprint;
pub mod fresh;
pub mod learn;
pub mod metrics;
pub mod store;

pub use fingerprint::{canonical, definition, fingerprint};
pub use store::Pins;

/// A route's `pinning` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinMode {
    /// No learning, no checks, no audit fields.
    #[default]
    Off,
    /// Learn, record and count changes; calls pass.
    Warn,
    /// Like `warn`, and refuse calls to tools whose definition is not the pinned one.
    Enforce,
}

impl PinMode {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Warn => "warn",
            Self::Enforce => "enforce",
        }
    }

    /// Parses the config word.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "warn" => Some(Self::Warn),
            "enforce" => Some(Self::Enforce),
            _ => None,
        }
    }
}

/// A route's pinning settings (`pinning`, `pinning_fetch_path`, `pinning_refresh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinSettings {
    /// What the gateway does.
    pub mode: PinMode,
    /// The upstream path of the MCP endpoint the gateway lists tools from itself.
    pub fetch_path: String,
    /// A listing older than this is renewed before the next call is checked.
    pub refresh: std::time::Duration,
}

/// Default `pinning_fetch_path`: where MCP servers conventionally serve Streamable HTTP.
pub const DEFAULT_FETCH_PATH: &str = "/mcp";
/// Default `pinning_refresh`.
pub const DEFAULT_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);

impl Default for PinSettings {
    fn default() -> Self {
        Self { mode: PinMode::Off, fetch_path: DEFAULT_FETCH_PATH.to_owned(), refresh: DEFAULT_REFRESH }
    }
}

/// How a tool's last-seen definition compares with its pin (the audit field `pin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// Last seen as pinned.
    Pinned,
    /// Last seen with another definition than the pinned one.
    Changed,
    /// Seen, never pinned.
    Unpinned,
    /// Never seen in a listing (pinned or not).
    Unknown,
}

impl PinStatus {
    /// The audit and CLI word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::Changed => "changed",
            Self::Unpinned => "unpinned",
            Self::Unknown => "unknown",
        }
    }
}
