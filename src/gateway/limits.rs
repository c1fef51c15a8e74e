//! Per-route limits: request body and header size, concurrent requests, and how long a
//! response body may run (a deadline for plain responses, an idle timeout for SSE).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;

/// Limits of one route.
#[derive(Debug, Clone)]
pub struct RouteLimits {
    /// Largest request body accepted (JSON-RPC messages are small; uploads are not MCP).
    pub max_body: usize,
    /// Largest sum of request header names and values.
    pub max_header_bytes: usize,
    /// Requests in flight at once; more are answered 503 with `Retry-After`.
    pub max_concurrent: usize,
    /// An SSE response with no bytes for this long is ended.
    pub sse_idle_timeout: Duration,
    /// The whole request body must arrive within this time of its headers.
    pub body_timeout: Duration,
}

impl Default for RouteLimits {
    fn default() -> Self {
        Self {
            max_body: 4 << 20,
            max_header_bytes: 32 << 10,
            max_concurrent: 256,
            sse_idle_timeout: Duration::from_secs(600),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {0:?}")]
    TimedOut(Duration),
    #[error("reading the request body failed: {0}")]
    Read(BoxError),
}

/// Reads a whole request body, refusing more than `limit` bytes or a body still arriving
/// at `deadline`. A declared `Content-Length` over the limit is refused before anything is
/// read. The body is borrowed, so what is left of a refused one can still be drained
/// (see `linger`).
pub async fn collect_body<B>(
    headers: &HeaderMap,
    body: &mut B,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let read = async {
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.into()))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    let budget = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout_at(deadline, read).await.unwrap_or(Err(BodyError::TimedOut(budget)))
}

/// Bytes of header names and values, as a server would buffer them.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}

/// When a response body must end.
#[derive(Debug, Clone, Copy)]
pub enum BodyTimer {
    /// The whole body must arrive by this instant (plain JSON responses).
    Deadline(Instant),
    /// Each chunk must follow the previous one within this time (SSE streams).
    Idle(Duration),
}

/// Why the gateway ended a response body early, set by whoever cut it and read by the
/// audit record written when the body is dropped.
#[derive(Debug, Clone, Default)]
pub struct EndReason(Arc<OnceLock<&'static str>>);

impl EndReason {
    /// The audit `reason` of a plain response cut at the route's `timeout`.
    pub const RESPONSE_TIMEOUT: &'static str = "response_timeout";
    /// The audit `reason` of an SSE response ended after `sse_idle_timeout` of silence.
    pub const SSE_IDLE: &'static str = "sse_idle_timeout";

    /// Records `reason` (the first cause wins).
    pub fn set(&self, reason: &'static str) {
        let _ = self.0.set(reason);
    }

    /// The reason, if the gateway cut the body.
    pub fn get(&self) -> Option<&'static str> {
        self.0.get().copied()
    }
}

/// The response body failed to arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("response body timed out")]
pub struct BodyTimeout;

pin_project_lite::pin_project! {
    /// A response body under a [`BodyTimer`], holding the route's concurrency permit
    /// until it ends, however it ends.
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        timer: BodyTimer,
        #[pin]
        sleep: Sleep,
        _permit: Option<OwnedSemaphorePermit>,
        done: bool,
        ended: EndReason,
    }
}

impl<B> TimedBody<B> {
    /// Wraps `inner`; when a timer fires, its reason goes into `ended`.
    pub fn new(inner: B, timer: BodyTimer, permit: Option<OwnedSemaphorePermit>, ended: EndReason) -> Self {
        let at = match timer {
            BodyTimer::Deadline(at) => at,
            BodyTimer::Idle(d) => Instant::now() + d,
        };
        Self { inner, timer, sleep: tokio::time::sleep_until(at), _permit: permit, done: false, ended }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let BodyTimer::Idle(d) = this.timer {
                    this.sleep.as_mut().reset(Instant::now() + *d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.sleep.poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    *this.done = true;
                    match this.timer {
                        // A quiet SSE stream ends cleanly: the client reconnects if it wants.
                        BodyTimer::Idle(_) => {
                            this.ended.set(EndReason::SSE_IDLE);
                            Poll::Ready(None)
                        }
                        // A truncated plain body must not look complete.
                        BodyTimer::Deadline(_) => {
                            this.ended.set(EndReason::RESPONSE_TIMEOUT);
                            Poll::Ready(Some(Err(Box::new(BodyTimeout))))
                        }
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    #[tokio::test]
    async fn body_limit_by_header_and_by_bytes() {
        let mut h = HeaderMap::new();
        let body = Full::new(Bytes::from(vec![b'x'; 10]));
        let at = Instant::now() + Duration::from_secs(5);
        assert_eq!(collect_body(&h, &mut body.clone(), 10, at).await.unwrap().len(), 10);
        assert!(matches!(collect_body(&h, &mut body.clone(), 9, at).await, Err(BodyError::TooLarge { limit: 9 })));
        h.insert(http::header::CONTENT_LENGTH, "1000".parse().unwrap());
        assert!(matches!(collect_body(&h, &mut body.clone(), 100, at).await, Err(BodyError::TooLarge { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_times_out_at_the_deadline() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let mut body = StreamBody::new(tokio_stream_from(rx));
        // One byte now: an idle timer would be reset by it; the deadline is not.
        tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await.unwrap();
        let at = Instant::now() + Duration::from_secs(2);
        let got = collect_body(&HeaderMap::new(), &mut body, 100, at).await;
        assert!(matches!(got, Err(BodyError::TimedOut(_))), "{got:?}");
        assert!(Instant::now() >= at);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timer_ends_a_quiet_stream_and_deadline_errors() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = tokio_stream_from(rx);
        let mut body = std::pin::pin!(TimedBody::new(
            StreamBody::new(stream),
            BodyTimer::Idle(Duration::from_secs(5)),
            None,
            EndReason::default()
        ));
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: 1\n\n")))).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        // Nothing more arrives: the paused clock advances to the idle timeout.
        assert!(body.frame().await.is_none());

        let (_tx2, rx2) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let deadline = BodyTimer::Deadline(Instant::now() + Duration::from_secs(1));
        let ended = EndReason::default();
        let mut body =
            std::pin::pin!(TimedBody::new(StreamBody::new(tokio_stream_from(rx2)), deadline, None, ended.clone()));
        assert!(body.frame().await.unwrap().is_err());
        assert_eq!(ended.get(), Some(EndReason::RESPONSE_TIMEOUT));
    }

    fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_core::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[test]
    fn header_size_counts_names_and_values() {
        let mut h = HeaderMap::new();
        h.insert("a", "bb".parse().unwrap());
        assert_eq!(header_bytes(&h), 1 + 2 + 4);
    }
}
