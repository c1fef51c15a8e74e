//! Whatever a client sends instead of a ClientHello is closed promptly and counted.

use super::*;

/// Fault: bytes that are not a TLS ClientHello (an HTTP request, an SSH banner, random
/// bytes, a TLS application-data record, a handshake record of an unknown type).
/// Expect: the edge closes each connection promptly (well before the 2 s hello timeout),
/// sends nothing back, counts each in `bad_client_hello` and nothing else (no stream is
/// opened), and a real MCP request through the tunnel still succeeds afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_the_public_port_is_closed_and_counted() {
    let _serial = SERIAL.lock().await;
    let (stack, _upstream) = demo_stack().await;
    let before = Counts::of(&stack);
    let payloads = garbage_payloads();
    for (what, bytes) in &payloads {
        let mut tcp = connect(&stack).await;
        write_ignoring_errors(&mut tcp, bytes).await;
        let answered = expect_closed(&mut tcp, PROMPT, what).await;
        assert_eq!(answered, 0, "{what}: the edge answers garbage with silence");
    }
    assert_eq!(Counts::of(&stack).since(before), only_bad_hellos(payloads.len() as u64));
    assert_echo(&stack, "after garbage").await;
}

/// Fault: a ClientHello too large to accept: (a) a handshake record header claiming
/// 65 535 bytes, (b) legal 16 KiB records carrying a ClientHello that claims 65 520
/// bytes; each followed by more than 16 KiB of bytes.
/// Expect: each connection is closed promptly (the size limit, not the hello timeout),
/// nothing is sent back, each is counted in `bad_client_hello` with no stream opened, and
/// real MCP requests keep working — including one sent while an oversized hello is being
/// rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_client_hello_is_closed_and_counted() {
    let _serial = SERIAL.lock().await;
    let (stack, _upstream) = demo_stack().await;
    let before = Counts::of(&stack);
    let cases = [
        ("huge record length", oversized_hello()),
        ("huge hello in legal records", oversized_hello_in_valid_records()),
    ];
    for (what, bytes) in &cases {
        assert!(bytes.len() > 16 * 1024);
        let mut tcp = connect(&stack).await;
        // A legitimate client at the same time.
        let (_, answered) = tokio::join!(assert_echo(&stack, what), async {
            write_ignoring_errors(&mut tcp, bytes).await;
            expect_closed(&mut tcp, PROMPT, what).await
        });
        assert_eq!(answered, 0, "{what}: nothing is sent back");
    }
    let counted = Counts::of(&stack).since(before);
    assert_eq!(counted.bad_hello, 2, "{counted:?}");
    assert_eq!(counted.public, 4, "two oversized hellos and two echo requests: {counted:?}");
    assert_eq!(counted.opened, 2, "only the echo requests opened streams: {counted:?}");
    assert_eq!((counted.unknown_sni, counted.no_gateway, counted.over_capacity), (0, 0, 0), "{counted:?}");
    assert_echo(&stack, "after oversized hellos").await;
}

/// Fault: a real ClientHello (rustls, SNI `demo.tunnel.test`) cut short — after 1 byte,
/// after the 5-byte record header, at half its length, one byte short — after which the
/// client half-closes its side of the connection.
/// Expect: each connection is closed promptly (at the client's end of stream, not after
/// the hello timeout), nothing is sent back, each is counted in `bad_client_hello` with no
/// stream opened; the same hello sent whole still reaches the MCP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_client_hello_is_closed_and_counted() {
    let _serial = SERIAL.lock().await;
    let (stack, _upstream) = demo_stack().await;
    let hello = common::client_hello(&stack, &host(ROUTE));
    assert!(hello.len() > 100, "a real hello ({} bytes)", hello.len());
    let before = Counts::of(&stack);
    let cuts = [1, 5, hello.len() / 2, hello.len() - 1];
    for cut in cuts {
        let what = format!("hello cut at {cut} of {} bytes", hello.len());
        assert_eq!(sni::parse_sni(&hello[..cut]).expect("a prefix is not an error").as_deref(), None, "{what}");
        let mut tcp = connect(&stack).await;
        write_ignoring_errors(&mut tcp, &hello[..cut]).await;
        tcp.shutdown().await.expect("half-close");
        let answered = expect_closed(&mut tcp, PROMPT, &what).await;
        assert_eq!(answered, 0, "{what}: nothing is sent back");
    }
    assert_eq!(Counts::of(&stack).since(before), only_bad_hellos(cuts.len() as u64));
    assert_echo(&stack, "after truncated hellos").await;
}

/// Fault: slowloris — one client connects and sends nothing, another sends a single byte
/// (0x16, the start of a handshake record) and stalls; neither ever completes a hello.
/// Expect: while both are provably still open (no end of stream yet, not counted), a real
/// MCP request succeeds, so the edge serves others during the stall; then each is closed
/// no earlier than the 2 s `client_hello_timeout` and no later than 2 s + 3 s margin after
/// it connected, with nothing sent back, and both are counted in `bad_client_hello`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_time_out_while_others_are_served() {
    let _serial = SERIAL.lock().await;
    let (stack, _upstream) = demo_stack().await;
    let before = Counts::of(&stack);

    let silent_start = Instant::now();
    let silent = connect(&stack).await;
    let one_byte_start = Instant::now();
    let mut one_byte = connect(&stack).await;
    one_byte.write_all(&[0x16]).await.expect("write one byte");

    assert_echo(&stack, "during the stall").await;
    for (what, tcp) in [("silent", &silent), ("one byte", &one_byte)] {
        match tcp.try_read(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{what}: expected to be still open after the echo, got {other:?}"),
        }
    }
    // All three were accepted long ago; wait (bounded) in case a task is still starting.
    let during =
        wait_counts(&stack, "three connections counted", |c| c.public - before.public >= 3).await.since(before);
    assert_eq!(during.bad_hello, 0, "nothing timed out yet: {during:?}");
    assert_eq!((during.public, during.opened), (3, 1), "the stalled pair and the echo: {during:?}");

    let closed = |mut tcp: TcpStream, start: Instant, what: &'static str| async move {
        let answered = expect_closed(&mut tcp, HELLO_TIMEOUT + MARGIN, what).await;
        (start.elapsed(), answered)
    };
    let ((silent_after, silent_sent), (one_after, one_sent)) =
        tokio::join!(closed(silent, silent_start, "silent"), closed(one_byte, one_byte_start, "one byte"));
    for (what, after, sent) in [("silent", silent_after, silent_sent), ("one byte", one_after, one_sent)] {
        eprintln!("{what}: closed by the edge {after:?} after connecting");
        assert!(after >= HELLO_TIMEOUT, "{what}: closed after {after:?}, before the hello timeout");
        assert!(after <= HELLO_TIMEOUT + MARGIN, "{what}: closed only after {after:?}");
        assert_eq!(sent, 0, "{what}: nothing is sent back");
    }
    let after = Counts::of(&stack).since(before);
    assert_eq!(after.bad_hello, 2, "{after:?}");
    assert_eq!((after.public, after.opened, after.unknown_sni, after.no_gateway), (3, 1, 0, 0), "{after:?}");
    assert_echo(&stack, "after the stall").await;
}
