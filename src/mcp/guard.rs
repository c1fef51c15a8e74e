//! What a guarded response may carry to the client, message by message. A route with a
//! tool policy, `deny_methods` or pinning guards every response (any request, batch, or GET
//! stream replay), because a `tools/list` answer or a server→client request can arrive in
//! any of them.
//!
//! For each JSON-RPC message the upstream sends (one body, one SSE event, or each element of
//! a batch):
//! - a server→client request or notification whose method the policy denies (for example
//!   `sampling/createMessage`) is dropped and handed to the refusal sink, which answers the
//!   server with a JSON-RPC error; the client never sees it;
//! - `notifications/tools/list_changed` tells the pinning layer its listing is stale;
//! - a `result.tools` array is handed to the learning sink (before filtering), then loses
//!   the tools the policy denies and the ones the hide rule hides (unpinned, under `enforce`);
//! - JSON-RPC errors are recorded for the audit trail.
//!
//! Text the guard cannot read as JSON (duplicate keys included: the client's parser could
//! read another value than the guard) is [`Judged::Uninspectable`]: the body wrapper replaces
//! it with [`Guard::uninspectable_reply`], never passes it on.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::json::parse_strict;
use super::jsonrpc::{error, error_body, UNINSPECTABLE};
use super::policy::ToolPolicy;

/// Receives the `result.tools` array of each listing in the body (before filtering). It
/// runs inside `poll_frame`: keep it short.
pub type ToolSink = Box<dyn Fn(&[Value]) + Send + Sync>;
/// Says whether a listed tool is hidden from the client (besides the policy).
pub type ToolHide = Box<dyn Fn(&str) -> bool + Send + Sync>;
/// Receives each server→client message the policy refused.
pub type RefusalSink = Box<dyn Fn(ServerMessage) + Send + Sync>;
/// Called when the server says its tool list changed.
pub type Notice = Box<dyn Fn() + Send + Sync>;

/// A request or notification the server sent toward the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMessage {
    /// Its JSON-RPC method.
    pub method: String,
    /// Its id; `None` for a notification (nothing to answer).
    pub id: Option<Value>,
}

/// What the guard made of one JSON text.
#[derive(Debug, PartialEq)]
pub enum Judged {
    /// Pass it on byte for byte.
    Same,
    /// Pass this instead (compact JSON: no raw newline).
    Rewritten(Vec<u8>),
    /// Nothing of it reaches the client.
    Dropped,
    /// Not readable: refuse it.
    Uninspectable,
}

/// What the guard found, added to the response summary.
#[derive(Debug, Default)]
pub struct Findings {
    /// `(id, code)` of each JSON-RPC error response.
    pub errors: Vec<(Value, i64)>,
    /// Tools removed from listings.
    pub tools_removed: usize,
    /// Server→client messages dropped.
    pub server_refused: usize,
}

/// See the module docs.
pub struct Guard {
    policy: Arc<ToolPolicy>,
    learn: Option<ToolSink>,
    hide: Option<ToolHide>,
    refused: Option<RefusalSink>,
    list_changed: Option<Notice>,
    /// The ids of the client's requests, answered with an error when the response is
    /// uninspectable (so the client's call fails at once instead of timing out).
    answer_ids: Vec<Value>,
    batch: bool,
}

impl Guard {
    /// A guard applying `policy`.
    pub fn new(policy: Arc<ToolPolicy>) -> Self {
        Self {
            policy,
            learn: None,
            hide: None,
            refused: None,
            list_changed: None,
            answer_ids: Vec::new(),
            batch: false,
        }
    }

    /// Hands listings to `sink` (tool pinning).
    pub fn learn(mut self, sink: Option<ToolSink>) -> Self {
        self.learn = sink;
        self
    }

    /// Also hides the tools `hide` says to.
    pub fn hide(mut self, hide: Option<ToolHide>) -> Self {
        self.hide = hide;
        self
    }

    /// Hands refused server→client messages to `sink`.
    pub fn on_refused(mut self, sink: Option<RefusalSink>) -> Self {
        self.refused = sink;
        self
    }

    /// Calls `notice` on `notifications/tools/list_changed`.
    pub fn on_list_changed(mut self, notice: Option<Notice>) -> Self {
        self.list_changed = notice;
        self
    }

    /// The client's request ids (and whether it sent a batch), for the uninspectable reply.
    pub fn answering(mut self, ids: Vec<Value>, batch: bool) -> Self {
        (self.answer_ids, self.batch) = (ids, batch);
        self
    }

    /// Judges one JSON text: a message or a batch.
    pub fn judge(&self, json: &[u8], found: &mut Findings) -> Judged {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Judged::Same; // an SSE priming event carries no message
        }
        let Ok(mut value) = parse_strict(json) else { return Judged::Uninspectable };
        match &mut value {
            Value::Array(items) => {
                let before = items.len();
                let mut changed = false;
                let mut invalid = false;
                items.retain_mut(|m| match self.message(m, found) {
                    Verdict::Keep => true,
                    Verdict::Changed => {
                        changed = true;
                        true
                    }
                    Verdict::Drop => false,
                    Verdict::Invalid => {
                        invalid = true;
                        false
                    }
                });
                if invalid {
                    return Judged::Uninspectable;
                }
                if items.is_empty() && before > 0 {
                    return Judged::Dropped;
                }
                if !changed && items.len() == before {
                    return Judged::Same;
                }
            }
            m => match self.message(m, found) {
                Verdict::Keep => return Judged::Same,
                Verdict::Drop => return Judged::Dropped,
                Verdict::Invalid => return Judged::Uninspectable,
                Verdict::Changed => {}
            },
        }
        serde_json::to_vec(&value).map_or(Judged::Uninspectable, Judged::Rewritten)
    }

    /// The answer given in place of what could not be inspected: one JSON-RPC error per
    /// request of the client (`id: null` when there was none).
    pub fn uninspectable_reply(&self) -> Bytes {
        let message = "the gateway could not inspect the server's answer, so it was not passed on";
        if !self.batch {
            return error_body(self.answer_ids.first(), UNINSPECTABLE, message, None);
        }
        let errors: Vec<Value> =
            self.answer_ids.iter().map(|id| error(id.clone(), UNINSPECTABLE, message, None)).collect();
        Bytes::from(Value::Array(errors).to_string())
    }

    fn message(&self, msg: &mut Value, found: &mut Findings) -> Verdict {
        // Not a JSON-RPC message: a client might read it as a request or as a response,
        // and the guard cannot know which (a `method` beside a `result` full of tools).
        let has_outcome = msg.get("result").is_some() || msg.get("error").is_some();
        match msg.get("method") {
            Some(Value::String(_)) if has_outcome => return Verdict::Invalid,
            Some(Value::String(_)) | None => {}
            Some(_) => return Verdict::Invalid,
        }
        if let Some(method) = msg.get("method").and_then(Value::as_str) {
            if !self.policy.method_allowed(method) {
                found.server_refused += 1;
                if let Some(sink) = &self.refused {
                    sink(ServerMessage { method: method.to_owned(), id: msg.get("id").cloned() });
                }
                return Verdict::Drop;
            }
            if method == "notifications/tools/list_changed" {
                if let Some(notice) = &self.list_changed {
                    notice();
                }
            }
            return Verdict::Keep;
        }
        if let Some(code) = msg.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64) {
            found.errors.push((msg.get("id").cloned().unwrap_or(Value::Null), code));
        }
        let Some(tools) = msg.get_mut("result").and_then(|r| r.get_mut("tools")).and_then(Value::as_array_mut) else {
            return Verdict::Keep;
        };
        if let Some(sink) = &self.learn {
            sink(tools);
        }
        let before = tools.len();
        // A tool without a string name cannot be checked: it is removed too.
        tools.retain(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| self.policy.tool_allowed(n) && !self.hide.as_ref().is_some_and(|hidden| hidden(n)))
        });
        found.tools_removed += before - tools.len();
        if tools.len() == before {
            Verdict::Keep
        } else {
            Verdict::Changed
        }
    }
}

/// The `(id, code)` of each JSON-RPC error in `json` (a message or batch), without building
/// a `Value` of a possibly large result: what an unguarded response is read for.
pub fn probe_errors(json: &[u8]) -> Vec<(Value, i64)> {
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
    let probes = match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<Probe>>(json).unwrap_or_default(),
        Some(b'{') => serde_json::from_slice::<Probe>(json).map(|p| vec![p]).unwrap_or_default(),
        _ => Vec::new(),
    };
    probes.into_iter().filter_map(|p| Some((p.id, p.error?.code))).collect()
}

enum Verdict {
    Keep,
    Changed,
    Drop,
    Invalid,
}

#[cfg(test)]
#[path = "tests/guard.rs"]
mod tests;
