//! Responses the gateway writes itself, and the response extensions that carry what
//! happened to the metrics (never sent to the client).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

pub use super::upstream::UpstreamBody as ClientBody;

/// The route a response belongs to.
#[derive(Clone)]
pub struct RouteName(pub String);

/// Why the upstream request failed.
#[derive(Clone, Copy)]
pub struct Failure(pub &'static str);

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
