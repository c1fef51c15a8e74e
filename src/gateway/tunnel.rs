//! The gateway's outbound tunnel connection: dial the edge over QUIC with mTLS, say
//! `Hello`, get `Welcome`, then accept the data streams the edge opens — reconnecting
//! with jittered exponential backoff whenever the connection ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::serve::serve_stream;
use super::GatewayShared;
use crate::config::gateway::EdgeTarget;
use crate::protocol::{codes, frame, Control, FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION};
use crate::stream::TunnelStream;

/// Time allowed for the QUIC handshake and for the edge's answer to `Hello`.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where the tunnel stands, for readiness checks, tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelState {
    /// Dialing (or waiting to redial).
    Connecting,
    /// Registered with the edge; streams flow.
    Registered { tunnel_id: String, connection_id: u64, hostnames: Vec<String> },
    /// The edge refused this gateway (wrong identity, version...); retried with backoff.
    Rejected { reason: String },
    /// The last attempt or connection failed.
    Disconnected { reason: String },
    /// Shut down.
    Stopped,
}

/// Why one connection attempt or connection ended.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve edge address {address}: {detail}")]
    Resolve { address: String, detail: String },
    #[error("cannot open a local UDP socket: {0}")]
    Bind(std::io::Error),
    #[error("cannot start QUIC connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("QUIC/TLS handshake with the edge failed: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    #[error("edge did not answer within {0:?}")]
    Timeout(Duration),
    #[error("control stream: {0}")]
    Control(#[from] FrameError),
    #[error("edge rejected the tunnel: {0}")]
    Rejected(String),
    #[error("edge answered Hello with {0}")]
    Unexpected(String),
    #[error("edge closed the connection: {0}")]
    Closed(String),
}

/// Dials forever (until `shutdown`), serving streams while connected.
pub(super) async fn run(
    shared: Arc<GatewayShared>,
    edge: EdgeTarget,
    client: quinn::ClientConfig,
    state: watch::Sender<TunnelState>,
    shutdown: CancellationToken,
    shutdown_timeout: Duration,
) {
    let lingering = TaskTracker::new();
    let link = Link {
        shared: &shared,
        edge: &edge,
        client: &client,
        state: &state,
        shutdown: &shutdown,
        shutdown_timeout,
        lingering: &lingering,
    };
    let mut attempt: u32 = 0;
    while !shutdown.is_cancelled() {
        state.send_replace(TunnelState::Connecting);
        let started = Instant::now();
        let outcome = connect_and_serve(&link).await;
        if shutdown.is_cancelled() {
            break;
        }
        match outcome {
            Ok(Ended::Drained(_)) => {
                attempt = 0;
                continue;
            }
            Ok(Ended::Shutdown) => break,
            Ok(Ended::Lost(reason)) => {
                warn!(edge = %edge.address, "tunnel connection lost: {reason}");
                state.send_replace(TunnelState::Disconnected { reason });
            }
            Err(DialError::Rejected(reason)) => {
                error!(edge = %edge.address, "edge rejected the tunnel: {reason}");
                state.send_replace(TunnelState::Rejected { reason });
            }
            Err(e) => {
                warn!(edge = %edge.address, "tunnel connection failed: {e}");
                state.send_replace(TunnelState::Disconnected { reason: e.to_string() });
            }
        }
        attempt = if started.elapsed() >= STABLE_AFTER { 0 } else { attempt.saturating_add(1) };
        let delay = backoff(attempt);
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

/// Everything one connection attempt needs, borrowed from the dial loop.
#[derive(Clone, Copy)]
struct Link<'a> {
    shared: &'a Arc<GatewayShared>,
    edge: &'a EdgeTarget,
    client: &'a quinn::ClientConfig,
    state: &'a watch::Sender<TunnelState>,
    shutdown: &'a CancellationToken,
    shutdown_timeout: Duration,
    /// Drained connections finishing their streams in the background.
    lingering: &'a TaskTracker,
}

/// Full-jitter exponential backoff: uniform in [0, min(max, base·2^attempt)].
pub fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_BASE.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX)).min(BACKOFF_MAX);
    cap.mul_f64(fastrand::f64())
}

async fn resolve(address: &str) -> Result<SocketAddr, DialError> {
    let err = |detail: String| DialError::Resolve { address: address.to_owned(), detail };
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no addresses".into()))
}

/// One connection: dial, register, serve streams. `Ok(reason)` once it was registered.
async fn connect_and_serve(link: &Link<'_>) -> Result<Ended, DialError> {
    let Link { edge, client, .. } = *link;
    let addr = resolve(&edge.address).await?;
    let bind: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = quinn::Endpoint::client(bind).map_err(DialError::Bind)?;
    endpoint.set_default_client_config(client.clone());
    let server_name = edge.server_name.to_str();
    let conn = tokio::time::timeout(DIAL_TIMEOUT, endpoint.connect(addr, &server_name)?)
        .await
        .map_err(|_| DialError::Timeout(DIAL_TIMEOUT))??;
    match hello_exchange(&conn).await {
        Ok(welcome) => serve_connection(link, &endpoint, conn, welcome).await,
        Err(e) => {
            // With TLS 1.3 client auth the edge judges our certificate only after our side
            // considers the handshake done; its verdict arrives as the close reason.
            let err = match conn.close_reason() {
                Some(reason) => DialError::Closed(describe_close(&reason)),
                None => e,
            };
            conn.close(codes::CLOSE_PROTOCOL.into(), b"handshake failed");
            Err(err)
        }
    }
}

/// What the edge answered to `Hello`.
struct Welcomed {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    tunnel_id: String,
    connection_id: u64,
    hostnames: Vec<String>,
}

async fn hello_exchange(conn: &quinn::Connection) -> Result<Welcomed, DialError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let hello =
        Control::Hello { protocol: PROTOCOL_VERSION, gateway_version: crate::VERSION.into(), connection_index: 0 };
    frame::write(&mut send, &hello, MAX_FRAME_LEN).await?;
    let answer = tokio::time::timeout(DIAL_TIMEOUT, frame::read::<Control, _>(&mut recv, MAX_FRAME_LEN))
        .await
        .map_err(|_| DialError::Timeout(DIAL_TIMEOUT))??;
    match answer {
        Some(Control::Welcome { tunnel_id, hostnames, connection_id }) => {
            Ok(Welcomed { send, recv, tunnel_id, connection_id, hostnames })
        }
        Some(Control::Reject { code, reason }) => Err(DialError::Rejected(format!("{code:?}: {reason}"))),
        other => Err(DialError::Unexpected(format!("{other:?}"))),
    }
}

/// Serves a registered connection until it ends; returns why it ended.
async fn serve_connection(
    link: &Link<'_>,
    endpoint: &quinn::Endpoint,
    conn: quinn::Connection,
    welcome: Welcomed,
) -> Result<Ended, DialError> {
    let Link { shared, state, shutdown, shutdown_timeout, lingering, .. } = *link;
    let Welcomed { mut send, mut recv, tunnel_id, connection_id, hostnames } = welcome;
    let addr = conn.remote_address();
    info!(tunnel = %tunnel_id, connection = connection_id, edge = %addr, ?hostnames, "tunnel registered");
    state.send_replace(TunnelState::Registered { tunnel_id, connection_id, hostnames });

    // Frame reads are not cancel-safe, so the control stream is read by its own task.
    let (control_tx, mut control) = mpsc::channel(4);
    let reader = tokio::spawn(async move {
        loop {
            let msg = frame::read::<Control, _>(&mut recv, MAX_FRAME_LEN).await;
            let more = matches!(msg, Ok(Some(_)));
            if control_tx.send(msg).await.is_err() || !more {
                break;
            }
        }
    });
    let streams = TaskTracker::new();
    let drain = CancellationToken::new();
    let ended = loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((s, r)) => { streams.spawn(serve_stream(TunnelStream::quic(s, r), shared.clone(), drain.clone())); }
                Err(e) => break Ended::Lost(e.to_string()),
            },
            msg = control.recv() => match msg.unwrap_or(Ok(None)) {
                Ok(Some(Control::Drain { grace_ms })) => break Ended::Drained(Duration::from_millis(grace_ms)),
                Ok(Some(other)) => debug!(connection = connection_id, "ignoring control message {other:?}"),
                Ok(None) => break Ended::Lost("edge closed the control stream".to_owned()),
                Err(e) => break Ended::Lost(format!("control stream failed: {e}")),
            },
            _ = shutdown.cancelled() => {
                // Graceful: tell the edge to route nothing new here, let in-flight finish.
                let grace_ms = u64::try_from(shutdown_timeout.as_millis()).unwrap_or(u64::MAX);
                let _ = frame::write(&mut send, &Control::Drain { grace_ms }, MAX_FRAME_LEN).await;
                finish(&conn, shared, &streams, &drain, shutdown_timeout).await;
                break Ended::Shutdown;
            }
        }
    };
    reader.abort();
    if let Ended::Drained(grace) = ended {
        // Make-before-break: the caller dials a replacement now, while this connection
        // finishes its in-flight streams in the background.
        info!(connection = connection_id, ?grace, "edge asked this connection to drain; replacing it");
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        let grace = grace.min(shutdown_timeout.max(Duration::from_secs(1)));
        lingering.spawn(async move {
            tokio::select! {
                _ = finish(&conn, &shared, &streams, &drain, grace) => {}
                _ = shutdown.cancelled() => finish(&conn, &shared, &streams, &drain, shutdown_timeout).await,
            }
            conn.close(codes::CLOSE_NORMAL.into(), b"drained");
        });
        return Ok(ended);
    }
    conn.close(codes::CLOSE_NORMAL.into(), b"bye");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    Ok(ended)
}

/// Lets in-flight streams finish (up to `limit`), still serving streams that raced the
/// drain, then returns so the caller can close the connection.
async fn finish(
    conn: &quinn::Connection,
    shared: &Arc<GatewayShared>,
    streams: &TaskTracker,
    drain: &CancellationToken,
    limit: Duration,
) {
    drain.cancel();
    streams.close();
    let serve_stragglers = async {
        while let Ok((s, r)) = conn.accept_bi().await {
            streams.spawn(serve_stream(TunnelStream::quic(s, r), shared.clone(), drain.clone()));
        }
        std::future::pending::<()>().await
    };
    let done = async {
        tokio::select! {
            _ = streams.wait() => {}
            _ = serve_stragglers => {}
        }
    };
    if tokio::time::timeout(limit, done).await.is_err() {
        warn!(remote = %conn.remote_address(), "drain time limit reached with streams in flight; closing");
    }
}

/// How a registered connection ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// The connection failed or the edge went away.
    Lost(String),
    /// The edge asked for a drain; the connection finishes in the background.
    Drained(Duration),
    /// The gateway is shutting down.
    Shutdown,
}

/// Explains a connection close, naming the TLS alert when the handshake was refused.
pub fn describe_close(err: &quinn::ConnectionError) -> String {
    if let quinn::ConnectionError::ConnectionClosed(close) = err {
        let code = u64::from(close.error_code);
        if (0x100..0x200).contains(&code) {
            let alert = rustls::AlertDescription::from((code - 0x100) as u8);
            return format!(
                "TLS alert {alert:?}: the edge refused this gateway's client certificate \
                 (is it issued by the edge's tunnel CA and still valid?)"
            );
        }
    }
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        for attempt in [0, 1, 5, 20, u32::MAX] {
            for _ in 0..100 {
                let d = backoff(attempt);
                assert!(d <= BACKOFF_MAX, "{d:?}");
                assert!(d <= BACKOFF_BASE.saturating_mul(1 << attempt.min(16)), "{d:?}");
            }
        }
    }
}
