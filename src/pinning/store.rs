//! Pinned and last-seen tool definitions, per route name (routes are rebuilt on reload;
//! their pins are not).
//!
//! Pinned definitions persist in `<state_dir>/pins/<route>.json` (route names are
//! percent-encoded into file names), written atomically (temporary file, fsync, rename)
//! with mode 0600, and are loaded when the gateway starts. Last-seen definitions live
//! in memory only: a restarted gateway learns them again (its own listing at start).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::error;

use super::{definition, fingerprint, PinStatus};

/// The directory under `state_dir` that holds the pin files.
pub const PINS_DIR: &str = "pins";

/// Why pins could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tool {0:?} has not been seen in a tools/list of this route")]
    NotSeen(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// One pinned tool, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pinned {
    /// The accepted fingerprint.
    pub fingerprint: String,
    /// The accepted definition (what `tools diff` compares with).
    pub definition: Value,
    /// When it was pinned (RFC 3339).
    pub pinned_at: String,
    /// Who pinned it (`uid:0 via socket`).
    pub pinned_by: String,
}

/// One tool as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub fingerprint: String,
    pub definition: Value,
}

/// A definition newly seen that is not the pinned one (reported once per fingerprint).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub tool: String,
    pub fingerprint: String,
    /// `Changed` (pinned with another definition) or `Unpinned` (no pin).
    pub status: PinStatus,
}

/// The pin file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PinFile {
    route: String,
    tools: BTreeMap<String, Pinned>,
}

/// Pins and sightings of one route.
#[derive(Debug, Default, Clone)]
pub struct RouteTools {
    pub pinned: BTreeMap<String, Pinned>,
    pub seen: BTreeMap<String, Seen>,
}

impl RouteTools {
    /// The status and last-seen fingerprint of `tool`.
    pub fn status(&self, tool: &str) -> (PinStatus, Option<&str>) {
        match (self.seen.get(tool), self.pinned.get(tool)) {
            (None, _) => (PinStatus::Unknown, None),
            (Some(s), None) => (PinStatus::Unpinned, Some(&s.fingerprint)),
            (Some(s), Some(p)) if p.fingerprint == s.fingerprint => (PinStatus::Pinned, Some(&s.fingerprint)),
            (Some(s), Some(_)) => (PinStatus::Changed, Some(&s.fingerprint)),
        }
    }
}

/// Every route's pins and sightings.
#[derive(Debug)]
pub struct Pins {
    /// `<state_dir>/pins`, or `None` (pins then live in memory only).
    dir: Option<PathBuf>,
    routes: Mutex<HashMap<String, RouteTools>>,
    /// Serialises pin changes so files are written in the order the changes were made.
    writes: Mutex<()>,
    /// One own listing per route at a time (callers that wait reuse its result).
    fetches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each route's own listing was made, and whether it is still trusted.
    pub fresh: super::fresh::Freshness,
}

impl Pins {
    /// Pins kept under `state_dir` (when given).
    pub fn new(state_dir: Option<&Path>) -> Self {
        Self {
            dir: state_dir.map(|d| d.join(PINS_DIR)),
            routes: Mutex::default(),
            writes: Mutex::default(),
            fetches: Mutex::default(),
            fresh: Default::default(),
        }
    }

    /// Whether pins survive a restart.
    pub fn persistent(&self) -> bool {
        self.dir.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, RouteTools>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads the pin files of `routes` not loaded yet (at start and after a reload). An
    /// unreadable file is logged and leaves the route without pins (so `enforce` refuses
    /// its calls rather than trusting anything).
    pub fn load<'a>(&self, routes: impl IntoIterator<Item = &'a str>) {
        let Some(dir) = &self.dir else { return };
        for route in routes {
            if self.lock().contains_key(route) {
                continue;
            }
            let path = dir.join(file_name(route));
            let pinned = match std::fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<PinFile>(&bytes) {
                    Ok(f) => f.tools,
                    Err(e) => {
                        error!(route, file = %path.display(), "unreadable pin file, the route has no pins: {e}");
                        BTreeMap::new()
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
                Err(e) => {
                    error!(route, file = %path.display(), "cannot read the pin file, the route has no pins: {e}");
                    BTreeMap::new()
                }
            };
            self.lock().entry(route.to_owned()).or_default().pinned = pinned;
        }
    }

    /// A copy of one route's pins and sightings.
    pub fn snapshot(&self, route: &str) -> RouteTools {
        self.lock().get(route).cloned().unwrap_or_default()
    }

    /// The status and last-seen fingerprint of `tool` on `route`.
    pub fn status(&self, route: &str, tool: &str) -> (PinStatus, Option<String>) {
        match self.lock().get(route) {
            Some(r) => {
                let (status, fp) = r.status(tool);
                (status, fp.map(str::to_owned))
            }
            None => (PinStatus::Unknown, None),
        }
    }

    /// Records `tools/list` entries of one page. With `complete` (the gateway's own full
    /// listing), tools missing from it are forgotten as seen. Returns the definitions
    /// that differ from their pin and were not seen that way before.
    pub fn observe(&self, route: &str, tools: &[Value], complete: bool) -> Vec<Change> {
        let defs: Vec<(String, Seen)> = tools
            .iter()
            .filter_map(definition)
            .filter_map(|d| {
                let name = d.get("name")?.as_str()?.to_owned();
                Some((name, Seen { fingerprint: fingerprint(&d), definition: d }))
            })
            .collect();
        let mut routes = self.lock();
        let state = routes.entry(route.to_owned()).or_default();
        if complete {
            state.seen.retain(|name, _| defs.iter().any(|(n, _)| n == name));
        }
        let mut changes = Vec::new();
        for (name, seen) in defs {
            let before = state.seen.get(&name).map(|s| s.fingerprint.clone());
            let fp = seen.fingerprint.clone();
            state.seen.insert(name.clone(), seen);
            let (status, _) = state.status(&name);
            if matches!(status, PinStatus::Changed | PinStatus::Unpinned) && before.as_deref() != Some(&fp) {
                changes.push(Change { tool: name, fingerprint: fp, status });
            }
        }
        changes
    }

    /// Accepts the last-seen definitions of `route` (one tool, or all; with `all_seen`,
    /// pins of tools no longer seen are dropped) and persists them. Returns the tools
    /// pinned.
    pub fn pin(
        &self,
        route: &str,
        tool: Option<&str>,
        all_seen: bool,
        actor: &str,
        now: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let _order = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let (pinned, accepted) = {
            let mut routes = self.lock();
            let state = routes.entry(route.to_owned()).or_default();
            let chosen: Vec<(String, Seen)> = match tool {
                Some(t) => {
                    let seen = state.seen.get(t).ok_or_else(|| StoreError::NotSeen(t.to_owned()))?;
                    vec![(t.to_owned(), seen.clone())]
                }
                None => state.seen.iter().map(|(n, s)| (n.clone(), s.clone())).collect(),
            };
            let mut next = state.pinned.clone();
            if tool.is_none() && all_seen {
                next.retain(|name, _| state.seen.contains_key(name));
            }
            let mut accepted = Vec::new();
            for (name, seen) in chosen {
                accepted.push((name.clone(), seen.fingerprint.clone()));
                next.insert(
                    name,
                    Pinned {
                        fingerprint: seen.fingerprint,
                        definition: seen.definition,
                        pinned_at: now.to_owned(),
                        pinned_by: actor.to_owned(),
                    },
                );
            }
            (next, accepted)
        };
        // Written before it takes effect: a pin the gateway would forget on restart is
        // not accepted.
        if let Some(dir) = &self.dir {
            let file = PinFile { route: route.to_owned(), tools: pinned.clone() };
            write_atomic(dir, &file_name(route), &serde_json::to_vec_pretty(&file).unwrap_or_default())?;
        }
        self.lock().entry(route.to_owned()).or_default().pinned = pinned;
        Ok(accepted)
    }

    /// The lock that makes own listings of `route` one at a time.
    pub fn fetch_lock(&self, route: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.fetches.lock().unwrap_or_else(PoisonError::into_inner).entry(route.to_owned()).or_default().clone()
    }
}

/// `<route>.json` with every byte outside `[A-Za-z0-9._-]` percent-encoded, so a
/// route name (`host/prefix`) is one safe file name.
pub fn file_name(route: &str) -> String {
    let mut out = String::with_capacity(route.len() + 5);
    for b in route.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // `.` and `..` alone would name directories.
    if out.chars().all(|c| c == '.') {
        out = out.replace('.', "%2E");
    }
    out.push_str(".json");
    out
}

/// Writes `dir/name` atomically with mode 0600 (the directory is created 0700).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    crate::control::state_file::write_atomic(dir, name, bytes)
        .map_err(|source| StoreError::Write { path: dir.join(name), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn tool(desc: &str) -> Value {
        json!({"name": "echo", "description": desc, "inputSchema": {"type": "object"}})
    }

    #[test]
    fn changes_are_reported_once_and_pins_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let pins = Pins::new(Some(dir.path()));
        pins.load(["r.test/x"]);
        let first = pins.observe("r.test/x", &[tool("a")], false);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].status, PinStatus::Unpinned);
        assert!(pins.observe("r.test/x", &[tool("a")], false).is_empty(), "reported once");
        let done = pins.pin("r.test/x", None, true, "uid:0 via socket", "2026-01-01T00:00:00.000Z").unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(pins.status("r.test/x", "echo").0, PinStatus::Pinned);
        let changed = pins.observe("r.test/x", &[tool("b")], false);
        assert_eq!(changed[0].status, PinStatus::Changed);
        assert_eq!(pins.status("r.test/x", "echo").0, PinStatus::Changed);
        assert_eq!(pins.status("r.test/x", "other").0, PinStatus::Unknown);

        let file = dir.path().join("pins/r.test%2Fx.json");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let again = Pins::new(Some(dir.path()));
        again.load(["r.test/x"]);
        assert_eq!(again.status("r.test/x", "echo").0, PinStatus::Unknown, "seen is not persisted");
        again.observe("r.test/x", &[tool("a")], true);
        assert_eq!(again.status("r.test/x", "echo").0, PinStatus::Pinned, "the pin is");
    }

    #[test]
    fn pinning_one_unseen_tool_fails_and_a_complete_listing_forgets_missing_tools() {
        let pins = Pins::new(None);
        assert!(matches!(pins.pin("r", Some("echo"), false, "a", "t"), Err(StoreError::NotSeen(_))));
        pins.observe("r", &[tool("a"), json!({"name": "gone"})], false);
        pins.observe("r", &[tool("a")], true);
        assert_eq!(pins.status("r", "gone").0, PinStatus::Unknown);
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("tickets.mcp.example"), "tickets.mcp.example.json");
        assert_eq!(file_name("a/b c"), "a%2Fb%20c.json");
        assert_eq!(file_name(".."), "%2E%2E.json");
    }
}
