//! The control socket's wire format: one JSON request line, one JSON reply line.
//!
//! Request: `{"op": "approvals.list", "args": {...}}`.
//! Reply: `{"ok": true, "result": ...}` or `{"ok": false, "error": {"code": "...", "message": "..."}}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ControlError;

/// Longest request line the gateway reads (arguments are small: ids, names, reasons).
pub const MAX_LINE: usize = 64 * 1024;

/// One operation request as read, before [`super::ControlOp::parse`] checks its name and
/// arguments.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireRequest {
    /// The operation name.
    pub op: String,
    /// Its arguments, a JSON object (`null` when absent).
    #[serde(default)]
    pub args: Value,
}

/// One reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireReply {
    /// Whether the operation succeeded.
    pub ok: bool,
    /// The operation's result when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

/// A failure as sent on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    /// [`ControlError::code`].
    pub code: String,
    /// The message for the operator.
    pub message: String,
}

impl WireReply {
    /// The reply for an operation's outcome.
    pub fn from_result(result: Result<Value, ControlError>) -> Self {
        match result {
            Ok(v) => Self { ok: true, result: Some(v), error: None },
            Err(e) => Self {
                ok: false,
                result: None,
                error: Some(WireError { code: e.code().into(), message: e.to_string() }),
            },
        }
    }
}
