//! The kill switch under load: `n` open SSE streams through the tunnel, then a kill of
//! their route (or of the whole gateway) over the control socket, as `ctl kill` does.
//! Reports the gateway's own cut time (stop to the last exchange ended, and for a
//! whole-gateway kill the tunnel closed), the control call's round trip, and when the
//! last client saw its stream end; then resumes and waits for service to return.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::load;
use crate::paths::{self, Path, DOMAIN};
use crate::report::Row;
use crate::scenarios::Scale;

/// Time allowed for the clients to see their streams end after the kill returned.
const ENDED_LIMIT: Duration = Duration::from_secs(30);

/// One kill measurement; `None` for paths without a gateway.
pub async fn kill(path: &Path, scale: &Scale, n: usize, whole: bool) -> Option<Row> {
    let state_dir = path.state_dir.as_ref()?;
    let name = if whole { format!("kill-all-{n}") } else { format!("kill-route-{n}") };
    let mut row = Row::new(&name, 0, path.kind.name());
    let set = load::sse_open(path.target.clone(), n, scale.sse_parallel_open);
    set.wait_open(n, Duration::from_secs(180)).await;
    let opened = set.opened.load(Ordering::Relaxed);
    let failed_before = set.failed.load(Ordering::Relaxed);
    row.set("open", opened as f64);
    let route = format!("mcp.{DOMAIN}");
    let args = if whole {
        serde_json::json!({ "reason": "bench" })
    } else {
        serde_json::json!({ "route": route, "reason": "bench" })
    };
    let started = Instant::now();
    let result = mcp_tunnel::control::client::call(state_dir, "kill", args).await;
    let call_ms = started.elapsed().as_secs_f64() * 1e3;
    match result {
        Ok(v) => {
            row.set("cut", v["cut"].as_f64().unwrap_or(f64::NAN));
            row.set("gateway_cut_ms", v["elapsed_ms"].as_f64().unwrap_or(f64::NAN));
            row.set("ctl_call_ms", call_ms);
        }
        Err(e) => row.note = format!("kill failed: {e}"),
    }
    // The streams end with an error when cut; count them as they go.
    let until = Instant::now() + ENDED_LIMIT;
    while set.failed.load(Ordering::Relaxed) - failed_before < opened && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ended = set.failed.load(Ordering::Relaxed) - failed_before;
    row.set("clients_ended_ms", started.elapsed().as_secs_f64() * 1e3);
    row.set("clients_ended", ended as f64);
    if ended < opened {
        row.note = format!("{} streams still open {ENDED_LIMIT:?} after the kill", opened - ended);
    }
    let _ = set.close().await;
    let resume = if whole { serde_json::json!({}) } else { serde_json::json!({ "route": route }) };
    if let Err(e) = mcp_tunnel::control::client::call(state_dir, "resume", resume).await {
        row.note = format!("resume failed: {e}");
    }
    let resumed = Instant::now();
    match paths::wait_ready(&path.target, Duration::from_secs(60)).await {
        Ok(at) => row.set("resume_to_ok_ms", (at - resumed).as_secs_f64() * 1e3),
        Err(e) => row.note = format!("no service within 60 s of resume: {e}"),
    }
    Some(row)
}
