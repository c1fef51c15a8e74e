//! Response bodies: a POST exchange relayed as `text/event-stream` (each message flushed as
//! it arrives, ending with the last response), the GET stream, and the JSON-mode answer.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use super::session::{Exchange, GetStream};
use crate::mcp::jsonrpc::{self, MessageKind};

/// Why a request got no response from the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The request timeout passed.
    Timeout,
    /// The child exited (or the session ended) first.
    Gone,
}

impl Missing {
    /// The JSON-RPC error standing in for the missing response.
    pub fn error(self, id: Value) -> Value {
        match self {
            Missing::Timeout => {
                jsonrpc::error(id, jsonrpc::REQUEST_TIMEOUT, "the stdio MCP server did not answer in time", None)
            }
            Missing::Gone => jsonrpc::error(id, jsonrpc::INTERNAL_ERROR, "the stdio MCP server exited", None),
        }
    }

    pub fn status(self) -> http::StatusCode {
        match self {
            Missing::Timeout => http::StatusCode::GATEWAY_TIMEOUT,
            Missing::Gone => http::StatusCode::BAD_GATEWAY,
        }
    }
}

/// Tracks which requests of an exchange are still unanswered.
pub struct Outstanding {
    ids: Vec<Value>,
}

impl Outstanding {
    pub fn new(ids: &[Value]) -> Self {
        Self { ids: ids.to_vec() }
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Marks the request a response answers.
    pub fn answered(&mut self, msg: &Value) {
        if jsonrpc::kind_of(msg) == Some(MessageKind::Response) {
            if let Some(id) = msg.get("id") {
                let key = jsonrpc::id_key(id);
                self.ids.retain(|i| jsonrpc::id_key(i) != key);
            }
        }
    }

    /// Errors for every unanswered request; on timeout also tells the child to cancel them.
    pub fn give_up(&mut self, why: Missing, ex: &Exchange) -> Vec<Value> {
        let ids = std::mem::take(&mut self.ids);
        if why == Missing::Timeout {
            for id in &ids {
                ex.session().try_send(&jsonrpc::cancelled(id.clone(), "gateway request timeout"));
            }
        }
        ids.into_iter().map(|id| why.error(id)).collect()
    }
}

/// Collects the responses of a JSON-mode exchange (notifications are not routed here).
/// Returns the messages and, if some requests went unanswered, why.
pub async fn collect(mut ex: Exchange, deadline: Instant) -> (Vec<Value>, Option<Missing>) {
    let mut left = Outstanding::new(&ex.ids);
    let mut out = Vec::new();
    while !left.is_empty() {
        match tokio::time::timeout_at(deadline, ex.rx.recv()).await {
            Ok(Some(msg)) => {
                left.answered(&msg);
                if jsonrpc::kind_of(&msg) == Some(MessageKind::Response) {
                    out.push(msg);
                }
            }
            Ok(None) => {
                out.extend(left.give_up(Missing::Gone, &ex));
                return (out, Some(Missing::Gone));
            }
            Err(_) => {
                out.extend(left.give_up(Missing::Timeout, &ex));
                return (out, Some(Missing::Timeout));
            }
        }
    }
    (out, None)
}

/// One SSE event carrying one JSON-RPC message.
pub fn event(msg: &Value) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"event: message\ndata: ");
    // Compact JSON has no raw newlines, so one `data:` line holds it.
    out.extend_from_slice(&serde_json::to_vec(msg).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A POST exchange as an SSE body: related messages and responses as they arrive; ends
/// after the last response, or with errors on timeout or child exit.
pub struct ExchangeBody {
    ex: Exchange,
    left: Outstanding,
    deadline: Pin<Box<Sleep>>,
    queued: VecDeque<Value>,
}

impl ExchangeBody {
    pub fn new(ex: Exchange, deadline: Instant) -> Self {
        let left = Outstanding::new(&ex.ids);
        Self { ex, left, deadline: Box::pin(tokio::time::sleep_until(deadline)), queued: VecDeque::new() }
    }
}

impl Body for ExchangeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if let Some(msg) = this.queued.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(event(&msg)))));
            }
            if this.left.is_empty() {
                return Poll::Ready(None);
            }
            match this.ex.rx.poll_recv(cx) {
                Poll::Ready(Some(msg)) => {
                    this.left.answered(&msg);
                    return Poll::Ready(Some(Ok(Frame::data(event(&msg)))));
                }
                Poll::Ready(None) => {
                    let errors = this.left.give_up(Missing::Gone, &this.ex);
                    this.queued.extend(errors);
                    continue;
                }
                Poll::Pending => {}
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                let errors = this.left.give_up(Missing::Timeout, &this.ex);
                this.queued.extend(errors);
                continue;
            }
            return Poll::Pending;
        }
    }
}

/// The GET stream: server-initiated messages until the session ends or a newer GET
/// replaces this one.
pub struct GetBody {
    stream: GetStream,
}

impl GetBody {
    pub fn new(stream: GetStream) -> Self {
        Self { stream }
    }
}

impl Body for GetBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.stream.rx.poll_recv(cx).map(|m| m.map(|msg| Ok(Frame::data(event(&msg)))))
    }
}
