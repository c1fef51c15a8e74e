#!/usr/bin/env bash
# Fuzzes the parsers that read bytes from untrusted peers (cargo-fuzz project in fuzz/):
#   frame_decode  protocol::frame::decode / frame::read (Control and Open)
#   sni_peek      edge::sni::parse_sni (ClientHello peek)
#   mcp_inspect   mcp::inspect_request + ToolPolicy::first_denied (request body → policy
#                 decision) and mcp::Guard::judge (what a guarded response lets through)
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 30)
#
# Replays each target's committed corpus (fuzz/corpus/<t>, fuzz/regressions/<t>), then
# fuzzes it for SECONDS_PER_TARGET; exits non-zero if any input crashes, hangs or breaks
# an invariant (the input is left in fuzz/artifacts/<t>/). Needs nightly: without
# `cargo +nightly` it prints a SKIP line and exits 0. Not part of the test command; the
# stable test tests/it/fuzz_regressions.rs replays the same corpora on every `cargo test`.
#
# New inputs found while fuzzing go to fuzz/target/fuzz-corpus/<t> (kept between runs,
# never committed). To keep a crash as a regression test, copy it to fuzz/regressions/<t>/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "SKIP fuzz: no nightly toolchain ('cargo +nightly' is unavailable)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

export CARGO_TARGET_DIR="$PWD/fuzz/target"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
logs=fuzz/target/fuzz-logs
mkdir -p "$logs"

targets=(frame_decode sni_peek mcp_inspect)
# Largest input per target: frames are small JSON; ClientHellos are bounded by the edge
# at 16 KiB (sni::MAX_CLIENT_HELLO), so a little beyond that.
declare -A max_len=([frame_decode]=4096 [sni_peek]=17000 [mcp_inspect]=4096)
# Built once with debug assertions (overflow checks) under AddressSanitizer.
build_flags=(--debug-assertions)
# Per-input time limit (a hang is a finding) and memory cap.
common=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

cargo +nightly fuzz build "${build_flags[@]}" >&2

failed=()
for t in "${targets[@]}"; do
    seeds=(fuzz/corpus/"$t" fuzz/regressions/"$t")
    work=fuzz/target/fuzz-corpus/"$t"
    mkdir -p "$work" fuzz/regressions/"$t"

    echo "== $t: replaying $(find "${seeds[@]}" -type f ! -name '.*' | wc -l) corpus/regression inputs"
    if ! cargo +nightly fuzz run "${build_flags[@]}" "$t" "${seeds[@]}" -- -runs=0 "${common[@]}" \
        >"$logs/$t.replay.log" 2>&1; then
        tail -n 60 "$logs/$t.replay.log"
        failed+=("$t (corpus replay; log $logs/$t.replay.log)")
        continue
    fi

    echo "== $t: fuzzing for ${secs}s"
    if cargo +nightly fuzz run "${build_flags[@]}" "$t" "$work" "${seeds[@]}" -- \
        -max_total_time="$secs" -max_len="${max_len[$t]}" "${common[@]}" >"$logs/$t.log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || echo '?')
        rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || echo '?')
        cov=$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -n 1 | grep -o 'cov: [0-9]*' || true)
        echo "   ok: $execs executions ($rate/s), ${cov:-cov: ?}, corpus $(find "$work" -type f | wc -l) inputs"
    else
        tail -n 80 "$logs/$t.log"
        failed+=("$t (inputs in fuzz/artifacts/$t/; log $logs/$t.log)")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    printf 'FAIL fuzz: %s\n' "${failed[@]}"
    exit 1
fi
echo "PASS fuzz: ${targets[*]} (${secs}s each), no crashes"
