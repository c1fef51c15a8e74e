//! `TunnelStream`: one data stream of the tunnel as a plain byte pipe (AsyncRead +
//! AsyncWrite). Everything above the transport (inner TLS, HTTP, routing) sees only this.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use crate::protocol::codes;
use crate::transport::h2stream::{H2Recv, H2Send, MAX_GATHER};

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

/// Copies the non-empty buffers, up to `max` bytes in all, into owned chunks (the
/// transports copy every write into their own buffers anyway).
fn gather(bufs: &[IoSlice<'_>], max: usize) -> Vec<Bytes> {
    let mut left = max;
    let mut chunks = Vec::with_capacity(bufs.len().min(64));
    for b in bufs.iter().filter(|b| !b.is_empty()) {
        if left == 0 {
            break;
        }
        let n = b.len().min(left);
        chunks.push(Bytes::copy_from_slice(&b[..n]));
        left -= n;
    }
    chunks
}

impl AsyncWrite for TunnelStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Quic { send, .. } => Pin::new(send).poll_write(cx, buf).map_err(io::Error::from),
            Self::H2 { send, .. } => send.poll_write(cx, buf),
            Self::Memory(d) => Pin::new(d).poll_write(cx, buf),
        }
    }

    /// Several buffers in one transport write: inner TLS hands over all its pending
    /// records at once, and each QUIC write takes the connection lock and wakes its
    /// driver, so one write per record would multiply that cost (see docs/benchmarks.md).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Quic { send, .. } => {
                let mut chunks = gather(bufs, MAX_GATHER);
                if chunks.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                // Polled once, as quinn's own poll_write does with `write`.
                let polled = pin!(send.write_chunks(&mut chunks)).poll(cx);
                polled.map(|r| r.map(|w| w.bytes).map_err(io::Error::from))
            }
            Self::H2 { send, .. } => send.poll_write_vectored(cx, bufs),
            Self::Memory(d) => Pin::new(d).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
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
