//! The live sessions of one route: the cap on children, session ids, and the supervisor
//! task that owns each child (exit, idle timeout, DELETE and shutdown all end there).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use tokio::process::Child;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::child::{self, Spawned};
use super::lineage::Registered;
use super::session::Session;
use super::spec::{StdioError, StdioSpec};
use crate::auth::Identity;

/// Bytes of randomness in a session id (hex-encoded: twice as many characters).
const SESSION_ID_BYTES: usize = 32;
/// How long a child that exited on its own gets to flush the rest of its stdout.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Why no session could be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("all {max} stdio server processes are in use")]
    Busy { max: usize },
    #[error("the bridge is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Child(#[from] StdioError),
}

/// Sessions by id, plus what bounds and stops them.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    slots: Arc<Semaphore>,
    max: usize,
    shutdown: CancellationToken,
    /// The sessions started since the last [`Sessions::end_all`], published or not.
    epoch: Mutex<Epoch>,
    tasks: TaskTracker,
    rng: SystemRandom,
}

/// What [`Sessions::end_all`] ends: its token is the parent of each session's `end`.
struct Epoch {
    token: CancellationToken,
    started: Vec<Weak<Session>>,
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        let shutdown = CancellationToken::new();
        Self {
            map: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(max)),
            max,
            epoch: Mutex::new(Epoch { token: shutdown.child_token(), started: Vec::new() }),
            shutdown,
            tasks: TaskTracker::new(),
            rng: SystemRandom::new(),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn epoch(&self) -> MutexGuard<'_, Epoch> {
        self.epoch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session `id` if `owner` created it. Another caller's session is reported
    /// missing, exactly like an unknown id, so an id alone is no way in.
    pub fn get(&self, id: &str, owner: Option<&Identity>) -> Option<Arc<Session>> {
        let session = self.map().get(id).cloned()?;
        owned(session, owner)
    }

    /// Removes the session `id` if `owner` created it.
    pub fn remove(&self, id: &str, owner: Option<&Identity>) -> Option<Arc<Session>> {
        let mut map = self.map();
        let session = owned(map.get(id).cloned()?, owner)?;
        map.remove(id);
        Some(session)
    }

    /// Removes `id` whoever owns it (the supervisor, once the child is gone).
    fn forget(&self, id: &str) {
        self.map().remove(id);
    }

    /// Ends every session started so far (published or still in `initialize`) and waits
    /// until each child is reaped; returns how many there were.
    pub async fn end_all(&self) -> usize {
        let ended = {
            let mut epoch = self.epoch();
            let next = Epoch { token: self.shutdown.child_token(), started: Vec::new() };
            let old = std::mem::replace(&mut *epoch, next);
            old.token.cancel();
            old.started
        };
        let live: Vec<Arc<Session>> = ended.iter().filter_map(Weak::upgrade).collect();
        for session in &live {
            session.exited.cancelled().await;
        }
        live.len()
    }

    /// Children not yet reaped (a slot is freed only after the process is gone).
    pub fn live(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Spawns a child for a new session (not yet published: see [`Sessions::publish`]).
    pub fn start(
        self: &Arc<Self>,
        spec: &StdioSpec,
        route: &str,
        owner: Option<Identity>,
    ) -> Result<Arc<Session>, StartError> {
        if self.shutdown.is_cancelled() {
            return Err(StartError::ShuttingDown);
        }
        let permit = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| StartError::Busy { max: self.max })?;
        let id = self.new_id()?;
        let log_id: String = id.chars().take(8).collect();
        let Spawned { child, pid, stdin, stdout, close_stdin, io, lineage } = child::spawn(spec, &log_id)?;
        let session = {
            let mut epoch = self.epoch();
            let session = Arc::new(Session::new(id, owner, stdin, epoch.token.child_token()));
            epoch.started.retain(|s| s.strong_count() > 0);
            epoch.started.push(Arc::downgrade(&session));
            session
        };
        info!(route, session = %session.log_id, pid, "stdio server started");
        let sup = Supervisor {
            pid,
            _lineage: lineage,
            sessions: Arc::clone(self),
            session: Arc::clone(&session),
            child,
            stdout,
            close_stdin,
            io,
            idle: spec.idle_timeout,
            route: route.to_owned(),
            _permit: permit,
        };
        self.tasks.spawn(sup.run());
        Ok(session)
    }

    /// Makes a session reachable by its id; false if it already ended.
    pub fn publish(&self, session: &Arc<Session>) -> bool {
        self.map().insert(session.id.clone(), Arc::clone(session));
        // The supervisor closes before it removes, so this check cannot leave a stale entry.
        if session.is_closed() {
            self.map().remove(&session.id);
            return false;
        }
        true
    }

    /// Ends every session and waits until every child is reaped.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn new_id(&self) -> Result<String, StdioError> {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        self.rng.fill(&mut bytes).map_err(|_| StdioError::Random)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// The session if `owner` is the identity that created it.
fn owned(session: Arc<Session>, owner: Option<&Identity>) -> Option<Arc<Session>> {
    if session.owner.as_ref() == owner {
        return Some(session);
    }
    warn!(session = %session.log_id, "stdio session id presented by another identity; answered as unknown");
    None
}

/// Owns one child from spawn to reap.
struct Supervisor {
    pid: Option<u32>,
    /// Listed as a stdio child until the supervisor is dropped (after the reap).
    _lineage: Option<Registered>,
    sessions: Arc<Sessions>,
    session: Arc<Session>,
    child: Child,
    stdout: mpsc::Receiver<serde_json::Value>,
    close_stdin: CancellationToken,
    io: JoinSet<()>,
    idle: Duration,
    route: String,
    /// Held until the child is reaped: this is the cap on live children.
    _permit: OwnedSemaphorePermit,
}

/// Why a session ended.
#[derive(Debug)]
enum Ending {
    Exited(Option<i32>),
    StdoutClosed,
    Ended,
    Idle,
}

impl Supervisor {
    async fn run(mut self) {
        let session = Arc::clone(&self.session);
        let ending = {
            let dispatch = session.dispatch_all(&mut self.stdout);
            tokio::pin!(dispatch);
            loop {
                tokio::select! {
                    status = self.child.wait() => {
                        // Responses written just before exiting are still in the pipe.
                        let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut dispatch).await;
                        break Ending::Exited(status.ok().and_then(|s| s.code()));
                    }
                    () = &mut dispatch => break Ending::StdoutClosed,
                    () = session.end.cancelled() => break Ending::Ended,
                    () = tokio::time::sleep_until(session.next_idle_check(self.idle)) => {
                        if session.is_idle(self.idle) {
                            break Ending::Idle;
                        }
                    }
                }
            }
        };
        // Unreachable first, so requests racing the teardown get 404 rather than hang.
        session.close();
        self.sessions.forget(&session.id);
        if !matches!(ending, Ending::Exited(_)) {
            child::terminate(&mut self.child, &self.close_stdin).await;
        }
        // A session's processes end with it, including any its server left running.
        child::kill_leftovers(self.pid);
        self.io.shutdown().await;
        let route = std::mem::take(&mut self.route);
        // Frees the slot (the cap on live children) now that the child is reaped.
        drop(self);
        match ending {
            Ending::Exited(code) => {
                warn!(route, session = %session.log_id, code, "stdio server exited on its own")
            }
            Ending::StdoutClosed => warn!(route, session = %session.log_id, "stdio server closed stdout"),
            Ending::Ended | Ending::Idle => {
                info!(route, session = %session.log_id, reason = ?ending, "stdio server stopped")
            }
        }
        session.exited.cancel();
    }
}
