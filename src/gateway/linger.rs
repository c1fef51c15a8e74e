//! Refusals that reach the client. A client such as httpx sends its whole request body
//! before it reads the answer; if the gateway answers early (401, 404, 413, …) and then
//! drops the unread body, HTTP/1.1 closes the socket under unread bytes (the kernel sends a
//! reset and the answer is lost) and HTTP/2 resets the stream with `CANCEL`.
//!
//! [`RequestBody`] wraps the request body so the pipeline can tell afterwards whether it was
//! read to the end. When it was not, the answer's body keeps it:
//! - HTTP/1.1: after the answer, it reads and discards what is left of the request, at most
//!   [`LINGER_BYTES`] for at most [`LINGER_TIME`] (a lingering close), and only then ends;
//!   hyper closes the connection if anything is still unread.
//! - HTTP/2: the answer ends its stream at once (END_STREAM), and the request side is kept
//!   open and drained in the background under the same bounds, then dropped: h2 then resets
//!   a still-unread stream with `RST_STREAM(NO_ERROR)` (RFC 9113 §8.1), after the answer,
//!   never `CANCEL` before it. Keeping the answer open while draining would not do: curl ends
//!   its upload early on an error status, which h2 resets as a content-length error, and
//!   curl 7.88 drops an answer whose stream was reset before it ended.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::respond::ClientBody;
use crate::body::BoxError;

/// Most request-body bytes discarded after an early answer.
pub const LINGER_BYTES: u64 = 64 << 20;
/// Longest time spent discarding them.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// The client's request body, remembering whether it was read to its end.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    ended: bool,
}

impl RequestBody {
    /// Wraps the body hyper handed over.
    pub fn new(inner: Incoming) -> Self {
        Self { inner, ended: false }
    }

    /// True when nothing of the body is left unread.
    pub fn finished(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `answer`, keeping `unread` (a request of `version`) as described above when the request
/// body was not read to its end.
pub fn after(
    answer: http::Response<ClientBody>,
    unread: RequestBody,
    version: http::Version,
) -> http::Response<ClientBody> {
    if unread.finished() {
        return answer;
    }
    if version >= http::Version::HTTP_2 {
        let (parts, body) = answer.into_parts();
        let body = Holding { answer: body, unread: Some(unread) };
        return http::Response::from_parts(parts, http_body_util::BodyExt::boxed(body));
    }
    let (mut parts, body) = answer.into_parts();
    // Sent chunked: hyper stops polling a body of known length after its last byte, and
    // the draining happens after that byte.
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = Lingering { answer: body, unread: Some(unread), drain: None };
    http::Response::from_parts(parts, http_body_util::BodyExt::boxed(body))
}

/// The answer, with the request stream kept open until the answer's body is dropped.
struct Holding {
    answer: ClientBody,
    unread: Option<RequestBody>,
}

impl Drop for Holding {
    /// hyper drops the answer's body once the answer is sent (it stops polling after the
    /// last frame of a body that knows its end): the request side outlives it from here.
    fn drop(&mut self) {
        if let Some(unread) = self.unread.take() {
            // Bounded in bytes and time; owns nothing but the request stream.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(drain(Some(unread)));
            }
        }
    }
}

/// Reads and discards `body` up to the linger bounds (none at all when `None`).
async fn drain(body: Option<RequestBody>) {
    use http_body_util::BodyExt as _;
    let Some(mut body) = body else { return };
    let read = async {
        let mut discarded = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            discarded += frame.data_ref().map_or(0, |d| d.len() as u64);
            if discarded > LINGER_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, read).await;
}

impl Body for Holding {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.answer).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.answer.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.answer.size_hint()
    }
}

/// The answer, then the bounded `drain` of the request, before the body ends.
struct Lingering {
    answer: ClientBody,
    /// Made when the answer has ended.
    unread: Option<RequestBody>,
    drain: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

impl Body for Lingering {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.answer).poll_frame(cx) {
            Poll::Ready(None) => {}
            other => return other,
        }
        let pending = match (this.drain.as_mut(), this.unread.take()) {
            (Some(pending), _) => pending,
            (None, unread) => this.drain.insert(Box::pin(drain(unread))),
        };
        let done = pending.as_mut().poll(cx).is_ready();
        if !done {
            return Poll::Pending;
        }
        // Never poll a finished future again; a later poll drains nothing (unread is gone).
        this.drain = None;
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
