//! The CLI's side of the control socket: send one operation, wait for its reply.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::socket::SOCKET_NAME;
use super::wire::{WireReply, WireRequest, MAX_LINE};
use super::ControlOp;

/// The state directory the CLI assumes when none is given.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/mcp-tunnel";

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the gateway's control socket {path}: {source} (is the gateway running with state_dir set, and may this user open the socket?)")]
    Connect { path: PathBuf, source: io::Error },
    #[error("control socket {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("control socket {path}: unreadable reply: {reason}")]
    Reply { path: PathBuf, reason: String },
    /// The gateway refused the operation.
    #[error("{message} ({code})")]
    Refused { code: String, message: String },
}

/// The socket path inside `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Sends `op` to the gateway whose state directory is `state_dir`, and returns its
/// result. Waits as long as the operation takes (a kill returns when the cut is complete).
pub async fn send(state_dir: &Path, op: &ControlOp) -> Result<Value, ClientError> {
    exchange(state_dir, serde_json::to_vec(op).unwrap_or_default()).await
}

/// As [`send`], for an operation named by its wire name with raw JSON arguments (the
/// gateway checks both: a way to exercise its refusals).
pub async fn call(state_dir: &Path, op: &str, args: Value) -> Result<Value, ClientError> {
    exchange(state_dir, serde_json::to_vec(&WireRequest { op: op.to_owned(), args }).unwrap_or_default()).await
}

/// Sends one request line, reads the reply line.
async fn exchange(state_dir: &Path, mut line: Vec<u8>) -> Result<Value, ClientError> {
    let path = socket_path(state_dir);
    let io_err = |source| ClientError::Io { path: path.clone(), source };
    let stream =
        UnixStream::connect(&path).await.map_err(|source| ClientError::Connect { path: path.clone(), source })?;
    let (rd, mut wr) = stream.into_split();
    line.push(b'\n');
    wr.write_all(&line).await.map_err(io_err)?;
    let mut reply = Vec::new();
    BufReader::new(rd).take(16 * MAX_LINE as u64).read_until(b'\n', &mut reply).await.map_err(io_err)?;
    let reply: WireReply =
        serde_json::from_slice(&reply).map_err(|e| ClientError::Reply { path: path.clone(), reason: e.to_string() })?;
    match (reply.ok, reply.result, reply.error) {
        (true, result, _) => Ok(result.unwrap_or(Value::Null)),
        (false, _, Some(e)) => Err(ClientError::Refused { code: e.code, message: e.message }),
        (false, _, None) => Err(ClientError::Reply { path, reason: "failure without an error".into() }),
    }
}
