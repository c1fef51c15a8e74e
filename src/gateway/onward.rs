//! The end of the request path: a request that passed every check is sent on (to the
//! stdio bridge or the HTTP upstream), and the answer is wrapped for the way back
//! (inspection, the guard on a guarded route, timers) before it reaches the client.
//!
//! [`Onward`] exists only once `exchange` has run every check (it carries the
//! `forward::Checked` proof `forward::send` asks for); an approval gate (`super::hold`)
//! may run it later.

use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use super::conn::ConnInfo;
use super::forward::{self, Checked, Destination};
use super::limits::{BodyTimer, EndReason, TimedBody};
use super::metrics::GatewayMetrics;
use super::respond::{full, ClientBody};
use super::route::Route;
use super::trail::Trail;
use crate::body::BoxError;
use crate::mcp::{inspectable, Guard, InspectedBody, RequestInfo};

/// What is left of an exchange once every check passed: forward the request and relay
/// the answer. Owns what it needs, so an approval gate can run it later.
pub struct Onward {
    pub route: Arc<Route>,
    pub conn: ConnInfo,
    pub host: String,
    pub metrics: Arc<GatewayMetrics>,
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub upstream_path: String,
    pub info: RequestInfo,
    pub permit: OwnedSemaphorePermit,
    /// What the answer passes through on a guarded route (`super::guard`).
    pub guard: Option<Guard>,
    /// Private: an `Onward` exists only once `exchange` has run every check.
    checked: Checked,
}

impl Onward {
    /// Called by `exchange` once every check passed, and nowhere else: the adversarial
    /// tests (`every_entry_into_upstream_and_child_passes_the_policy`) hold it to that.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        route: Arc<Route>,
        conn: ConnInfo,
        host: String,
        metrics: Arc<GatewayMetrics>,
        parts: http::request::Parts,
        body: Bytes,
        upstream_path: String,
        info: RequestInfo,
        permit: OwnedSemaphorePermit,
        guard: Option<Guard>,
    ) -> Self {
        Self { route, conn, host, metrics, parts, body, upstream_path, info, permit, guard, checked: Checked::new() }
    }

    /// Forwards the request (to the stdio bridge or the HTTP upstream) and relays the
    /// response; `started` starts the response deadline.
    pub async fn deliver(self, trail: Trail, started: tokio::time::Instant) -> Response<ClientBody> {
        let Onward { route, conn, host, metrics, parts, body, upstream_path, info, permit, guard, checked } = self;
        let method = parts.method.clone();
        if let Some(bridge) = &route.stdio {
            // A stdio server: the bridge speaks Streamable HTTP for it (one child per session).
            let response = bridge.handle(Request::from_parts(parts, body)).await;
            metrics.mcp_requests(&route.name, &info);
            return relay(&route, response, &method, trail, started, permit, guard);
        }
        let to = Destination { route: &route, conn: &conn, host: &host, path: &upstream_path };
        let response = match forward::send(&checked, &to, parts, body).await {
            Ok(r) => r,
            Err(resp) => {
                trail.fail(resp.status().as_u16(), "upstream_failed");
                return resp;
            }
        };
        metrics.mcp_requests(&route.name, &info);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        debug!(status = response.status().as_u16(), elapsed_ms, "proxied");
        relay(&route, response, &method, trail, started, permit, guard)
    }
}

/// Wraps the upstream's response: inspection (through the guard, on a guarded route),
/// then timers. A guarded answer the gateway cannot read at all (an encoded body, a type
/// other than JSON or SSE) is refused here, before anything of it reaches the client.
/// Generic over the body, so the answer is boxed once (at the end), not per source.
fn relay<B>(
    route: &Route,
    response: Response<B>,
    method: &Method,
    trail: Trail,
    started: tokio::time::Instant,
    permit: OwnedSemaphorePermit,
    guard: Option<Guard>,
) -> Response<ClientBody>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(g) = &guard {
        let encoded = parts.headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() != b"identity");
        let empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
        let carries_messages = (*method == Method::POST || *method == Method::GET) && parts.status.is_success();
        if encoded || (carries_messages && !empty && !inspectable(content_type.as_deref())) {
            trail.fail(StatusCode::BAD_GATEWAY.as_u16(), "uninspectable");
            return full(StatusCode::BAD_GATEWAY, "application/json", g.uninspectable_reply());
        }
    }
    let ended = EndReason::default();
    let on_done = trail.on_done(parts.status.as_u16(), ended.clone());
    let inspected = InspectedBody::new(body, content_type.as_deref(), guard, on_done);
    if inspected.will_modify() {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let sse = content_type.is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    let timer =
        if sse { BodyTimer::Idle(route.limits.sse_idle_timeout) } else { BodyTimer::Deadline(started + route.timeout) };
    Response::from_parts(parts, TimedBody::new(inspected, timer, Some(permit), ended).boxed())
}
