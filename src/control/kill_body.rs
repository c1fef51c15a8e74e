//! How a kill reaches an exchange: before the response starts, the exchange is dropped
//! and answered 503 with a JSON-RPC error naming the reason; once the response streams,
//! its body ends with an error, which cuts the stream (the client sees it end early,
//! never a clean end it could mistake for a complete response).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde_json::json;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::kill::{Pass, Refusal};
use crate::body::BoxError;
use crate::body::{full, ClientBody};
use crate::mcp::error_body;

/// JSON-RPC error code of a request refused or cut by the kill switch (gateway-specific,
/// in the implementation-defined server-error range; see `mcp::jsonrpc`).
pub const KILLED: i64 = crate::mcp::jsonrpc::KILLED;
/// The audit `reason` and `policy_denials_total` reason of such a request.
pub const REASON: &str = "killed";

impl Refusal {
    /// The message clients see.
    pub fn message(&self) -> String {
        let scope = if self.all { "the gateway".to_owned() } else { format!("route {}", self.route) };
        format!("{scope} is stopped by the kill switch: {}", self.killed.reason)
    }

    /// The 503 answer: a JSON-RPC error (id null: the request was not read) naming the reason.
    pub fn response(&self) -> Response<ClientBody> {
        let data = json!({ "reason": self.killed.reason, "route": self.route, "since": self.killed.at });
        let body = error_body(None, KILLED, &self.message(), Some(data));
        let mut resp = full(StatusCode::SERVICE_UNAVAILABLE, "application/json", body);
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl Pass {
    /// Runs `exchange` until it answers or a kill fires, whichever comes first; the
    /// answer's body is cut when a kill fires later. The pass (the in-flight count) is
    /// held until the body ends.
    pub async fn guard<F>(self, exchange: F) -> Response<ClientBody>
    where
        F: Future<Output = Response<ClientBody>>,
    {
        let token = self.token().clone();
        tokio::select! {
            biased;
            _ = token.cancelled() => {
                let mut resp = self.refusal().response();
                resp.extensions_mut().insert(CutBeforeAnswer);
                resp
            }
            resp = exchange => {
                let cut = self.token().clone().cancelled_owned();
                resp.map(|inner| KillableBody { inner, cut, pass: Some(self) }.boxed())
            }
        }
    }
}

/// Marks the 503 of an exchange a kill cut before it had an answer (the exchange's own
/// audit trail was dropped with it, so the caller records the refusal).
#[derive(Debug, Clone, Copy)]
pub struct CutBeforeAnswer;

/// A kill ended this response mid-stream.
#[derive(Debug, thiserror::Error)]
#[error("response cut by the kill switch")]
pub struct Cut;

pin_project_lite::pin_project! {
    /// A response body that ends with [`Cut`] when its route is killed.
    pub struct KillableBody {
        #[pin]
        inner: ClientBody,
        #[pin]
        cut: WaitForCancellationFutureOwned,
        // Held until the body ends, however it ends: `None` is the end.
        pass: Option<Pass>,
    }
}

impl Body for KillableBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if this.pass.is_none() {
            return Poll::Ready(None);
        }
        if this.cut.as_mut().poll(cx).is_ready() {
            // Leave the in-flight count now: the server may hold the body a while longer.
            this.pass.take();
            return Poll::Ready(Some(Err(Box::new(Cut))));
        }
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.pass.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.pass.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
