//! Telling a service manager (systemd `Type=notify`) how the process stands: `READY=1`
//! once the gateway has registered its first tunnel connection (before that it is not
//! serving anything), `STATUS=` lines as connections come and go, `WATCHDOG=1` at half
//! the unit's `WatchdogSec=` from a task of the runtime (so a wedged runtime gets the
//! process restarted), and `STOPPING=1` at shutdown. Without `NOTIFY_SOCKET` every call
//! is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::gateway::TunnelState;

/// Sends `states`; a manager that went away is not our failure (logged at debug).
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("service manager notification failed: {e}");
    }
}

/// The watchdog interval the manager asked for (`WATCHDOG_USEC` for this pid), halved.
fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    (sd_notify::watchdog_enabled(true, &mut usec) && usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog until `shutdown`, then says `STOPPING=1`.
pub async fn watchdog(shutdown: CancellationToken) {
    if let Some(every) = watchdog_interval() {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => notify(&[NotifyState::Watchdog]),
                _ = shutdown.cancelled() => break,
            }
        }
    } else {
        shutdown.cancelled().await;
    }
    notify(&[NotifyState::Stopping]);
}

/// Says `READY=1` when the first of `states` registers, and keeps `STATUS=` current
/// (how many connections are registered) until `shutdown`.
pub async fn gateway_ready(states: Vec<watch::Receiver<TunnelState>>, shutdown: CancellationToken) {
    // One waiter per connection wakes this loop on any change (aborted with the set).
    let changed = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut waiters = tokio::task::JoinSet::new();
    for mut state in states.iter().cloned() {
        let changed = changed.clone();
        waiters.spawn(async move {
            while state.changed().await.is_ok() {
                changed.notify_one();
            }
        });
    }
    let mut ready = false;
    loop {
        let up = states.iter().filter(|s| matches!(*s.borrow(), TunnelState::Registered { .. })).count();
        let status = format!("{up} of {} tunnel connections registered", states.len());
        if up > 0 && !ready {
            ready = true;
            notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
        } else {
            notify(&[NotifyState::Status(&status)]);
        }
        tokio::select! {
            _ = changed.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The edge is ready once its listeners are bound, which `Edge::bind` did.
pub fn edge_ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("listening")]);
}
