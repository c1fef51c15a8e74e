//! Audit records of one exchange: the fields known when the request arrives, what the
//! inspection found, and, when the response ends, one record per JSON-RPC message.

use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

use super::conn::ConnInfo;
use super::limits::EndReason;
use super::route::Route;
use crate::audit::record::{millis, Approval, Auth, Decision, Event, Outcome, Pin};
use crate::audit::{AuditRecord, Auditor};
use crate::auth::Identity;
use crate::mcp::{redact, MessageInfo, OnDone, RequestInfo, ResponseSummary};

/// Collects what one exchange will be audited with.
pub struct Trail {
    auditor: Auditor,
    route: Arc<Route>,
    base: AuditRecord,
    messages: Vec<MessageInfo>,
    started: Instant,
    /// `(tool, fingerprint, pin)` of each called tool, when the route pins tools.
    pins: Vec<(String, Option<String>, Pin)>,
}

impl Trail {
    /// The fields known before anything is read.
    pub fn new(auditor: &Auditor, tunnel: &str, route: &Arc<Route>, conn: &ConnInfo, method: &http::Method) -> Self {
        let mut base = base_record(auditor, tunnel, conn, method);
        if auditor.is_enabled() {
            base.route = Some(route.name.clone());
            base.upstream = Some(route.upstream_label());
            base.auth = Some(Auth::None);
        }
        let (route, started) = (route.clone(), Instant::now());
        Self { auditor: auditor.clone(), route, base, messages: Vec::new(), started, pins: Vec::new() }
    }

    /// Whether records are written at all (skip building them otherwise).
    pub fn enabled(&self) -> bool {
        self.auditor.is_enabled()
    }

    /// The caller the route authenticated.
    pub fn identity(&mut self, id: &Identity, kind: &'static str) {
        self.base.identity = Some(match &id.client_id {
            Some(client) => format!("{} (client {client})", id.subject),
            None => id.subject.clone(),
        });
        self.auth_kind(kind);
    }

    /// The authentication method tried, for a refusal before any identity is known.
    pub fn auth_kind(&mut self, kind: &'static str) {
        self.base.auth = Some(if kind == "jwt" { Auth::Jwt } else { Auth::Bearer });
    }

    /// What the request body and MCP headers said.
    pub fn request(&mut self, info: &RequestInfo, bytes_in: usize) {
        if !self.enabled() {
            return;
        }
        self.base.session_id = info.session_id.as_deref().map(crate::audit::record::session_hash);
        self.base.protocol_version.clone_from(&info.protocol_version);
        self.base.trace_id.clone_from(&info.trace_id);
        self.base.bytes_in = Some(bytes_in as u64);
        if info.messages.is_empty() {
            // A GET stream or DELETE: the header method (2026-07-28) says what it is, if anything.
            self.base.jsonrpc_method.clone_from(&info.header_method);
        }
        self.messages = info.messages.clone();
    }

    /// The authenticated caller, as recorded (`subject (client id)`), if any.
    pub fn identity_label(&self) -> Option<&str> {
        self.base.identity.as_deref()
    }

    /// The approval state of the exchange (see [`Approval`]), its id, who decided
    /// and how long the call waited. Records without one say `not_required`.
    pub fn approval(&mut self, state: Approval, id: &str, approver: Option<&str>, waited: std::time::Duration) {
        self.base.approval = Some(state);
        self.base.approval_id = Some(id.to_owned());
        self.base.approver = approver.map(str::to_owned);
        self.base.approval_wait_ms = Some(millis(waited));
    }

    /// Just the approval state, for a call refused before it could wait (no id yet).
    pub fn approval_state(&mut self, state: Approval) {
        self.base.approval = Some(state);
    }

    /// Records an exchange the client abandoned before the gateway answered (nothing
    /// was forwarded).
    pub fn abort(self, status: u16, reason: &'static str) {
        let mut base = self.base.clone();
        base.decision = Some(Decision::Deny);
        base.reason = Some(reason);
        base.outcome = Some(Outcome::Aborted);
        self.emit(base, status, |_| None, None);
    }

    /// How a called tool's definition compares with its pin (`tool_fingerprint`, `pin`).
    pub fn pin(&mut self, tool: &str, fingerprint: Option<String>, pin: Pin) {
        if self.enabled() {
            self.pins.push((tool.to_owned(), fingerprint, pin));
        }
    }

    /// Records a refusal by the gateway (the upstream never saw the request).
    pub fn refuse(self, status: u16, reason: &'static str, jsonrpc_error: Option<i64>) {
        let mut base = self.base.clone();
        base.decision = Some(Decision::Deny);
        base.reason = Some(reason);
        base.jsonrpc_error = jsonrpc_error;
        base.outcome = Some(Outcome::Complete);
        self.emit(base, status, |_| None, None);
    }

    /// Records an allowed request whose upstream failed (no response from it).
    pub fn fail(self, status: u16, reason: &'static str) {
        let mut base = self.base.clone();
        base.decision = Some(Decision::Allow);
        base.reason = Some(reason);
        base.outcome = Some(Outcome::Error);
        self.emit(base, status, |_| None, None);
    }

    /// The callback the response inspector calls when the response ends, however it ends.
    /// `ended` says why, when the gateway cut the body (timeouts).
    pub fn on_done(self, status: u16, ended: EndReason) -> OnDone {
        Box::new(move |summary: ResponseSummary| {
            let mut base = self.base.clone();
            base.decision = Some(Decision::Allow);
            base.reason = ended.get();
            if summary.uninspectable > 0 {
                // A guarded answer it could not read was replaced by the gateway's error.
                base.reason = base.reason.or(Some("uninspectable"));
                base.jsonrpc_error = Some(crate::mcp::jsonrpc::UNINSPECTABLE);
            }
            base.bytes_out = Some(summary.bytes_out);
            base.outcome = Some(if summary.complete { Outcome::Complete } else { Outcome::Aborted });
            let errors = summary.errors;
            self.emit(
                base,
                status,
                |id: &Value| errors.iter().find(|(eid, _)| eid == id).map(|(_, code)| *code),
                errors.first().map(|(_, code)| *code),
            );
        })
    }

    /// One record per message (or one for the exchange when the body had none).
    fn emit(&self, mut base: AuditRecord, status: u16, code_of: impl Fn(&Value) -> Option<i64>, only: Option<i64>) {
        if !self.enabled() {
            return;
        }
        base.http_status = Some(status);
        base.approval = base.approval.or(Some(Approval::NotRequired));
        base.latency_ms = Some(millis(self.started.elapsed()));
        if self.messages.is_empty() {
            base.jsonrpc_error = base.jsonrpc_error.or(only);
            self.auditor.record(base);
            return;
        }
        let c = &self.route.controls;
        for m in &self.messages {
            let mut rec = base.clone();
            rec.jsonrpc_method.clone_from(&m.method);
            rec.jsonrpc_id.clone_from(&m.id);
            rec.tool.clone_from(&m.tool);
            rec.resource_uri.clone_from(&m.resource_uri);
            rec.prompt.clone_from(&m.prompt);
            rec.arguments = m.arguments.as_ref().map(|a| redact(a, &c.clear_arguments, c.redact_mode));
            rec.jsonrpc_error = rec.jsonrpc_error.or_else(|| m.id.as_ref().and_then(&code_of));
            if let Some((_, fp, pin)) = self.pins.iter().find(|(t, _, _)| m.tool.as_ref() == Some(t)) {
                (rec.tool_fingerprint, rec.pin) = (fp.clone(), Some(*pin));
            }
            self.auditor.record(rec);
        }
    }
}

/// The fields of the connection and request line, known before any route matched.
fn base_record(auditor: &Auditor, tunnel: &str, conn: &ConnInfo, method: &http::Method) -> AuditRecord {
    let mut base = AuditRecord::new(Event::Mcp);
    if auditor.is_enabled() {
        base.tunnel = Some(tunnel.to_owned());
        base.connection = Some(conn.connection);
        base.stream = Some(conn.stream_id);
        base.client_addr = Some(conn.client_addr.to_string());
        base.sni = Some(conn.sni.clone());
        base.http_method = Some(method.as_str().to_owned());
    }
    base
}

/// Records a refusal of a request that matched no route (the gateway answered it itself).
pub fn refuse_unrouted(
    auditor: &Auditor,
    tunnel: &str,
    conn: &ConnInfo,
    method: &http::Method,
    status: u16,
    reason: &'static str,
) {
    if !auditor.is_enabled() {
        return;
    }
    let mut rec = base_record(auditor, tunnel, conn, method);
    rec.decision = Some(Decision::Deny);
    rec.reason = Some(reason);
    rec.outcome = Some(Outcome::Complete);
    rec.http_status = Some(status);
    auditor.record(rec);
}
