//! Responses the gateway writes itself, and the response extensions that carry what
//! happened to the metrics (never sent to the client).

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::Value;

pub use crate::body::{full, json_error, ClientBody};
use crate::mcp::{error_body, MessageKind, RequestInfo};

/// The route a response belongs to.
#[derive(Clone)]
pub struct RouteName(pub String);

/// Why the upstream request failed: it picks the client's status and error code and the
/// `kind` label of `upstream_errors_total` together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection to the upstream (refused, reset, unresolvable, TLS failure).
    Unreachable,
    /// The upstream's address is one the route may not connect to.
    Forbidden,
    /// The connection did not open within `connect_timeout`.
    ConnectTimeout,
    /// The upstream did not answer within the route's `timeout`.
    Timeout,
}

impl Failure {
    /// The metric label.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Forbidden => "forbidden",
            Self::ConnectTimeout => "connect_timeout",
            Self::Timeout => "timeout",
        }
    }

    /// The status and the `error` code the client gets.
    fn answer(self) -> (StatusCode, &'static str) {
        match self {
            Self::Unreachable => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            Self::Forbidden => (StatusCode::BAD_GATEWAY, "upstream_forbidden"),
            Self::ConnectTimeout | Self::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        }
    }

    /// The client's answer (`message`: what went wrong, without detail), carrying `self`
    /// for the metrics.
    pub fn response(self, route: &str, message: &str) -> Response<ClientBody> {
        let (status, code) = self.answer();
        let mut resp = json_error(status, code, message, Some(("route", route)));
        resp.extensions_mut().insert(self);
        resp
    }
}

/// The JSON-RPC answer to a refused request: one error with `code` per request in it (a
/// batch is refused whole, so no part of it runs).
pub fn refusal_body(info: &RequestInfo, code: i64, message: &str) -> Bytes {
    let ids: Vec<&Value> =
        info.messages.iter().filter(|m| m.kind == MessageKind::Request).filter_map(|m| m.id.as_ref()).collect();
    if !info.batch {
        return error_body(ids.first().copied(), code, message, None);
    }
    let errors: Vec<Value> = ids
        .iter()
        .map(|id| serde_json::from_slice(&error_body(Some(id), code, message, None)).unwrap_or(Value::Null))
        .collect();
    Bytes::from(Value::Array(errors).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status, error code and metric label each failure had as loose strings.
    #[test]
    fn failures_keep_their_answers_and_labels() {
        let cases = [
            (Failure::Unreachable, StatusCode::BAD_GATEWAY, "upstream_unreachable", "unreachable"),
            (Failure::Forbidden, StatusCode::BAD_GATEWAY, "upstream_forbidden", "forbidden"),
            (Failure::ConnectTimeout, StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "connect_timeout"),
            (Failure::Timeout, StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "timeout"),
        ];
        for (failure, status, code, kind) in cases {
            assert_eq!((failure.answer(), failure.kind()), ((status, code), kind));
            let resp = failure.response("r", "m");
            assert_eq!((resp.status(), resp.extensions().get::<Failure>()), (status, Some(&failure)));
        }
    }
}
