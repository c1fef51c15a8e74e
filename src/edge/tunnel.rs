//! The edge's side of a gateway connection: mTLS identity → `Hello` → `Welcome` (or
//! `Reject`) → registered until the connection or the edge goes away.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::EdgeShared;
use crate::protocol::{codes, frame, Control, RejectCode, MAX_FRAME_LEN, PROTOCOL_VERSION};
use crate::tls::identity;

/// Time a gateway gets, after the TLS handshake, to open the control stream and say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a gateway connection did not get registered.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("TLS handshake failed: {0}")]
    Handshake(quinn::ConnectionError),
    #[error("{0}")]
    Identity(#[from] identity::IdentityError),
    #[error("no control stream within {0:?}")]
    NoControl(Duration),
    #[error("connection lost before Hello: {0}")]
    Lost(#[from] quinn::ConnectionError),
    #[error("{0}")]
    Rejected(String),
}

/// Serves one incoming gateway connection until it closes.
///
/// On `drain` the gateway is asked to drain and gets no new streams; the connection stays
/// open for in-flight streams until `stop`.
pub(super) async fn serve_connection(
    incoming: quinn::Incoming,
    shared: Arc<EdgeShared>,
    drain: CancellationToken,
    stop: CancellationToken,
) {
    let remote = incoming.remote_address();
    if let Err(why) = register_and_serve(incoming, &shared, &drain, &stop).await {
        shared.stats.tunnel_refused.inc();
        warn!(%remote, "gateway connection refused: {why}");
    }
}

fn peer_tunnel_id(conn: &quinn::Connection) -> Result<String, Refusal> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .ok_or(identity::IdentityError::Missing)?;
    let leaf = certs.first().ok_or(identity::IdentityError::Missing)?;
    Ok(identity::tunnel_id(leaf)?)
}

async fn register_and_serve(
    incoming: quinn::Incoming,
    shared: &EdgeShared,
    drain: &CancellationToken,
    stop: &CancellationToken,
) -> Result<(), Refusal> {
    let conn = incoming.await.map_err(Refusal::Handshake)?;
    let remote = conn.remote_address();
    let tunnel_id = peer_tunnel_id(&conn);
    let (mut send, mut recv) = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| Refusal::NoControl(HELLO_TIMEOUT))??;
    let hello = tokio::time::timeout(HELLO_TIMEOUT, frame::read::<Control, _>(&mut recv, MAX_FRAME_LEN)).await;
    let verdict = match (tunnel_id, hello) {
        (Err(e), _) => Err((RejectCode::UnknownTunnel, e.to_string())),
        (Ok(id), _) if !shared.registry.knows(&id) => {
            Err((RejectCode::UnknownTunnel, format!("tunnel {id:?} is not configured on this edge")))
        }
        (Ok(id), Ok(Ok(Some(Control::Hello { protocol: PROTOCOL_VERSION, .. })))) => Ok(id),
        (_, Ok(Ok(Some(Control::Hello { protocol, .. })))) => Err((
            RejectCode::UnsupportedVersion,
            format!("protocol {protocol} unsupported; this edge speaks {PROTOCOL_VERSION}"),
        )),
        (_, Ok(Ok(other))) => Err((RejectCode::BadHello, format!("expected Hello, got {other:?}"))),
        (_, Ok(Err(e))) => Err((RejectCode::BadHello, e.to_string())),
        (_, Err(_)) => Err((RejectCode::BadHello, format!("no Hello within {HELLO_TIMEOUT:?}"))),
    };
    let tunnel_id = match verdict {
        Ok(id) => id,
        Err((code, reason)) => {
            let reject = Control::Reject { code, reason: reason.clone() };
            if frame::write(&mut send, &reject, MAX_FRAME_LEN).await.is_ok() {
                let _ = send.finish();
                // Let the Reject reach the gateway (it closes on receipt) before closing.
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            }
            conn.close(codes::CLOSE_REJECTED.into(), b"rejected");
            return Err(Refusal::Rejected(reason));
        }
    };

    let live = shared.registry.register(&tunnel_id, conn.clone());
    let welcome = Control::Welcome {
        tunnel_id: tunnel_id.clone(),
        hostnames: shared.registry.hostnames(&tunnel_id),
        connection_id: live.id,
    };
    if let Err(e) = frame::write(&mut send, &welcome, MAX_FRAME_LEN).await {
        shared.registry.deregister(&live);
        return Err(Refusal::Rejected(format!("cannot send Welcome: {e}")));
    }
    info!(tunnel = %tunnel_id, connection = live.id, %remote, "gateway registered");

    let mut draining = false;
    let reason = loop {
        tokio::select! {
            msg = frame::read::<Control, _>(&mut recv, MAX_FRAME_LEN), if !draining => match msg {
                Ok(Some(Control::Drain { grace_ms })) => {
                    // The gateway is going away: route no new streams here.
                    shared.registry.deregister(&live);
                    info!(tunnel = %tunnel_id, connection = live.id, grace_ms, "gateway draining");
                }
                Ok(Some(other)) => {
                    debug!(tunnel = %tunnel_id, connection = live.id, "ignoring control message {other:?}")
                }
                Ok(None) => break "control stream closed".to_owned(),
                Err(e) => break format!("control stream failed: {e}"),
            },
            _ = drain.cancelled(), if !draining => {
                // Edge shutdown: no new streams here; in-flight ones may finish.
                draining = true;
                shared.registry.deregister(&live);
                let grace_ms = u64::try_from(super::SHUTDOWN_GRACE.as_millis()).unwrap_or(u64::MAX);
                let _ = frame::write(&mut send, &Control::Drain { grace_ms }, MAX_FRAME_LEN).await;
            }
            _ = stop.cancelled() => break "edge shutting down".to_owned(),
            err = conn.closed() => break err.to_string(),
        }
    };
    // In-flight streams may outlive the control stream: wait for the connection to end.
    let err = tokio::select! {
        err = conn.closed() => err.to_string(),
        _ = stop.cancelled() => {
            conn.close(codes::CLOSE_NORMAL.into(), b"edge shutting down");
            "closed by edge shutdown".to_owned()
        }
    };
    shared.registry.deregister(&live);
    info!(tunnel = %tunnel_id, connection = live.id, "gateway connection closed ({reason}; {err})");
    Ok(())
}
