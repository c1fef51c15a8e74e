//! A client or an upstream that vanishes mid-response fails only its own stream.

use super::*;

/// A TLS connection through the edge to `route` with HTTP/1.1 on top; the returned task
/// drives the connection (abort it to drop the socket). `reset_on_drop` sets SO_LINGER 0
/// so dropping the socket sends a TCP RST instead of a FIN.
async fn h1_connect(
    stack: &Stack,
    route: &str,
    reset_on_drop: bool,
) -> (SendRequest<Full<Bytes>>, JoinHandle<Result<(), hyper::Error>>) {
    let tcp = connect(stack).await;
    if reset_on_drop {
        tcp.set_zero_linger().expect("SO_LINGER 0");
    }
    let tls = tokio::time::timeout(SOON, http::tls_over(tcp, &host(route), &stack.inner_ca()))
        .await
        .expect("TLS handshake within 10 s")
        .expect("TLS handshake through the edge");
    http::h1(tls).await.expect("HTTP/1.1 handshake")
}

/// A `tools/call countdown` of `steps` steps with a progress token: the demo server
/// streams one SSE progress event every 300 ms, then the result.
fn countdown_request(steps: u64, token: &str) -> http::Request<Full<Bytes>> {
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "countdown", "arguments": { "steps": steps }, "_meta": { "progressToken": token } } });
    http::mcp_post(&host(ROUTE), &call.to_string())
}

/// Reads body frames until the bytes so far contain `needle` (bounded).
async fn read_until(body: &mut Incoming, got: &mut Vec<u8>, needle: &str, what: &str) {
    let deadline = Instant::now() + SOON;
    for _ in 0..1000 {
        if String::from_utf8_lossy(got).contains(needle) {
            return;
        }
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => panic!("{what}: no {needle:?} within {SOON:?}"),
            Ok(None) => panic!("{what}: body ended before {needle:?}"),
            Ok(Some(Err(e))) => panic!("{what}: body failed before {needle:?}: {e}"),
            Ok(Some(Ok(frame))) => got.extend_from_slice(frame.data_ref().map(|d| &d[..]).unwrap_or_default()),
        }
    }
    panic!("{what}: too many frames without {needle:?}");
}

/// Fault: a client aborts its TCP connection (SO_LINGER 0, so a reset) in the middle of a
/// streaming response — a 20-step countdown, after its first SSE progress event.
/// Expect: only that relay fails — the edge counts exactly one `streams_failed`, while a
/// concurrent countdown on another connection (in flight at the moment of the reset)
/// completes with all its progress events and its result; a new request afterwards
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reset_mid_body_fails_only_its_own_stream() {
    let _serial = SERIAL.lock().await;
    let (stack, _upstream) = demo_stack().await;
    let before = Counts::of(&stack);

    // The victim: a long countdown, read up to its first progress event.
    let (mut victim, victim_conn) = h1_connect(&stack, ROUTE, true).await;
    let resp = tokio::time::timeout(SOON, victim.send_request(countdown_request(20, "victim")))
        .await
        .expect("countdown headers within 10 s")
        .expect("countdown response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut victim_body = resp.into_body();
    let mut victim_got = Vec::new();
    read_until(&mut victim_body, &mut victim_got, "notifications/progress", "victim").await;

    // The bystander: another countdown on its own connection, in flight during the reset.
    // Its connection stays open to the end, so the only relay that can end meanwhile is
    // the victim's.
    let (headers_tx, headers_rx) = tokio::sync::oneshot::channel();
    let bystander = {
        let (mut sender, conn) = h1_connect(&stack, ROUTE, false).await;
        tokio::spawn(async move {
            let resp = sender.send_request(countdown_request(3, "bystander")).await.expect("bystander response");
            assert_eq!(resp.status(), 200);
            let _ = headers_tx.send(());
            let body = resp.into_body().collect().await.expect("bystander body").to_bytes();
            (body, sender, conn)
        })
    };
    tokio::time::timeout(SOON, headers_rx).await.expect("bystander headers within 10 s").expect("bystander started");

    // Reset: dropping the connection task drops the socket, and SO_LINGER 0 makes that an RST.
    victim_conn.abort();
    drop((victim, victim_body));
    let failed = wait_counts(&stack, "the victim's relay fails", |c| c.failed > before.failed).await;
    assert_eq!(failed.since(before).failed, 1, "exactly one stream failed: {failed:?}");

    let (body, sender, conn) =
        tokio::time::timeout(SOON, bystander).await.expect("bystander within 10 s").expect("bystander");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(text.matches("notifications/progress").count(), 3, "bystander got every progress event: {text}");
    assert!(text.contains("liftoff after 3 steps"), "bystander got its result: {text}");
    let counted = Counts::of(&stack).since(before);
    assert_eq!((counted.public, counted.opened, counted.failed), (2, 2, 1), "{counted:?}");
    assert_eq!((counted.bad_hello, counted.unknown_sni, counted.no_gateway, counted.idle), (0, 0, 0, 0), "{counted:?}");
    drop(sender);
    conn.abort();

    assert_echo(&stack, "after the client reset").await;
}

/// An upstream that speaks just enough HTTP/1.1: for each request it sends `200`, chunked
/// SSE headers and one chunk, then waits for `release` and closes the TCP connection
/// without the final chunk — with a RST if the path contains `rst`, else with a FIN.
async fn truncating_upstream(release: Arc<Notify>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let release = release.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the request head (a GET: no body), bounded in size and time.
                let read_head = async {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return false,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    true
                };
                if !matches!(tokio::time::timeout(SOON, read_head).await, Ok(true)) {
                    return;
                }
                let reset = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().contains("rst");
                let chunk = "event: message\ndata: partial\n\n";
                let preamble =
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let response = format!("{preamble}{:x}\r\n{chunk}\r\n", chunk.len());
                if tcp.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                let _ = tokio::time::timeout(SOON, release.notified()).await;
                if reset {
                    let _ = tcp.set_zero_linger();
                }
                drop(tcp);
            });
        }
    });
    port
}

/// Fault: an upstream sends response headers and part of a chunked body, then closes
/// its TCP connection abruptly (once with a RST, once with a plain FIN), never sending
/// the final chunk.
/// Expect: the client receives the headers and the partial chunk, then an error — never
/// a clean, complete-looking response; a parallel request to a healthy route through the
/// same tunnel succeeds while the broken response is in flight, and another afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_mid_body_is_an_error_not_a_short_response() {
    let _serial = SERIAL.lock().await;
    let release = Arc::new(Notify::new());
    let broken_port = truncating_upstream(release.clone()).await;
    let upstream = demo_upstream().await;
    let routes = format!(
        "{}[[routes]]\nhost = \"broken\"\nupstream = \"http://127.0.0.1:{broken_port}\"\n",
        demo_route(&upstream)
    );
    let stack = Stack::start(&routes).await;

    for path in ["/rst", "/fin"] {
        let (mut sender, conn) = h1_connect(&stack, "broken", false).await;
        let req =
            http::Request::get(path).header("host", host("broken")).body(Full::new(Bytes::new())).expect("request");
        let resp = tokio::time::timeout(SOON, sender.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("{path}: headers within 10 s"))
            .unwrap_or_else(|e| panic!("{path}: response headers: {e}"));
        assert_eq!(resp.status(), 200, "{path}");
        let mut body = resp.into_body();
        let mut got = Vec::new();
        read_until(&mut body, &mut got, "data: partial\n\n", path).await;

        // Mid-body: the healthy route works through the same tunnel.
        assert_echo(&stack, &format!("while {path} is mid-body")).await;

        release.notify_one();
        let deadline = Instant::now() + SOON;
        let mut end = None;
        for _ in 0..1000 {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => panic!("{path}: the truncated body neither failed nor ended within {SOON:?}"),
                Ok(Some(Ok(frame))) => got.extend_from_slice(frame.data_ref().map(|d| &d[..]).unwrap_or_default()),
                Ok(Some(Err(e))) => {
                    end = Some(Err(e));
                    break;
                }
                Ok(None) => {
                    end = Some(Ok(()));
                    break;
                }
            }
        }
        match end {
            Some(Err(e)) => eprintln!("{path}: client saw: {e}"),
            Some(Ok(())) => panic!("{path}: a truncated response ended cleanly: {:?}", String::from_utf8_lossy(&got)),
            None => panic!("{path}: too many frames"),
        }
        assert_eq!(String::from_utf8_lossy(&got), "event: message\ndata: partial\n\n", "{path}: nothing invented");
        drop(sender);
        conn.abort();
        assert_echo(&stack, &format!("after {path}")).await;
    }
}
