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

impl admin::AdminSource for GatewayAdmin {
    /// Ready when at least one tunnel connection is registered and the gateway is not
    /// stopped by the kill switch (a stopped route alone leaves it ready).
    fn readiness(&self) -> (bool, serde_json::Value) {
        let states = self.states();
        let kill = self.shared.kill.state();
        let ready = kill.all.is_none() && states.iter().any(|s| matches!(s, TunnelState::Registered { .. }));
        let connections: Vec<_> = states.iter().enumerate().map(|(index, s)| s.describe(index)).collect();
        let detail =
            serde_json::json!({ "connections": connections, "routes": self.shared.routes().len(), "kill": kill });
        (ready, detail)
    }

    fn control(&self) -> Option<Arc<dyn admin::AdminControl>> {
        Some(self.control.clone())
    }

    fn metrics(&self) -> String {
        let states: Vec<_> = self.states().iter().map(TunnelState::words).collect();
        self.shared.metrics.render(&states)
    }
}
