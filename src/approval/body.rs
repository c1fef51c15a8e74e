//! The response a waiting SSE client gets at once: `200 text/event-stream`, an SSE comment
//! line (`: waiting for approval <id>`) every keepalive interval while the call waits (no
//! invented MCP messages), then the answer:
//! - an SSE answer from the upstream is passed through as it streams;
//! - a JSON answer (the upstream's, or the gateway's own JSON-RPC refusal) becomes one
//!   `event: message` whose `data:` lines carry the body byte for byte;
//! - an HTTP error status after approval (upstream unreachable, 5xx) becomes one JSON-RPC
//!   error event, so the client's call ends instead of waiting for a message that will
//!   never come.
//!
//! The body owns the waiting future: when the client goes away, hyper drops the body, the
//! future with it, and the call is cancelled (see `Waiting` in `crate::gateway::hold`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::time::{Interval, MissedTickBehavior};

use crate::body::BoxError;
use crate::body::ClientBody;
use crate::mcp::{error_body, jsonrpc};

/// The future that decides and forwards the call.
pub type Decided = Pin<Box<dyn Future<Output = Response<ClientBody>> + Send>>;

/// The `200 text/event-stream` response for a waiting call with approval id `id`.
pub fn held_response(
    id: &str,
    keepalive: Duration,
    request_id: Option<Value>,
    decided: Decided,
) -> Response<ClientBody> {
    let mut tick = tokio::time::interval(keepalive);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let comment = Bytes::from(format!(": waiting for approval {id}\n\n"));
    let body = HeldBody { state: Mutex::new(State::Waiting { decided, tick, comment, request_id }) };
    let mut resp = Response::new(body.boxed());
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    *resp.status_mut() = StatusCode::OK;
    resp
}

enum State {
    Waiting {
        decided: Decided,
        tick: Interval,
        comment: Bytes,
        request_id: Option<Value>,
    },
    /// An SSE answer, passed through.
    Relay(ClientBody),
    /// A JSON answer, sent as one `event: message`.
    Wrap {
        body: ClientBody,
        lines: DataLines,
    },
    Done,
}

/// See the module docs.
pub struct HeldBody {
    // A Mutex only to make the body `Sync` (as `BoxBody` requires); never locked, only
    // reached through `get_mut`.
    state: Mutex<State>,
}

impl Body for HeldBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let state = self.get_mut().state.get_mut().unwrap_or_else(PoisonError::into_inner);
        loop {
            match state {
                State::Waiting { decided, tick, comment, request_id } => {
                    if let Poll::Ready(resp) = decided.as_mut().poll(cx) {
                        *state = answer(resp, request_id.take());
                        continue;
                    }
                    return match tick.poll_tick(cx) {
                        Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(comment.clone())))),
                        Poll::Pending => Poll::Pending,
                    };
                }
                State::Relay(body) => {
                    let polled = Pin::new(body).poll_frame(cx);
                    if let Poll::Ready(None) = polled {
                        *state = State::Done;
                    }
                    return polled;
                }
                State::Wrap { body, lines } => match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            return Poll::Ready(Some(Ok(Frame::data(lines.push(&data)))));
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        *state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(None) => {
                        let end = lines.finish();
                        *state = State::Done;
                        return Poll::Ready(Some(Ok(Frame::data(end))));
                    }
                    Poll::Pending => return Poll::Pending,
                },
                State::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state.lock().map(|s| matches!(*s, State::Done)), Ok(true))
    }
}

/// What to stream once the call is decided.
fn answer(resp: Response<ClientBody>, request_id: Option<Value>) -> State {
    let status = resp.status();
    if !status.is_success() {
        let message = format!("the tool call was approved but the upstream request failed (HTTP {})", status.as_u16());
        let error = error_body(request_id.as_ref(), jsonrpc::INTERNAL_ERROR, &message, None);
        return State::Wrap { body: Full::new(error).map_err(|never| match never {}).boxed(), lines: DataLines::new() };
    }
    let sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    if sse {
        State::Relay(resp.into_body())
    } else {
        State::Wrap { body: resp.into_body(), lines: DataLines::new() }
    }
}

/// Turns a body into the `data:` lines of one `event: message`, chunk by chunk (CR, LF
/// and CRLF each end a line, as in SSE itself).
struct DataLines {
    started: bool,
    at_line_start: bool,
    after_cr: bool,
    wrote: bool,
}

impl DataLines {
    fn new() -> Self {
        Self { started: false, at_line_start: true, after_cr: false, wrote: false }
    }

    fn push(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(chunk.len() + 32);
        if !self.started {
            out.put_slice(b"event: message\n");
            self.started = true;
        }
        for &b in chunk {
            if self.after_cr && b == b'\n' {
                self.after_cr = false;
                continue;
            }
            self.after_cr = false;
            if self.at_line_start {
                out.put_slice(b"data: ");
                self.at_line_start = false;
                self.wrote = true;
            }
            if b == b'\n' || b == b'\r' {
                out.put_u8(b'\n');
                self.at_line_start = true;
                self.after_cr = b == b'\r';
            } else {
                out.put_u8(b);
            }
        }
        out.freeze()
    }

    fn finish(&mut self) -> Bytes {
        let mut out = BytesMut::from(&self.push(b"")[..]);
        if !self.wrote {
            out.put_slice(b"data: \n");
        } else if !self.at_line_start {
            out.put_u8(b'\n');
        }
        out.put_u8(b'\n');
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(chunks: &[&[u8]]) -> String {
        let mut l = DataLines::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&l.push(c));
        }
        out.extend_from_slice(&l.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_becomes_one_message_event() {
        assert_eq!(wrap(&[b"{\"a\":", b"1}"]), "event: message\ndata: {\"a\":1}\n\n");
        assert_eq!(wrap(&[b"{\r", b"\n\"a\": 1\n}\n"]), "event: message\ndata: {\ndata: \"a\": 1\ndata: }\n\n");
        assert_eq!(wrap(&[]), "event: message\ndata: \n\n");
    }

    #[tokio::test(start_paused = true)]
    async fn comments_while_waiting_then_the_answer() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let decided: Decided = Box::pin(async move {
            let _ = rx.await;
            crate::body::full(StatusCode::OK, "application/json", Bytes::from_static(b"{\"x\":1}"))
        });
        let resp = held_response("abc", Duration::from_secs(15), None, decided);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = resp.into_body();
        for _ in 0..2 {
            let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(&f[..], b": waiting for approval abc\n\n");
        }
        tx.send(()).unwrap();
        let mut rest = Vec::new();
        while let Some(f) = body.frame().await {
            rest.extend_from_slice(&f.unwrap().into_data().unwrap());
        }
        assert_eq!(String::from_utf8(rest).unwrap(), "event: message\ndata: {\"x\":1}\n\n");
    }
}
