//! The output side of [`super::InspectedBody`]: the queue of frames to hand out, the
//! [`ResponseSummary`] of what was found, and what goes out for each complete message: an SSE
//! event or a whole JSON body, as received or as the [`Guard`] judged it (rewritten, dropped,
//! or replaced by its error when it cannot be inspected).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use serde_json::Value;

use super::guard::{probe_errors, Findings, Guard, Judged};
use super::sse::SseItem;

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
    /// Unguarded: bodies or SSE events passed through uninspected because they exceeded a cap.
    pub uninspected: usize,
    /// Guarded: bodies or SSE events refused because they could not be inspected.
    pub uninspectable: usize,
    /// Guarded: server→client requests and notifications the policy refused.
    pub server_refused: usize,
}

/// Output queue and findings (split from the state so both can be borrowed at once).
pub(super) struct Sink {
    /// Frames ready to hand out, in order.
    pub(super) queue: VecDeque<Frame<Bytes>>,
    /// What was found so far.
    pub(super) summary: ResponseSummary,
    /// Set only when guarding: output is gated on complete events / the complete body.
    pub(super) guard: Option<Guard>,
}

impl Sink {
    /// An empty sink, guarding with `guard` if given.
    pub(super) fn new(guard: Option<Guard>) -> Sink {
        Sink { queue: VecDeque::new(), summary: ResponseSummary::default(), guard }
    }

    /// Queues `data` to go out (empty chunks are not queued).
    pub(super) fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.queue.push_back(Frame::data(data));
        }
    }

    fn record(&mut self, id: Value, code: i64) {
        if self.summary.errors.len() < MAX_RECORDED_ERRORS {
            self.summary.errors.push((id, code));
        }
    }

    /// Guarded: what could not be inspected is replaced by the guard's error.
    pub(super) fn refuse(&mut self) {
        self.summary.uninspectable += 1;
        if let Some(reply) = self.guard.as_ref().map(Guard::uninspectable_reply) {
            self.push(reply);
        }
    }

    /// One item of an SSE body: inspected (unguarded) or judged and released (guarded).
    pub(super) fn sse_item(&mut self, item: SseItem) {
        let Some(guard) = &self.guard else {
            match item {
                SseItem::Oversize { first, .. } => self.summary.uninspected += usize::from(first),
                SseItem::Event(ev) => self.probe_errors(ev.data.as_bytes()),
            }
            return;
        };
        let ev = match item {
            SseItem::Oversize { first: true, .. } => {
                let reply = guard.uninspectable_reply();
                self.summary.uninspectable += 1;
                return self.push(sse_data(&reply));
            }
            SseItem::Oversize { first: false, .. } => return,
            SseItem::Event(ev) => ev,
        };
        let mut found = Findings::default();
        let judged = guard.judge(ev.data.as_bytes(), &mut found);
        let out = match judged {
            Judged::Same => ev.raw.clone(),
            Judged::Rewritten(json) => ev.with_data(&json),
            // The event's id still moves the client's Last-Event-ID on; no data, no message.
            Judged::Dropped => ev.id.as_ref().map(|id| Bytes::from(format!("id: {id}\n\n"))).unwrap_or_default(),
            Judged::Uninspectable => {
                self.summary.uninspectable += 1;
                sse_data(&guard.uninspectable_reply())
            }
        };
        self.absorb(found);
        // The LF of a CRLF split across chunks opens the next block: keep it.
        if ev.raw.starts_with(b"\n") && !out.starts_with(b"\n") {
            self.push(Bytes::from_static(b"\n"));
        }
        self.push(out);
    }

    /// A complete `application/json` body within the cap.
    pub(super) fn json_body(&mut self, parts: Vec<Bytes>, len: usize) {
        let body = match parts.len() {
            0 => return,
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => {
                let mut b = BytesMut::with_capacity(len);
                parts.iter().for_each(|p| b.extend_from_slice(p));
                b.freeze()
            }
        };
        let Some(guard) = &self.guard else {
            return self.probe_errors(&body);
        };
        let mut found = Findings::default();
        let out = match guard.judge(&body, &mut found) {
            Judged::Same => body,
            Judged::Rewritten(json) => Bytes::from(json),
            Judged::Dropped => Bytes::new(),
            Judged::Uninspectable => {
                self.summary.uninspectable += 1;
                guard.uninspectable_reply()
            }
        };
        self.absorb(found);
        self.push(out);
    }

    fn absorb(&mut self, found: Findings) {
        self.summary.tools_removed += found.tools_removed;
        self.summary.server_refused += found.server_refused;
        for (id, code) in found.errors {
            self.record(id, code);
        }
    }

    /// Unguarded: errors only, without building a `Value` of the (possibly large) result.
    fn probe_errors(&mut self, json: &[u8]) {
        for (id, code) in probe_errors(json) {
            self.record(id, code);
        }
    }
}

/// One SSE event carrying `json` (compact: no raw newline) as its data.
fn sse_data(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
