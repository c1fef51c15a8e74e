//! `TunnelStream`: one data stream of the tunnel as a plain byte pipe (AsyncRead +
//! AsyncWrite). Everything above the transport (inner TLS, HTTP, routing) sees only this.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::protocol::codes;
use crate::transport::h2stream::{H2Recv, H2Send};

/// A bidirectional tunnel stream.
#[derive(Debug)]
pub enum TunnelStream {
    /// A QUIC bidirectional stream.
    Quic { send: quinn::SendStream, recv: quinn::RecvStream },
    /// An HTTP/2 stream of the fallback transport (request body one way, response body
    /// the other).
    H2 { send: H2Send, recv: H2Recv },
    /// An in-memory pipe (tests and in-process use).
    Memory(DuplexStream),
}

impl TunnelStream {
    /// Wraps a QUIC stream pair.
    pub fn quic(send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        Self::Quic { send, recv }
    }

    /// Fails the stream in both directions, so the peer sees an error rather than a clean
    /// end of data (a truncated response must not look complete).
    pub fn abort(&mut self) {
        match self {
            Self::Quic { send, recv } => {
                let code = quinn::VarInt::from_u32(codes::STREAM_ERROR);
                let _ = send.reset(code);
                let _ = recv.stop(code);
            }
            Self::H2 { send, .. } => send.reset(),
            Self::Memory(_) => {}
        }
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Quic { recv, .. } => Pin::new(recv).poll_read(cx, buf),
            Self::H2 { recv, .. } => recv.poll_read(cx, buf),
            Self::Memory(d) => Pin::new(d).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Quic { send, .. } => Pin::new(send).poll_write(cx, buf).map_err(io::Error::from),
            Self::H2 { send, .. } => send.poll_write(cx, buf),
            Self::Memory(d) => Pin::new(d).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Quic { send, .. } => Pin::new(send).poll_flush(cx),
            // Data is queued in the connection, which flushes it.
            Self::H2 { .. } => Poll::Ready(Ok(())),
            Self::Memory(d) => Pin::new(d).poll_flush(cx),
        }
    }

    /// Half-close: finishes the sending side; the peer reads a clean end of stream.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Quic { send, .. } => Pin::new(send).poll_shutdown(cx),
            Self::H2 { send, .. } => send.poll_shutdown(),
            Self::Memory(d) => Pin::new(d).poll_shutdown(cx),
        }
    }
}
