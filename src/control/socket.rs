//! The control socket: a Unix socket in the state directory, mode 0600, one request per
//! line. The kernel tells us the caller's uid and pid (peer credentials): the uid goes
//! into the audit record of every action, the pid decides whether the caller is a stdio
//! child of the gateway, which is refused (and audited) before it can send anything.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::audit::ControlAudit;
use super::wire::{WireReply, WireRequest, MAX_LINE};
use super::{Caller, ControlError, ControlOp, Operator, Via};
use crate::audit::record::{Action, Decision};
use crate::stdio::lineage::{self, Verdict};

/// The socket's file name inside the state directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Time a client gets to send its request line. Operations themselves may take longer
/// (a kill waits for streams to end).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long running operations get to finish after shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("state directory {path}: {source}")]
    StateDir { path: PathBuf, source: io::Error },
    #[error("control socket {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// Creates the state directory (0700) and binds `control.sock` in it (0600). A stale
/// socket from an earlier run is replaced.
pub fn bind(state_dir: &Path) -> Result<(UnixListener, PathBuf), SocketError> {
    let dir_err = |source| SocketError::StateDir { path: state_dir.to_owned(), source };
    std::fs::create_dir_all(state_dir).map_err(dir_err)?;
    std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700)).map_err(dir_err)?;
    let path = state_dir.join(SOCKET_NAME);
    let bind_err = |source| SocketError::Bind { path: path.clone(), source };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    // The directory is already 0700, so nobody else can reach the socket in the moment
    // before its own mode is set.
    let listener = UnixListener::bind(&path).map_err(bind_err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok((listener, path))
}

/// Serves the control socket until `shutdown`, then removes it.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    ops: Arc<dyn Operator>,
    audit: ControlAudit,
    shutdown: CancellationToken,
) {
    info!(socket = %path.display(), "control socket listening");
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!("control socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        connections.spawn(handle(stream, ops.clone(), audit.clone()));
    }
    drop(listener);
    let _ = std::fs::remove_file(&path);
    // A connection runs one bounded operation (a kill waits for stdio children to stop).
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait()).await.is_err() {
        warn!("control socket connections still running {DRAIN:?} after shutdown");
    }
}

async fn handle(stream: UnixStream, ops: Arc<dyn Operator>, audit: ControlAudit) {
    let cred = stream.peer_cred().ok();
    let caller = Caller { via: Via::Socket, uid: cred.map(|c| c.uid()) };
    let (rd, mut wr) = stream.into_split();
    // A stdio child shares the gateway's uid unless `stdio_user` is set, so the socket's
    // mode does not keep it out: its ancestry does (src/stdio/lineage.rs).
    let pid = cred.and_then(|c| c.pid());
    let verdict = lineage::peer_verdict(pid);
    let mut line = Vec::new();
    let mut reader = BufReader::new(rd).take(MAX_LINE as u64 + 1);
    let read = reader.read_until(b'\n', &mut line);
    // The request line is read (bounded) even from a refused peer, so its write does not
    // fail and it reads the refusal instead of a broken pipe.
    let result = match tokio::time::timeout(READ_TIMEOUT, read).await {
        _ if verdict != Verdict::Operator => {
            refuse(&audit, &caller, pid, verdict);
            let who = match verdict {
                Verdict::StdioChild => "a stdio MCP server child of this gateway (or one of its processes)",
                _ => "a process whose ancestry cannot be read",
            };
            Err(ControlError::Forbidden(format!("control socket refused: the peer is {who} ({})", verdict.reason())))
        }
        Ok(Ok(_)) if line.len() > MAX_LINE => {
            Err(ControlError::BadArgs(format!("request longer than {MAX_LINE} bytes")))
        }
        Ok(Ok(_)) => match serde_json::from_slice::<WireRequest>(&line).map(ControlOp::try_from) {
            Ok(Ok(op)) => {
                debug!(op = op.action().as_str(), caller = %caller.label(), "control request");
                ops.run(&caller, &op).await
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(ControlError::BadArgs(format!("not a control request: {e}"))),
        },
        Ok(Err(e)) => {
            debug!("control socket read failed: {e}");
            return;
        }
        Err(_) => Err(ControlError::BadArgs("no request line within 10s".into())),
    };
    reply(&mut wr, result).await;
}

async fn reply(wr: &mut OwnedWriteHalf, result: Result<serde_json::Value, ControlError>) {
    let mut out = serde_json::to_vec(&WireReply::from_result(result)).unwrap_or_default();
    out.push(b'\n');
    let _ = wr.write_all(&out).await;
    let _ = wr.shutdown().await;
}

/// Logs and audits a refused peer.
fn refuse(audit: &ControlAudit, caller: &Caller, pid: Option<i32>, verdict: Verdict) {
    warn!(pid, caller = %caller.label(), reason = verdict.reason(), "control socket: peer refused");
    let mut rec = audit.record(Action::Connect, caller.label());
    rec.decision = Some(Decision::Deny);
    rec.reason = Some(verdict.reason());
    rec.note = Some(pid.map_or_else(|| "peer pid unknown".to_owned(), |p| format!("peer pid {p}")));
    audit.write(rec);
}
