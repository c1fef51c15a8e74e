//! The gateway's per-stream pipeline — preamble, inner TLS, HTTP, route, admit, inspect —
//! over in-memory streams. `TunnelStream::Memory` stands in for a tunnel stream, so these
//! tests need no edge, no QUIC and no socket: each request crosses the same
//! `serve::serve_stream` a QUIC or HTTP/2 stream does. Every request here is refused
//! before any upstream is dialed (the route's upstream is a closed port), which is what
//! the stages under test promise. The integration suite (`tests/it/`) covers the same
//! refusals end to end through the real edge.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::serve::serve_stream;
use super::{Gateway, GatewayShared};
use crate::config::gateway::GatewayConfig;
use crate::pki::{self, PkiOptions};
use crate::protocol::{frame, Open, MAX_FRAME_LEN};
use crate::stream::TunnelStream;

const DOMAIN: &str = "pipeline.test";
/// Bound on anything a test waits for.
const SOON: Duration = Duration::from_secs(10);
/// A `max_body` a small tool call fits in.
const LIMITS: &str = "[routes.limits]\nmax_body = 128\n";

/// A gateway built from a real config and PKI on disk, never dialing its edge: streams
/// reach it through [`Harness::connect`] instead.
struct Harness {
    _dir: tempfile::TempDir,
    _gateway: Gateway,
    shared: Arc<GatewayShared>,
    inner_ca: Vec<CertificateDer<'static>>,
    shutdown: CancellationToken,
}

impl Harness {
    /// One route `acme` (upstream: a closed port) with the given extra route lines.
    fn new(route_lines: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let options =
            PkiOptions { tunnel_id: "acme".into(), tunnel_domain: DOMAIN.into(), edge_names: vec!["localhost".into()] };
        pki::generate(&options).expect("pki").write(dir.path(), false).expect("write pki");
        let toml = format!(
            "tunnel_domain = \"{DOMAIN}\"\n\
             [edge]\naddress = \"127.0.0.1:9\"\nserver_name = \"localhost\"\nca = \"edge/ca.pem\"\n\
             cert = \"tunnel/gateway.pem\"\nkey = \"tunnel/gateway.key\"\n\
             [inner_tls]\ncert = \"inner/server.pem\"\nkey = \"inner/server.key\"\n\
             [[routes]]\nhost = \"acme\"\nupstream = \"http://127.0.0.1:9\"\n{route_lines}"
        );
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, toml).expect("write config");
        let gateway = Gateway::new(GatewayConfig::load(&path).expect("config")).expect("gateway");
        let inner_ca = crate::tls::pem::load_certs(&dir.path().join("inner/ca.pem")).expect("inner CA");
        let shared = gateway.shared();
        Self { _dir: dir, _gateway: gateway, shared, inner_ca, shutdown: CancellationToken::new() }
    }

    /// A fresh in-memory stream served by the gateway, as the edge would hand it over.
    fn stream(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (shared, shutdown) = (self.shared.clone(), self.shutdown.clone());
        tokio::spawn(serve_stream(TunnelStream::Memory(server), None, 0, shared, shutdown));
        client
    }

    /// A stream with its preamble for `sni`, the inner TLS handshake and HTTP/1.1 on top.
    async fn connect(&self, sni: &str) -> SendRequest<Full<Bytes>> {
        let mut stream = self.stream();
        let client_addr: SocketAddr = "192.0.2.7:40000".parse().expect("addr");
        let open = Open { stream_id: 1, sni: sni.into(), client_addr };
        frame::write(&mut stream, &open, MAX_FRAME_LEN).await.expect("preamble");
        let config = crate::tls::configs::client_trusting(&self.inner_ca, &[b"http/1.1"]).expect("client config");
        let name = ServerName::try_from(sni.to_owned()).expect("server name");
        let tls = tokio::time::timeout(SOON, TlsConnector::from(Arc::new(config)).connect(name, stream))
            .await
            .expect("handshake in time")
            .expect("inner TLS handshake");
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("HTTP/1.1");
        tokio::spawn(conn);
        send
    }

    /// One request to route `acme` on a new stream; the whole response.
    async fn send(&self, req: Request<Full<Bytes>>) -> Response<Bytes> {
        let mut send = self.connect(&format!("acme.{DOMAIN}")).await;
        let resp = tokio::time::timeout(SOON, send.send_request(req)).await.expect("answer in time").expect("answer");
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(SOON, body.collect()).await.expect("body in time").expect("body");
        Response::from_parts(parts, body.to_bytes())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn post(host: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post("/mcp")
        .header("host", host)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

fn call(tool: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#)
}

fn json(resp: &Response<Bytes>) -> Value {
    serde_json::from_slice(resp.body()).expect("a JSON body")
}

#[tokio::test]
async fn a_denied_tool_is_refused_by_the_inspect_stage_with_its_jsonrpc_error() {
    let h = Harness::new("[routes.policy]\ndeny_tools = [\"rm_*\"]\n");
    let resp = h.send(post(&format!("acme.{DOMAIN}"), &call("rm_rf"))).await;
    assert_eq!(resp.status(), StatusCode::OK, "JSON-RPC errors travel in a 200");
    let body = json(&resp);
    assert_eq!(body["id"], 3);
    assert_eq!(body["error"]["code"], crate::mcp::jsonrpc::POLICY_DENIED);
    let metrics = h.shared.metrics.render(&[]);
    assert!(
        metrics.contains(r#"policy_denials_total{route="acme.pipeline.test",reason="tool_denied"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_bad_origin_is_refused_by_the_admit_stage_before_the_body_matters() {
    let h = Harness::new("allowed_origins = [\"https://agent.example.com\"]\n");
    let mut req = post(&format!("acme.{DOMAIN}"), &call("echo"));
    req.headers_mut().insert("origin", "https://evil.example".parse().expect("origin"));
    let resp = h.send(req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(&resp)["error"], "origin_not_allowed", "{:?}", resp.body());
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_and_a_small_one_is_not() {
    let h = Harness::new(&format!("[routes.policy]\ndeny_tools = [\"x\"]\n{LIMITS}"));
    let big = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "a".repeat(200));
    let resp = h.send(post(&format!("acme.{DOMAIN}"), &big)).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json(&resp)["error"], "body_too_large");
    // Under the cap the same route's inspect stage answers instead (a denied tool).
    let resp = h.send(post(&format!("acme.{DOMAIN}"), &call("x"))).await;
    assert_eq!(json(&resp)["error"]["code"], crate::mcp::jsonrpc::POLICY_DENIED);
}

#[tokio::test]
async fn a_name_without_a_route_gets_no_route() {
    let h = Harness::new("");
    let mut send = h.connect(&format!("other.{DOMAIN}")).await;
    let resp = send.send_request(post(&format!("other.{DOMAIN}"), &call("echo"))).await.expect("answer");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_host_header_for_another_route_than_the_tls_name_is_misdirected() {
    let h = Harness::new("");
    let resp = h.send(post(&format!("other.{DOMAIN}"), &call("echo"))).await;
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn a_bad_preamble_drops_the_stream_before_tls_and_counts_nothing() {
    let h = Harness::new("");
    let mut stream = h.stream();
    // A frame header announcing more than the frame limit, then garbage.
    stream.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await.expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(SOON, stream.read_to_end(&mut buf)).await.expect("closed in time");
    assert!(read.is_ok_and(|n| n == 0), "nothing is sent back");
    assert_eq!(h.shared.metrics.streams.get(), 0, "a dropped stream is not a served stream");
}
