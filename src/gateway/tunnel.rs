//! The gateway's tunnel connection: dial the edge (QUIC, or HTTP/2 over TCP when UDP is
//! blocked), register with `Hello`/`Welcome`, serve the data streams the edge opens, and
//! reconnect with jittered exponential backoff whenever the connection ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn, Instrument};

use super::control_io::{read_control, send_drain};
use super::dial::{self, Incoming, Session};
use super::dial_error::{describe_close, DialError};
use super::probe;
use super::register::{establish, Dialer, Registered};
use super::serve::serve_stream;
use super::spans;
use super::state::TunnelState;
use super::GatewayShared;
use crate::protocol::Control;

/// A connection that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// How a registered connection ended.
pub(super) enum Ended {
    /// The connection failed or the edge went away.
    Lost(String),
    /// The edge asked for a drain; the connection finishes in the background.
    Drained(Duration),
    /// QUIC works again: this HTTP/2 connection drains and the new one takes over.
    Upgraded(Box<Registered>),
    /// The connection's own edge serves again after a failover: this connection drains
    /// and the new one, on the own edge, takes over.
    Returned(Box<Registered>),
    /// The gateway is shutting down.
    Shutdown,
    /// The kill switch stopped the whole gateway: closed at once, no redial until resumed.
    Killed,
}

/// Everything the dial loop shares with one connection.
struct Ctx<'a> {
    shared: &'a Arc<GatewayShared>,
    dialer: &'a Dialer,
    state: &'a watch::Sender<TunnelState>,
    shutdown: &'a CancellationToken,
    shutdown_timeout: Duration,
    /// Drained connections finishing their streams in the background.
    lingering: &'a TaskTracker,
}

/// Dials forever (until `shutdown`), serving streams while connected.
pub(super) async fn run(
    shared: Arc<GatewayShared>,
    dialer: Dialer,
    state: watch::Sender<TunnelState>,
    shutdown: CancellationToken,
    shutdown_timeout: Duration,
) {
    let lingering = TaskTracker::new();
    let ctx = Ctx {
        shared: &shared,
        dialer: &dialer,
        state: &state,
        shutdown: &shutdown,
        shutdown_timeout,
        lingering: &lingering,
    };
    let mut attempt: u32 = 0;
    let mut udp_blocked = false;
    let mut ready: Option<Registered> = None;
    let mut last_error: Option<String> = None;
    let mut killed = shared.kill.tunnel_off();
    while !shutdown.is_cancelled() {
        let off = *killed.borrow_and_update();
        if off {
            state.send_replace(TunnelState::Disconnected { reason: "stopped by the kill switch".into() });
            tokio::select! {
                _ = killed.wait_for(|off| !*off) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Kept for the next registration's `last_error`, which operators see in `ctl status`.
        if let TunnelState::Disconnected { reason } | TunnelState::Rejected { reason } = &*state.borrow() {
            last_error = Some(reason.clone());
        }
        state.send_replace(TunnelState::Connecting);
        let started = Instant::now();
        let registered = match ready.take() {
            Some(r) => Ok(r),
            None => tokio::select! {
                r = establish(&dialer, &mut udp_blocked) => r,
                _ = shutdown.cancelled() => break,
            },
        };
        match registered {
            Ok(reg) => {
                let span = spans::connection(reg.connection_id, reg.session.transport, reg.session.remote);
                let end = serve(&ctx, reg, last_error.clone()).instrument(span).await;
                match ended(&ctx, end, started, &mut attempt, &mut udp_blocked, &mut ready) {
                    Next::Stop => break,
                    Next::Now => continue,
                    Next::Backoff => {}
                }
            }
            Err(e) => {
                failed(&ctx, e);
                dialer.fail_over();
            }
        }
        attempt = if started.elapsed() >= STABLE_AFTER { 0 } else { attempt.saturating_add(1) };
        let delay = backoff(attempt, dialer.edge().backoff_base, dialer.edge().backoff_max);
        info!(attempt, delay_ms = delay.as_millis() as u64, "redialing the edge");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    lingering.close();
    lingering.wait().await;
    state.send_replace(TunnelState::Stopped);
}

/// What the dial loop does once a connection ended.
enum Next {
    /// Shut down.
    Stop,
    /// Dial again at once (or use the connection in `ready`).
    Now,
    /// Dial again after the backoff.
    Backoff,
}

/// Counts and logs how a registered connection ended, and says what comes next.
fn ended(
    ctx: &Ctx<'_>,
    end: Ended,
    started: Instant,
    attempt: &mut u32,
    udp_blocked: &mut bool,
    ready: &mut Option<Registered>,
) -> Next {
    let metrics = &ctx.shared.metrics;
    match end {
        Ended::Shutdown => {
            metrics.disconnect("shutdown");
            Next::Stop
        }
        Ended::Killed => {
            metrics.disconnect("killed");
            Next::Now
        }
        Ended::Upgraded(reg) => {
            metrics.disconnect("moved_to_quic");
            info!("QUIC reaches the edge again; moved the tunnel back from HTTP/2");
            *udp_blocked = false;
            *ready = Some(*reg);
            Next::Now
        }
        Ended::Returned(reg) => {
            metrics.disconnect("returned");
            info!(edge = %reg.session.remote, "this connection's own edge serves again; moved back to it");
            ctx.dialer.home();
            *ready = Some(*reg);
            Next::Now
        }
        // Make-before-break: replace a drained connection at once, unless the edge drains
        // every connection right away (then back off).
        Ended::Drained(_) if started.elapsed() > Duration::from_secs(1) => {
            metrics.disconnect("drained");
            *attempt = 0;
            Next::Now
        }
        Ended::Drained(_) => {
            metrics.disconnect("drained");
            Next::Backoff
        }
        Ended::Lost(reason) => {
            metrics.disconnect("lost");
            warn!("tunnel connection lost: {reason}");
            ctx.state.send_replace(TunnelState::Disconnected { reason });
            ctx.dialer.fail_over();
            Next::Backoff
        }
    }
}

/// Counts and logs a failed attempt, and publishes why.
fn failed(ctx: &Ctx<'_>, e: DialError) {
    let metrics = &ctx.shared.metrics;
    match e {
        DialError::Rejected(reason) => {
            metrics.disconnect("rejected");
            metrics.dial_error("rejected");
            error!("edge rejected the tunnel: {reason}");
            ctx.state.send_replace(TunnelState::Rejected { reason });
        }
        e => {
            metrics.disconnect("dial_failed");
            metrics.dial_error(e.kind());
            warn!("tunnel connection failed: {e}");
            ctx.state.send_replace(TunnelState::Disconnected { reason: e.to_string() });
        }
    }
}

/// Full-jitter exponential backoff: uniform in [0, min(max, base·2^attempt)].
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let cap = base.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX)).min(max);
    cap.mul_f64(fastrand::f64())
}

/// Logs, counts and publishes a new registration.
fn announce(ctx: &Ctx<'_>, state: TunnelState) {
    if let TunnelState::Registered { tunnel_id, edge, hostnames, transport, .. } = &state {
        info!(tunnel = %tunnel_id, remote = %edge, ?hostnames, "tunnel registered");
        ctx.shared.metrics.registered(&transport.to_string());
    }
    ctx.state.send_replace(state);
}

/// Serves a registered connection until it ends.
async fn serve(ctx: &Ctx<'_>, reg: Registered, last_error: Option<String>) -> Ended {
    let Registered { session, tunnel_id, connection_id, hostnames } = reg;
    let Session { control, mut incoming, closer, transport, remote: edge, rtt } = session;
    let since = Instant::now();
    let up = TunnelState::Registered { tunnel_id, connection_id, hostnames, transport, edge, since, rtt, last_error };
    announce(ctx, up);

    let (control_rd, mut control_wr) = tokio::io::split(control);
    let (reader, mut control) = read_control(control_rd, &ctx.dialer.tasks);
    let (reprobe, homecoming) = (probe::quic_again(ctx.dialer, transport), probe::homecoming(ctx.dialer, edge));
    tokio::pin!(reprobe, homecoming);
    let streams = TaskTracker::new();
    let drain = CancellationToken::new();
    let (mut killed, _live) = (ctx.shared.kill.tunnel_off(), ctx.shared.kill.connection());
    let ended = loop {
        tokio::select! {
            accepted = incoming.accept() => match accepted {
                Some((stream, open)) => {
                    let serve = serve_stream(stream, open, ctx.dialer.index, ctx.shared.clone(), drain.clone());
                    streams.spawn(serve.in_current_span());
                }
                None => break Ended::Lost(lost_reason(&closer)),
            },
            msg = control.recv() => match msg.unwrap_or(Ok(None)) {
                Ok(Some(Control::Drain { grace_ms })) => break Ended::Drained(Duration::from_millis(grace_ms)),
                Ok(Some(other)) => debug!("ignoring control message {other:?}"),
                Ok(None) => break Ended::Lost("edge closed the control stream".to_owned()),
                Err(e) => break Ended::Lost(format!("control stream failed: {e}")),
            },
            // (The watch's borrow must not live into the other arms' awaits.)
            true = async { killed.wait_for(|off| *off).await.is_ok() } => break Ended::Killed,
            reg = &mut reprobe => {
                send_drain(&mut control_wr, ctx.shutdown_timeout).await;
                break Ended::Upgraded(Box::new(reg));
            }
            reg = &mut homecoming => {
                send_drain(&mut control_wr, ctx.shutdown_timeout).await;
                break Ended::Returned(Box::new(reg));
            }
            _ = ctx.shutdown.cancelled() => {
                // Graceful: tell the edge to route nothing new here, let in-flight finish.
                send_drain(&mut control_wr, ctx.shutdown_timeout).await;
                finish(&mut incoming, ctx.dialer.index, ctx.shared, &streams, &drain, ctx.shutdown_timeout).await;
                break Ended::Shutdown;
            }
        }
    };
    reader.abort();
    let grace = match &ended {
        Ended::Drained(grace) => *grace,
        Ended::Upgraded(_) | Ended::Returned(_) => ctx.shutdown_timeout,
        // Killed: at once. Lost: no one is left to say goodbye to, and waiting for the
        // peer would only delay the redial and the state `/readyz` reports.
        Ended::Killed | Ended::Lost(_) => {
            closer.close_now();
            return ended;
        }
        Ended::Shutdown => {
            closer.close(b"bye").await;
            return ended;
        }
    };
    // Make-before-break: the caller connects anew now, while this connection finishes
    // its in-flight streams in the background.
    info!("moving off this connection; in-flight streams finish in the background");
    let (shared, shutdown, index) = (ctx.shared.clone(), ctx.shutdown.clone(), ctx.dialer.index);
    let limit = grace.clamp(Duration::from_secs(1), ctx.shutdown_timeout.max(Duration::from_secs(1)));
    ctx.lingering.spawn(
        async move {
            tokio::select! {
                _ = finish(&mut incoming, index, &shared, &streams, &drain, limit) => {}
                _ = shutdown.cancelled() => drain.cancel(),
            }
            closer.close(b"drained").await;
        }
        .in_current_span(),
    );
    ended
}

/// Why a connection that stopped yielding streams ended (QUIC says: "timed out" is a
/// dead edge or path, found by the keep-alives and `edge.dead_after`).
fn lost_reason(closer: &dial::Closer) -> String {
    match closer.peer_close_reason() {
        Some(quinn::ConnectionError::TimedOut) => "no answer from the edge within edge.dead_after (timed out)".into(),
        Some(reason) => describe_close(&reason),
        None => "connection closed".into(),
    }
}

/// Lets in-flight streams finish (up to `limit`), still serving streams that raced the
/// drain, then returns so the caller can close the connection. The edge closes a drained
/// connection itself once nothing runs on it (and, for its own drains, once the
/// replacement registered), so waiting for that close loses no byte in flight.
async fn finish(
    incoming: &mut Incoming,
    connection: u32,
    shared: &Arc<GatewayShared>,
    streams: &TaskTracker,
    drain: &CancellationToken,
    limit: Duration,
) {
    drain.cancel();
    streams.close();
    // Streams that raced the Drain get served normally (they have a request coming);
    // the time limit bounds them.
    let late = CancellationToken::new();
    let done = async {
        while let Some((stream, open)) = incoming.accept().await {
            streams.spawn(serve_stream(stream, open, connection, shared.clone(), late.clone()).in_current_span());
        }
        streams.wait().await;
    };
    if tokio::time::timeout(limit, done).await.is_err() {
        warn!("drain time limit reached with streams in flight; closing");
    }
    late.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let (base, max) = (Duration::from_millis(200), Duration::from_secs(30));
        for attempt in [0, 1, 5, 20, u32::MAX] {
            let mut seen_max = Duration::ZERO;
            for _ in 0..200 {
                let d = backoff(attempt, base, max);
                assert!(d <= max, "{d:?}");
                assert!(d <= base.saturating_mul(1 << attempt.min(16)), "{d:?}");
                seen_max = seen_max.max(d);
            }
            assert!(seen_max > Duration::ZERO, "jitter spreads the delays");
        }
    }
}
