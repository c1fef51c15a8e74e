//! Dialing the edge on either transport. Both yield a [`Session`]: a control stream, a
//! source of incoming data streams with their `Open` metadata, and a way to close.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

use super::dial_error::DialError;
use super::state::Rtt;
use crate::config::gateway::EdgeTarget;
use crate::protocol::{codes, Open};
use crate::stream::TunnelStream;
use crate::tasks::Tasks;
use crate::transport::h2stream::{H2Recv, H2Send};
use crate::transport::{self, Transport};

/// How long a drained QUIC connection waits for the edge to close it.
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(3);

/// A connected (not yet registered) tunnel connection.
pub struct Session {
    /// The control stream.
    pub control: TunnelStream,
    /// Data streams the edge opens.
    pub incoming: Incoming,
    /// Closes the connection.
    pub closer: Closer,
    pub transport: Transport,
    pub remote: SocketAddr,
    /// The connection's round-trip time, as it goes.
    pub rtt: Rtt,
}

/// Data streams arriving on a session. On QUIC the `Open` preamble is still in-band
/// (read by the stream's own task, so a slow stream never blocks accepting others).
pub enum Incoming {
    Quic(quinn::Connection),
    H2(mpsc::Receiver<(TunnelStream, Open)>),
}

impl Incoming {
    /// The next stream, or `None` once the connection is gone.
    pub async fn accept(&mut self) -> Option<(TunnelStream, Option<Open>)> {
        match self {
            Self::Quic(conn) => conn.accept_bi().await.ok().map(|(s, r)| (TunnelStream::quic(s, r), None)),
            Self::H2(rx) => rx.recv().await.map(|(s, o)| (s, Some(o))),
        }
    }
}

/// Closes a session's connection.
#[derive(Clone)]
pub enum Closer {
    Quic { conn: quinn::Connection, endpoint: quinn::Endpoint },
    H2 { close: CancellationToken, closed: CancellationToken },
}

impl Closer {
    /// Closes the connection. On QUIC, first gives the edge a moment to close it after
    /// a drain: the edge does so once it has read every stream to its end, while a close
    /// from this side would discard stream data still unacknowledged.
    pub async fn close(&self, reason: &'static [u8]) {
        match self {
            Self::Quic { conn, endpoint } => {
                let _ = tokio::time::timeout(PEER_CLOSE_WAIT, conn.closed()).await;
                conn.close(codes::CLOSE_NORMAL.into(), reason);
                let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
            }
            Self::H2 { close, closed } => {
                close.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(1), closed.cancelled()).await;
            }
        }
    }

    /// Closes at once (nothing in flight worth waiting for).
    pub fn close_now(&self) {
        match self {
            Self::Quic { conn, .. } => conn.close(codes::CLOSE_NORMAL.into(), b"bye"),
            Self::H2 { close, .. } => close.cancel(),
        }
    }

    /// Why the peer closed the connection, if it has (QUIC carries a reason).
    pub fn peer_close_reason(&self) -> Option<quinn::ConnectionError> {
        match self {
            Self::Quic { conn, .. } => conn.close_reason(),
            Self::H2 { .. } => None,
        }
    }
}

/// Resolves `address` and takes entry `pick` (cycling) of its addresses, sorted: a name
/// for an edge fleet (round-robin DNS, a headless Service) resolves to every replica, and
/// parallel connections (and failovers) then land on different ones, whatever order the
/// resolver returns.
async fn resolve(address: &str, pick: usize) -> Result<SocketAddr, DialError> {
    let err = |detail: String| DialError::Resolve { address: address.to_owned(), detail };
    let mut all: Vec<SocketAddr> = tokio::net::lookup_host(address).await.map_err(|e| err(e.to_string()))?.collect();
    all.sort();
    all.dedup();
    match all.len() {
        0 => Err(err("no addresses".into())),
        n => Ok(all[pick % n]),
    }
}

/// QUIC: handshake within `timeout`, then open the control stream. `pick` chooses among
/// the addresses the edge's name resolves to (see [`resolve`]).
pub async fn quic(
    edge: &EdgeTarget,
    pick: usize,
    client: &quinn::ClientConfig,
    timeout: Duration,
) -> Result<Session, DialError> {
    let addr = resolve(&edge.address, pick).await?;
    let bind: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(bind).map_err(DialError::Bind)?;
    transport::size_udp_buffers(&socket);
    let runtime = Arc::new(quinn::TokioRuntime);
    let mut endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime).map_err(DialError::Bind)?;
    endpoint.set_default_client_config(client.clone());
    let connecting = endpoint.connect(addr, &edge.server_name.to_str())?;
    let conn = tokio::time::timeout(timeout, connecting).await.map_err(|_| DialError::Timeout(timeout))??;
    let (send, recv) = conn.open_bi().await?;
    Ok(Session {
        control: TunnelStream::quic(send, recv),
        incoming: Incoming::Quic(conn.clone()),
        rtt: Rtt::Quic(conn.clone()),
        closer: Closer::Quic { conn, endpoint },
        transport: Transport::Quic,
        remote: addr,
    })
}

/// HTTP/2 over TLS/TCP: the gateway dials out and then serves HTTP/2 on that socket;
/// the edge's first request is the control stream. The connection is driven in a task of
/// `tasks` that ends when the session's [`Closer`] closes it or the connection ends.
pub async fn h2(
    edge: &EdgeTarget,
    pick: usize,
    tls: &Arc<rustls::ClientConfig>,
    tasks: &Tasks,
    timeout: Duration,
) -> Result<Session, DialError> {
    let address = edge.tcp_address.as_deref().unwrap_or(&edge.address);
    let addr = resolve(address, pick).await?;
    let live = edge.liveness;
    let setup = async {
        let tcp = TcpStream::connect(addr).await.map_err(DialError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        let tls = connector.connect(edge.server_name.clone(), tcp).await.map_err(DialError::Tls)?;
        let mut conn = h2::server::Builder::new()
            .initial_window_size(transport::H2_STREAM_WINDOW)
            .initial_connection_window_size(transport::H2_CONNECTION_WINDOW)
            .max_frame_size(transport::H2_MAX_FRAME)
            .max_concurrent_streams(super::MAX_STREAMS)
            .handshake::<_, Bytes>(tls)
            .await?;
        let ping = conn.ping_pong();
        let (control_tx, control_rx) = oneshot::channel();
        let (streams_tx, streams_rx) = mpsc::channel(64);
        let (close, closed) = (CancellationToken::new(), CancellationToken::new());
        let rtt = Arc::new(AtomicU64::new(0));
        let measured = rtt.clone();
        let keepalive = async move {
            match ping {
                Some(p) => transport::h2_keepalive(p, live.keepalive_interval, live.answer_deadline(), &measured).await,
                None => std::future::pending().await,
            }
        };
        tasks.spawn(drive(conn, keepalive, control_tx, streams_tx, close.clone(), closed.clone()).in_current_span());
        let control = control_rx
            .await
            .map_err(|_| DialError::Unexpected("HTTP/2 connection ended before the control stream".into()))?;
        Ok::<_, DialError>(Session {
            control,
            incoming: Incoming::H2(streams_rx),
            closer: Closer::H2 { close, closed },
            transport: Transport::Http2,
            remote: addr,
            rtt: Rtt::H2(rtt),
        })
    };
    tokio::time::timeout(timeout, setup).await.map_err(|_| DialError::Timeout(timeout))?
}

/// Drives the HTTP/2 server connection: accepts the edge's requests (control first,
/// then data streams), answers PINGs, and ends when `keepalive` (its own PINGs) finds
/// the edge dead.
async fn drive(
    mut conn: h2::server::Connection<tokio_rustls::client::TlsStream<TcpStream>, Bytes>,
    keepalive: impl std::future::Future<Output = String>,
    control_tx: oneshot::Sender<TunnelStream>,
    streams: mpsc::Sender<(TunnelStream, Open)>,
    close: CancellationToken,
    closed: CancellationToken,
) {
    let mut control_tx = Some(control_tx);
    tokio::pin!(keepalive);
    loop {
        let next = tokio::select! {
            next = conn.accept() => next,
            why = &mut keepalive => {
                // Dead: nothing to shut down gracefully, and no time to lose.
                warn!("edge looks dead: {why}");
                closed.cancel();
                return;
            }
            _ = close.cancelled() => break,
        };
        let Some(Ok((request, mut respond))) = next else { break };
        let (parts, body) = request.into_parts();
        let Ok(send) = respond.send_response(http::Response::new(()), false) else { continue };
        let stream = TunnelStream::H2 { send: H2Send::new(send), recv: H2Recv::Body { body, buf: Bytes::new() } };
        if parts.uri.path() == transport::CONTROL_PATH {
            if let Some(tx) = control_tx.take() {
                let _ = tx.send(stream);
            }
            continue;
        }
        match transport::parse_open(&parts.headers) {
            Ok(open) => {
                if streams.send((stream, open)).await.is_err() {
                    break;
                }
            }
            Err(e) => debug!("dropping tunnel stream with bad metadata: {e}"),
        }
    }
    conn.graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(1), std::future::poll_fn(|cx| conn.poll_closed(cx))).await;
    closed.cancel();
}
