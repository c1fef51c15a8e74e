//! A response body wrapper that inspects MCP responses while streaming them to the client.
//!
//! [`InspectedBody`] forwards the upstream body and, on the side:
//! - counts the bytes it hands out;
//! - records `(id, code)` of every JSON-RPC error response, from an `application/json` body and
//!   from each `text/event-stream` event's data (at most [`MAX_RECORDED_ERRORS`]);
//! - with a tool filter (pass one only for a `tools/list` request), removes the tools the policy
//!   denies from `result.tools`, re-serialising only the event or body it changed;
//! - with a tool sink ([`InspectedBody::with_tool_sink`], again only for `tools/list`), hands
//!   each message's `result.tools` (before filtering) to it, page by page as they pass, from
//!   the same side copy (nothing more is held).
//!
//! Two ways of forwarding, chosen at construction:
//! - **Pass-through** (no filter, or a content type it cannot filter): every upstream frame goes
//!   out unchanged the moment it arrives; inspection works on a side copy (SSE events up to the
//!   event cap, a JSON body up to the JSON cap). Length is unchanged, so `Content-Length` may stay.
//! - **Filtering** ([`InspectedBody::will_modify`] is true): SSE output is released per event,
//!   as soon as the blank line ending it arrives (never the whole stream); a JSON body, being one
//!   message, is held until complete (up to the JSON cap). The length may change: the caller
//!   MUST remove `Content-Length` from the response head, and [`Body::size_hint`] is unknown.
//!
//! Anything over a cap (a bigger JSON body, a bigger SSE event) is passed through unchanged and
//! uninspected and counted in [`ResponseSummary::uninspected`]; a denied tool in such a body is
//! therefore not hidden (calls to it are still refused by the request-side policy).
//!
//! When the body ends, fails, or is dropped early (the client went away), `on_done` is called
//! exactly once with a [`ResponseSummary`]. It runs inside `poll_frame`/`drop`: keep it short.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use serde::Deserialize;
use serde_json::Value;

use super::policy::ToolPolicy;
use super::sse::{SseItem, SseParser};

/// Default largest `application/json` body inspected (a single JSON-RPC message or batch).
pub const DEFAULT_JSON_CAP: usize = 4 << 20;
/// Default largest SSE event inspected.
pub const DEFAULT_SSE_EVENT_CAP: usize = 4 << 20;
/// At most this many errors are recorded per response (a long GET stream could carry many).
pub const MAX_RECORDED_ERRORS: usize = 256;

/// What happened to one response body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseSummary {
    /// Body bytes handed to the client side.
    pub bytes_out: u64,
    /// `(id, code)` of each JSON-RPC error response seen (id is `null` when the error had none).
    pub errors: Vec<(Value, i64)>,
    /// True when the upstream body ended normally and everything was handed out.
    pub complete: bool,
    /// Tools removed from `tools/list` results.
    pub tools_removed: usize,
    /// Bodies or SSE events passed through uninspected because they exceeded a cap.
    pub uninspected: usize,
}

/// Called once when the body is finished with.
pub type OnDone = Box<dyn FnOnce(ResponseSummary) + Send>;

/// Receives the `result.tools` array of each `tools/list` answer in the body. It runs
/// inside `poll_frame`: keep it short.
pub type ToolSink = Box<dyn Fn(&[Value]) + Send + Sync>;

/// What the body is being inspected as.
enum State {
    /// Unknown content type, or already finished: bytes only.
    Opaque,
    /// `application/json`: the parts so far (refcounted, not copied) unless over the cap.
    Json { parts: Vec<Bytes>, len: usize, overflow: bool },
    /// `text/event-stream`.
    Sse(SseParser),
}

/// Output queue and findings (split from the state so both can be borrowed at once).
struct Sink {
    queue: VecDeque<Frame<Bytes>>,
    summary: ResponseSummary,
    /// Set only when filtering: output is gated on complete events / the complete body.
    filter: Option<Arc<ToolPolicy>>,
    /// Learns tool definitions (does not gate output).
    tools: Option<ToolSink>,
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

impl<B> InspectedBody<B> {
    /// Wraps `inner`, whose response had `content_type`. Give `filter` only when the request was
    /// `tools/list`; it is ignored for other content types or when it restricts no tool.
    pub fn new(inner: B, content_type: Option<&str>, filter: Option<Arc<ToolPolicy>>, on_done: OnDone) -> Self {
        let essence = content_type.and_then(|c| c.split(';').next()).map(str::trim).unwrap_or("");
        let state = if essence.eq_ignore_ascii_case("application/json") {
            State::Json { parts: Vec::new(), len: 0, overflow: false }
        } else if essence.eq_ignore_ascii_case("text/event-stream") {
            State::Sse(SseParser::new(DEFAULT_SSE_EVENT_CAP))
        } else {
            State::Opaque
        };
        let filter = filter.filter(|p| p.restricts_tools() && !matches!(state, State::Opaque));
        InspectedBody {
            inner,
            inner_done: false,
            state,
            sink: Sink { queue: VecDeque::new(), summary: ResponseSummary::default(), filter, tools: None },
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

    /// Hands the tools of every `tools/list` answer to `sink` (give it only for a
    /// `tools/list` request). Ignored for content types that are not inspected.
    pub fn with_tool_sink(mut self, sink: Option<ToolSink>) -> Self {
        if !matches!(self.state, State::Opaque) {
            self.sink.tools = sink;
        }
        self
    }

    /// Whether the body may differ from the upstream's: if so, drop `Content-Length`.
    pub fn will_modify(&self) -> bool {
        self.sink.filter.is_some()
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
        let hold = self.sink.filter.is_some();
        match &mut self.state {
            State::Opaque => self.sink.push(data),
            State::Json { parts, len, overflow } => {
                if *overflow {
                    self.sink.push(data);
                } else if *len + data.len() > self.json_cap {
                    *overflow = true;
                    self.sink.summary.uninspected += 1;
                    for p in parts.drain(..) {
                        if hold {
                            self.sink.push(p);
                        }
                    }
                    self.sink.push(data);
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
                if let Some(rest) = parser.finish() {
                    if self.sink.filter.is_some() {
                        self.sink.push(rest);
                    }
                }
            }
        }
    }
}

impl Sink {
    fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.queue.push_back(Frame::data(data));
        }
    }

    fn record(&mut self, id: Value, code: i64) {
        if self.summary.errors.len() < MAX_RECORDED_ERRORS {
            self.summary.errors.push((id, code));
        }
    }

    fn sse_item(&mut self, item: SseItem) {
        let hold = self.filter.is_some();
        match item {
            SseItem::Oversize { raw, first } => {
                self.summary.uninspected += usize::from(first);
                if hold {
                    self.push(raw);
                }
            }
            SseItem::Event(ev) if !hold => self.inspect_only(ev.data.as_bytes()),
            SseItem::Event(ev) => {
                // Compact serde_json output has no raw newline, as a single data line needs.
                let out = match self.filtered(ev.data.as_bytes()).and_then(|v| serde_json::to_vec(&v).ok()) {
                    Some(json) => ev.with_data(&json),
                    None => ev.raw,
                };
                self.push(out);
            }
        }
    }

    /// A complete `application/json` body within the cap.
    fn json_body(&mut self, parts: Vec<Bytes>, len: usize) {
        let body = match parts.len() {
            0 => return,
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => {
                let mut b = BytesMut::with_capacity(len);
                parts.iter().for_each(|p| b.extend_from_slice(p));
                b.freeze()
            }
        };
        if self.filter.is_none() {
            return self.inspect_only(&body);
        }
        let out = match self.filtered(&body) {
            Some(v) => serde_json::to_vec(&v).map(Bytes::from).unwrap_or(body),
            None => body,
        };
        self.push(out);
    }

    /// A message passed through unchanged: its errors, and its tools when learning.
    fn inspect_only(&mut self, json: &[u8]) {
        if self.tools.is_none() {
            return self.probe_errors(json);
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(json) else { return };
        let policy = ToolPolicy::default();
        match &mut v {
            Value::Array(items) => items.iter_mut().for_each(|m| {
                self.inspect_message(m, &policy);
            }),
            m => {
                self.inspect_message(m, &policy);
            }
        }
    }

    /// Parses a message (or batch), records its errors and filters `tools/list` results.
    /// Returns the changed value only if a tool was removed.
    fn filtered(&mut self, json: &[u8]) -> Option<Value> {
        let policy = self.filter.clone()?;
        let mut v: Value = serde_json::from_slice(json).ok()?;
        let mut removed = 0;
        match &mut v {
            Value::Array(items) => items.iter_mut().for_each(|m| removed += self.inspect_message(m, &policy)),
            m => removed += self.inspect_message(m, &policy),
        }
        self.summary.tools_removed += removed;
        (removed > 0).then_some(v)
    }

    fn inspect_message(&mut self, msg: &mut Value, policy: &ToolPolicy) -> usize {
        if let Some(code) = msg.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64) {
            self.record(msg.get("id").cloned().unwrap_or(Value::Null), code);
        }
        let Some(tools) = msg.get_mut("result").and_then(|r| r.get_mut("tools")).and_then(Value::as_array_mut) else {
            return 0;
        };
        if let Some(sink) = &self.tools {
            sink(tools);
        }
        let before = tools.len();
        // A tool without a string name cannot be checked: it is removed too.
        tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(|n| policy.tool_allowed(n)));
        before - tools.len()
    }

    /// Errors only, without building a `Value` of the (possibly large) result.
    fn probe_errors(&mut self, json: &[u8]) {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            id: Value,
            #[serde(default)]
            error: Option<ProbeError>,
        }
        #[derive(Deserialize)]
        struct ProbeError {
            code: i64,
        }
        let first = json.iter().find(|b| !b.is_ascii_whitespace());
        let probes = match first {
            Some(b'[') => serde_json::from_slice::<Vec<Probe>>(json).unwrap_or_default(),
            Some(b'{') => serde_json::from_slice::<Probe>(json).map(|p| vec![p]).unwrap_or_default(),
            _ => Vec::new(),
        };
        for p in probes {
            if let Some(e) = p.error {
                self.record(p.id, e.code);
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
