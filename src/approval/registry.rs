//! The calls waiting for approval now, keyed by approval id. Lives in `GatewayShared`, so
//! a config reload (which replaces every route) does not lose a waiting call.
//!
//! Each waiting call holds a [`Ticket`]; exactly one of three things takes its entry out
//! of the registry: an operator's [`Approvals::decide`], the waiter giving up at its
//! deadline ([`Ticket::expire`]), or the ticket being dropped (the client went away). The
//! registry's lock makes the first of them win.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::metrics::ApprovalMetrics;
use crate::audit::record::format_time;

/// What an approver is shown about a waiting call. Arguments are already redacted to the
/// route's `visible_arguments`.
#[derive(Debug, Clone)]
pub struct PendingCall {
    /// The approval id: 16 hex digits from the system CSPRNG.
    pub id: String,
    /// The route's name.
    pub route: String,
    /// The tool called.
    pub tool: String,
    /// The call's arguments with only the visible keys in clear.
    pub arguments: Option<Value>,
    /// When the call started waiting.
    pub created: SystemTime,
    /// When it will be refused as expired.
    pub deadline: SystemTime,
    /// The client's address as the edge saw it.
    pub client_addr: String,
    /// The authenticated caller, when the route authenticates.
    pub identity: Option<String>,
    /// The hash of the MCP session id (`audit::record::session_hash`), when the client has one.
    pub session_id: Option<String>,
    /// The JSON-RPC id of the call.
    pub jsonrpc_id: Option<Value>,
}

impl PendingCall {
    /// The JSON form shown by `approvals list` / `show` and sent to the webhook.
    pub fn to_json(&self) -> Value {
        let now = SystemTime::now();
        let ms = |d: Result<std::time::Duration, _>| d.map(|d: std::time::Duration| d.as_millis() as u64).unwrap_or(0);
        json!({
            "id": self.id,
            "route": self.route,
            "tool": self.tool,
            "arguments": self.arguments,
            "created": format_time(self.created),
            "deadline": format_time(self.deadline),
            "waiting_ms": ms(now.duration_since(self.created)),
            "expires_in_ms": ms(self.deadline.duration_since(now)),
            "client_addr": self.client_addr,
            "identity": self.identity,
            "session_id": self.session_id,
            "jsonrpc_id": self.jsonrpc_id,
        })
    }
}

/// An operator's decision on one call.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Let the call through (true) or refuse it.
    pub approved: bool,
    /// Who decided ([`crate::control::Caller::label`]).
    pub approver: String,
    /// The reason the operator gave, if any.
    pub reason: Option<String>,
}

/// Why a call could not start waiting.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0} calls are already waiting for approval on this route")]
    Full(usize),
    #[error("cannot generate an approval id: the system random source failed")]
    Random,
}

/// Why a decision could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no call is waiting with approval id {0} (never existed, already decided, expired or cancelled)")]
    NotFound(String),
}

struct Entry {
    call: Arc<PendingCall>,
    decide: oneshot::Sender<Decision>,
}

/// The waiting calls of every route.
pub struct Approvals {
    entries: Mutex<HashMap<String, Entry>>,
    rng: SystemRandom,
    metrics: ApprovalMetrics,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").field("pending", &self.len()).finish()
    }
}

impl Approvals {
    /// An empty registry counting into `metrics`.
    pub fn new(metrics: ApprovalMetrics) -> Arc<Self> {
        Arc::new(Self { entries: Mutex::default(), rng: SystemRandom::new(), metrics })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The metrics this registry counts into.
    pub fn metrics(&self) -> &ApprovalMetrics {
        &self.metrics
    }

    /// Calls waiting now, on every route.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no call is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh approval id: 64 random bits as 16 hex digits (unguessable, short to type).
    pub fn new_id(&self) -> Result<String, RegisterError> {
        let mut bytes = [0u8; 8];
        self.rng.fill(&mut bytes).map_err(|_| RegisterError::Random)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Starts a call waiting, unless `max_pending` calls already wait on its route.
    pub fn register(self: &Arc<Self>, call: PendingCall, max_pending: usize) -> Result<Ticket, RegisterError> {
        let (tx, rx) = oneshot::channel();
        let call = Arc::new(call);
        let mut entries = self.lock();
        if entries.values().filter(|e| e.call.route == call.route).count() >= max_pending {
            return Err(RegisterError::Full(max_pending));
        }
        entries.insert(call.id.clone(), Entry { call: call.clone(), decide: tx });
        drop(entries);
        self.metrics.pending(1);
        Ok(Ticket { call, decision: Some(rx), registry: self.clone(), open: true })
    }

    /// The waiting calls, oldest first.
    pub fn list(&self) -> Vec<Arc<PendingCall>> {
        let mut calls: Vec<_> = self.lock().values().map(|e| e.call.clone()).collect();
        calls.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        calls
    }

    /// One waiting call.
    pub fn get(&self, id: &str) -> Option<Arc<PendingCall>> {
        self.lock().get(id).map(|e| e.call.clone())
    }

    /// Applies an operator's decision; returns the call it applied to.
    pub fn decide(&self, id: &str, decision: Decision) -> Result<Arc<PendingCall>, DecideError> {
        let entry = self.lock().remove(id).ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        self.metrics.pending(-1);
        // The waiter may be going away at this very moment; it then records `cancelled`.
        let _ = entry.decide.send(decision);
        Ok(entry.call)
    }

    /// Takes `id` out if it is still waiting (expiry or cancellation).
    fn remove(&self, id: &str) -> bool {
        let removed = self.lock().remove(id).is_some();
        if removed {
            self.metrics.pending(-1);
        }
        removed
    }
}

/// A call's place in the registry; dropping it withdraws the call.
pub struct Ticket {
    call: Arc<PendingCall>,
    decision: Option<oneshot::Receiver<Decision>>,
    registry: Arc<Approvals>,
    open: bool,
}

impl Ticket {
    /// The call as registered.
    pub fn call(&self) -> &Arc<PendingCall> {
        &self.call
    }

    /// Waits for an operator's decision; `None` when the registry went away without one.
    pub async fn decision(&mut self) -> Option<Decision> {
        let rx = self.decision.as_mut()?;
        let d = rx.await.ok();
        self.open = false;
        d
    }

    /// Withdraws the call at its deadline. A decision that won the race is returned
    /// instead (the operator answered in the same instant).
    pub fn expire(&mut self) -> Option<Decision> {
        self.open = false;
        if self.registry.remove(&self.call.id) {
            return None;
        }
        self.decision.as_mut().and_then(|rx| rx.try_recv().ok())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            self.registry.remove(&self.call.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(reg: &Approvals, route: &str) -> PendingCall {
        let now = SystemTime::now();
        PendingCall {
            id: reg.new_id().unwrap(),
            route: route.into(),
            tool: "charge".into(),
            arguments: None,
            created: now,
            deadline: now + Duration::from_secs(60),
            client_addr: "192.0.2.1:5".into(),
            identity: None,
            session_id: None,
            jsonrpc_id: Some(json!(1)),
        }
    }

    #[tokio::test]
    async fn decide_wakes_the_waiter_once_and_cap_is_per_route() {
        let reg = Approvals::new(ApprovalMetrics::default());
        let id = reg.new_id().unwrap();
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        let mut t = reg.register(call(&reg, "a"), 1).unwrap();
        assert!(matches!(reg.register(call(&reg, "a"), 1), Err(RegisterError::Full(1))));
        let other = reg.register(call(&reg, "b"), 1).unwrap();
        let id = t.call().id.clone();
        let d = Decision { approved: true, approver: "uid:0 via socket".into(), reason: None };
        reg.decide(&id, d).unwrap();
        assert!(t.decision().await.unwrap().approved);
        assert!(matches!(
            reg.decide(&id, Decision { approved: false, approver: "x".into(), reason: None }),
            Err(DecideError::NotFound(_))
        ));
        drop(other);
        assert!(reg.is_empty(), "a dropped ticket withdraws its call");
    }

    #[tokio::test]
    async fn expire_withdraws_unless_a_decision_won() {
        let reg = Approvals::new(ApprovalMetrics::default());
        let mut t = reg.register(call(&reg, "a"), 4).unwrap();
        assert!(t.expire().is_none());
        assert!(reg.is_empty());
        let mut t = reg.register(call(&reg, "a"), 4).unwrap();
        let id = t.call().id.clone();
        reg.decide(&id, Decision { approved: false, approver: "x".into(), reason: Some("no".into()) }).unwrap();
        assert_eq!(t.expire().unwrap().reason.as_deref(), Some("no"));
    }
}
