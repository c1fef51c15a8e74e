//! The edge's side of a gateway connection, on either transport: mTLS identity →
//! `Hello` → `Welcome` (or `Reject`) → registered until the connection or the edge goes
//! away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use super::limits::Pass;
use super::link::{self, Link};
use super::registry::LiveConn;
use super::EdgeShared;
use crate::protocol::{codes, frame, Control, RejectCode, MAX_FRAME_LEN, PROTOCOL_VERSION};
use crate::stream::TunnelStream;
use crate::tls::identity;

/// How long a refused gateway gets to read its `Reject` before the edge closes.
const REJECT_LINGER: Duration = Duration::from_secs(2);

/// Why a gateway connection did not get registered.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    #[error("not registered within handshake_timeout ({0:?})")]
    Timeout(Duration),
    #[error("connection lost before Hello: {0}")]
    Lost(#[from] quinn::ConnectionError),
    #[error("{0}")]
    Rejected(String),
}

/// Tokens that stop a gateway connection: on `drain` the gateway is asked to drain and
/// gets no new streams; the connection stays open for in-flight streams until `stop`.
#[derive(Clone)]
pub(super) struct Stops {
    pub drain: CancellationToken,
    pub stop: CancellationToken,
}

/// Serves one incoming QUIC gateway connection until it closes. `pass` (its handshake
/// slot) is given back once the connection is registered or refused.
pub(super) async fn serve_quic(incoming: quinn::Incoming, pass: Pass, shared: Arc<EdgeShared>, stops: Stops) {
    let remote = incoming.remote_address();
    let limit = shared.tunnel_limits.handshake_timeout;
    let deadline = Instant::now() + limit;
    let result = async {
        // Dropping a connection that is not registered in time closes it.
        let conn = timeout_at(deadline, incoming)
            .await
            .map_err(|_| Refusal::Timeout(limit))?
            .map_err(|e| Refusal::Handshake(e.to_string()))?;
        let certs = conn
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .map(|b| *b)
            .unwrap_or_default();
        let Ok(accepted) = timeout_at(deadline, conn.accept_bi()).await else {
            conn.close(codes::CLOSE_REJECTED.into(), b"no control stream in time");
            return Err(Refusal::Timeout(limit));
        };
        let (send, recv) = accepted?;
        let mut control = TunnelStream::quic(send, recv);
        let link = Link::Quic(conn);
        let live = register(&link, &certs, &mut control, deadline, &shared).await?;
        drop(pass);
        serve_registered(live, link, control, &shared, &stops).await;
        Ok(())
    };
    if let Err(why) = result.await {
        shared.stats.tunnel_refused.inc();
        warn!(%remote, transport = "quic", "gateway connection refused: {why}");
    }
}

/// Serves one incoming HTTP/2-fallback gateway connection until it closes (`pass` as
/// for [`serve_quic`]).
pub(super) async fn serve_h2(
    tcp: TcpStream,
    remote: SocketAddr,
    pass: Pass,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<EdgeShared>,
    stops: Stops,
) {
    let limits = shared.tunnel_limits;
    let deadline = Instant::now() + limits.handshake_timeout;
    let result = async {
        let accepted = link::accept_h2(tcp, acceptor, &limits, &shared.tasks, deadline).await.map_err(|e| match e {
            link::LinkError::Timeout => Refusal::Timeout(limits.handshake_timeout),
            e => Refusal::Handshake(e.to_string()),
        })?;
        let mut control = accepted.control;
        let live = register(&accepted.link, &accepted.certs, &mut control, deadline, &shared).await?;
        drop(pass);
        serve_registered(live, accepted.link, control, &shared, &stops).await;
        Ok::<_, Refusal>(())
    };
    if let Err(why) = result.await {
        shared.stats.tunnel_refused.inc();
        warn!(%remote, transport = "http2", "gateway connection refused: {why}");
    }
}

/// Checks the certificate's tunnel id and the `Hello` (read by `deadline`), registers
/// the link under the tunnel's connection cap and sends `Welcome`; or sends `Reject`.
async fn register(
    link: &Link,
    certs: &[CertificateDer<'static>],
    control: &mut TunnelStream,
    deadline: Instant,
    shared: &EdgeShared,
) -> Result<Arc<LiveConn>, Refusal> {
    let limits = &shared.tunnel_limits;
    let tunnel_id = certs.first().ok_or(identity::IdentityError::Missing).and_then(identity::tunnel_id);
    let hello = timeout_at(deadline, frame::read::<Control, _>(control, MAX_FRAME_LEN)).await;
    let verdict = match (tunnel_id, hello) {
        (Err(e), _) => Err((RejectCode::UnknownTunnel, e.to_string())),
        (Ok(id), _) if !shared.registry.knows(&id) => {
            Err((RejectCode::UnknownTunnel, format!("tunnel {id:?} is not configured on this edge")))
        }
        (Ok(id), Ok(Ok(Some(Control::Hello { protocol: PROTOCOL_VERSION, .. })))) => {
            shared.registry.register(&id, link.clone(), limits.max_connections_per_tunnel).map_err(|n| {
                let why = format!("tunnel {id:?} already has {n} connections (max_connections_per_tunnel)");
                (RejectCode::TooManyConnections, why)
            })
        }
        (_, Ok(Ok(Some(Control::Hello { protocol, .. })))) => Err((
            RejectCode::UnsupportedVersion,
            format!("protocol {protocol} unsupported; this edge speaks {PROTOCOL_VERSION}"),
        )),
        (_, Ok(Ok(other))) => Err((RejectCode::BadHello, format!("expected Hello, got {other:?}"))),
        (_, Ok(Err(e))) => Err((RejectCode::BadHello, e.to_string())),
        (_, Err(_)) => Err((RejectCode::BadHello, format!("no Hello within {:?}", limits.handshake_timeout))),
    };
    let live = match verdict {
        Ok(live) => live,
        Err((code, reason)) => {
            let reject = Control::Reject { code, reason: reason.clone() };
            let _ = tokio::time::timeout(REJECT_LINGER, async {
                if frame::write(control, &reject, MAX_FRAME_LEN).await.is_ok() {
                    let _ = tokio::io::AsyncWriteExt::shutdown(control).await;
                    // Let the Reject reach the gateway (it closes on receipt) before closing.
                    link.closed().await;
                }
            })
            .await;
            link.close(codes::CLOSE_REJECTED, b"rejected");
            return Err(Refusal::Rejected(reason));
        }
    };
    let hostnames = shared.registry.hostnames(&live.tunnel_id);
    let welcome = Control::Welcome { tunnel_id: live.tunnel_id.clone(), hostnames, connection_id: live.id };
    if let Err(e) = frame::write(control, &welcome, MAX_FRAME_LEN).await {
        shared.registry.deregister(&live);
        return Err(Refusal::Rejected(format!("cannot send Welcome: {e}")));
    }
    let transport = link.transport();
    info!(tunnel = %live.tunnel_id, connection = live.id, remote = %link.remote(), %transport, "gateway registered");
    shared.stats.registrations.get_or_create(&crate::stats::labels(&[("transport", &transport.to_string())])).inc();
    Ok(live)
}

/// Completes when either token is cancelled.
async fn any(a: &CancellationToken, b: &CancellationToken) {
    tokio::select! {
        _ = a.cancelled() => {}
        _ = b.cancelled() => {}
    }
}

/// Completes once `live` has a registered replacement and no open stream.
async fn replaced_and_quiet(shared: &EdgeShared, live: &LiveConn) {
    while !shared.registry.replaced(live) || live.active.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Completes once no stream is open on `live`.
async fn quiet(live: &LiveConn) {
    while live.active.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves a registered connection until the connection or the edge goes away, in a
/// `gateway` span (tunnel id, the edge's connection id, transport) that every log line
/// about it carries.
async fn serve_registered(live: Arc<LiveConn>, link: Link, control: TunnelStream, shared: &EdgeShared, stops: &Stops) {
    let span = info_span!("gateway", tunnel = %live.tunnel_id, id = live.id, transport = %link.transport());
    serve_control(live, link, control, shared, stops).instrument(span).await;
}

/// Serves a registered connection's control stream until the connection or the edge
/// goes away.
async fn serve_control(live: Arc<LiveConn>, link: Link, mut control: TunnelStream, shared: &EdgeShared, stops: &Stops) {
    let mut draining = false;
    let mut gateway_drained = false;
    let reason = loop {
        tokio::select! {
            msg = frame::read::<Control, _>(&mut control, MAX_FRAME_LEN), if !draining && !gateway_drained => match msg {
                Ok(Some(Control::Drain { grace_ms })) => {
                    // The gateway is going away: route no new streams here.
                    shared.registry.deregister(&live);
                    gateway_drained = true;
                    info!(grace_ms, "gateway draining");
                }
                Ok(Some(other)) => debug!("ignoring control message {other:?}"),
                Ok(None) => break "control stream closed".to_owned(),
                Err(e) => break format!("control stream failed: {e}"),
            },
            _ = any(&stops.drain, &live.drain), if !draining => {
                // Edge shutdown or deploy: no new streams here; in-flight ones may finish.
                // For a deploy the link stays usable until the gateway's replacement has
                // registered (make-before-break).
                draining = true;
                live.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                if stops.drain.is_cancelled() {
                    shared.registry.deregister(&live);
                }
                let grace_ms = u64::try_from(super::SHUTDOWN_GRACE.as_millis()).unwrap_or(u64::MAX);
                let _ = frame::write(&mut control, &Control::Drain { grace_ms }, MAX_FRAME_LEN).await;
            }
            // Once a draining gateway's streams have all ended here (so every byte it
            // sent has been read), the edge closes: the gateway can then exit knowing
            // nothing it sent is lost.
            _ = quiet(&live), if gateway_drained => {
                link.close(codes::CLOSE_NORMAL, b"drained");
                break "gateway drained".to_owned();
            }
            // A connection drained for a deploy goes once its replacement is registered
            // and nothing runs on it any more.
            _ = replaced_and_quiet(shared, &live), if draining && !stops.drain.is_cancelled() => {
                shared.registry.deregister(&live);
                link.close(codes::CLOSE_NORMAL, b"drained");
                break "replaced after drain".to_owned();
            }
            _ = stops.stop.cancelled() => break "edge shutting down".to_owned(),
            why = link.closed() => break why,
        }
    };
    // In-flight streams may outlive the control stream: wait for the connection to end.
    let why = tokio::select! {
        why = link.closed() => why,
        _ = stops.stop.cancelled() => {
            link.close(codes::CLOSE_NORMAL, b"edge shutting down");
            "closed by edge shutdown".to_owned()
        }
    };
    shared.registry.deregister(&live);
    info!("gateway connection closed ({reason}; {why})");
}
