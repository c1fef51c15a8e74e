use super::*;
use crate::mcp::guard::ToolSink;
use crate::mcp::policy::Glob;
use crate::mcp::policy::ToolPolicy;
use crate::mcp::sse::{SseItem, SseParser};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::Waker;
use tokio::sync::mpsc;

#[derive(Debug, PartialEq)]
struct Boom;
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}
impl std::error::Error for Boom {}

/// A body fed through a channel, so a test decides when each chunk "arrives".
struct ChanBody(mpsc::UnboundedReceiver<Result<Frame<Bytes>, Boom>>);
impl Body for ChanBody {
    type Data = Bytes;
    type Error = Boom;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Boom>>> {
        self.0.poll_recv(cx)
    }
}

type Tx = mpsc::UnboundedSender<Result<Frame<Bytes>, Boom>>;

fn chan() -> (Tx, ChanBody) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, ChanBody(rx))
}

fn send(tx: &Tx, s: &[u8]) {
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(s)))).unwrap();
}

/// An `on_done` that stores the summary and counts calls.
fn recorder() -> (OnDone, Arc<Mutex<Vec<ResponseSummary>>>) {
    let store = Arc::new(Mutex::new(Vec::new()));
    let s = store.clone();
    (Box::new(move |summary| s.lock().unwrap().push(summary)), store)
}

fn deny_shell() -> Arc<ToolPolicy> {
    Arc::new(ToolPolicy { deny: vec![Glob::new("shell*").unwrap()], ..Default::default() })
}

fn guard() -> Guard {
    Guard::new(deny_shell())
}

/// Polls once with a no-op waker (the channel body never needs a real wake-up in these tests).
fn poll_once<B: Body<Data = Bytes> + Unpin>(b: &mut InspectedBody<B>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(b).poll_frame(&mut cx)
}

fn data_of<E: std::fmt::Debug>(p: Poll<Option<Result<Frame<Bytes>, E>>>) -> Bytes {
    match p {
        Poll::Ready(Some(Ok(f))) => f.into_data().expect("a data frame"),
        other => panic!("expected a data frame, got {other:?}"),
    }
}

fn tools_result(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
        {"name": "add", "inputSchema": {"type": "object"}},
        {"name": "shell_exec", "inputSchema": {"type": "object"}},
        {"name": "search", "inputSchema": {"type": "object"}},
        {"inputSchema": {"type": "object"}}
    ]}})
}

fn sse_event(v: &Value) -> String {
    format!("event: message\r\ndata: {v}\r\n\r\n")
}

const PROGRESS: &str = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\r\n\r\n";

fn tool_names(v: &Value) -> Vec<String> {
    v["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn sse_events_are_released_one_by_one_while_filtering() {
    let (tx, body) = chan();
    let (done, store) = recorder();
    let mut b = InspectedBody::new(body, Some("text/event-stream"), Some(guard()), done);
    assert!(b.will_modify());
    assert_eq!(b.size_hint().upper(), None);
    // Event 1 complete plus the start of event 2 in one chunk.
    let result = sse_event(&tools_result(2));
    let (head, rest) = result.split_at(30);
    send(&tx, format!("{PROGRESS}{head}").as_bytes());
    assert_eq!(&data_of(poll_once(&mut b))[..], PROGRESS.as_bytes(), "first event out before the next chunk");
    assert!(poll_once(&mut b).is_pending(), "half an event is held, not forwarded");
    // The rest of event 2 in tiny pieces: nothing is released until its blank line arrives.
    let rest = rest.as_bytes();
    let (body_part, blank_line) = rest.split_at(rest.len() - 2);
    assert_eq!(blank_line, b"\r\n");
    for piece in body_part.chunks(7) {
        send(&tx, piece);
        assert!(poll_once(&mut b).is_pending());
    }
    send(&tx, blank_line);
    let out = data_of(poll_once(&mut b));
    let mut p = SseParser::new(1 << 20);
    p.push(&out);
    let Some(SseItem::Event(ev)) = p.next_item() else { panic!("not one whole event") };
    assert_eq!(ev.event.as_deref(), Some("message"));
    let v: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(tool_names(&v), ["add", "search"]);
    assert_eq!(v["id"], 2);
    drop(tx);
    assert!(matches!(poll_once(&mut b), Poll::Ready(None)));
    assert!(b.is_end_stream());
    let s = store.lock().unwrap().clone();
    assert_eq!(s.len(), 1);
    assert!(s[0].complete);
    assert_eq!(s[0].tools_removed, 2);
    assert_eq!(s[0].bytes_out, (PROGRESS.len() + out.len()) as u64);
}

#[test]
fn pass_through_sse_forwards_chunks_immediately_and_records_errors() {
    let (tx, body) = chan();
    let (done, store) = recorder();
    let mut b = InspectedBody::new(body, Some("text/event-stream; charset=utf-8"), None, done);
    assert!(!b.will_modify());
    let err =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32602,\"message\":\"bad\"}}\n\n";
    let (x, y) = err.split_at(20);
    send(&tx, x.as_bytes());
    assert_eq!(&data_of(poll_once(&mut b))[..], x.as_bytes(), "pass-through does not wait for the event end");
    send(&tx, y.as_bytes());
    assert_eq!(&data_of(poll_once(&mut b))[..], y.as_bytes());
    send(&tx, PROGRESS.as_bytes());
    assert_eq!(&data_of(poll_once(&mut b))[..], PROGRESS.as_bytes());
    drop(tx);
    assert!(matches!(poll_once(&mut b), Poll::Ready(None)));
    let s = store.lock().unwrap()[0].clone();
    assert_eq!(s.errors, vec![(json!("a"), -32602)]);
    assert!(s.complete);
    assert_eq!(s.bytes_out, (err.len() + PROGRESS.len()) as u64);
}

#[tokio::test]
async fn first_event_reaches_the_client_before_upstream_sends_the_next() {
    // Real wakers: the producer sends event 2 only after the consumer has seen event 1.
    let (tx, body) = chan();
    let (done, store) = recorder();
    let b = InspectedBody::new(body, Some("text/event-stream"), Some(guard()), done);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<()>();
    let producer = tokio::spawn(async move {
        send(&tx, PROGRESS.as_bytes());
        seen_rx.recv().await.unwrap();
        send(&tx, sse_event(&tools_result(1)).as_bytes());
    });
    let mut b = b;
    let first =
        tokio::time::timeout(std::time::Duration::from_secs(10), b.frame()).await.expect("event 1 was held back");
    assert_eq!(&first.unwrap().unwrap().into_data().unwrap()[..], PROGRESS.as_bytes());
    seen_tx.send(()).unwrap();
    let rest = b.collect().await.unwrap().to_bytes();
    producer.await.unwrap();
    assert!(String::from_utf8_lossy(&rest).contains("\"search\""));
    assert!(!String::from_utf8_lossy(&rest).contains("shell_exec"));
    assert!(store.lock().unwrap()[0].complete);
}

#[tokio::test]
async fn json_tools_list_is_filtered_across_chunks() {
    let body = serde_json::to_vec(&tools_result(3)).unwrap();
    for step in [1, 5, 64, body.len()] {
        let (tx, chan_body) = chan();
        for c in body.chunks(step) {
            send(&tx, c);
        }
        drop(tx);
        let (done, store) = recorder();
        let b = InspectedBody::new(chan_body, Some("application/json"), Some(guard()), done);
        assert!(b.will_modify());
        let out = b.collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(tool_names(&v), ["add", "search"], "step {step}");
        let s = store.lock().unwrap()[0].clone();
        assert_eq!(s.tools_removed, 2);
        assert!(s.complete);
        assert_eq!(s.bytes_out, out.len() as u64);
    }
}

#[tokio::test]
async fn untouched_bodies_pass_byte_for_byte() {
    // A tools/list whose tools are all allowed, with odd spacing that re-serialising would lose.
    let body = b"{ \"jsonrpc\":\"2.0\", \"id\":1, \"result\":{\"tools\":[ {\"name\":\"add\"} ]} }".to_vec();
    let (done, store) = recorder();
    let b = InspectedBody::new(Full::new(Bytes::from(body.clone())), Some("application/json"), Some(guard()), done);
    assert_eq!(b.collect().await.unwrap().to_bytes(), body);
    assert_eq!(store.lock().unwrap()[0].tools_removed, 0);

    // An SSE stream with comments and ids, no tools removed: identical output, except the
    // event that is not JSON, which a guard refuses (replaced by a JSON-RPC error).
    let kept = format!(": ping\r\n\r\nid: 1\r\n{PROGRESS}");
    let stream = format!("{kept}data: not json\n\n");
    let (tx, chan_body) = chan();
    for c in stream.as_bytes().chunks(3) {
        send(&tx, c);
    }
    drop(tx);
    let (done, store) = recorder();
    let b = InspectedBody::new(chan_body, Some("text/event-stream"), Some(guard()), done);
    let out = b.collect().await.unwrap().to_bytes();
    let refused = std::str::from_utf8(&out).unwrap().strip_prefix(&kept).expect("kept events unchanged");
    assert!(refused.starts_with("data: {") && refused.contains("-32016") && !refused.contains("not json"), "{refused}");
    assert_eq!(store.lock().unwrap()[0].uninspectable, 1);

    // Unknown content type: bytes only, size hint passed on, Content-Length can stay.
    let (done, store) = recorder();
    let b = InspectedBody::new(Full::new(Bytes::from_static(b"hello")), Some("text/plain"), Some(guard()), done);
    assert!(!b.will_modify());
    assert_eq!(b.size_hint().exact(), Some(5));
    assert_eq!(&b.collect().await.unwrap().to_bytes()[..], b"hello");
    let s = store.lock().unwrap()[0].clone();
    assert_eq!((s.bytes_out, s.complete), (5, true));
}

#[tokio::test]
async fn json_errors_single_and_batch() {
    let single = json!({"jsonrpc": "2.0", "id": 4, "error": {"code": -32601, "message": "no"}});
    let batch = json!([
        {"jsonrpc": "2.0", "id": 5, "error": {"code": -32000, "message": "x"}},
        {"jsonrpc": "2.0", "id": 6, "result": {}},
        {"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "y"}}
    ]);
    for (v, filter) in [(&single, None), (&batch, None), (&batch, Some(guard()))] {
        let (done, store) = recorder();
        let bytes = Bytes::from(serde_json::to_vec(v).unwrap());
        let b = InspectedBody::new(Full::new(bytes.clone()), Some("Application/JSON"), filter, done);
        assert_eq!(b.collect().await.unwrap().to_bytes(), bytes);
        let errors = store.lock().unwrap()[0].errors.clone();
        if v.is_array() {
            assert_eq!(errors, vec![(json!(5), -32000), (Value::Null, -32700)]);
        } else {
            assert_eq!(errors, vec![(json!(4), -32601)]);
        }
    }
}

#[tokio::test]
async fn over_the_cap_passes_through_unguarded_and_is_refused_guarded() {
    let body = Bytes::from(serde_json::to_vec(&tools_result(1)).unwrap());
    for guarded in [false, true] {
        let (tx, chan_body) = chan();
        for c in body.chunks(16) {
            send(&tx, c);
        }
        drop(tx);
        let (done, store) = recorder();
        let g = guarded.then(|| guard().answering(vec![json!(1)], false));
        let b = InspectedBody::new(chan_body, Some("application/json"), g, done).with_caps(64, 64);
        let out = b.collect().await.unwrap().to_bytes();
        let s = store.lock().unwrap()[0].clone();
        if guarded {
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!((v["id"].clone(), v["error"]["code"].clone()), (json!(1), json!(-32016)), "{v}");
            assert_eq!((s.uninspectable, s.uninspected, s.complete), (1, 0, true));
        } else {
            assert_eq!(out, body);
            assert_eq!((s.uninspected, s.tools_removed, s.complete), (1, 0, true));
        }
    }

    let stream = format!("{PROGRESS}{}", sse_event(&tools_result(1)));
    let (done, store) = recorder();
    let b = InspectedBody::new(Full::new(Bytes::from(stream.clone())), Some("text/event-stream"), None, done)
        .with_caps(64, 200);
    assert_eq!(b.collect().await.unwrap().to_bytes(), stream.as_bytes());
    assert_eq!(store.lock().unwrap()[0].uninspected, 1);
    let (done, store) = recorder();
    let b = InspectedBody::new(Full::new(Bytes::from(stream.clone())), Some("text/event-stream"), Some(guard()), done)
        .with_caps(64, 200);
    let out = b.collect().await.unwrap().to_bytes();
    let tail = std::str::from_utf8(&out).unwrap().strip_prefix(PROGRESS).expect("the small event passes");
    assert!(tail.contains("-32016") && !tail.contains("shell_exec"), "{tail}");
    assert_eq!(store.lock().unwrap()[0].uninspectable, 1);
}

#[test]
fn dropping_early_reports_incomplete() {
    let (tx, body) = chan();
    let (done, store) = recorder();
    let mut b = InspectedBody::new(body, Some("text/event-stream"), None, done);
    send(&tx, PROGRESS.as_bytes());
    let _ = data_of(poll_once(&mut b));
    assert!(poll_once(&mut b).is_pending());
    drop(b); // the client went away mid-stream
    let s = store.lock().unwrap().clone();
    assert_eq!(s.len(), 1, "called exactly once");
    assert!(!s[0].complete);
    assert_eq!(s[0].bytes_out, PROGRESS.len() as u64);
    drop(tx);
}

#[test]
fn upstream_error_is_passed_on_and_reported_once() {
    let (tx, body) = chan();
    let (done, store) = recorder();
    let mut b = InspectedBody::new(body, Some("application/json"), Some(guard()), done);
    send(&tx, b"{\"jsonrpc\":");
    assert!(poll_once(&mut b).is_pending());
    tx.send(Err(Boom)).unwrap();
    assert!(matches!(poll_once(&mut b), Poll::Ready(Some(Err(Boom)))));
    assert!(matches!(poll_once(&mut b), Poll::Ready(None)));
    drop(b);
    let s = store.lock().unwrap().clone();
    assert_eq!(s.len(), 1);
    assert!(!s[0].complete);
}

#[tokio::test]
async fn trailers_follow_the_released_data() {
    let (tx, body) = chan();
    send(&tx, b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\ndata: unfinished");
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    tx.send(Ok(Frame::trailers(trailers.clone()))).unwrap();
    drop(tx);
    let (done, store) = recorder();
    let b = InspectedBody::new(body, Some("text/event-stream"), Some(guard()), done);
    let collected = b.collect().await.unwrap();
    assert_eq!(collected.trailers(), Some(&trailers));
    // The unterminated last event was never inspected (nor would a client dispatch it).
    assert_eq!(&collected.to_bytes()[..], &b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"[..]);
    assert!(store.lock().unwrap()[0].complete);
}

#[test]
fn body_is_send_sync_and_boxable() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<InspectedBody<http_body_util::combinators::BoxBody<Bytes, Infallible>>>();
    let (done, _) = recorder();
    let _boxed: http_body_util::combinators::BoxBody<Bytes, Infallible> =
        InspectedBody::new(Full::new(Bytes::new()).boxed(), None, None, done).boxed();
}

/// The same body against bytes the official SDKs really send.
#[path = "response_sdk.rs"]
mod sdk;
