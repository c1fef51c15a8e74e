//! Replays the fuzz corpora on the stable toolchain, so every input the fuzzers ever
//! needed stays a regression test: `fuzz/corpus/<target>/` (seeds) and
//! `fuzz/regressions/<target>/` (drop a crashing input there once it is fixed). Then a
//! bounded, deterministic mutation run over the seeds checks the same invariants, so the
//! parsers are exercised beyond the corpus even where nightly/cargo-fuzz is unavailable.
//!
//! The invariants themselves live in `fuzz/src/lib.rs`, shared with the fuzz targets.
//! Full fuzzing: `scripts/fuzz.sh [SECONDS_PER_TARGET]` (nightly).

#[path = "../../fuzz/src/lib.rs"]
mod invariants;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use invariants::{check_frame, check_guard, check_inspect, check_sni, xorshift, Prefixes};
use mcp_tunnel::protocol::MAX_FRAME_LEN;

/// The fuzz targets, by directory name.
const TARGETS: [&str; 3] = ["frame_decode", "mcp_inspect", "sni_peek"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every input file of `fuzz/<kind>/<target>/` (dot files such as `.gitkeep` skipped).
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn check(target: &str, data: &[u8], prefixes: Prefixes) {
    match target {
        "frame_decode" => check_frame(data),
        "sni_peek" => check_sni(data, prefixes),
        "mcp_inspect" => {
            check_inspect(data);
            check_guard(data);
        }
        other => panic!("no invariants for fuzz target {other:?}"),
    }
}

/// Runs `f`, turning a panic into an error message (the panic itself is still printed).
fn caught(f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn no_unknown_fuzz_target_directories() {
    for kind in ["corpus", "regressions"] {
        for entry in std::fs::read_dir(fuzz_dir().join(kind)).expect("fuzz dir exists") {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(TARGETS.contains(&name.as_str()), "fuzz/{kind}/{name}: not a fuzz target ({TARGETS:?})");
        }
    }
}

#[test]
fn corpus_and_regression_inputs_hold_the_invariants() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let seeds = inputs("corpus", target);
        assert!(seeds.len() >= 10, "fuzz/corpus/{target} has only {} seeds", seeds.len());
        for (path, data) in seeds.into_iter().chain(inputs("regressions", target)) {
            if let Err(msg) = caught(|| check(target, &data, Prefixes::All)) {
                failures.push(format!("{}: {msg}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{} input(s) break an invariant:\n{}", failures.len(), failures.join("\n"));
}

/// The seeds hold what they are named for, so the corpus cannot silently rot.
#[test]
fn seeds_are_what_they_claim() {
    use mcp_tunnel::edge::sni::parse_sni;
    use mcp_tunnel::protocol::{frame, Control, Open};

    let seed = |target: &str, name: &str| {
        std::fs::read(fuzz_dir().join("corpus").join(target).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    for name in
        ["control_hello", "control_welcome", "control_reject_unknown_tunnel", "control_drain", "control_unknown"]
    {
        let data = seed("frame_decode", name);
        assert!(matches!(frame::decode::<Control>(&data, MAX_FRAME_LEN), Ok(Some(_))), "{name}");
    }
    for name in ["open_v4", "open_v6", "open_then_raw_tls"] {
        assert!(matches!(frame::decode::<Open>(&seed("frame_decode", name), MAX_FRAME_LEN), Ok(Some(_))), "{name}");
    }
    for (name, sni) in [
        ("rustls_plain", "a.test"),
        ("rustls_mixed_case_alpn", "tickets.mcp.acme.example"),
        ("rustls_tls13_psk_early_data", "tickets.mcp.acme.example"),
        ("rustls_fragmented_16_byte_records", "tickets.mcp.acme.example"),
    ] {
        assert_eq!(parse_sni(&seed("sni_peek", name)).unwrap().as_deref(), Some(sni), "{name}");
    }
    assert!(parse_sni(&seed("sni_peek", "rustls_truncated")).unwrap().is_none());
}

/// A deterministic mutation run over the seeds (bit flips, truncations, length-field
/// overwrites, insertions, splices): a poor man's fuzzer that runs on stable in well
/// under a second.
#[test]
fn mutated_seeds_hold_the_invariants() {
    const ITERATIONS: [(&str, usize); 3] = [("frame_decode", 50_000), ("mcp_inspect", 20_000), ("sni_peek", 20_000)];
    let mut rng = Rng(0x6d63_7074_2f31_0001); // "mcpt/1"
    for (target, iterations) in ITERATIONS {
        let seeds: Vec<Vec<u8>> = inputs("corpus", target).into_iter().map(|(_, d)| d).collect();
        assert!(!seeds.is_empty());
        // [complete, needs more bytes, error]: the run must reach all three outcomes.
        let mut outcomes = [0usize; 3];
        for i in 0..iterations {
            let mut data = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let other = &seeds[rng.below(seeds.len())];
                mutate(target, &mut data, other, &mut rng);
            }
            if let Err(msg) = caught(|| check(target, &data, Prefixes::Sample)) {
                panic!("{target} iteration {i}: {msg}\ninput ({} bytes): {:02x?}", data.len(), data);
            }
            outcomes[outcome(target, &data)] += 1;
        }
        println!(
            "{target}: {iterations} mutants: {} complete, {} need more, {} errors",
            outcomes[0], outcomes[1], outcomes[2]
        );
        assert!(outcomes.iter().all(|n| *n >= iterations / 50), "{target}: mutants too one-sided: {outcomes:?}");
    }
}

fn outcome(target: &str, data: &[u8]) -> usize {
    use mcp_tunnel::edge::sni::parse_sni;
    use mcp_tunnel::protocol::{frame, Control, Open};

    if target == "mcp_inspect" {
        // [allowed, refused by the policy, not a valid JSON-RPC request]
        let policy_refuses = |info: &_| {
            let deny = ["shell*", "admin_?"].map(|g| mcp_tunnel::mcp::Glob::new(g).expect("glob")).to_vec();
            let deny_methods =
                ["sampling/*", "resources/*"].map(|g| mcp_tunnel::mcp::Glob::new(g).expect("glob")).to_vec();
            mcp_tunnel::mcp::ToolPolicy { allow: vec![], deny, deny_methods }.first_denied(info).is_some()
        };
        return match mcp_tunnel::mcp::inspect_request(&http::HeaderMap::new(), data) {
            Ok(info) if policy_refuses(&info) => 1,
            Ok(_) => 0,
            Err(_) => 2,
        };
    }
    let (complete, more) = if target == "frame_decode" {
        let control = frame::decode::<Control>(data, MAX_FRAME_LEN);
        let open = frame::decode::<Open>(data, MAX_FRAME_LEN);
        (matches!(control, Ok(Some(_))) || matches!(open, Ok(Some(_))), matches!(control, Ok(None)))
    } else {
        let res = parse_sni(data);
        (matches!(res, Ok(Some(_))), matches!(res, Ok(None)))
    };
    if complete {
        0
    } else if more {
        1
    } else {
        2
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = xorshift(self.0);
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn mutate(target: &str, data: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    const INTERESTING: &[u8] = b"\x00\x01\x16\x7f\x80\xff\"\\{}[],:0-e.u";
    // JSON: most mutants should stay JSON, so swap names and methods as often as bytes.
    if target == "mcp_inspect" && rng.below(3) > 0 {
        return swap_words(data, rng);
    }
    match rng.below(9) {
        // Flip one bit.
        0 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        // Replace a byte with a random or an interesting one.
        1 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] = if rng.below(2) == 0 { rng.byte() } else { INTERESTING[rng.below(INTERESTING.len())] };
        }
        // Truncate.
        2 => {
            let keep = rng.below(data.len() + 1);
            data.truncate(keep);
        }
        // Insert or delete a short run.
        3 => {
            let at = rng.below(data.len() + 1);
            let run: Vec<u8> = (0..1 + rng.below(8)).map(|_| INTERESTING[rng.below(INTERESTING.len())]).collect();
            data.splice(at..at, run);
        }
        4 if !data.is_empty() => {
            let at = rng.below(data.len());
            let end = (at + 1 + rng.below(16)).min(data.len());
            data.drain(at..end);
        }
        // Splice in a piece of another seed.
        5 if !other.is_empty() => {
            let from = rng.below(other.len());
            let to = from + rng.below(other.len() - from + 1);
            let at = rng.below(data.len() + 1);
            data.splice(at..at, other[from..to].iter().copied());
        }
        // Overwrite a length field.
        _ => overwrite_length(target, data, rng),
    }
}

/// Replaces the first occurrence of one word with another (allowed ↔ denied names, methods).
fn swap_words(data: &mut Vec<u8>, rng: &mut Rng) {
    const SWAPS: [(&[u8], &[u8]); 8] = [
        (b"echo", b"shell_exec"),
        (b"shell_exec", b"echo"),
        (b"admin_x", b"admin_xy"),
        (b"tools/call", b"resources/read"),
        (b"tools/list", b"sampling/createMessage"),
        (b"ping", b"tools/call"),
        (b"\"params\"", b"\"result\""),
        (b"\"id\":", b"\"method\":\"ping\",\"id\":"),
    ];
    let (from, to) = SWAPS[rng.below(SWAPS.len())];
    if let Some(at) = data.windows(from.len()).position(|w| w == from) {
        data.splice(at..at + from.len(), to.iter().copied());
    }
}

fn overwrite_length(target: &str, data: &mut Vec<u8>, rng: &mut Rng) {
    if target == "mcp_inspect" {
        // JSON has no length fields: splice in the pieces a smuggler would (a second name,
        // a method beside a result, an escaped denied name).
        const PIECES: [&[u8]; 5] =
            [br#","name":"shell""#, br#","method":"ping""#, br#""sh\u0065ll""#, br#","result":{}"#, br#"{"name":1}"#];
        let at = rng.below(data.len() + 1);
        data.splice(at..at, PIECES[rng.below(PIECES.len())].iter().copied());
    } else if target == "frame_decode" {
        while data.len() < 4 {
            data.push(0);
        }
        let body = data.len() as u32 - 4;
        let max = MAX_FRAME_LEN as u32;
        let choices = [body, body, body.wrapping_sub(1), body + 1, 0, 1, max, max + 1, u32::MAX, rng.next() as u32];
        let len = choices[rng.below(choices.len())];
        data[..4].copy_from_slice(&len.to_be_bytes());
    } else {
        // TLS: the record length (bytes 3..5), the handshake length (6..9) or any u16.
        let at = match rng.below(3) {
            0 => 3,
            1 => 7,
            _ => rng.below(data.len().max(2) - 1),
        };
        if data.len() < at + 2 {
            return;
        }
        let old = u16::from_be_bytes([data[at], data[at + 1]]);
        let choices = [0, 1, 0xffff, 0x4000, 0x4001, old.wrapping_add(1), old.wrapping_sub(1), rng.next() as u16];
        let new = choices[rng.below(choices.len())];
        data[at..at + 2].copy_from_slice(&new.to_be_bytes());
    }
}
