use super::*;

/// Feeds `input` in chunks of `step` bytes; returns items and the tail from `finish`.
fn run(input: &[u8], step: usize, cap: usize) -> (Vec<SseItem>, Option<Bytes>) {
    let mut p = SseParser::new(cap);
    let mut items = Vec::new();
    for chunk in input.chunks(step.max(1)) {
        p.push(chunk);
        while let Some(item) = p.next_item() {
            items.push(item);
        }
        // Memory stays bounded by the cap plus one chunk.
        assert!(p.buffered() <= cap + step, "buffered {} > cap {cap} + step {step}", p.buffered());
    }
    let tail = p.finish();
    (items, tail)
}

fn raw_of(items: &[SseItem], tail: &Option<Bytes>) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        match i {
            SseItem::Event(e) => out.extend_from_slice(&e.raw),
            SseItem::Oversize { raw, .. } => out.extend_from_slice(raw),
        }
    }
    if let Some(t) = tail {
        out.extend_from_slice(t);
    }
    out
}

fn events(items: &[SseItem]) -> Vec<&SseEvent> {
    items.iter().filter_map(|i| if let SseItem::Event(e) = i { Some(e) } else { None }).collect()
}

/// Every chunking of `input` gives the same events and reproduces the input byte for byte.
fn check_all_splits(input: &[u8], cap: usize) -> Vec<SseEvent> {
    let (whole, tail) = run(input, input.len(), cap);
    assert_eq!(raw_of(&whole, &tail), input);
    let want: Vec<(Option<String>, String, Option<String>)> =
        events(&whole).iter().map(|e| (e.event.clone(), e.data.clone(), e.id.clone())).collect();
    for step in 1..=input.len().min(12) {
        let (items, tail) = run(input, step, cap);
        assert_eq!(raw_of(&items, &tail), input, "step {step}");
        let got: Vec<_> = events(&items).iter().map(|e| (e.event.clone(), e.data.clone(), e.id.clone())).collect();
        assert_eq!(got, want, "step {step}");
    }
    events(&whole).into_iter().cloned().collect()
}

#[test]
fn simple_events_and_fields() {
    let input = b"event: message\ndata: {\"a\":1}\nid: 7\nretry: 1500\n\ndata: second\n\n";
    let evs = check_all_splits(input, 1024);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].event.as_deref(), Some("message"));
    assert_eq!(evs[0].data, "{\"a\":1}");
    assert_eq!(evs[0].id.as_deref(), Some("7"));
    assert_eq!(evs[0].retry, Some(1500));
    assert_eq!(&evs[0].raw[..], &b"event: message\ndata: {\"a\":1}\nid: 7\nretry: 1500\n\n"[..]);
    assert_eq!(evs[1].event, None);
    assert_eq!(evs[1].data, "second");
}

#[test]
fn line_endings_crlf_cr_and_mixed() {
    for input in [
        &b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"[..],
        b"data: a\rdata: b\r\rdata: c\r\r",
        b"data: a\ndata: b\r\n\rdata: c\n\r\n",
    ] {
        let evs = check_all_splits(input, 1024);
        let data: Vec<&str> = evs.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a\nb", "c"], "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn crlf_split_between_chunks_does_not_make_an_extra_blank_line() {
    let mut p = SseParser::new(1024);
    p.push(b"data: a\r");
    assert_eq!(p.next_item(), None);
    p.push(b"\ndata: b\r");
    assert_eq!(p.next_item(), None);
    p.push(b"\n\r");
    let Some(SseItem::Event(e)) = p.next_item() else { panic!("expected an event") };
    assert_eq!(e.data, "a\nb");
    assert_eq!(&e.raw[..], b"data: a\r\ndata: b\r\n\r");
    // The LF completing that last CRLF arrives later and starts the next block's bytes.
    p.push(b"\ndata: c\r\n\r\n");
    let Some(SseItem::Event(e)) = p.next_item() else { panic!("expected an event") };
    assert_eq!(e.data, "c");
    assert_eq!(&e.raw[..], b"\ndata: c\r\n\r\n");
    assert_eq!(p.next_item(), None);
    assert_eq!(p.finish(), None);
}

#[test]
fn comments_multiline_data_and_odd_fields() {
    let input = b": keep-alive\n\n: note\ndata\ndata:x\ndata:  two spaces\nfoo: bar\nid: a\0b\nretry: 12x\nevent\n\n";
    let evs = check_all_splits(input, 1024);
    assert_eq!(evs.len(), 2);
    assert!(!evs[0].has_data);
    assert_eq!(evs[0].data, "");
    assert_eq!(&evs[0].raw[..], b": keep-alive\n\n");
    // "data" alone is an empty data line; only one leading space is stripped.
    assert_eq!(evs[1].data, "\nx\n two spaces");
    assert!(evs[1].has_data);
    assert_eq!(evs[1].id, None, "id with NUL is ignored");
    assert_eq!(evs[1].retry, None, "non-digit retry is ignored");
    assert_eq!(evs[1].event.as_deref(), Some(""));
}

#[test]
fn leading_bom_is_ignored() {
    let input = b"\xEF\xBB\xBFdata: hi\n\n";
    let evs = check_all_splits(input, 1024);
    assert_eq!(evs[0].data, "hi");
    assert_eq!(&evs[0].raw[..], &input[..]);
}

#[test]
fn unfinished_event_comes_back_from_finish() {
    let (items, tail) = run(b"data: done\n\ndata: half", 4, 1024);
    assert_eq!(events(&items).len(), 1);
    assert_eq!(tail.as_deref(), Some(&b"data: half"[..]));
}

#[test]
fn oversize_events_pass_through_in_pieces() {
    let big = format!("event: message\ndata: {}\ndata: more\n\n", "x".repeat(5000));
    let input = format!("data: small\n\n{big}data: after\n\n");
    for step in [1, 7, 100, 4096, input.len()] {
        let (items, tail) = run(input.as_bytes(), step, 256);
        assert_eq!(raw_of(&items, &tail), input.as_bytes(), "step {step}");
        let evs = events(&items);
        let data: Vec<&str> = evs.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["small", "after"], "step {step}");
        let firsts = items.iter().filter(|i| matches!(i, SseItem::Oversize { first: true, .. })).count();
        assert_eq!(firsts, 1, "step {step}");
        let oversize: usize =
            items.iter().map(|i| if let SseItem::Oversize { raw, .. } = i { raw.len() } else { 0 }).sum();
        assert_eq!(oversize, big.len(), "step {step}");
    }
}

#[test]
fn oversize_with_crlf_and_a_complete_big_event_in_one_chunk() {
    let big = format!("data: {}\r\n\r\n", "y".repeat(600));
    let input = format!("{big}data: z\r\n\r\n");
    for step in [1, 2, 3, 50, input.len()] {
        let (items, tail) = run(input.as_bytes(), step, 100);
        assert_eq!(raw_of(&items, &tail), input.as_bytes(), "step {step}");
        let evs = events(&items);
        assert_eq!(evs.len(), 1, "step {step}");
        assert_eq!(evs[0].data, "z");
    }
}

#[test]
fn python_sdk_shaped_stream() {
    // sse-starlette (used by the Python SDK) writes CRLF lines: id, event, data, blank; pings are comments.
    let result = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add","inputSchema":{"type":"object"}}]}}"#;
    let input = format!(
        "id: 0_1\r\nevent: message\r\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{}}}}\r\n\r\n\
         : ping - 2025-01-01 00:00:00.000000+00:00\r\n\r\nevent: message\r\ndata: {result}\r\n\r\n"
    );
    let evs = check_all_splits(input.as_bytes(), 64 * 1024);
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[0].id.as_deref(), Some("0_1"));
    assert_eq!(evs[2].event.as_deref(), Some("message"));
    assert_eq!(evs[2].data, result);
    let v: serde_json::Value = serde_json::from_str(&evs[2].data).unwrap();
    assert_eq!(v["result"]["tools"][0]["name"], "add");
}

#[test]
fn long_line_in_many_chunks_is_searched_once() {
    // Regression guard for quadratic rescanning: 4 MiB line fed in 1 KiB chunks under a big cap.
    let mut p = SseParser::new(8 << 20);
    let chunk = vec![b'a'; 1024];
    p.push(b"data: ");
    let start = std::time::Instant::now();
    for _ in 0..4096 {
        p.push(&chunk);
        assert_eq!(p.next_item(), None);
    }
    p.push(b"\n\n");
    let Some(SseItem::Event(e)) = p.next_item() else { panic!("expected an event") };
    assert_eq!(e.data.len(), 4 << 20);
    assert!(start.elapsed() < std::time::Duration::from_secs(2), "took {:?}", start.elapsed());
}

#[test]
fn crlf_events_come_out_whole_when_the_lf_is_there() {
    // Each event must include its final LF, or clients that wait to see what follows a CR
    // would only get an event when the next one arrives.
    let mut p = SseParser::new(1024);
    p.push(b"data: a\r\n\r\n");
    let Some(SseItem::Event(e)) = p.next_item() else { panic!("expected an event") };
    assert_eq!(&e.raw[..], b"data: a\r\n\r\n");
    assert_eq!(p.finish(), None);
    // Same for the end of an oversize event.
    let mut p = SseParser::new(12);
    p.push(b"data: 0123456789\r\n");
    assert!(matches!(p.next_item(), Some(SseItem::Oversize { first: true, .. })));
    p.push(b"\r\n");
    let Some(SseItem::Oversize { raw, first: false }) = p.next_item() else { panic!("expected the oversize end") };
    assert_eq!(&raw[..], b"\r\n");
    p.push(b"data: b\r\n\r\n");
    let Some(SseItem::Event(e)) = p.next_item() else { panic!("expected an event") };
    assert_eq!(e.data, "b");
    assert_eq!(&e.raw[..], b"data: b\r\n\r\n");
}

#[test]
fn with_data_rewrites_an_event_that_parses_back() {
    let mut p = SseParser::new(1024);
    p.push(b": comment\r\nid: 0_1\r\nevent: message\r\nretry: 10\r\ndata: {\"a\":1}\r\n\r\n");
    let Some(SseItem::Event(e)) = p.next_item() else { panic!("expected an event") };
    let out = e.with_data(b"{\"a\":2}");
    assert_eq!(&out[..], b"id: 0_1\nevent: message\nretry: 10\ndata: {\"a\":2}\n\n");
    let mut p = SseParser::new(1024);
    p.push(&out);
    let Some(SseItem::Event(back)) = p.next_item() else { panic!("expected an event") };
    assert_eq!((back.id, back.event, back.retry, back.data), (e.id, e.event, e.retry, "{\"a\":2}".to_owned()));
}

#[test]
fn random_streams_round_trip_without_panics() {
    // Streams built from SSE-significant bytes, cut at random, with random caps.
    let alphabet: &[&[u8]] =
        &[b"data", b"event", b"id", b":", b" ", b"\r", b"\n", b"\r\n", b"x", b"\xEF\xBB\xBF", b"\0"];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for _ in 0..3000 {
        let mut input = Vec::new();
        for _ in 0..rng.usize(0..60) {
            input.extend_from_slice(alphabet[rng.usize(0..alphabet.len())]);
        }
        let cap = rng.usize(1..40);
        let mut p = SseParser::new(cap);
        let mut out = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = rng.usize(1..=rest.len());
            p.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(item) = p.next_item() {
                match item {
                    SseItem::Event(e) => {
                        assert!(e.raw.len() <= cap, "an inspected event is within the cap");
                        out.extend_from_slice(&e.raw);
                    }
                    SseItem::Oversize { raw, .. } => out.extend_from_slice(&raw),
                }
            }
            assert!(p.buffered() <= cap + n);
        }
        if let Some(t) = p.finish() {
            out.extend_from_slice(&t);
        }
        assert_eq!(out, input);
    }
}
