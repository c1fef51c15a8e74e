//! The boxed body every relayed request and response uses, and the gateway's own small
//! responses. Below every module that writes a response, so features (kill switch,
//! approvals) build theirs without importing the gateway.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Error type of bodies the gateway relays.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body type of requests sent upstream and of responses relayed to clients.
pub type ClientBody = BoxBody<Bytes, BoxError>;

/// A response with a fixed body.
pub fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<ClientBody> {
    let mut resp = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A small JSON error response. Details stay in the gateway's log, not in the body.
pub fn json_error(status: StatusCode, code: &str, message: &str, extra: Option<(&str, &str)>) -> Response<ClientBody> {
    let mut body = serde_json::json!({ "error": code, "message": message });
    if let (Some((k, v)), Some(obj)) = (extra, body.as_object_mut()) {
        obj.insert(k.to_owned(), v.into());
    }
    full(status, "application/json", Bytes::from(body.to_string()))
}
