# Shared setup of the packaging checks (static_check.sh, compose_check.sh). Source it
# from the repository root: `cd "$(dirname "$0")/../.." && . tests/deploy/lib.sh`.
#
# Gives: ok/fail/skip/info result lines and `finish` ("N passed, F failed", exit status);
# show (indent and tail stdin) and show_log FILE; now/since for timings; a temp dir in
# $work; on_exit CMD... to register cleanup steps, run in reverse order on any exit
# (including failure, Ctrl-C, and SIGTERM from `timeout`); wait_log; static_binary.
# shellcheck shell=bash

set -uo pipefail

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }
skip() { echo "SKIP $1"; }
info() { echo "info $1"; }
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

show() { sed -e 's/^/    | /' | tail -n "${1:-20}"; }
show_log() { show "${2:-15}" <"$1"; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# --- cleanup ------------------------------------------------------------------------------
_exit_hooks=()
on_exit() { _exit_hooks+=("$*"); }
_run_exit_hooks() {
    local i
    trap - EXIT INT TERM
    for ((i = ${#_exit_hooks[@]} - 1; i >= 0; i--)); do
        eval "${_exit_hooks[$i]}" || true
    done
}
trap _run_exit_hooks EXIT
# `timeout` sends SIGTERM: count it as a failure, then the EXIT trap cleans up.
trap 'fail "interrupted (signal)"; exit 130' INT TERM

work=$(mktemp -d "/tmp/mcpt-${0##*/}.XXXXXX")
on_exit rm -rf "$work"

# Waits up to $2 seconds for file $1 to match the extended regex $3.
wait_log() {
    local log=$1 secs=$2 re=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -qE "$re" "$log" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Sets $bin to the static binary: MCPT_STATIC_BIN (what .ci/run builds once for both
# checks), else `scripts/build-static.sh --strip` (seconds when up to date). Fails the
# check and exits when there is none.
static_binary() {
    local t0
    t0=$(now)
    if [ -n "${MCPT_STATIC_BIN:-}" ]; then
        bin=$MCPT_STATIC_BIN
    else
        echo "building: scripts/build-static.sh --strip"
        if ! bin=$(timeout "${MCPT_BUILD_TIMEOUT:-3600}" ./scripts/build-static.sh --strip 2>"$work/build.log" | tail -n 1); then
            show_log "$work/build.log" 30
            fail "scripts/build-static.sh failed"
            finish
        fi
    fi
    if [ ! -x "$bin" ]; then
        fail "no executable static binary at $bin"
        finish
    fi
    info "static binary $bin ($(du -h "$bin" | cut -f1)) in $(since "$t0")"
}
