//! [`ControlOp`]: every control operation with its typed arguments, shared by the control
//! socket, the admin HTTP API and the CLIs.
//!
//! On the wire an operation is `{"op": "<name>", "args": {...}}` (see [`super::wire`]);
//! `args` may be absent for the operations that take none. Requests are read as a
//! [`WireRequest`] first and turned into a `ControlOp` by [`ControlOp::parse`], so an
//! unknown name is an `unknown_op` error and a missing or ill-typed argument a
//! `bad_args` error naming the argument.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire::WireRequest;
use super::ControlError;
use crate::audit::record::Action;

/// One control operation and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", try_from = "WireRequest")]
pub enum ControlOp {
    /// The routes and what is stopped.
    #[serde(rename = "status")]
    Status,
    /// Stops one route, or the whole gateway; answers when the cut is complete.
    #[serde(rename = "kill")]
    Kill {
        /// The route (default: everything, tunnel included).
        #[serde(skip_serializing_if = "Option::is_none")]
        route: Option<String>,
        /// Why (shown to clients and audited); 1 to 500 bytes once trimmed.
        reason: String,
    },
    /// Lifts the stop of one route, or the whole-gateway stop.
    #[serde(rename = "resume")]
    Resume {
        /// The route (default: the whole-gateway stop).
        #[serde(skip_serializing_if = "Option::is_none")]
        route: Option<String>,
    },
    /// The calls waiting for approval, oldest first.
    #[serde(rename = "approvals.list")]
    ApprovalsList,
    /// One waiting call.
    #[serde(rename = "approvals.show")]
    ApprovalsShow {
        /// The approval id.
        id: String,
    },
    /// Lets a waiting call through.
    #[serde(rename = "approvals.approve")]
    ApprovalsApprove {
        /// The approval id.
        id: String,
        /// Why (audited).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Refuses a waiting call.
    #[serde(rename = "approvals.deny")]
    ApprovalsDeny {
        /// The approval id.
        id: String,
        /// Why (sent to the caller and audited). Required: the handler refuses a deny
        /// without one, with a message saying why.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Pinned and last-seen fingerprint and status per tool of a route.
    #[serde(rename = "tools.list")]
    ToolsList {
        /// The route (full name, or the subdomain when unambiguous).
        route: String,
        /// List the upstream's tools first.
        #[serde(skip_serializing_if = "Option::is_none")]
        fetch: Option<bool>,
    },
    /// As `tools.list`, with the changes of every tool not pinned as last seen.
    #[serde(rename = "tools.diff")]
    ToolsDiff {
        /// The route (full name, or the subdomain when unambiguous).
        route: String,
        /// List the upstream's tools first.
        #[serde(skip_serializing_if = "Option::is_none")]
        fetch: Option<bool>,
    },
    /// Lists the upstream's tools, then accepts the last-seen definitions.
    #[serde(rename = "tools.pin")]
    ToolsPin {
        /// The route (full name, or the subdomain when unambiguous).
        route: String,
        /// Pin only this tool (default: all).
        #[serde(skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        /// Why, for the audit record.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

impl ControlOp {
    /// The operation `op` with the arguments `args` (a JSON object; `null` when absent).
    /// Arguments the operation does not take are ignored.
    pub fn parse(op: &str, args: Value) -> Result<Self, ControlError> {
        let a = Args::new(args)?;
        Ok(match op {
            "status" => Self::Status,
            "kill" => Self::Kill { route: a.opt_str("route")?, reason: a.str("reason")? },
            "resume" => Self::Resume { route: a.opt_str("route")? },
            "approvals.list" => Self::ApprovalsList,
            "approvals.show" => Self::ApprovalsShow { id: a.str("id")? },
            "approvals.approve" => Self::ApprovalsApprove { id: a.str("id")?, reason: a.opt_str("reason")? },
            "approvals.deny" => Self::ApprovalsDeny { id: a.str("id")?, reason: a.opt_str("reason")? },
            "tools.list" => Self::ToolsList { route: a.str("route")?, fetch: a.opt_bool("fetch")? },
            "tools.diff" => Self::ToolsDiff { route: a.str("route")?, fetch: a.opt_bool("fetch")? },
            "tools.pin" => {
                Self::ToolsPin { route: a.str("route")?, tool: a.opt_str("tool")?, note: a.opt_str("note")? }
            }
            _ => return Err(ControlError::UnknownOp(op.to_owned())),
        })
    }

    /// The operation's name: the `op` on the wire (`as_str`) and the `action` of its audit
    /// record. [`Action::OPERATIONS`] lists them all (kept equal to the variants by a test).
    pub fn action(&self) -> Action {
        match self {
            Self::Status => Action::Status,
            Self::Kill { .. } => Action::Kill,
            Self::Resume { .. } => Action::Resume,
            Self::ApprovalsList => Action::ApprovalsList,
            Self::ApprovalsShow { .. } => Action::ApprovalsShow,
            Self::ApprovalsApprove { .. } => Action::ApprovalsApprove,
            Self::ApprovalsDeny { .. } => Action::ApprovalsDeny,
            Self::ToolsList { .. } => Action::ToolsList,
            Self::ToolsDiff { .. } => Action::ToolsDiff,
            Self::ToolsPin { .. } => Action::ToolsPin,
        }
    }

    /// The `action` for a request named `op` whose arguments were not read (a refused
    /// admin call): the operation when it is one, else `unknown`, so a name sent by
    /// an unauthenticated caller never reaches the audit trail verbatim.
    pub fn action_of(op: &str) -> Action {
        Action::operation(op)
    }
}

impl TryFrom<WireRequest> for ControlOp {
    type Error = ControlError;

    fn try_from(req: WireRequest) -> Result<Self, ControlError> {
        Self::parse(&req.op, req.args)
    }
}

/// An operation's arguments, read by name.
struct Args(Map<String, Value>);

impl Args {
    fn new(args: Value) -> Result<Self, ControlError> {
        match args {
            Value::Null => Ok(Self(Map::new())),
            Value::Object(map) => Ok(Self(map)),
            _ => Err(ControlError::BadArgs("args must be a JSON object".into())),
        }
    }

    /// A required string.
    fn str(&self, key: &str) -> Result<String, ControlError> {
        self.opt_str(key)?.ok_or_else(|| ControlError::BadArgs(format!("{key} (a string) is required")))
    }

    /// An optional string (`null` is absent).
    fn opt_str(&self, key: &str) -> Result<Option<String>, ControlError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ControlError::BadArgs(format!("{key} must be a string"))),
        }
    }

    /// An optional boolean (`null` is absent).
    fn opt_bool(&self, key: &str) -> Result<Option<bool>, ControlError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ControlError::BadArgs(format!("{key} must be true or false"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// One value of every variant (the match makes a new variant fail to compile here
    /// until it has a sample).
    fn samples() -> Vec<ControlOp> {
        let s = |v: &str| v.to_owned();
        let all = vec![
            ControlOp::Status,
            ControlOp::Kill { route: Some(s("echo")), reason: s("incident 7") },
            ControlOp::Kill { route: None, reason: s("all") },
            ControlOp::Resume { route: Some(s("echo")) },
            ControlOp::Resume { route: None },
            ControlOp::ApprovalsList,
            ControlOp::ApprovalsShow { id: s("a1") },
            ControlOp::ApprovalsApprove { id: s("a1"), reason: Some(s("ok")) },
            ControlOp::ApprovalsApprove { id: s("a1"), reason: None },
            ControlOp::ApprovalsDeny { id: s("a2"), reason: Some(s("no")) },
            ControlOp::ToolsList { route: s("echo"), fetch: Some(true) },
            ControlOp::ToolsDiff { route: s("echo"), fetch: None },
            ControlOp::ToolsPin { route: s("echo"), tool: Some(s("add")), note: Some(s("T-1")) },
            ControlOp::ToolsPin { route: s("echo"), tool: None, note: None },
        ];
        for op in &all {
            match op {
                ControlOp::Status
                | ControlOp::Kill { .. }
                | ControlOp::Resume { .. }
                | ControlOp::ApprovalsList
                | ControlOp::ApprovalsShow { .. }
                | ControlOp::ApprovalsApprove { .. }
                | ControlOp::ApprovalsDeny { .. }
                | ControlOp::ToolsList { .. }
                | ControlOp::ToolsDiff { .. }
                | ControlOp::ToolsPin { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_op_round_trips_through_the_wire_format() {
        for op in samples() {
            let wire = serde_json::to_value(&op).expect("serialize");
            assert_eq!(wire["op"], op.action().as_str(), "{wire}");
            let line = serde_json::to_vec(&wire).expect("line");
            let req: WireRequest = serde_json::from_slice(&line).expect("a wire request");
            assert_eq!(ControlOp::try_from(req).expect("parse"), op, "{wire}");
            assert_eq!(serde_json::from_value::<ControlOp>(wire.clone()).expect("deserialize"), op, "{wire}");
        }
    }

    #[test]
    fn names_are_the_variants_names() {
        let mut actions: Vec<Action> = samples().iter().map(ControlOp::action).collect();
        actions.dedup();
        assert_eq!(actions, Action::OPERATIONS);
        for action in Action::OPERATIONS {
            assert_eq!(ControlOp::action_of(action.as_str()), action);
        }
    }

    #[test]
    fn no_arg_ops_take_args_absent_null_or_empty() {
        for line in [r#"{"op":"status"}"#, r#"{"op":"status","args":null}"#, r#"{"op":"status","args":{}}"#] {
            let req: WireRequest = serde_json::from_str(line).expect("request");
            assert_eq!(ControlOp::try_from(req).expect(line), ControlOp::Status);
        }
        assert_eq!(serde_json::to_string(&ControlOp::ApprovalsList).expect("json"), r#"{"op":"approvals.list"}"#);
    }

    #[test]
    fn the_wire_form_is_todays() {
        let op = ControlOp::Kill { route: Some("echo".into()), reason: "why".into() };
        assert_eq!(
            serde_json::to_value(&op).expect("json"),
            json!({"op": "kill", "args": {"route": "echo", "reason": "why"}})
        );
        // What the CLIs sent before: `null` for an absent option, unknown keys ignored.
        let old = json!({"route": null, "fetch": false, "extra": 1});
        assert_eq!(
            ControlOp::parse("tools.list", json!({"route": "echo", "fetch": false})).expect("list"),
            ControlOp::ToolsList { route: "echo".into(), fetch: Some(false) }
        );
        assert_eq!(ControlOp::parse("resume", old).expect("resume"), ControlOp::Resume { route: None });
    }

    #[test]
    fn an_unknown_op_is_unknown_op_with_its_name() {
        let err = ControlOp::parse("no.such.op", json!({})).expect_err("unknown");
        assert_eq!(err.code(), "unknown_op");
        assert!(err.to_string().contains("\"no.such.op\""), "{err}");
    }

    #[test]
    fn a_missing_or_ill_typed_argument_is_bad_args_naming_it() {
        let cases = [
            ("kill", json!({}), "reason (a string) is required"),
            ("kill", json!({"reason": "x", "route": 5}), "route must be a string"),
            ("approvals.show", json!({"id": 7}), "id must be a string"),
            ("approvals.approve", json!({"id": "a", "reason": []}), "reason must be a string"),
            ("tools.list", json!({"fetch": true}), "route (a string) is required"),
            ("tools.diff", json!({"route": "r", "fetch": "yes"}), "fetch must be true or false"),
            ("tools.pin", json!({"route": "r", "note": {}}), "note must be a string"),
            ("resume", json!("echo"), "args must be a JSON object"),
        ];
        for (op, args, want) in cases {
            let err = ControlOp::parse(op, args).expect_err(op);
            assert_eq!(err.code(), "bad_args", "{op}: {err}");
            assert!(err.to_string().contains(want), "{op}: {err}");
        }
    }

    #[test]
    fn an_unknown_name_never_reaches_the_audit_action() {
        for name in ["no.such.op", "kill\n{\"forged\":1}", "", "STATUS", "approvals."] {
            assert_eq!(ControlOp::action_of(name), Action::Unknown, "{name:?}");
        }
    }
}
