//! Every answer the gateway gives a request itself, as one type. A [`Refusal`] knows its
//! HTTP status, its JSON-RPC code (when the client gets a JSON-RPC error), its audit
//! `reason` and its `policy_denials_total` label; [`refuse`] turns it into the response,
//! the audit record and the metric at once, so the three cannot drift apart. The routing
//! refusals (wrong host, bad path, no route) come before any route is known: the proxy
//! answers them with [`Refusal::response`] alone, unaudited, as before.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::Value;

use super::metrics::GatewayMetrics;
use super::pins::PinDenial;
use super::respond::{full, json_error, refusal_body, ClientBody};
use super::trail::Trail;
use crate::auth::{AuthError, OriginError};
use crate::control::{kill, kill_body};
use crate::mcp::{error_body, jsonrpc, Denied, InspectError, RequestInfo};

/// Why the gateway answered a request itself; the upstream never saw it.
pub enum Refusal {
    /// The request's host is not the TLS server name the edge picked the tunnel by.
    Misdirected { host: String, sni: String },
    /// The path has no canonical form (the message says why).
    BadPath(String),
    /// No route serves the request's host and path.
    NoRoute { host: String },
    /// The stream is over the gateway's `max_streams` (`busy.rs`).
    TooManyStreams,
    /// The kill switch stops the route (or the whole gateway).
    Killed(kill::Refusal),
    /// The `Origin` header is not allowed.
    Origin(OriginError),
    /// A method or shape the route does not take (before anything is read).
    Shape(Shape),
    /// Authentication failed; `metadata_url` is the route's protected-resource metadata.
    Auth { error: AuthError, metadata_url: String },
    /// The request headers exceed `max_header_bytes`.
    HeadersTooLarge { limit: usize },
    /// The body exceeds `max_body` (the message says by how much).
    BodyTooLarge(String),
    /// The body did not arrive within `body_timeout`.
    BodyTimeout(String),
    /// The body could not be read (the client's stream broke).
    BodyUnreadable,
    /// The route has `limits.max_concurrent` requests in flight.
    TooManyRequests { route: String },
    /// The body is not an MCP message the gateway accepts.
    InvalidMcp(InspectError),
    /// The route's tool or method policy denies a message.
    Policy { denied: Denied, message: String },
    /// Pinning (`enforce`) refuses a tool call.
    NotPinned { denial: PinDenial, message: String },
    /// A gated call that cannot wait for approval (a batch, a full queue).
    ApprovalUnavailable { why: Unwaitable, message: String },
    /// An approver denied the call, or nobody decided in time.
    ApprovalDecided { end: ApprovalEnd, message: String, data: Value },
}

/// Why a gated call could not wait for approval (the audit `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwaitable {
    /// It came in a batch: one decision cannot cover several calls.
    Batch,
    /// No approval id could be made.
    NoId,
    /// The route's `max_pending` calls already wait.
    QueueFull,
}

/// How a wait for approval ended in a refusal: it fixes the `reason` and the JSON-RPC code
/// together, so they cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalEnd {
    /// An approver denied the call.
    Denied,
    /// Nobody decided within the wait timeout.
    Expired,
}

impl ApprovalEnd {
    /// The audit `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Denied => "approval_denied",
            Self::Expired => "approval_expired",
        }
    }

    /// The JSON-RPC error code.
    pub fn code(self) -> i64 {
        match self {
            Self::Denied => jsonrpc::APPROVAL_DENIED,
            Self::Expired => jsonrpc::APPROVAL_EXPIRED,
        }
    }
}

/// A refusal for the request's method or shape.
pub struct Shape {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: &'static str,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl Refusal {
    /// The HTTP status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Misdirected { .. } => StatusCode::MISDIRECTED_REQUEST,
            Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::Killed(_) | Self::TooManyRequests { .. } | Self::TooManyStreams => StatusCode::SERVICE_UNAVAILABLE,
            Self::Origin(e) => e.status(),
            Self::Shape(s) => s.status,
            Self::Auth { error, .. } => error.status(),
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BadPath(_) | Self::BodyUnreadable | Self::InvalidMcp(_) => StatusCode::BAD_REQUEST,
            // JSON-RPC errors travel in a 200, as the MCP transports expect.
            Self::Policy { .. }
            | Self::NotPinned { .. }
            | Self::ApprovalUnavailable { .. }
            | Self::ApprovalDecided { .. } => StatusCode::OK,
        }
    }

    /// The audit record's `reason` (and the error code of a plain JSON answer).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Misdirected { .. } => "misdirected_request",
            Self::BadPath(_) => "bad_path",
            Self::NoRoute { .. } => "no_route",
            Self::TooManyStreams => "too_many_streams",
            Self::Killed(_) => kill_body::REASON,
            Self::Origin(e) => e.reason(),
            Self::Shape(s) => s.reason,
            Self::Auth { error, .. } => error.reason(),
            Self::HeadersTooLarge { .. } => "headers_too_large",
            Self::BodyTooLarge(_) => "body_too_large",
            Self::BodyTimeout(_) => "body_timeout",
            Self::BodyUnreadable => "body_unreadable",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::InvalidMcp(_) => "invalid_mcp_request",
            Self::Policy { denied, .. } => denied.as_str(),
            Self::NotPinned { denial, .. } => denial.as_str(),
            Self::ApprovalUnavailable { why: Unwaitable::Batch, .. } => "approval_batch",
            Self::ApprovalUnavailable { why: Unwaitable::NoId, .. } => "approval_unavailable",
            Self::ApprovalUnavailable { why: Unwaitable::QueueFull, .. } => "approval_queue_full",
            Self::ApprovalDecided { end, .. } => end.reason(),
        }
    }

    /// The JSON-RPC error code the client gets, when its answer is JSON-RPC.
    pub fn jsonrpc_code(&self) -> Option<i64> {
        match self {
            Self::Killed(_) => Some(kill_body::KILLED),
            Self::InvalidMcp(e) => Some(e.jsonrpc_code()),
            Self::Policy { .. } => Some(jsonrpc::POLICY_DENIED),
            Self::NotPinned { .. } => Some(jsonrpc::TOOL_NOT_PINNED),
            Self::ApprovalUnavailable { .. } => Some(jsonrpc::APPROVAL_UNAVAILABLE),
            Self::ApprovalDecided { end, .. } => Some(end.code()),
            _ => None,
        }
    }

    /// The `policy_denials_total{reason}` label, for the refusals a route's controls make
    /// (limits that only protect the gateway are not policy and are not counted there).
    pub fn denial_label(&self) -> Option<&'static str> {
        match self {
            Self::Auth { .. } => Some("auth_failed"),
            Self::Killed(_) | Self::Origin(_) | Self::BodyTimeout(_) | Self::Policy { .. } | Self::NotPinned { .. } => {
                Some(self.reason())
            }
            _ => None,
        }
    }

    /// The response the client gets. `info` is what the body held, for the JSON-RPC
    /// answers that carry one error per request in it.
    pub fn response(&self, info: Option<&RequestInfo>) -> Response<ClientBody> {
        let status = self.status();
        let plain = |message: &str| json_error(status, self.reason(), message, None);
        let per_request = |code: i64, message: &str| {
            let body = info.map_or_else(|| error_body(None, code, message, None), |i| refusal_body(i, code, message));
            full(StatusCode::OK, "application/json", body)
        };
        let mut resp = match self {
            Self::Misdirected { host, sni } => plain(&format!("host {host} does not match the TLS server name {sni}")),
            Self::NoRoute { host } => {
                json_error(status, self.reason(), &format!("no route for host {host}"), Some(("host", host)))
            }
            Self::TooManyStreams => {
                plain("the gateway is serving its maximum number of client connections; retry shortly")
            }
            Self::Killed(k) => return k.response(),
            Self::Origin(e) => plain(&e.to_string()),
            Self::Shape(s) => plain(s.message),
            Self::Auth { error, .. } => plain(&error.to_string()),
            Self::HeadersTooLarge { limit } => plain(&format!("request headers exceed {limit} bytes")),
            Self::BadPath(message) | Self::BodyTooLarge(message) | Self::BodyTimeout(message) => plain(message),
            Self::BodyUnreadable => plain("the request body could not be read"),
            Self::TooManyRequests { route } => {
                json_error(status, self.reason(), "the route has too many requests in flight", Some(("route", route)))
            }
            Self::InvalidMcp(e) => {
                let reply = error_body(e.request_id(), e.jsonrpc_code(), &e.to_string(), None);
                full(status, "application/json", reply)
            }
            Self::Policy { message, .. }
            | Self::NotPinned { message, .. }
            | Self::ApprovalUnavailable { message, .. } => {
                per_request(self.jsonrpc_code().unwrap_or(jsonrpc::INTERNAL_ERROR), message)
            }
            Self::ApprovalDecided { end, message, data } => {
                let id = info.and_then(|i| i.messages.first()).and_then(|m| m.id.as_ref());
                full(StatusCode::OK, "application/json", error_body(id, end.code(), message, Some(data.clone())))
            }
        };
        let headers = resp.headers_mut();
        match self {
            Self::Shape(Shape { allow: Some(allow), .. }) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Auth { error, metadata_url } => {
                headers.insert(header::WWW_AUTHENTICATE, error.challenge(metadata_url));
            }
            // The client is still sending: a fresh connection is cheaper than draining it.
            Self::BodyTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::TooManyRequests { .. } | Self::TooManyStreams => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// Answers `refusal`: counts it (when it is policy), writes its audit record, and returns
/// the response.
pub fn refuse(
    metrics: &GatewayMetrics,
    route: &str,
    trail: Trail,
    refusal: &Refusal,
    info: Option<&RequestInfo>,
) -> Response<ClientBody> {
    if let Some(label) = refusal.denial_label() {
        metrics.policy_denial(route, label);
    }
    let resp = refusal.response(info);
    trail.refuse(refusal.status().as_u16(), refusal.reason(), refusal.jsonrpc_code());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(resp: Response<ClientBody>) -> (StatusCode, http::HeaderMap, bytes::Bytes) {
        let (head, body) = resp.into_parts();
        (head.status, head.headers, body.collect().await.unwrap().to_bytes())
    }

    /// The typed reasons keep the words (and codes) the call sites used to pass as strings.
    #[test]
    fn typed_reasons_keep_their_words() {
        let m = String::new;
        let decided = |end| Refusal::ApprovalDecided { end, message: m(), data: Value::Null };
        let cases = [
            (Refusal::Policy { denied: Denied::Method, message: m() }, "method_denied", Some(-32010)),
            (Refusal::Policy { denied: Denied::Tool, message: m() }, "tool_denied", Some(-32010)),
            (Refusal::NotPinned { denial: PinDenial::Changed, message: m() }, "tool_changed", Some(-32014)),
            (Refusal::NotPinned { denial: PinDenial::NotPinned, message: m() }, "tool_not_pinned", Some(-32014)),
            (Refusal::NotPinned { denial: PinDenial::Unknown, message: m() }, "tool_unknown", Some(-32014)),
            (Refusal::ApprovalUnavailable { why: Unwaitable::Batch, message: m() }, "approval_batch", Some(-32013)),
            (
                Refusal::ApprovalUnavailable { why: Unwaitable::NoId, message: m() },
                "approval_unavailable",
                Some(-32013),
            ),
            (
                Refusal::ApprovalUnavailable { why: Unwaitable::QueueFull, message: m() },
                "approval_queue_full",
                Some(-32013),
            ),
            (decided(ApprovalEnd::Denied), "approval_denied", Some(-32011)),
            (decided(ApprovalEnd::Expired), "approval_expired", Some(-32012)),
        ];
        for (refusal, reason, code) in cases {
            assert_eq!((refusal.reason(), refusal.jsonrpc_code()), (reason, code));
        }
    }

    /// The routing answers, once written with `json_error` at their call sites, are the
    /// same bytes (status, headers, body) as variants.
    #[tokio::test]
    async fn routing_refusals_answer_as_before() {
        let host = "other.example.com".to_owned();
        let cases = [
            (
                Refusal::Misdirected { host: host.clone(), sni: "mcp.example.com".into() },
                json_error(
                    StatusCode::MISDIRECTED_REQUEST,
                    "misdirected_request",
                    "host other.example.com does not match the TLS server name mcp.example.com",
                    None,
                ),
            ),
            (
                Refusal::BadPath("the path cannot be normalised".into()),
                json_error(StatusCode::BAD_REQUEST, "bad_path", "the path cannot be normalised", None),
            ),
            (
                Refusal::NoRoute { host: host.clone() },
                json_error(
                    StatusCode::NOT_FOUND,
                    "no_route",
                    "no route for host other.example.com",
                    Some(("host", &host)),
                ),
            ),
            (Refusal::TooManyStreams, {
                let mut resp = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_streams",
                    "the gateway is serving its maximum number of client connections; retry shortly",
                    None,
                );
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }),
        ];
        for (refusal, before) in cases {
            assert_eq!((refusal.jsonrpc_code(), refusal.denial_label()), (None, None), "{}", refusal.reason());
            assert_eq!(parts(refusal.response(None)).await, parts(before).await);
        }
    }
}
