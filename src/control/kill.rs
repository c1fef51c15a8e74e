//! The kill switch: stop the whole gateway or one route at once, and stay stopped.
//!
//! Every exchange enters through [`KillSwitch::enter`], which refuses it when its route
//! (or everything) is stopped, and otherwise hands out a [`Pass`]: a clone of the route's
//! cancellation token plus a place in the route's in-flight count. A kill swaps the
//! route's token for a fresh one and cancels the old one, which ends every exchange that
//! holds it (see `kill_body`), then waits until the in-flight count of the stopped routes
//! is zero. Checking the state and taking a pass happen under one lock, so no exchange
//! slips in between the stop and the cut.
//!
//! Per-route state is keyed by route name, not kept on the route: reloads replace routes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::kill_store::{self, KillState, KillStoreError, Killed};
use super::metrics::KillMetrics;
pub use super::metrics::ALL;
/// How long a kill waits for the cut to complete before it reports what still runs.
pub const CUT_TIMEOUT: Duration = Duration::from_secs(30);

/// One route's runtime state.
#[derive(Debug, Default)]
struct Lane {
    /// Cancelled by the next kill that covers this route.
    token: CancellationToken,
    /// Exchanges holding a [`Pass`] for this route.
    inflight: usize,
}

#[derive(Debug, Default)]
struct Inner {
    state: KillState,
    lanes: HashMap<String, Lane>,
}

/// The gateway's kill switch (one per process, in `GatewayShared`).
#[derive(Debug)]
pub struct KillSwitch {
    inner: Mutex<Inner>,
    /// Where `kill.json` lives; `None` keeps the state in memory only.
    state_dir: Option<PathBuf>,
    /// Bumped whenever a pass ends or a tunnel connection closes, so a kill can wait.
    changed: watch::Sender<u64>,
    /// `true` while the whole gateway is stopped: tunnel connections close and do not redial.
    tunnel_off: watch::Sender<bool>,
    /// Tunnel connections open now.
    connections: watch::Sender<usize>,
    metrics: KillMetrics,
}

/// What a kill did.
#[derive(Debug, Clone)]
pub struct KillReport {
    /// Exchanges cut.
    pub cut: usize,
    /// Time from the stop to the last exchange (and, for the whole gateway, the last
    /// tunnel connection) ending.
    pub elapsed: Duration,
    /// Exchanges still running when [`CUT_TIMEOUT`] passed (0 when the cut completed).
    pub remaining: usize,
    /// Set when the state could not be persisted (the stop holds in memory).
    pub persist_error: Option<String>,
}

/// Why an exchange is refused: the stop that applies to it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The route the request was for.
    pub route: String,
    /// `true` when the whole gateway is stopped.
    pub all: bool,
    /// The stop.
    pub killed: Killed,
}

impl KillSwitch {
    /// Loads the persisted state from `state_dir` (if any).
    pub fn load(state_dir: Option<PathBuf>, metrics: KillMetrics) -> Result<Arc<Self>, KillStoreError> {
        let state = match &state_dir {
            Some(dir) => kill_store::load(dir)?,
            None => KillState::default(),
        };
        let all = state.all.is_some();
        let switch = Arc::new(Self {
            inner: Mutex::new(Inner { state, lanes: HashMap::new() }),
            state_dir,
            changed: watch::channel(0).0,
            tunnel_off: watch::channel(all).0,
            connections: watch::channel(0).0,
            metrics,
        });
        switch.publish(&switch.lock().state);
        Ok(switch)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current state (for status, `/readyz`).
    pub fn state(&self) -> KillState {
        self.lock().state.clone()
    }

    /// Admits an exchange on `route`, or says which stop refuses it.
    pub fn enter(self: &Arc<Self>, route: &str) -> Result<Pass, Refusal> {
        let mut inner = self.lock();
        if let Some(killed) = inner.state.applies(route) {
            let all = inner.state.all.is_some();
            return Err(Refusal { route: route.to_owned(), all, killed: killed.clone() });
        }
        let lane = inner.lanes.entry(route.to_owned()).or_default();
        lane.inflight += 1;
        Ok(Pass { switch: self.clone(), route: route.to_owned(), token: lane.token.clone() })
    }

    /// Stops `route` (or everything), cuts what runs there and waits (up to
    /// [`CUT_TIMEOUT`]) for the cut to complete. Stopping what is already stopped
    /// replaces the reason and cuts again.
    pub async fn kill(&self, route: Option<&str>, reason: &str, actor: &str) -> KillReport {
        let started = tokio::time::Instant::now();
        let mut changes = self.changed.subscribe();
        let killed = Killed { reason: reason.to_owned(), actor: actor.to_owned(), at: now() };
        let (old, cut, persist_error) = {
            let mut inner = self.lock();
            match route {
                None => inner.state.all = Some(killed),
                Some(r) => {
                    inner.state.routes.insert(r.to_owned(), killed);
                }
            }
            let mut old = Vec::new();
            let mut cut = 0;
            for (name, lane) in inner.lanes.iter_mut() {
                if covers(route, name) {
                    old.push(std::mem::take(&mut lane.token));
                    cut += lane.inflight;
                }
            }
            let persist_error = self.persist(&inner.state);
            self.publish(&inner.state);
            (old, cut, persist_error)
        };
        for token in old {
            token.cancel();
        }
        if route.is_none() {
            self.tunnel_off.send_replace(true);
        }
        self.metrics.cut(cut as u64);
        let mut conns = self.connections.subscribe();
        let wait = async {
            loop {
                if self.running(route) == 0 && (route.is_some() || *conns.borrow_and_update() == 0) {
                    return;
                }
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    r = conns.changed() => if r.is_err() { return },
                }
            }
        };
        let timed_out = tokio::time::timeout(CUT_TIMEOUT, wait).await.is_err();
        let remaining = if timed_out { self.running(route) } else { 0 };
        if timed_out {
            warn!(remaining, "kill: exchanges still running after {CUT_TIMEOUT:?}");
        }
        KillReport { cut, elapsed: started.elapsed(), remaining, persist_error }
    }

    /// Lifts the stop of `route` (or the whole-gateway stop). Returns the stop lifted,
    /// `None` when there was none.
    pub fn resume(&self, route: Option<&str>) -> (Option<Killed>, Option<String>) {
        let mut inner = self.lock();
        let lifted = match route {
            None => inner.state.all.take(),
            Some(r) => inner.state.routes.remove(r),
        };
        if lifted.is_none() {
            return (None, None);
        }
        let persist_error = self.persist(&inner.state);
        self.publish(&inner.state);
        if route.is_none() {
            self.tunnel_off.send_replace(false);
        }
        (lifted, persist_error)
    }

    /// Exchanges holding a pass on `route` (or on any route).
    fn running(&self, route: Option<&str>) -> usize {
        let inner = self.lock();
        inner.lanes.iter().filter(|(name, _)| covers(route, name)).map(|(_, l)| l.inflight).sum()
    }

    fn persist(&self, state: &KillState) -> Option<String> {
        let dir = self.state_dir.as_ref()?;
        let e = kill_store::save(dir, state).err()?;
        error!("the kill state was changed in memory but could not be saved: {e}");
        Some(e.to_string())
    }

    /// Sets the `killed` gauge from the state.
    fn publish(&self, state: &KillState) {
        self.metrics.set_stopped(state.all.is_some(), state.routes.keys().map(String::as_str));
    }

    /// Watches whether the whole gateway is stopped (the tunnel dial loop waits on it).
    pub fn tunnel_off(&self) -> watch::Receiver<bool> {
        self.tunnel_off.subscribe()
    }

    /// Counts one open tunnel connection until the guard drops, so a whole-gateway kill
    /// can wait for the tunnel to close.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.send_modify(|n| *n += 1);
        ConnectionGuard(self.clone())
    }

    fn left(&self, route: &str) {
        {
            let mut inner = self.lock();
            if let Some(lane) = inner.lanes.get_mut(route) {
                lane.inflight = lane.inflight.saturating_sub(1);
            }
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// An admitted exchange. Holding it counts the exchange as in flight; its token fires
/// when a kill covers the route.
#[derive(Debug)]
pub struct Pass {
    switch: Arc<KillSwitch>,
    route: String,
    token: CancellationToken,
}

impl Pass {
    /// The token a kill cancels.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The route's name.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The stop that cut this exchange (after its token fired).
    pub fn refusal(&self) -> Refusal {
        let state = self.switch.state();
        let killed = state.applies(&self.route).cloned().unwrap_or_else(|| Killed {
            reason: "stopped by the kill switch".into(),
            actor: String::new(),
            at: now(),
        });
        Refusal { route: self.route.clone(), all: state.all.is_some(), killed }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.switch.left(&self.route);
    }
}

/// One open tunnel connection (see [`KillSwitch::connection`]).
#[derive(Debug)]
pub struct ConnectionGuard(Arc<KillSwitch>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Whether a kill of `route` (`None`: everything) covers the route named `name`.
fn covers(route: Option<&str>, name: &str) -> bool {
    route.is_none_or(|r| r == name)
}

fn now() -> String {
    crate::audit::record::format_time(SystemTime::now()).unwrap_or_default()
}
