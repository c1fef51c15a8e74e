//! A registered gateway connection as the edge uses it: open a tunnel stream, learn when
//! the connection ends, close it. One type over both transports.

use std::net::SocketAddr;

use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::edge::TunnelLimits;
use crate::protocol::{frame, Open, MAX_FRAME_LEN};
use crate::stream::TunnelStream;
use crate::tasks::Tasks;
use crate::transport::h2stream::{H2Recv, H2Send};
use crate::transport::{self, Transport};

/// Why a tunnel stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("QUIC: {0}")]
    Quic(#[from] quinn::ConnectionError),
    #[error("HTTP/2: {0}")]
    H2(#[from] h2::Error),
    #[error("preamble: {0}")]
    Frame(#[from] frame::FrameError),
    #[error("setup did not finish in time")]
    Timeout,
    #[error("{0}")]
    Other(String),
}

/// A gateway connection.
#[derive(Debug, Clone)]
pub enum Link {
    Quic(quinn::Connection),
    H2(H2Link),
}

/// The edge's (client) side of an HTTP/2 tunnel connection.
#[derive(Debug, Clone)]
pub struct H2Link {
    send: h2::client::SendRequest<Bytes>,
    /// Cancelled when the connection has ended.
    closed: CancellationToken,
    /// Cancel to close the connection.
    close: CancellationToken,
    remote: SocketAddr,
}

impl Link {
    /// Opens a stream, delivers `open` to the gateway (in-band on QUIC, in headers on
    /// HTTP/2) and sends `first` (the client's ClientHello) right behind it: on QUIC in
    /// the same write, so the preamble and the hello leave in one packet.
    pub async fn open(&self, open: &Open, first: &[u8]) -> Result<TunnelStream, LinkError> {
        let other = |e: std::io::Error| LinkError::Other(e.to_string());
        match self {
            Self::Quic(conn) => {
                let (send, recv) = conn.open_bi().await?;
                let mut stream = TunnelStream::quic(send, recv);
                let mut bytes = frame::encode(open, MAX_FRAME_LEN)?;
                bytes.extend_from_slice(first);
                stream.write_all(&bytes).await.map_err(other)?;
                Ok(stream)
            }
            Self::H2(link) => {
                let req = transport::open_request(open).map_err(LinkError::Other)?;
                let mut sender = link.send.clone().ready().await?;
                let (response, send) = sender.send_request(req, false)?;
                let mut stream = TunnelStream::H2 { send: H2Send::new(send), recv: H2Recv::Pending(response) };
                stream.write_all(first).await.map_err(other)?;
                Ok(stream)
            }
        }
    }

    /// Completes when the connection has ended, with the reason.
    pub async fn closed(&self) -> String {
        match self {
            Self::Quic(conn) => conn.closed().await.to_string(),
            Self::H2(link) => {
                link.closed.cancelled().await;
                "HTTP/2 connection closed".to_owned()
            }
        }
    }

    /// Closes the connection.
    pub fn close(&self, code: u32, reason: &'static [u8]) {
        match self {
            Self::Quic(conn) => conn.close(code.into(), reason),
            Self::H2(link) => link.close.cancel(),
        }
    }

    /// The gateway's address.
    pub fn remote(&self) -> SocketAddr {
        match self {
            Self::Quic(conn) => conn.remote_address(),
            Self::H2(link) => link.remote,
        }
    }

    /// Which transport this is.
    pub fn transport(&self) -> Transport {
        match self {
            Self::Quic(_) => Transport::Quic,
            Self::H2(_) => Transport::Http2,
        }
    }
}

/// An HTTP/2 tunnel connection after TLS: the gateway's certificates, the control
/// stream and the link to open data streams on.
pub struct H2Accepted {
    pub certs: Vec<CertificateDer<'static>>,
    pub control: TunnelStream,
    pub link: Link,
}

/// Runs TLS (mTLS, ALPN `mcpt-h2/1`) and the HTTP/2 handshake as the client, then opens
/// the control request, all by `deadline` (else the connection is dropped). The edge's
/// receive windows are `limits`' (the gateway's data waiting for slow clients). The
/// connection is driven in a task of `tasks` that ends when the link closes or the
/// connection (or its keep-alive) fails.
pub async fn accept_h2(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: &TunnelLimits,
    tasks: &Tasks,
    deadline: tokio::time::Instant,
) -> Result<H2Accepted, LinkError> {
    let remote = tcp.peer_addr().map_err(|e| LinkError::Other(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let setup = async {
        let tls = acceptor.accept(tcp).await.map_err(|e| LinkError::Other(format!("TLS handshake failed: {e}")))?;
        let certs = tls.get_ref().1.peer_certificates().map(|c| c.to_vec()).unwrap_or_default();
        let (send, mut conn) = h2::client::Builder::new()
            .initial_window_size(limits.stream_window)
            .initial_connection_window_size(limits.connection_window)
            .max_frame_size(transport::H2_MAX_FRAME)
            .max_concurrent_reset_streams(1024)
            .handshake::<_, Bytes>(tls)
            .await?;
        let ping = conn.ping_pong();
        let (closed, close) = (CancellationToken::new(), CancellationToken::new());
        let (done, stop) = (closed.clone(), close.clone());
        tasks.spawn(async move {
            let keepalive = async {
                match ping {
                    Some(p) => {
                        let rtt = std::sync::atomic::AtomicU64::new(0);
                        transport::h2_keepalive(p, transport::H2_PING_INTERVAL, transport::H2_PING_TIMEOUT, &rtt).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = keepalive => {}
                _ = stop.cancelled() => {}
            }
            done.cancel();
        });
        let mut ready = send.clone().ready().await?;
        let (response, control_send) = ready.send_request(transport::control_request(), false)?;
        let control = TunnelStream::H2 { send: H2Send::new(control_send), recv: H2Recv::Pending(response) };
        Ok::<_, LinkError>(H2Accepted { certs, control, link: Link::H2(H2Link { send, closed, close, remote }) })
    };
    tokio::time::timeout_at(deadline, setup).await.map_err(|_| LinkError::Timeout)?
}
