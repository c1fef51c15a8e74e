//! The kill switch's persisted state: `kill.json` in the state directory, written
//! atomically (temporary file, fsync, rename; mode 0600) and read at start, so a
//! restarted gateway stays stopped.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name inside the state directory.
pub const KILL_FILE: &str = "kill.json";

/// One stop: why, who, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Killed {
    /// The operator's reason (shown to clients in the JSON-RPC error).
    pub reason: String,
    /// Who stopped it (`uid:0 via socket`, `admin token via http`).
    pub actor: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// Everything stopped: the whole gateway and single routes (by route name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillState {
    /// The whole gateway is stopped (tunnel closed, every route refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Killed>,
    /// Stopped routes.
    #[serde(default)]
    pub routes: BTreeMap<String, Killed>,
}

impl KillState {
    /// The stop that applies to `route`, the whole-gateway one first.
    pub fn applies(&self, route: &str) -> Option<&Killed> {
        self.all.as_ref().or_else(|| self.routes.get(route))
    }
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KillStoreError {
    #[error("kill state {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("kill state {path}: not a kill state file: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// Reads `<state_dir>/kill.json`; a missing file means nothing is stopped.
pub fn load(state_dir: &Path) -> Result<KillState, KillStoreError> {
    let path = state_dir.join(KILL_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KillStoreError::Parse { path, reason: e.to_string() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KillState::default()),
        Err(source) => Err(KillStoreError::Io { path, source }),
    }
}

/// Writes `state` to `<state_dir>/kill.json` atomically: a reader (or a restart) sees the
/// old file or the new one, never a torn write.
pub fn save(state_dir: &Path, state: &KillState) -> Result<(), KillStoreError> {
    let mut text = serde_json::to_vec_pretty(state).unwrap_or_default();
    text.push(b'\n');
    super::state_file::write_atomic(state_dir, KILL_FILE, &text)
        .map_err(|source| KillStoreError::Io { path: state_dir.join(KILL_FILE), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), KillState::default());
        let mut state = KillState::default();
        let k = Killed { reason: "incident 42".into(), actor: "uid:0 via socket".into(), at: "now".into() };
        state.routes.insert("a.example".into(), k.clone());
        save(dir.path(), &state).unwrap();
        assert_eq!(load(dir.path()).unwrap(), state);
        assert_eq!(state.applies("a.example"), Some(&k));
        assert_eq!(state.applies("b.example"), None);
        let mode = std::fs::metadata(dir.path().join(KILL_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(KILL_FILE), "not json").unwrap();
        assert!(matches!(load(dir.path()), Err(KillStoreError::Parse { .. })));
    }
}
