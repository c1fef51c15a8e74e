//! The gateway's control plane: operator actions on a running gateway (approve or deny a
//! held tool call, kill or resume traffic, inspect and pin tool definitions).
//!
//! Operators reach it two ways, and both end in an [`Operator`], which the running gateway
//! implements (`crate::gateway::ops`): this module holds the transports, the kill switch
//! and the shared types, and never imports the gateway:
//! - the control socket, a Unix socket `control.sock` in the gateway's state directory
//!   (mode 0600; the caller's uid comes from the peer credentials), which the CLI
//!   (`crate::cli`, above this module) uses through [`client`];
//! - the admin HTTP API, whose mutating operations need the configured admin token.
//!
//! Every operation is a [`ControlOp`] (named on the wire by a dotted `op` string, with a
//! JSON object of arguments); it answers a JSON value or a [`ControlError`]. Each mutating action writes a `control`
//! audit record naming the [`Caller`].

pub mod admin_http;
pub mod audit;
pub mod client;
pub mod kill;
pub mod kill_body;
pub mod kill_store;
pub mod metrics;
pub mod op;
pub mod socket;
pub mod state_file;
pub mod wire;

use std::future::Future;
use std::pin::Pin;

pub use op::ControlOp;

/// What an operation answers.
pub type OpResult = Result<serde_json::Value, ControlError>;

/// The operations the control socket and the admin API serve.
pub trait Operator: Send + Sync + 'static {
    /// Runs `op` for `caller`.
    fn run<'a>(&'a self, caller: &'a Caller, op: &'a ControlOp) -> Pin<Box<dyn Future<Output = OpResult> + Send + 'a>>;
}

/// How an operator reached the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The Unix control socket (the CLI).
    Socket,
    /// The admin HTTP API, with the admin token.
    AdminHttp,
}

/// Who asked for a control operation; goes into the audit record of each action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// How the request arrived.
    pub via: Via,
    /// The peer's uid (socket callers; from the kernel's peer credentials).
    pub uid: Option<u32>,
}

impl Caller {
    /// The form written to audit records and shown to approvers: `uid:1000 via socket`,
    /// `admin token via http`.
    pub fn label(&self) -> String {
        match (self.via, self.uid) {
            (Via::Socket, Some(uid)) => format!("uid:{uid} via socket"),
            (Via::Socket, None) => "unknown uid via socket".to_owned(),
            (Via::AdminHttp, _) => "admin token via http".to_owned(),
        }
    }
}

/// Why a control operation failed. The message is shown to the operator as is.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such operation.
    #[error("unknown operation {0:?}")]
    UnknownOp(String),
    /// A required argument is missing or has the wrong type.
    #[error("bad arguments: {0}")]
    BadArgs(String),
    /// The thing named (approval id, route) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The operation is valid but cannot be done now (already decided, feature off, …).
    #[error("{0}")]
    Conflict(String),
    /// The operation failed (state directory not writable, upstream unreachable, …).
    #[error("{0}")]
    Failed(String),
    /// The caller may not use the control plane (a stdio child on the socket).
    #[error("{0}")]
    Forbidden(String),
}

impl ControlError {
    /// A short machine code for the wire and the admin API's JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownOp(_) => "unknown_op",
            Self::BadArgs(_) => "bad_args",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Failed(_) => "failed",
            Self::Forbidden(_) => "forbidden",
        }
    }

    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::UnknownOp(_) | Self::NotFound(_) => http::StatusCode::NOT_FOUND,
            Self::BadArgs(_) => http::StatusCode::BAD_REQUEST,
            Self::Conflict(_) => http::StatusCode::CONFLICT,
            Self::Failed(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
            Self::Forbidden(_) => http::StatusCode::FORBIDDEN,
        }
    }
}
