//! Stdio children across a config reload. A route whose stdio command and settings did
//! not change keeps its bridge, so its sessions (and their ids) survive the reload; the
//! bridge of a route that was removed or changed is shut down at once, ending its
//! children promptly instead of at their idle timeout.

use std::sync::Arc;

use tracing::info;

use super::route::{Route, RouteTable};
use crate::stdio::StdioBridge;
use crate::tasks::Tasks;

/// The table to install for `new`, with the bridges of unchanged stdio routes carried
/// over from `old`, and the old bridges no route uses any more.
pub fn carry_over(old: &RouteTable, new: &Arc<RouteTable>) -> (Arc<RouteTable>, Vec<Arc<StdioBridge>>) {
    let mut kept: Vec<Arc<StdioBridge>> = Vec::new();
    let routes: Vec<Route> = new
        .routes()
        .map(|r| {
            let mut route = Route::clone(r);
            let same = old.routes().find(|o| o.name == r.name).and_then(|o| o.stdio.clone());
            if let (Some(was), Some(now)) = (same, &r.stdio) {
                if was.runs(now.spec()) {
                    kept.push(was.clone());
                    route.stdio = Some(was);
                }
            }
            route
        })
        .collect();
    // Rebuilding a table that was valid cannot fail; if it did, keep no old bridge.
    let table = match RouteTable::new(routes) {
        Ok(t) if !kept.is_empty() => Arc::new(t),
        _ => new.clone(),
    };
    let retired = old
        .routes()
        .filter_map(|o| o.stdio.clone())
        .filter(|b| !table.routes().any(|r| r.stdio.as_ref().is_some_and(|k| Arc::ptr_eq(k, b))))
        .collect();
    (table, retired)
}

/// Shuts the retired bridges down in tasks of `tasks` (each stop is bounded by the
/// child's stop sequence; shutdown waits for them, so no child outlives the gateway).
pub fn retire(bridges: Vec<Arc<StdioBridge>>, tasks: &Tasks) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    for bridge in bridges {
        info!(children = bridge.live_children(), "stdio route removed or changed by a reload; stopping its children");
        runtime.spawn(tasks.track(async move { bridge.shutdown().await }));
    }
}
