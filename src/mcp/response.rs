//! A response body wrapper that inspects MCP responses while streaming them to the client.
//!
//! [`InspectedBody`] forwards the upstream body and, on the side:
//! - counts the bytes it hands out;
//! - records `(id, code)` of every JSON-RPC error response, from an `application/json` body and
//!   from each `text/event-stream` event's data (at most [`MAX_RECORDED_ERRORS`]);
//! - with a [`Guard`] (routes with a tool policy, `deny_methods` or pinning), puts every
//!   message through it: denied server→client requests are dropped, listings filtered and
//!   learned from, and what cannot be inspected is refused.
//!
//! Two ways of forwarding, chosen at construction:
//! - **Pass-through** (no guard, or a content type it cannot read): every upstream frame goes
//!   out unchanged the moment it arrives; inspection works on a side copy (SSE events up to the
//!   event cap, a JSON body up to the JSON cap) for the audit's error codes. Length is
//!   unchanged, so `Content-Length` may stay.
//! - **Guarded** ([`InspectedBody::will_modify`] is true): SSE output is released per event,
//!   as soon as the blank line ending it arrives (never the whole stream); a JSON body, being one
//!   message, is held until complete (up to the JSON cap). The length may change: the caller
//!   MUST remove `Content-Length` from the response head, and [`Body::size_hint`] is unknown.
//!   A JSON body or SSE event over its cap, or not readable as JSON, is replaced by the guard's
//!   JSON-RPC error ([`Guard::uninspectable_reply`]) and counted in
//!   [`ResponseSummary::uninspectable`]: a guard never lets through what it could not read.
//!   The caller refuses what it cannot read at all (encoded, another type) beforehand.
//!   Unguarded, what is over a cap passes uninspected ([`ResponseSummary::uninspected`]).
//!
//! When the body ends, fails, or is dropped early (the client went away), `on_done` is called
//! exactly once with a [`ResponseSummary`]. It runs inside `poll_frame`/`drop`: keep it short.
//!
//! This module reads the upstream body (content type, caps, polling, size hint); what goes out
//! for each complete message, and what is recorded of it, is `super::sink`'s.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::guard::Guard;
use super::sink::Sink;
pub use super::sink::{ResponseSummary, MAX_RECORDED_ERRORS};
use super::sse::SseParser;

/// Default largest `application/json` body inspected (a single JSON-RPC message or batch).
pub const DEFAULT_JSON_CAP: usize = 4 << 20;
/// Default largest SSE event inspected.
pub const DEFAULT_SSE_EVENT_CAP: usize = 4 << 20;
/// Called once when the body is finished with.
pub type OnDone = Box<dyn FnOnce(ResponseSummary) + Send>;

/// What the body is being inspected as.
enum State {
    /// Unknown content type, or already finished: bytes only.
    Opaque,
    /// `application/json`: the parts so far (refcounted, not copied) unless over the cap.
    Json { parts: Vec<Bytes>, len: usize, overflow: bool },
    /// `text/event-stream`.
    Sse(SseParser),
}

/// See the module docs.
pub struct InspectedBody<B> {
    inner: B,
    inner_done: bool,
    state: State,
    sink: Sink,
    json_cap: usize,
    // A Mutex only to make the body `Sync` (as `BoxBody` requires); never contended.
    on_done: Mutex<Option<OnDone>>,
}

/// Whether a response of `content_type` can be inspected (JSON or SSE).
pub fn inspectable(content_type: Option<&str>) -> bool {
    let essence = content_type.and_then(|c| c.split(';').next()).map(str::trim).unwrap_or("");
    essence.eq_ignore_ascii_case("application/json") || essence.eq_ignore_ascii_case("text/event-stream")
}

impl<B> InspectedBody<B> {
    /// Wraps `inner`, whose response had `content_type`, guarded by `guard` if given (it is
    /// ignored for content types that are not inspected: the caller refuses those).
    pub fn new(inner: B, content_type: Option<&str>, guard: Option<Guard>, on_done: OnDone) -> Self {
        let essence = content_type.and_then(|c| c.split(';').next()).map(str::trim).unwrap_or("");
        let state = if essence.eq_ignore_ascii_case("application/json") {
            State::Json { parts: Vec::new(), len: 0, overflow: false }
        } else if essence.eq_ignore_ascii_case("text/event-stream") {
            State::Sse(SseParser::new(DEFAULT_SSE_EVENT_CAP))
        } else {
            State::Opaque
        };
        let guard = guard.filter(|_| !matches!(state, State::Opaque));
        InspectedBody {
            inner,
            inner_done: false,
            state,
            sink: Sink::new(guard),
            json_cap: DEFAULT_JSON_CAP,
            on_done: Mutex::new(Some(on_done)),
        }
    }

    /// Replaces the default caps (call before the body is first polled).
    pub fn with_caps(mut self, json_cap: usize, sse_event_cap: usize) -> Self {
        self.json_cap = json_cap;
        if let State::Sse(p) = &mut self.state {
            *p = SseParser::new(sse_event_cap);
        }
        self
    }

    /// Whether the body may differ from the upstream's: if so, drop `Content-Length`.
    pub fn will_modify(&self) -> bool {
        self.sink.guard.is_some()
    }

    fn finish(&mut self, complete: bool) {
        let cb = match self.on_done.get_mut() {
            Ok(slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(cb) = cb {
            let mut summary = std::mem::take(&mut self.sink.summary);
            summary.complete = complete;
            cb(summary);
        }
    }

    fn on_data(&mut self, data: Bytes) {
        let hold = self.sink.guard.is_some();
        match &mut self.state {
            State::Opaque => self.sink.push(data),
            State::Json { parts, len, overflow } => {
                if *overflow {
                    if !hold {
                        self.sink.push(data);
                    }
                } else if *len + data.len() > self.json_cap {
                    *overflow = true;
                    if hold {
                        // Nothing of it went out yet: the whole body is refused.
                        parts.clear();
                        self.sink.refuse();
                    } else {
                        self.sink.summary.uninspected += 1;
                        self.sink.push(data);
                    }
                } else {
                    *len += data.len();
                    if !hold {
                        self.sink.push(data.clone());
                    }
                    parts.push(data);
                }
            }
            State::Sse(parser) => {
                parser.push(&data);
                if !hold {
                    self.sink.push(data);
                }
                while let Some(item) = parser.next_item() {
                    self.sink.sse_item(item);
                }
            }
        }
    }

    /// The upstream sent its last data frame: release and inspect what is held. Idempotent.
    fn end_of_data(&mut self) {
        match std::mem::replace(&mut self.state, State::Opaque) {
            State::Opaque | State::Json { overflow: true, .. } => {}
            State::Json { parts, len, .. } => self.sink.json_body(parts, len),
            State::Sse(mut parser) => {
                // Pass-through already sent every byte. Guarded, an unterminated last event
                // is dropped: it was not inspected, and no client dispatches it.
                let _unterminated = parser.finish();
            }
        }
    }
}

impl<B> Body for InspectedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.sink.queue.pop_front() {
                if let Some(d) = frame.data_ref() {
                    this.sink.summary.bytes_out += d.len() as u64;
                }
                if this.inner_done && this.sink.queue.is_empty() {
                    this.finish(true);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            if this.inner_done {
                this.finish(true);
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.end_of_data();
                    this.inner_done = true;
                }
                Poll::Ready(Some(Err(e))) => {
                    this.inner_done = true;
                    this.finish(false);
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    match frame.into_data() {
                        Ok(data) => this.on_data(data),
                        Err(trailers) => {
                            this.end_of_data();
                            this.sink.queue.push_back(trailers);
                        }
                    }
                    // Some bodies say they are over without a final `None`; hyper then stops polling.
                    if this.inner.is_end_stream() {
                        this.end_of_data();
                        this.inner_done = true;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done && self.sink.queue.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.will_modify() {
            return SizeHint::default();
        }
        // Pass-through: what is queued plus what the upstream still has.
        let queued: u64 = self.sink.queue.iter().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum();
        if self.inner_done {
            return SizeHint::with_exact(queued);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(queued));
        }
        hint.set_lower(inner.lower().saturating_add(queued));
        hint
    }
}

impl<B> Drop for InspectedBody<B> {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
#[path = "tests/response.rs"]
mod tests;
