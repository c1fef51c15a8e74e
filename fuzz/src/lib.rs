//! Invariants of the parsers that read bytes from untrusted peers, shared by the
//! cargo-fuzz targets (`fuzz_targets/*.rs`, nightly) and by the stable regression test
//! `tests/it/fuzz_regressions.rs`, which includes this file with `#[path]`. Keep it to std,
//! serde, serde_json, http, tokio and `mcp_tunnel` (dependencies both builds have), and
//! every public item used by that test (it is compiled with `-D warnings`).
//!
//! Each `check_*` function panics when an invariant does not hold; a panic is a finding.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use std::sync::Arc;

use mcp_tunnel::edge::sni::{parse_sni, PeekError};
use mcp_tunnel::mcp::guard::{Findings, Judged};
use mcp_tunnel::mcp::{inspect_request, Glob, Guard, ToolPolicy};
use mcp_tunnel::protocol::frame::{self, FrameError};
use mcp_tunnel::protocol::{Control, Open, MAX_FRAME_LEN};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, ReadBuf};

/// Everything `frame::decode`/`frame::read` promise, for `Control` and for `Open`.
pub fn check_frame(data: &[u8]) {
    if let Some(msg) = check_decode::<Control>(data, MAX_FRAME_LEN) {
        check_round_trip(&msg);
    }
    if let Some(msg) = check_decode::<Open>(data, MAX_FRAME_LEN) {
        check_round_trip(&msg);
    }
    // A small cap exercises the Oversized path on ordinary inputs too.
    check_decode::<Control>(data, 16);
}

/// The policy the inspector targets are judged against.
fn fuzz_policy() -> ToolPolicy {
    let globs = |p: &[&str]| p.iter().map(|g| Glob::new(g).expect("glob")).collect();
    ToolPolicy {
        allow: Vec::new(),
        deny: globs(&["shell*", "admin_?"]),
        deny_methods: globs(&["sampling/*", "resources/*"]),
    }
}

/// Messages of `data` as a lenient parser (last duplicate key wins) reads them.
fn lenient_messages(data: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Array(items)) => items,
        Ok(other) => vec![other],
        Err(_) => Vec::new(),
    }
}

/// The request inspector (body → JSON-RPC messages → policy decision): whatever a lenient
/// reader of the body sees as a denied method or a `tools/call` of a denied tool, the
/// inspector refuses (as malformed, or by the policy). Deterministic, never panics.
pub fn check_inspect(data: &[u8]) {
    let policy = fuzz_policy();
    let headers = http::HeaderMap::new();
    let first = inspect_request(&headers, data);
    assert_eq!(format!("{first:?}"), format!("{:?}", inspect_request(&headers, data)), "not deterministic");
    let allowed = match &first {
        Ok(info) => policy.first_denied(info).is_none(),
        Err(_) => false,
    };
    let denied_somewhere = lenient_messages(data).iter().any(|m| {
        let Some(method) = m.get("method").and_then(Value::as_str) else { return false };
        let tool = m.get("params").and_then(|p| p.get("name")).and_then(Value::as_str);
        !policy.method_allowed(method) || (method == "tools/call" && tool.is_some_and(|t| !policy.tool_allowed(t)))
    });
    assert!(!(allowed && denied_somewhere), "a denied message passed the inspector: {first:?}");
}

/// Whether a lenient reader of `data` finds what the guard must keep from the client: a
/// denied server→client method, or a listed tool that is denied or has no string name.
fn leaks(policy: &ToolPolicy, data: &[u8]) -> bool {
    lenient_messages(data).iter().any(|m| {
        if m.get("method").and_then(Value::as_str).is_some_and(|x| !policy.method_allowed(x)) {
            return true;
        }
        let tools = m.get("result").and_then(|r| r.get("tools")).and_then(Value::as_array);
        tools.is_some_and(|t| {
            t.iter().any(|tool| tool.get("name").and_then(Value::as_str).is_none_or(|n| !policy.tool_allowed(n)))
        })
    })
}

/// The response guard: what it passes (unchanged or rewritten) leaks nothing a lenient
/// client would read, and a rewrite is one line of JSON.
pub fn check_guard(data: &[u8]) {
    let policy = fuzz_policy();
    let guard = Guard::new(Arc::new(policy.clone()));
    let judged = guard.judge(data, &mut Findings::default());
    assert_eq!(judged, guard.judge(data, &mut Findings::default()), "not deterministic");
    match judged {
        Judged::Same => assert!(!leaks(&policy, data), "the guard passed a leak unchanged"),
        Judged::Rewritten(out) => {
            assert!(serde_json::from_slice::<Value>(&out).is_ok(), "a rewrite is not JSON");
            assert!(!out.contains(&b'\n') && !out.contains(&b'\r'), "a rewrite must fit one SSE data line");
            assert!(!leaks(&policy, &out), "the rewrite still leaks: {}", String::from_utf8_lossy(&out));
        }
        Judged::Dropped | Judged::Uninspectable => {}
    }
}

/// Which prefixes of a ClientHello that parsed to `Some(name)` are re-parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefixes {
    /// Every prefix (quadratic: for replaying a small corpus).
    All,
    /// A few dozen, chosen from the input (for fuzzing, where speed matters).
    Sample,
}

/// Everything `parse_sni` promises.
pub fn check_sni(data: &[u8], prefixes: Prefixes) {
    let res = parse_sni(data);
    // Deterministic: the edge re-parses the growing buffer from scratch.
    assert_eq!(format!("{res:?}"), format!("{:?}", parse_sni(data)), "parse_sni is not deterministic");
    match &res {
        Ok(None) => assert!(
            data.first().is_none_or(|b| *b == 0x16),
            "Ok(None) for input not starting with a handshake record: {data:02x?}"
        ),
        Ok(Some(name)) => {
            check_server_name(name);
            check_prefixes(data, name, prefixes);
            check_suffixes(data, name);
        }
        Err(PeekError::NotTls(_) | PeekError::NoSni) => {}
        // Timeout, TooLarge, Closed and Io belong to the async reader, never to the parser.
        Err(other) => panic!("parse_sni returned an error only the reader may return: {other:?}"),
    }
}

/// A server name the edge routes on: non-empty lower-case ASCII DNS characters.
fn check_server_name(name: &str) {
    assert!(!name.is_empty() && name.len() <= 253, "server name length {}: {name:?}", name.len());
    assert!(
        name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b)),
        "server name is not lower-case ASCII DNS characters: {name:?}"
    );
}

/// A prefix of a complete ClientHello asks for more bytes or already has the same answer;
/// never an error and never another name (the edge decides on the first non-`None`).
fn check_prefixes(data: &[u8], name: &str, prefixes: Prefixes) {
    let check = |cut: usize| match parse_sni(&data[..cut]) {
        Ok(None) => {}
        Ok(Some(n)) if n == name => {}
        other => panic!("prefix of {cut}/{} bytes gave {other:?}, full input gave Some({name:?})", data.len()),
    };
    match prefixes {
        Prefixes::All => (0..data.len()).for_each(check),
        Prefixes::Sample => {
            // Record-header boundaries (the interesting cuts) and a few pseudo-random ones.
            let mut cuts: Vec<usize> = (0..6.min(data.len())).collect();
            cuts.push(data.len() - 1);
            let mut seed = fnv(data);
            for _ in 0..24 {
                seed = xorshift(seed);
                cuts.push(seed as usize % data.len());
            }
            cuts.into_iter().for_each(check);
        }
    }
}

/// Bytes after a complete ClientHello (a ChangeCipherSpec, 0-RTT data, junk) do not change
/// the answer: the edge reads in 4 KiB chunks, so they may arrive in the same read.
fn check_suffixes(data: &[u8], name: &str) {
    let suffixes: [&[u8]; 4] = [
        &[0x14, 3, 3, 0, 1, 1],                // ChangeCipherSpec (middlebox compatibility)
        &[0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5],    // application data (0-RTT)
        &[0x17, 3, 3, 0x40, 0x00, 0xde, 0xad], // the start of a large record
        b"GET / HTTP/1.1\r\n",                 // junk
    ];
    for suffix in suffixes {
        let mut longer = data.to_vec();
        longer.extend_from_slice(suffix);
        match parse_sni(&longer) {
            Ok(Some(n)) if n == name => {}
            other => panic!("appending {suffix:02x?} changed Some({name:?}) into {other:?}"),
        }
    }
}

/// Checks one `decode::<T>` call against the frame format and against `read::<T>`;
/// returns the decoded message, if any.
fn check_decode<T>(data: &[u8], max: usize) -> Option<T>
where
    T: DeserializeOwned + PartialEq + Debug,
{
    let res = frame::decode::<T>(data, max);
    let declared = data.get(..4).map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize);
    match (&res, declared) {
        (Ok(None), None) => {}
        (Ok(None), Some(len)) => {
            assert!(len <= max, "Ok(None) for an oversized frame ({len} > {max})");
            assert!(data.len() < 4 + len, "Ok(None) although the frame is complete");
        }
        (Ok(Some((_, used))), Some(len)) => {
            assert!(4 <= *used && *used <= data.len(), "used {used} of {} bytes", data.len());
            assert_eq!(*used, 4 + len, "used bytes disagree with the length prefix");
            assert!(len <= max, "accepted a frame of {len} > {max} bytes");
        }
        (Err(FrameError::Oversized { len: l, max: m }), Some(len)) => {
            assert_eq!((*l, *m), (len, max), "Oversized reports the wrong numbers");
            assert!(len > max, "Oversized for {len} <= {max}");
        }
        (Err(FrameError::Malformed(_)), Some(len)) => {
            assert!(len <= max && 4 + len <= data.len(), "Malformed for an incomplete or oversized frame");
        }
        (other, _) => panic!("decode returned {other:?} for {} bytes", data.len()),
    }

    if let Ok(Some((msg, used))) = &res {
        // Exactly `used` bytes matter: the frame alone decodes the same.
        match frame::decode::<T>(&data[..*used], max) {
            Ok(Some((again, n))) if n == *used && again == *msg => {}
            other => panic!("the frame alone decodes differently: {other:?}"),
        }
        // The cap is inclusive.
        assert!(matches!(frame::decode::<T>(data, used - 4), Ok(Some(_))), "a frame of exactly max bytes is refused");
        if *used > 4 {
            assert!(matches!(frame::decode::<T>(data, used - 5), Err(FrameError::Oversized { .. })));
        }
    }

    // The async reader agrees with decode, whether the bytes come at once or in small
    // chunks, and never reads past the frame.
    let chunk = 1 + data.len() % 7;
    for reader in [Chunked { data, chunk: usize::MAX }, Chunked { data, chunk }] {
        let mut reader = reader;
        let read = block_on(frame::read::<T, _>(&mut reader, max));
        match (&res, &read) {
            (Ok(Some((msg, used))), Ok(Some(got))) => {
                assert_eq!(msg, got, "read and decode disagree");
                assert_eq!(reader.data.len(), data.len() - used, "read consumed the wrong number of bytes");
            }
            (Ok(None), Ok(None)) => assert!(data.is_empty(), "read returned clean EOF after {} bytes", data.len()),
            (Ok(None), Err(FrameError::Truncated { got, want })) => {
                assert!(!data.is_empty());
                assert_eq!(*got, data.len(), "Truncated reports the wrong count");
                let expect_want = match declared {
                    Some(len) => 4 + len,
                    None => 4,
                };
                assert_eq!(*want, expect_want, "Truncated reports the wrong frame size");
            }
            (Err(FrameError::Oversized { len: a, max: b }), Err(FrameError::Oversized { len: c, max: d })) => {
                assert_eq!((a, b), (c, d));
            }
            (Err(FrameError::Malformed(a)), Err(FrameError::Malformed(b))) => {
                assert_eq!(a.to_string(), b.to_string(), "read and decode report different JSON errors");
            }
            (d, r) => panic!("decode gave {d:?} but read (chunk {}) gave {r:?}", reader.chunk),
        }
    }
    res.ok().flatten().map(|(msg, _)| msg)
}

/// A decoded message re-encodes within the cap, decodes to itself, and encodes canonically.
fn check_round_trip<T>(msg: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = frame::encode(msg, MAX_FRAME_LEN).expect("a decoded message must re-encode within the cap");
    match frame::decode::<T>(&bytes, MAX_FRAME_LEN) {
        Ok(Some((back, used))) => {
            assert_eq!(&back, msg, "re-encoded message decodes to another value");
            assert_eq!(used, bytes.len());
            assert_eq!(frame::encode(&back, MAX_FRAME_LEN).expect("encodes"), bytes, "encoding is not canonical");
        }
        other => panic!("re-encoded {msg:?} does not decode: {other:?}"),
    }
}

/// An in-memory reader handing out at most `chunk` bytes per read.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future over in-memory readers, which never return `Pending`.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an in-memory read returned Pending"),
    }
}

/// FNV-1a: a seed derived from the input, so sampling is deterministic per input.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// One step of xorshift64 (never returns 0 for a non-zero state).
pub fn xorshift(mut x: u64) -> u64 {
    if x == 0 {
        x = 0x9e37_79b9_7f4a_7c15;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}
