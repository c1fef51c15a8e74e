//! One HTTP/2 stream as a byte pipe: the request body carries one direction, the
//! response body the other. Flow-control capacity is requested before each write and
//! released as bytes are read, so a slow reader back-pressures the writer.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::ResponseFuture;
use h2::{Reason, RecvStream, SendStream};
use tokio::io::ReadBuf;

/// Most bytes gathered into one vectored transport write (QUIC and HTTP/2 streams alike).
pub(crate) const MAX_GATHER: usize = 256 * 1024;

/// The sending half.
#[derive(Debug)]
pub struct H2Send {
    inner: SendStream<Bytes>,
    finished: bool,
}

/// The receiving half; on the client side it first waits for the response headers.
#[derive(Debug)]
pub enum H2Recv {
    /// Waiting for the peer's response headers.
    Pending(ResponseFuture),
    /// Reading the body; `buf` holds what did not fit the caller's buffer.
    Body { body: RecvStream, buf: Bytes },
    /// The peer ended its side.
    Done,
}

fn to_io(e: h2::Error) -> io::Error {
    let kind = if e.is_io() { io::ErrorKind::BrokenPipe } else { io::ErrorKind::ConnectionReset };
    io::Error::new(kind, e)
}

impl H2Send {
    /// Wraps a send stream.
    pub fn new(inner: SendStream<Bytes>) -> Self {
        Self { inner, finished: false }
    }

    /// Resets the stream so the peer sees an error, not a clean end.
    pub fn reset(&mut self) {
        self.inner.send_reset(Reason::CANCEL);
    }

    /// Writes as much of `buf` as the peer's window allows.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(self.poll_window(cx, buf.len()))?;
        self.inner.send_data(Bytes::copy_from_slice(&buf[..n]), false).map_err(to_io)?;
        Poll::Ready(Ok(n))
    }

    /// Waits until the peer's window has room, reserving `want` bytes: how many of them
    /// may be sent now (at least one).
    fn poll_window(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        self.inner.reserve_capacity(want);
        loop {
            match ready!(self.inner.poll_capacity(cx)) {
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
                // Zero capacity is a wake-up without window; wait for the next one.
                Some(Ok(0)) => continue,
                Some(Ok(n)) => return Poll::Ready(Ok(n.min(want))),
            }
        }
    }

    /// Writes as much of `bufs` as the peer's window allows, as one DATA payload.
    pub fn poll_write_vectored(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum::<usize>().min(MAX_GATHER);
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(self.poll_window(cx, total))?;
        let mut data = BytesMut::with_capacity(n);
        for b in bufs {
            let room = n - data.len();
            if room == 0 {
                break;
            }
            data.put_slice(&b[..b.len().min(room)]);
        }
        self.inner.send_data(data.freeze(), false).map_err(to_io)?;
        Poll::Ready(Ok(n))
    }

    /// Ends this direction (END_STREAM).
    pub fn poll_shutdown(&mut self) -> Poll<io::Result<()>> {
        if !self.finished {
            self.finished = true;
            self.inner.send_data(Bytes::new(), true).map_err(to_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl H2Recv {
    /// Reads the next bytes, releasing flow-control capacity for what was consumed.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            match self {
                Self::Done => return Poll::Ready(Ok(())),
                Self::Pending(fut) => {
                    let resp = ready!(Pin::new(fut).poll(cx)).map_err(to_io)?;
                    if !resp.status().is_success() {
                        return Poll::Ready(Err(io::Error::other(format!("tunnel stream refused: {}", resp.status()))));
                    }
                    *self = Self::Body { body: resp.into_body(), buf: Bytes::new() };
                }
                Self::Body { body, buf } => {
                    if !buf.is_empty() {
                        let n = buf.len().min(out.remaining());
                        out.put_slice(&buf[..n]);
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    match ready!(body.poll_data(cx)) {
                        None => *self = Self::Done,
                        Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
                        Some(Ok(chunk)) => {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            *buf = chunk;
                        }
                    }
                }
            }
        }
    }
}
