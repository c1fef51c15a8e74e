//! One MCP session = one child process. Owns the routing of the child's output: responses
//! go to the POST that sent the request; notifications and server→client requests go to a
//! pending SSE POST (the one whose progress token they carry, else the oldest), else to the
//! GET stream, else to a small backlog the next GET stream receives first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::auth::Identity;
use crate::mcp::jsonrpc::{self, MessageKind};

/// Messages buffered per POST exchange; a slow SSE reader stalls the child's stdout.
const EXCHANGE_QUEUE: usize = 32;
/// Messages buffered for the GET stream; past that they are dropped (the GET reader is
/// not tied to any request, so it must not stall the session).
const GET_QUEUE: usize = 64;
/// Server-initiated messages kept while no stream can take them.
const BACKLOG: usize = 64;

/// A live session and its child's message routing.
pub struct Session {
    /// The `Mcp-Session-Id` (a bearer capability: log only [`Session::log_id`]).
    pub id: String,
    /// A short prefix of the id for logs.
    pub log_id: String,
    /// The identity that created the session (`None`: a route without auth).
    pub owner: Option<Identity>,
    stdin: mpsc::Sender<Vec<u8>>,
    router: Mutex<Router>,
    activity: Mutex<Instant>,
    in_flight: AtomicUsize,
    /// Cancel to end the session (DELETE, idle, shutdown); the supervisor then stops the child.
    pub end: CancellationToken,
    /// Cancelled once the child has been reaped.
    pub exited: CancellationToken,
}

#[derive(Default)]
struct Router {
    closed: bool,
    next_stream: u64,
    /// Request id key → the exchange waiting for its response.
    pending: HashMap<String, mpsc::Sender<Value>>,
    /// SSE exchanges that accept related messages, oldest first.
    streams: Vec<(u64, mpsc::Sender<Value>)>,
    /// Progress token key → the SSE exchange whose request carried it.
    progress: HashMap<String, mpsc::Sender<Value>>,
    /// The GET stream, with its generation.
    get: Option<(u64, mpsc::Sender<Value>)>,
    backlog: VecDeque<Value>,
}

/// Why a request could not be handed to the child.
#[derive(Debug, PartialEq, Eq)]
pub enum BeginError {
    /// The session ended.
    Closed,
    /// A request with the same id is still pending.
    DuplicateId,
}

impl Session {
    pub fn new(id: String, owner: Option<Identity>, stdin: mpsc::Sender<Vec<u8>>, end: CancellationToken) -> Self {
        let log_id = id.chars().take(8).collect();
        Self {
            id,
            log_id,
            owner,
            stdin,
            router: Mutex::new(Router::default()),
            activity: Mutex::new(Instant::now()),
            in_flight: AtomicUsize::new(0),
            end,
            exited: CancellationToken::new(),
        }
    }

    fn router(&self) -> MutexGuard<'_, Router> {
        // A panic while holding the lock leaves plain maps behind; keep using them.
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records client activity (for the idle timeout).
    pub fn touch(&self) {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        *self.activity.lock().unwrap_or_else(|e| e.into_inner()) + idle
    }

    /// When to check [`Session::is_idle`] next. With a request in flight the deadline may
    /// lie in the past; the request's end touches the session, so a check one `idle`
    /// from now is early enough and never spins.
    pub fn next_idle_check(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            Instant::now() + idle.max(Duration::from_millis(100))
        } else {
            self.idle_deadline(idle)
        }
    }

    /// No request in flight and no activity for `idle`. An open GET stream does not
    /// count: an abandoned client holding one open must not pin a process forever.
    pub fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && Instant::now() >= self.idle_deadline(idle)
    }

    pub fn is_closed(&self) -> bool {
        self.router().closed
    }

    /// Drops every route: pending exchanges see their channel close (the child is gone).
    pub fn close(&self) {
        let mut r = self.router();
        r.closed = true;
        r.pending.clear();
        r.streams.clear();
        r.progress.clear();
        r.get = None;
        r.backlog.clear();
    }

    /// Queues one message for the child's stdin (compact JSON never contains a newline).
    pub async fn send(&self, msg: &Value) -> Result<(), BeginError> {
        self.stdin.send(line(msg)).await.map_err(|_| BeginError::Closed)
    }

    /// Best effort, never waits: used to tell the child about abandoned requests.
    pub fn try_send(&self, msg: &Value) {
        let _ = self.stdin.try_send(line(msg));
    }

    /// Registers a POST's requests before they are written, so no response can be missed.
    /// `sse`: the POST streams, so it also takes related notifications and requests.
    pub fn begin(self: &Arc<Self>, requests: &[&Value], sse: bool) -> Result<Exchange, BeginError> {
        let ids: Vec<Value> = requests.iter().filter_map(|m| m.get("id").cloned()).collect();
        let keys: Vec<String> = ids.iter().map(jsonrpc::id_key).collect();
        let tokens: Vec<String> =
            if sse { requests.iter().filter_map(|m| jsonrpc::request_progress_token(m)).collect() } else { vec![] };
        let (tx, rx) = mpsc::channel(EXCHANGE_QUEUE);
        let stream = {
            let mut r = self.router();
            if r.closed {
                return Err(BeginError::Closed);
            }
            let unique = keys.iter().collect::<std::collections::HashSet<_>>().len() == keys.len();
            if !unique || keys.iter().any(|k| r.pending.contains_key(k)) {
                return Err(BeginError::DuplicateId);
            }
            r.next_stream += 1;
            let stream = r.next_stream;
            for k in &keys {
                r.pending.insert(k.clone(), tx.clone());
            }
            if sse {
                r.streams.push((stream, tx.clone()));
                for t in &tokens {
                    r.progress.insert(t.clone(), tx.clone());
                }
            }
            stream
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        Ok(Exchange { session: Arc::clone(self), stream, keys, tokens, ids, rx })
    }

    /// Attaches a new GET stream, replacing (and so ending) any previous one: a client
    /// reconnecting after a dead connection must not be locked out by the stale stream.
    pub fn open_get(self: &Arc<Self>) -> Option<GetStream> {
        let (tx, rx) = mpsc::channel(GET_QUEUE);
        let mut r = self.router();
        if r.closed {
            return None;
        }
        while let Some(msg) = r.backlog.pop_front() {
            let _ = tx.try_send(msg);
        }
        r.next_stream += 1;
        let generation = r.next_stream;
        r.get = Some((generation, tx));
        drop(r);
        self.touch();
        Some(GetStream { session: Arc::clone(self), generation, rx })
    }

    /// Routes everything the child wrote, until its stdout closes.
    pub async fn dispatch_all(&self, stdout: &mut mpsc::Receiver<Value>) {
        while let Some(value) = stdout.recv().await {
            match value {
                Value::Array(items) => {
                    for item in items {
                        self.dispatch(item).await;
                    }
                }
                one => self.dispatch(one).await,
            }
        }
    }

    async fn dispatch(&self, msg: Value) {
        match jsonrpc::kind_of(&msg) {
            Some(MessageKind::Response) => {
                let key = msg.get("id").map(jsonrpc::id_key).unwrap_or_default();
                let target = self.router().pending.remove(&key);
                match target {
                    // Waiting here is the backpressure on a flooding child.
                    Some(tx) => drop(tx.send(msg).await),
                    None => debug!(session = %self.log_id, "stdio child answered an unknown request id; dropped"),
                }
            }
            Some(MessageKind::Request | MessageKind::Notification) => {
                let target = {
                    let mut r = self.router();
                    let by_token = jsonrpc::notification_progress_token(&msg).and_then(|t| r.progress.get(&t).cloned());
                    if let Some(tx) = by_token.or_else(|| r.streams.first().map(|(_, tx)| tx.clone())) {
                        Some(tx)
                    } else if let Some((_, get)) = &r.get {
                        if get.try_send(msg).is_err() {
                            warn!(session = %self.log_id, "GET stream full or gone; server message dropped");
                        }
                        return;
                    } else {
                        if r.backlog.len() == BACKLOG {
                            r.backlog.pop_front();
                            warn!(session = %self.log_id, "no stream for server messages; oldest dropped");
                        }
                        r.backlog.push_back(msg);
                        return;
                    }
                };
                if let Some(tx) = target {
                    let _ = tx.send(msg).await;
                }
            }
            None => debug!(session = %self.log_id, "stdio child wrote an invalid JSON-RPC message; skipped"),
        }
    }
}

fn line(msg: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(msg).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// One POST's requests in flight; dropping it unregisters them.
pub struct Exchange {
    session: Arc<Session>,
    stream: u64,
    keys: Vec<String>,
    tokens: Vec<String>,
    /// The request ids, in body order.
    pub ids: Vec<Value>,
    /// Responses (and, for SSE, related messages) from the child.
    pub rx: mpsc::Receiver<Value>,
}

impl Exchange {
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        {
            let mut r = self.session.router();
            for k in &self.keys {
                r.pending.remove(k);
            }
            for t in &self.tokens {
                r.progress.remove(t);
            }
            r.streams.retain(|(id, _)| *id != self.stream);
        }
        self.session.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.session.touch();
    }
}

/// The session's GET stream; dropping it detaches it unless a newer one replaced it.
pub struct GetStream {
    session: Arc<Session>,
    generation: u64,
    /// Server-initiated messages.
    pub rx: mpsc::Receiver<Value>,
}

impl Drop for GetStream {
    fn drop(&mut self) {
        let mut r = self.session.router();
        if r.get.as_ref().is_some_and(|(g, _)| *g == self.generation) {
            r.get = None;
        }
    }
}
