//! The gateway's tracing spans, nested in the order a request travels: `tunnel` (one
//! dial loop: its index) → `connection` (one registered connection: the edge's id for
//! it, the transport and the edge's address) → `stream` (one client connection, by the edge's
//! stream id) → `request` (one HTTP request: route, JSON-RPC method and id once known).
//! Every log line inside carries these ids, so log calls do not repeat them.
//!
//! Fields are metadata only. The two taken from a client (method, id) are bounded, the
//! way the audit trail bounds them; arguments, tokens and bodies never go in a span.

use tracing::field::Empty;
use tracing::{info_span, Span};

use crate::mcp::RequestInfo;
use crate::transport::Transport;

/// Longest JSON-RPC method or string id a span records; longer ones are left out.
const MAX_FIELD: usize = 200;

/// One dial loop: connection `index` of `[edge] connections` (it may move between edge
/// addresses; each connection's span names its edge).
pub(super) fn tunnel(index: u32) -> Span {
    info_span!("tunnel", index)
}

/// One registered connection: `id` is the edge's connection id, `edge` its address.
pub(super) fn connection(id: u64, transport: Transport, edge: std::net::SocketAddr) -> Span {
    info_span!("connection", id, %transport, %edge)
}

/// One tunnel stream (one client connection): `id` is the edge's stream id.
pub(super) fn stream(id: u64) -> Span {
    info_span!("stream", id)
}

/// One HTTP request on a stream. Its fields are recorded once known ([`route`],
/// [`message`]). `parent` is given explicitly: hyper may poll the request in a task of
/// its own (HTTP/2), where the stream's span is not the current one.
pub(super) fn request(parent: &Span) -> Span {
    info_span!(parent: parent, "request", route = Empty, method = Empty, jsonrpc_id = Empty)
}

/// Records the route of the current request (a config name: printed as is).
pub(super) fn route(name: &str) {
    Span::current().record("route", tracing::field::display(name));
}

/// Records the JSON-RPC method and id of the current request, when it is one message
/// (a batch records none: no one message stands for it). The client chose both: text
/// logs print them quoted and escaped (a string id stays apart from a numeric one).
pub(super) fn message(info: &RequestInfo) {
    let [m] = info.messages.as_slice() else { return };
    let span = Span::current();
    if let Some(method) = m.method.as_deref().filter(|s| s.len() <= MAX_FIELD) {
        span.record("method", method);
    }
    match &m.id {
        Some(serde_json::Value::Number(n)) => {
            span.record("jsonrpc_id", tracing::field::display(n));
        }
        Some(serde_json::Value::String(s)) if s.len() <= MAX_FIELD => {
            span.record("jsonrpc_id", s.as_str());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The text log line of one event inside a request span after `body` was inspected.
    fn line_for(body: &str) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            let stream = super::stream(7);
            let request = request(&stream);
            let _entered = request.enter();
            route("echo");
            message(&crate::mcp::inspect_request(&http::HeaderMap::new(), body.as_bytes()).unwrap());
            tracing::info!("proxied");
        });
        let out = sink.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_request_span_names_stream_route_method_and_id() {
        let line = line_for(r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#);
        assert!(line.contains(r#"stream{id=7}:request{route=echo method="tools/list" jsonrpc_id=5}"#), "{line}");
        let line = line_for(r#"{"jsonrpc":"2.0","id":"a-1","method":"ping"}"#);
        assert!(line.contains(r#"method="ping" jsonrpc_id="a-1"}"#), "{line}");
    }

    #[test]
    fn long_values_and_batches_are_left_out() {
        let long = "x".repeat(MAX_FIELD + 1);
        let line = line_for(&format!(r#"{{"jsonrpc":"2.0","id":"{long}","method":"{long}"}}"#));
        assert!(line.contains("request{route=echo}") && !line.contains(&long), "{line}");
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#;
        let line = line_for(batch);
        assert!(line.contains("request{route=echo}"), "{line}");
    }
}
