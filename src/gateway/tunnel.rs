//! The gateway's tunnel connection: dial the edge (QUIC, or HTTP/2 over TCP when UDP is
//! blocked), register with `Hello`/`Welcome`, serve the data streams the edge opens, and
//! reconnect with jittered exponential backoff whenever the connection ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::dial::{self, Incoming, Session};
use super::dial_error::{describe_close, DialError};
use super::serve::serve_stream;
use super::GatewayShared;
use crate::config::gateway::{EdgeTarget, TransportMode};
use crate::protocol::{frame, Control, MAX_FRAME_LEN, PROTOCOL_VERSION};
use crate::transport::Transport;

/// Time allowed for a handshake and for the edge's answer to `Hello`.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// In `auto` mode, how long QUIC gets before UDP is presumed blocked.
const QUIC_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Where the tunnel stands, for readiness checks, tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelState {
    /// Dialing (or waiting to redial).
    Connecting,
    /// Registered with the edge; streams flow.
    Registered { tunnel_id: String, connection_id: u64, hostnames: Vec<String>, transport: Transport },
    /// The edge refused this gateway (wrong identity, version...); retried with backoff.
    Rejected { reason: String },
    /// The last attempt or connection failed.
    Disconnected { reason: String },
    /// Shut down.
    Stopped,
}

/// How the gateway reaches the edge.
pub(super) struct Dialer {
    /// Which of the gateway's parallel connections this dialer keeps (0-based).
    pub index: u32,
    pub edge: EdgeTarget,
    pub quic: quinn::ClientConfig,
    pub h2_tls: Arc<rustls::ClientConfig>,
}

/// A registered connection.
pub(super) struct Registered {
    session: Session,
    tunnel_id: String,
    connection_id: u64,
    hostnames: Vec<String>,
}

/// How a registered connection ended.
pub(super) enum Ended {
    /// The connection failed or the edge went away.
    Lost(String),
    /// The edge asked for a drain; the connection finishes in the background.
    Drained(Duration),
    /// QUIC works again: this HTTP/2 connection drains and the new one takes over.
    Upgraded(Box<Registered>),
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
            Ok(reg) => match serve(&ctx, reg).await {
                Ended::Shutdown => {
                    shared.metrics.disconnect("shutdown");
                    break;
                }
                Ended::Killed => {
                    shared.metrics.disconnect("killed");
                    continue;
                }
                Ended::Upgraded(reg) => {
                    shared.metrics.disconnect("moved_to_quic");
                    info!("QUIC reaches the edge again; moved the tunnel back from HTTP/2");
                    udp_blocked = false;
                    ready = Some(*reg);
                    continue;
                }
                // Make-before-break: replace a drained connection at once, unless the
                // edge drains every connection right away (then back off).
                Ended::Drained(_) if started.elapsed() > Duration::from_secs(1) => {
                    shared.metrics.disconnect("drained");
                    attempt = 0;
                    continue;
                }
                Ended::Drained(_) => shared.metrics.disconnect("drained"),
                Ended::Lost(reason) => {
                    shared.metrics.disconnect("lost");
                    warn!(edge = %dialer.edge.address, "tunnel connection lost: {reason}");
                    state.send_replace(TunnelState::Disconnected { reason });
                }
            },
            Err(DialError::Rejected(reason)) => {
                shared.metrics.disconnect("rejected");
                shared.metrics.dial_error("rejected");
                error!(edge = %dialer.edge.address, "edge rejected the tunnel: {reason}");
                state.send_replace(TunnelState::Rejected { reason });
            }
            Err(e) => {
                shared.metrics.disconnect("dial_failed");
                shared.metrics.dial_error(e.kind());
                warn!(edge = %dialer.edge.address, "tunnel connection failed: {e}");
                state.send_replace(TunnelState::Disconnected { reason: e.to_string() });
            }
        }
        attempt = if started.elapsed() >= STABLE_AFTER { 0 } else { attempt.saturating_add(1) };
        let delay = backoff(attempt, dialer.edge.backoff_base, dialer.edge.backoff_max);
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

/// Full-jitter exponential backoff: uniform in [0, min(max, base·2^attempt)].
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let cap = base.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX)).min(max);
    cap.mul_f64(fastrand::f64())
}

/// Dials with the configured transport policy and registers.
async fn establish(dialer: &Dialer, udp_blocked: &mut bool) -> Result<Registered, DialError> {
    let edge = &dialer.edge;
    match edge.transport {
        TransportMode::Quic => register(dial::quic(edge, &dialer.quic, DIAL_TIMEOUT).await?, dialer.index).await,
        TransportMode::Http2 => register(dial::h2(edge, &dialer.h2_tls, DIAL_TIMEOUT).await?, dialer.index).await,
        TransportMode::Auto => {
            if !*udp_blocked {
                match dial::quic(edge, &dialer.quic, QUIC_PROBE_TIMEOUT).await {
                    Ok(session) => return register(session, dialer.index).await,
                    Err(e) if e.udp_looks_blocked() => {
                        // Only when HTTP/2 then works is UDP the problem, not a down edge.
                        let reg = register(dial::h2(edge, &dialer.h2_tls, DIAL_TIMEOUT).await?, dialer.index).await?;
                        warn!(
                            edge = %edge.address,
                            "QUIC to the edge failed ({e}) but HTTP/2 over TCP works: UDP looks blocked; \
                             using HTTP/2 and retrying QUIC every {:?}",
                            edge.quic_retry_interval
                        );
                        *udp_blocked = true;
                        return Ok(reg);
                    }
                    Err(e) => return Err(e),
                }
            }
            register(dial::h2(edge, &dialer.h2_tls, DIAL_TIMEOUT).await?, dialer.index).await
        }
    }
}

/// Says `Hello` on a new session and waits for `Welcome`.
async fn register(mut session: Session, connection_index: u32) -> Result<Registered, DialError> {
    let hello = Control::Hello { protocol: PROTOCOL_VERSION, gateway_version: crate::VERSION.into(), connection_index };
    let exchange = async {
        frame::write(&mut session.control, &hello, MAX_FRAME_LEN).await?;
        tokio::time::timeout(DIAL_TIMEOUT, frame::read::<Control, _>(&mut session.control, MAX_FRAME_LEN))
            .await
            .map_err(|_| DialError::Timeout(DIAL_TIMEOUT))?
            .map_err(DialError::from)
    };
    let err = match exchange.await {
        Ok(Some(Control::Welcome { tunnel_id, hostnames, connection_id })) => {
            return Ok(Registered { session, tunnel_id, connection_id, hostnames });
        }
        Ok(Some(Control::Reject { code, reason })) => DialError::Rejected(format!("{code:?}: {reason}")),
        Ok(other) => DialError::Unexpected(format!("{other:?}")),
        // With TLS 1.3 client auth the edge judges our certificate only after our side
        // considers the handshake done; its verdict arrives as the close reason.
        Err(e) => match session.closer.peer_close_reason() {
            Some(reason) => DialError::Closed(describe_close(&reason)),
            None => e,
        },
    };
    session.closer.close_now();
    Err(err)
}

/// Serves a registered connection until it ends.
async fn serve(ctx: &Ctx<'_>, reg: Registered) -> Ended {
    let Registered { session, tunnel_id, connection_id, hostnames } = reg;
    let Session { control, mut incoming, closer, transport, remote } = session;
    info!(tunnel = %tunnel_id, connection = connection_id, edge = %remote, %transport, ?hostnames, "tunnel registered");
    ctx.shared.metrics.registered(&transport.to_string());
    ctx.state.send_replace(TunnelState::Registered { tunnel_id, connection_id, hostnames, transport });

    // Frame reads are not cancel-safe, so the control stream is read by its own task.
    let (mut control_rd, mut control_wr) = tokio::io::split(control);
    let (control_tx, mut control) = mpsc::channel(4);
    let reader = tokio::spawn(async move {
        loop {
            let msg = frame::read::<Control, _>(&mut control_rd, MAX_FRAME_LEN).await;
            let more = matches!(msg, Ok(Some(_)));
            if control_tx.send(msg).await.is_err() || !more {
                break;
            }
        }
    });
    // On HTTP/2 in auto mode, keep checking whether QUIC works again.
    let reprobe = async {
        if transport != Transport::Http2 || ctx.dialer.edge.transport != TransportMode::Auto {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(ctx.dialer.edge.quic_retry_interval).await;
            match dial::quic(&ctx.dialer.edge, &ctx.dialer.quic, QUIC_PROBE_TIMEOUT).await {
                Ok(session) => match register(session, ctx.dialer.index).await {
                    Ok(reg) => return reg,
                    Err(e) => debug!("QUIC re-probe registered no connection: {e}"),
                },
                Err(e) => debug!("QUIC re-probe failed: {e}"),
            }
        }
    };
    tokio::pin!(reprobe);
    let streams = TaskTracker::new();
    let drain = CancellationToken::new();
    let (mut killed, _live) = (ctx.shared.kill.tunnel_off(), ctx.shared.kill.connection());
    let ended = loop {
        tokio::select! {
            accepted = incoming.accept() => match accepted {
                Some((stream, open)) => { streams.spawn(serve_stream(stream, open, ctx.dialer.index, ctx.shared.clone(), drain.clone())); }
                None => break Ended::Lost("connection closed".to_owned()),
            },
            msg = control.recv() => match msg.unwrap_or(Ok(None)) {
                Ok(Some(Control::Drain { grace_ms })) => break Ended::Drained(Duration::from_millis(grace_ms)),
                Ok(Some(other)) => debug!(connection = connection_id, "ignoring control message {other:?}"),
                Ok(None) => break Ended::Lost("edge closed the control stream".to_owned()),
                Err(e) => break Ended::Lost(format!("control stream failed: {e}")),
            },
            // (The watch's borrow must not live into the other arms' awaits.)
            true = async { killed.wait_for(|off| *off).await.is_ok() } => break Ended::Killed,
            reg = &mut reprobe => {
                send_drain(&mut control_wr, ctx.shutdown_timeout).await;
                break Ended::Upgraded(Box::new(reg));
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
        Ended::Drained(grace) => Some(*grace),
        Ended::Upgraded(_) => Some(ctx.shutdown_timeout),
        Ended::Lost(_) | Ended::Shutdown => None,
        Ended::Killed => {
            closer.close_now();
            return ended;
        }
    };
    let Some(grace) = grace else {
        closer.close(b"bye").await;
        return ended;
    };
    // Make-before-break: the caller connects anew now, while this connection finishes
    // its in-flight streams in the background.
    info!(connection = connection_id, "moving off this connection; in-flight streams finish in the background");
    let (shared, shutdown, index) = (ctx.shared.clone(), ctx.shutdown.clone(), ctx.dialer.index);
    let limit = grace.clamp(Duration::from_secs(1), ctx.shutdown_timeout.max(Duration::from_secs(1)));
    ctx.lingering.spawn(async move {
        tokio::select! {
            _ = finish(&mut incoming, index, &shared, &streams, &drain, limit) => {}
            _ = shutdown.cancelled() => drain.cancel(),
        }
        closer.close(b"drained").await;
    });
    ended
}

async fn send_drain<W: AsyncWrite + Unpin>(control: &mut W, grace: Duration) {
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let _ = frame::write(control, &Control::Drain { grace_ms }, MAX_FRAME_LEN).await;
    let _ = control.flush().await;
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
            streams.spawn(serve_stream(stream, open, connection, shared.clone(), late.clone()));
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
