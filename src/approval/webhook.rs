//! The approval webhook: when a call starts waiting, POST a JSON notice (id, route, tool,
//! visible arguments, deadline) to an internal URL, so approvers learn about it without
//! polling. Sent from its own task with bounded retries: the call never waits for it.
//!
//! The request goes through the same client stack as upstream requests (the upstream
//! allow-list applies: the webhook must be an internal address), over plain HTTP or over
//! HTTPS trusting the configured `webhook_ca`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use tracing::{debug, warn};

use super::registry::PendingCall;
use crate::outbound::UpstreamClient;
use crate::tasks::Tasks;

/// Attempts per notice (the first and three retries).
pub const ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubles after each failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Time one attempt may take, response headers included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// A configured webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The full URL as configured (for logs; it must not carry credentials).
    pub uri: Uri,
    /// The client that connects to it (allow-list, timeout, TLS).
    pub client: UpstreamClient,
}

impl Webhook {
    /// Sends the notice for `call` in a task of `tasks` (dropped at shutdown: the held
    /// call ends then anyway).
    pub fn notify(&self, call: &PendingCall, tasks: &Tasks) {
        let hook = self.clone();
        let body = Bytes::from(call.to_json().to_string());
        let id = call.id.clone();
        tasks.spawn_best_effort(async move {
            let mut backoff = FIRST_BACKOFF;
            for attempt in 1..=ATTEMPTS {
                match tokio::time::timeout(ATTEMPT_TIMEOUT, hook.post(body.clone())).await {
                    Ok(Ok(status)) if status.is_success() => {
                        debug!(approval = %id, attempt, "approval webhook delivered");
                        return;
                    }
                    Ok(Ok(status)) => debug!(approval = %id, attempt, %status, "approval webhook refused"),
                    Ok(Err(e)) => debug!(approval = %id, attempt, "approval webhook failed: {e}"),
                    Err(_) => debug!(approval = %id, attempt, "approval webhook timed out"),
                }
                if attempt < ATTEMPTS {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
            warn!(approval = %id, url = %hook.uri, "approval webhook not delivered after {ATTEMPTS} attempts");
        });
    }

    async fn post(&self, body: Bytes) -> Result<http::StatusCode, String> {
        let authority = self.uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let req = Request::post(self.uri.clone())
            .header(header::HOST, HeaderValue::from_str(&authority).map_err(|e| e.to_string())?)
            .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body).map_err(|never| match never {}).boxed())
            .map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        // Read (a bounded amount of) the answer so the pooled connection can be reused.
        let _ = http_body_util::Limited::new(resp.into_body(), 64 << 10).collect().await;
        Ok(status)
    }
}
