//! The edge under attack (issue 13 items 5 and 11): one source cannot fill the public
//! listener, unauthenticated tunnel-listener connections are capped and closed after
//! `handshake_timeout` on both transports, a gateway whose clients never read costs the
//! edge at most its receive window, a tunnel id holds at most `max_connections_per_tunnel`
//! connections, and a tunnel cannot take a name under another tunnel's wildcard. Each
//! test shows the limit holding and a normal client or gateway still served. Loopback
//! only: 127.0.0.0/8 gives distinct sources.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::config::EdgeToml;
use crate::common::raw::{connect_from, expect_closed, quic_client, wait_count};
use crate::common::{self, demo_upstream, http, poll, wait_settled, EdgeKeys, Stack, DOMAIN, TUNNEL};
use http_body_util::BodyExt;
use mcp_tunnel::config::edge::EdgeConfig;
use mcp_tunnel::gateway::TunnelState;
use mcp_tunnel::protocol::{frame, Control, MAX_FRAME_LEN, PROTOCOL_VERSION};
use tokio::net::TcpSocket;
use tokio::time::Instant;

/// Bound for anything that should happen soon.
const SOON: Duration = Duration::from_secs(10);
/// Slack on top of a deadline the edge enforces (a loaded 2-core machine).
const MARGIN: Duration = Duration::from_secs(3);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn routes(port: u16) -> String {
    format!("[[routes]]\nhost = \"app\"\nupstream = \"http://127.0.0.1:{port}\"\n")
}

/// A JSON-RPC request through the tunnel over a connection from `from`; returns the status.
async fn request_from(stack: &Stack, from: IpAddr, body: &str) -> Result<u16, http::Error> {
    let host = format!("app.{DOMAIN}");
    let tls = http::tls_over(connect_from(from, stack.public).await?, &host, &stack.inner_ca()).await?;
    let (mut sender, _conn) = http::h1(tls).await?;
    let resp = sender.send_request(http::mcp_post(&host, body)).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

/// Asserts a ping from `from` gets 200, within [`SOON`].
async fn assert_served(stack: &Stack, from: &str, what: &str) {
    let r = tokio::time::timeout(SOON, request_from(stack, ip(from), PING)).await;
    assert!(matches!(r, Ok(Ok(200))), "{what}: a client from {from} was not served: {r:?}");
}

/// (a) `max_connections_per_source`: idle sockets from 127.0.0.1 fill that source's
/// share; the next one from it is closed at once, while clients from another address are
/// served, and a slot freed by a close is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_fill_the_public_listener() {
    let (port, stop_up) = demo_upstream().await;
    // A long ClientHello timeout, so idle sockets stay open for the whole test.
    let keys = EdgeKeys {
        public_listener: "client_hello_timeout = \"60s\"\nmax_connections = 50\nmax_connections_per_source = 4\n"
            .into(),
        ..EdgeKeys::default()
    };
    let stack = Stack::start_edge(&routes(port), "", &keys).await;
    let stats = &stack.edge.stats;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(connect_from(ip("127.0.0.1"), stack.public).await.expect("idle socket"));
    }
    wait_count(&stats.public_connections, 4, "idle sockets accepted").await;

    let mut extra = connect_from(ip("127.0.0.1"), stack.public).await.expect("connect");
    // Closed by the cap, not by the 60 s ClientHello timeout.
    expect_closed(&mut extra, SOON, "the fifth socket from 127.0.0.1").await;
    assert_eq!(stats.over_source_capacity.get(), 1);
    assert_eq!(stats.over_capacity.get(), 0, "the total cap was not reached");

    assert_served(&stack, "127.0.0.2", "127.0.0.1 at its cap").await;

    // The slot comes back when an idle socket goes.
    drop(idle.pop());
    let served = || async {
        matches!(tokio::time::timeout(SOON, request_from(&stack, ip("127.0.0.1"), PING)).await, Ok(Ok(200)))
    };
    poll::eventually_async(SOON, "127.0.0.1 getting its slot back", served).await;
    stop_up.cancel();
}

/// (b, HTTP/2) Raw TCP sockets to the fallback tunnel listener that never start TLS: at
/// most `max_handshakes_per_source` per source and `max_handshakes` in all are held,
/// extras are closed at once, held ones are closed after `handshake_timeout`, and a real
/// gateway still connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_tunnel_connections_are_capped_and_timed_out_on_http2() {
    let (port, stop_up) = demo_upstream().await;
    let timeout = Duration::from_secs(5);
    let keys = EdgeKeys {
        tunnel_listener: "handshake_timeout = \"5s\"\nmax_handshakes = 4\nmax_handshakes_per_source = 2\n".into(),
        ..EdgeKeys::default()
    };
    let stack = Stack::start_edge(&routes(port), "transport = \"http2\"", &keys).await;
    let stats = &stack.edge.stats;
    let refused_before = stats.tunnel_refused.get();
    let opened = Instant::now();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_from(ip("127.0.0.3"), stack.tunnel_tcp).await.expect("connect"));
    }
    let mut extra = connect_from(ip("127.0.0.3"), stack.tunnel_tcp).await.expect("connect");
    expect_closed(&mut extra, SOON, "third socket from 127.0.0.3").await;
    wait_count(&stats.handshakes_refused, 1, "per-source refusal").await;

    // 127.0.0.3 is at its cap; a gateway from 127.0.0.1 still registers.
    let mut second = stack.spawn_gateway(stack.gateway_config("certs", "certs/tunnel", &routes(port)));
    assert!(matches!(wait_settled(&mut second).await, TunnelState::Registered { .. }));

    for _ in 0..2 {
        held.push(connect_from(ip("127.0.0.4"), stack.tunnel_tcp).await.expect("connect"));
    }
    let mut extra = connect_from(ip("127.0.0.5"), stack.tunnel_tcp).await.expect("connect");
    expect_closed(&mut extra, SOON, "fifth unauthenticated socket").await;
    wait_count(&stats.handshakes_refused, 2, "total refusal").await;

    for (i, tcp) in held.iter_mut().enumerate() {
        expect_closed(tcp, timeout + MARGIN, &format!("held socket {i}")).await;
    }
    assert!(opened.elapsed() >= timeout - Duration::from_millis(100), "held sockets closed before the timeout");
    wait_count(&stats.tunnel_refused, refused_before + 4, "timed-out handshakes counted").await;
    assert_eq!(stack.edge.registry.live_count(TUNNEL), 2, "both real gateways stay registered");
    assert_served(&stack, "127.0.0.2", "after the handshake flood").await;
    stop_up.cancel();
}

/// (b, QUIC) Gateways that complete the QUIC handshake (valid certificate) and then never
/// open the control stream: capped per source, closed after `handshake_timeout`, while
/// a real gateway from another source connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_tunnel_connections_are_capped_and_timed_out_on_quic() {
    let (port, stop_up) = demo_upstream().await;
    let timeout = Duration::from_secs(3);
    let keys = EdgeKeys {
        tunnel_listener: "handshake_timeout = \"3s\"\nmax_handshakes_per_source = 2\n".into(),
        ..EdgeKeys::default()
    };
    let stack = Stack::start_edge(&routes(port), "transport = \"quic\"", &keys).await;
    let client = stack.issue_gateway("other", "other");
    let endpoint = quic_client(&stack, &client, ip("127.0.0.3"));
    let connect = || async {
        tokio::time::timeout(SOON, endpoint.connect(stack.tunnel, "localhost").expect("connect"))
            .await
            .expect("QUIC handshake in time")
    };
    let opened = Instant::now();
    let held = [connect().await.expect("first"), connect().await.expect("second")];
    let third = connect().await;
    assert!(third.is_err(), "a third unauthenticated connection from one source was accepted");
    wait_count(&stack.edge.stats.handshakes_refused, 1, "QUIC per-source refusal").await;

    let mut second = stack.spawn_gateway(stack.gateway_config("certs", "certs/tunnel", &routes(port)));
    assert!(matches!(wait_settled(&mut second).await, TunnelState::Registered { .. }));

    for conn in &held {
        let closed = tokio::time::timeout(timeout + MARGIN, conn.closed()).await;
        let reason = closed.expect("an idle QUIC connection was not closed after handshake_timeout");
        assert!(matches!(reason, quinn::ConnectionError::ApplicationClosed(_)), "{reason:?}");
    }
    assert!(opened.elapsed() >= timeout - Duration::from_millis(100), "closed before the timeout");
    // The source's slots are free again.
    assert!(connect().await.is_ok(), "127.0.0.3 cannot connect after its handshakes ended");
    assert_served(&stack, "127.0.0.2", "after the QUIC handshake flood").await;
    stop_up.cancel();
}

/// (c) Receive windows: a tenant's gateway pushes data on many streams whose public
/// clients never read. What the edge holds (bytes the gateway got to send minus bytes the
/// edge handed to client sockets) stays within `connection_window_mib` plus the relay
/// buffers, although the streams' windows add up to three times that; and a normal
/// transfer larger than every window completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_clients_never_read_costs_the_edge_its_window() {
    const STREAMS: usize = 6;
    const MIB: u64 = 1024 * 1024;
    let (port, stop_up) = demo_upstream().await;
    let keys = EdgeKeys {
        tunnel_listener: "stream_window_mib = 1\nconnection_window_mib = 2\nsend_window_mib = 2\n".into(),
        ..EdgeKeys::default()
    };
    let stack = Stack::start_edge(&routes(port), "transport = \"quic\"", &keys).await;
    let config = EdgeConfig::load(&stack.dir.path().join("edge.toml")).expect("edge config");
    assert_eq!(
        (config.tunnel_limits.stream_window, config.tunnel_limits.connection_window, config.tunnel_limits.send_window),
        (MIB as u32, 2 * MIB as u32, 2 * MIB)
    );

    // Transfers larger than the connection window, both ways, through the real gateway:
    // four concurrent 900 KiB echoes (the demo server takes bodies up to 1 MiB; one stream
    // beyond the stream window is tests/it/mcp_sdk.rs's 5 MB transfer, at the defaults).
    let text = "x".repeat(900 * 1024);
    let call = serde_json::json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": text } } })
    .to_string();
    let host = format!("app.{DOMAIN}");
    let mut echoes = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (public, ca, host, call) = (stack.public, stack.inner_ca(), host.clone(), call.clone());
        echoes.spawn(async move {
            http::send(public, &host, &ca, http::mcp_post(&host, &call)).await.map_err(|e| e.to_string())
        });
    }
    while let Some(done) = echoes.join_next().await {
        let resp = done.expect("echo task").expect("900 KiB echo");
        assert_eq!(resp.status(), 200);
        assert!(resp.body().len() > 900 * 1024, "echo came back whole ({} bytes)", resp.body().len());
    }

    // The hostile tenant: tunnel `other`, a hand-made gateway that registers and then
    // writes into every stream the edge opens.
    let client = stack.issue_gateway("other", "other");
    let endpoint = quic_client(&stack, &client, ip("127.0.0.1"));
    let conn = endpoint.connect(stack.tunnel, "localhost").expect("connect").await.expect("QUIC handshake");
    let (mut send, mut recv) = conn.open_bi().await.expect("control stream");
    let hello = Control::Hello { protocol: PROTOCOL_VERSION, gateway_version: "test".into(), connection_index: 0 };
    frame::write(&mut send, &hello, MAX_FRAME_LEN).await.expect("Hello");
    let welcome = tokio::time::timeout(SOON, frame::read::<Control, _>(&mut recv, MAX_FRAME_LEN)).await;
    assert!(matches!(welcome, Ok(Ok(Some(Control::Welcome { .. })))), "{welcome:?}");

    let before_to_client = stack.edge.stats.bytes_to_client.get();
    let written = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..STREAMS {
        // A small receive buffer, so the kernel absorbs little of what the edge relays.
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut tcp = socket.connect(stack.public).await.expect("public connect");
        tokio::io::AsyncWriteExt::write_all(&mut tcp, &common::client_hello(&stack, "other.example"))
            .await
            .expect("hello");
        clients.push(tcp);
        let (mut send, _recv) = tokio::time::timeout(SOON, conn.accept_bi()).await.expect("stream").expect("stream");
        let written = written.clone();
        tokio::spawn(async move {
            let chunk = vec![0u8; 64 * 1024];
            while send.write_all(&chunk).await.is_ok() {
                written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
    }
    // Wait until the writers are blocked: no progress for a second (bounded).
    let held = || {
        let to_client = stack.edge.stats.bytes_to_client.get() - before_to_client;
        written.load(Ordering::Relaxed).saturating_sub(to_client)
    };
    let (mut last, mut since, mut peak) = (u64::MAX, Instant::now(), 0);
    let quiet = poll::within(Duration::from_secs(30), || {
        let now = written.load(Ordering::Relaxed);
        if now != last {
            (last, since) = (now, Instant::now());
        }
        peak = peak.max(held());
        since.elapsed() >= Duration::from_secs(1)
    })
    .await;
    assert!(quiet.is_some(), "the hostile gateway never stopped writing ({} bytes)", written.load(Ordering::Relaxed));
    // 2 MiB window + one 64 KiB relay buffer per stream + a chunk in flight per writer.
    let bound = 2 * MIB + STREAMS as u64 * 2 * 64 * 1024;
    eprintln!("edge holds {} bytes at rest, peak {peak}, bound {bound}", held());
    assert!(peak <= bound, "the edge held {peak} bytes for a non-reading tenant (bound {bound})");
    assert!(held() >= MIB, "the test did not fill the edge's window ({} bytes held)", held());

    // Other tenants are unaffected.
    assert_served(&stack, "127.0.0.2", "while the hostile tenant is blocked").await;
    drop(clients);
    stop_up.cancel();
}

/// (d) `max_connections_per_tunnel`: the third connection of a tunnel capped at two is
/// refused with `too_many_connections`; the first two keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_holds_at_most_max_connections_per_tunnel() {
    let (port, stop_up) = demo_upstream().await;
    let keys = EdgeKeys { tunnel_listener: "max_connections_per_tunnel = 2\n".into(), ..EdgeKeys::default() };
    let stack = Stack::start_edge(&routes(port), "", &keys).await;
    let mut second = stack.spawn_gateway(stack.gateway_config("certs", "certs/tunnel", &routes(port)));
    assert!(matches!(wait_settled(&mut second).await, TunnelState::Registered { .. }));
    let mut third = stack.spawn_gateway(stack.gateway_config("certs", "certs/tunnel", &routes(port)));
    match wait_settled(&mut third).await {
        TunnelState::Rejected { reason } => {
            assert!(reason.contains("TooManyConnections"), "{reason}");
            assert!(reason.contains("max_connections_per_tunnel"), "{reason}");
        }
        other => panic!("third connection not refused: {other:?}"),
    }
    assert_eq!(stack.edge.registry.live_count(TUNNEL), 2);
    assert!(matches!(*second.borrow(), TunnelState::Registered { .. }));
    for i in 0..4 {
        assert_served(&stack, "127.0.0.2", &format!("request {i} at the tunnel's cap")).await;
    }
    let opened: Vec<u64> = stack.edge.registry.connections(TUNNEL).into_iter().map(|(_, n)| n).collect();
    assert!(opened.iter().all(|n| *n > 0), "both connections serve: {opened:?}");
    stop_up.cancel();
}

/// Loads an edge config with `tunnels` (TOML) in a directory holding the harness PKI.
fn load_edge(dir: &std::path::Path, tunnel_listener: &str, tunnels: &str) -> Result<EdgeConfig, String> {
    let text =
        EdgeToml { tunnel_listener: tunnel_listener.into(), tables: tunnels.into(), ..EdgeToml::new("certs") }.render();
    let path = dir.join("edge.toml");
    std::fs::write(&path, text).expect("write edge.toml");
    EdgeConfig::load(&path).map_err(|e| e.to_string())
}

/// (e) A name inside another tunnel's wildcard is refused at load, naming the key,
/// unless `allow_inside_wildcard_of` names that tunnel; the limits' keys are checked too.
#[test]
fn names_inside_another_tunnels_wildcard_need_explicit_consent() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::write_pki(dir.path(), "certs", TUNNEL);
    let a = "[tunnels.a]\nhostnames = [\"*.x.test\"]\n";
    let err = load_edge(dir.path(), "", &format!("{a}[tunnels.b]\nhostnames = [\"b.test\", \"login.x.test\"]\n"))
        .expect_err("a name under another tunnel's wildcard");
    assert!(err.contains("`tunnels.b.hostnames[1]`"), "{err}");
    assert!(err.contains("allow_inside_wildcard_of"), "{err}");

    let ok = format!("{a}[tunnels.b]\nhostnames = [\"login.x.test\"]\nallow_inside_wildcard_of = [\"a\"]\n");
    let config = load_edge(dir.path(), "", &ok).expect("explicitly allowed");
    let registry = mcp_tunnel::edge::registry::Registry::new(&config.tunnels);
    assert_eq!(registry.tunnel_for("login.x.test").as_deref(), Some("b"));
    assert_eq!(registry.tunnel_for("mail.x.test").as_deref(), Some("a"));

    // One label only: deeper names and the tunnel's own wildcard do not conflict.
    let fine = format!("{a}[tunnels.b]\nhostnames = [\"deep.login.x.test\", \"x.test\"]\n");
    load_edge(dir.path(), "", &fine).expect("no overlap");
    load_edge(dir.path(), "", "[tunnels.a]\nhostnames = [\"*.x.test\", \"login.x.test\"]\n").expect("same tunnel");

    let err =
        load_edge(dir.path(), "", "[tunnels.b]\nhostnames = [\"b.test\"]\nallow_inside_wildcard_of = [\"nope\"]\n")
            .expect_err("unknown tunnel");
    assert!(err.contains("`tunnels.b.allow_inside_wildcard_of[0]`"), "{err}");

    for (keys, field) in [
        ("handshake_timeout = \"0s\"", "tunnel_listener.handshake_timeout"),
        ("max_handshakes = 0", "tunnel_listener.max_handshakes"),
        ("max_handshakes_per_source = -1", "tunnel_listener.max_handshakes_per_source"),
        ("stream_window_mib = 4\nconnection_window_mib = 2", "tunnel_listener.stream_window_mib"),
        ("send_window_mib = 5000", "tunnel_listener.send_window_mib"),
        ("max_connections_per_tunnel = 0", "tunnel_listener.max_connections_per_tunnel"),
    ] {
        let err = load_edge(dir.path(), keys, "").expect_err(keys);
        assert!(err.contains(&format!("`{field}`")), "{keys}: {err}");
    }
    let defaults = load_edge(dir.path(), "", "").expect("defaults");
    assert_eq!(defaults.max_connections_per_source, defaults.max_connections / 8);
    assert_eq!(defaults.tunnel_limits, mcp_tunnel::config::edge::TunnelLimits::default());
}
