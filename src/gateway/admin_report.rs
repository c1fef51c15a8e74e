//! What the gateway's admin endpoint reports: readiness (per tunnel connection, the kill
//! switch), Prometheus metrics, and the control API it forwards `/control/*` to.

use std::sync::Arc;

use tokio::sync::watch;

use super::{ops, GatewayShared, TunnelState};
use crate::admin;

/// The admin endpoint's view of the running gateway.
pub(super) struct GatewayAdmin {
    shared: Arc<GatewayShared>,
    states: Vec<watch::Receiver<TunnelState>>,
    control: Arc<crate::control::admin_http::ControlApi>,
}

impl GatewayAdmin {
    /// The report of `shared` whose tunnel connections publish `states`; control
    /// operations need `token` (the `[admin] token_sha256`) when one is set.
    pub(super) fn new(
        shared: &Arc<GatewayShared>,
        states: Vec<watch::Receiver<TunnelState>>,
        token: Option<&str>,
    ) -> Self {
        let api = crate::control::admin_http::ControlApi::new(
            Arc::new(ops::GatewayOps(shared.clone())),
            ops::control_audit(shared),
            token,
        );
        Self { shared: shared.clone(), states, control: Arc::new(api) }
    }

    fn states(&self) -> Vec<TunnelState> {
        self.states.iter().map(|s| s.borrow().clone()).collect()
    }
}

fn state_words(state: &TunnelState) -> (String, String) {
    match state {
        TunnelState::Registered { transport, .. } => (transport.to_string(), "registered".into()),
        TunnelState::Connecting => ("none".into(), "connecting".into()),
        TunnelState::Rejected { .. } => ("none".into(), "rejected".into()),
        TunnelState::Disconnected { .. } => ("none".into(), "disconnected".into()),
        TunnelState::Stopped => ("none".into(), "stopped".into()),
    }
}

impl admin::AdminSource for GatewayAdmin {
    /// Ready when at least one tunnel connection is registered and the gateway is not
    /// stopped by the kill switch (a stopped route alone leaves it ready).
    fn readiness(&self) -> (bool, serde_json::Value) {
        let states = self.states();
        let kill = self.shared.kill.state();
        let ready = kill.all.is_none() && states.iter().any(|s| matches!(s, TunnelState::Registered { .. }));
        let connections: Vec<_> = states
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let (transport, state) = state_words(s);
                let mut entry = serde_json::json!({ "index": index, "state": state, "transport": transport });
                match s {
                    TunnelState::Registered { tunnel_id, connection_id, edge, since, .. } => {
                        entry["tunnel_id"] = tunnel_id.clone().into();
                        entry["connection_id"] = (*connection_id).into();
                        entry["edge"] = edge.to_string().into();
                        entry["uptime_s"] = since.elapsed().as_secs().into();
                    }
                    TunnelState::Rejected { reason } | TunnelState::Disconnected { reason } => {
                        entry["reason"] = reason.clone().into();
                    }
                    _ => {}
                }
                entry
            })
            .collect();
        let detail =
            serde_json::json!({ "connections": connections, "routes": self.shared.routes().len(), "kill": kill });
        (ready, detail)
    }

    fn control(&self) -> Option<Arc<dyn admin::AdminControl>> {
        Some(self.control.clone())
    }

    fn metrics(&self) -> String {
        let states: Vec<_> = self.states().iter().map(state_words).collect();
        self.shared.metrics.render(&states)
    }
}
