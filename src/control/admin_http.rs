//! The control plane on the admin HTTP endpoint: `POST /control/<op>` with the JSON
//! arguments as the body and `Authorization: Bearer <admin token>`. Off (403) unless
//! `[admin] token_sha256` is configured; a missing or wrong token is answered 401 and
//! audited. The token is checked as route bearer tokens are (hashed, constant time).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};
use tracing::warn;

use super::audit::ControlAudit;
use super::{Caller, ControlError, ControlOp, Operator, Via};
use crate::admin::{AdminControl, ControlCall, ControlReply};
use crate::audit::record::{Action, Decision};
use crate::auth::BearerTokens;

/// The gateway's `AdminControl`.
pub struct ControlApi {
    ops: Arc<dyn Operator>,
    audit: ControlAudit,
    /// The admin token (as a one-entry token list), when configured.
    token: Option<BearerTokens>,
}

impl ControlApi {
    /// `token_hash` is `[admin] token_sha256` (`sha256:<hex>`, validated by the config).
    pub fn new(ops: Arc<dyn Operator>, audit: ControlAudit, token_hash: Option<&str>) -> Self {
        let token = token_hash.and_then(|h| match BearerTokens::new(vec![("admin".into(), h.to_owned())]) {
            Ok(t) => Some(t),
            Err(e) => {
                // The config validated it; stay closed if it still fails.
                warn!("admin token unusable, control operations stay off: {e}");
                None
            }
        });
        Self { ops, audit, token }
    }

    async fn run(&self, call: ControlCall) -> ControlReply {
        let action = ControlOp::action_of(&call.op);
        let Some(tokens) = &self.token else {
            self.refused(action, &call, "admin_control_off", 403);
            let msg = "control operations over HTTP are off: set [admin] token_sha256 (or use `mcp-tunnel ctl`)";
            return failure(StatusCode::FORBIDDEN, "forbidden", msg, false);
        };
        let presented = call.authorization.as_deref().and_then(bearer);
        let verdict = match presented {
            None => Err("admin_token_missing"),
            Some(t) => tokens.verify(t).map(|_| ()).map_err(|_| "admin_token_invalid"),
        };
        if let Err(reason) = verdict {
            self.refused(action, &call, reason, 401);
            return failure(StatusCode::UNAUTHORIZED, "unauthorized", "a valid admin bearer token is required", true);
        }
        let args: Value = if call.body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match serde_json::from_slice(&call.body) {
                Ok(v @ Value::Object(_)) => v,
                _ => return error(&ControlError::BadArgs("the body must be a JSON object of arguments".into())),
            }
        };
        let op = match ControlOp::parse(&call.op, args) {
            Ok(op) => op,
            Err(e) => return error(&e),
        };
        let caller = Caller { via: Via::AdminHttp, uid: None };
        match self.ops.run(&caller, &op).await {
            Ok(result) => {
                ControlReply { status: StatusCode::OK, body: json!({ "ok": true, "result": result }), challenge: false }
            }
            Err(e) => error(&e),
        }
    }

    /// Audits a refused call: who tried (their address), what, and why it was refused.
    fn refused(&self, action: Action, call: &ControlCall, reason: &'static str, status: u16) {
        warn!(peer = %call.peer, action = action.as_str(), reason, "admin control call refused");
        let mut rec = self.audit.record(action, format!("unauthenticated via http from {}", call.peer));
        rec.client_addr = Some(call.peer.to_string());
        rec.reason = Some(reason);
        rec.http_status = Some(status);
        rec.decision = Some(Decision::Deny);
        self.audit.write(rec);
    }
}

impl AdminControl for ControlApi {
    fn call(&self, call: ControlCall) -> Pin<Box<dyn Future<Output = ControlReply> + Send + '_>> {
        Box::pin(self.run(call))
    }
}

/// The token of a `Bearer` authorization value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn failure(status: StatusCode, code: &str, message: &str, challenge: bool) -> ControlReply {
    ControlReply { status, body: json!({ "ok": false, "error": { "code": code, "message": message } }), challenge }
}

fn error(e: &ControlError) -> ControlReply {
    failure(e.status(), e.code(), &e.to_string(), false)
}
