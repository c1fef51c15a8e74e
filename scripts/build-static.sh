#!/usr/bin/env bash
# Builds a fully static mcp-tunnel binary (glibc, crt-static; no musl target needed) and
# prints its path as the last stdout line. The binary runs on any x86-64 Linux and in a
# `FROM scratch` container image.
#
#   scripts/build-static.sh            # -> target/static/x86_64-unknown-linux-gnu/release/mcp-tunnel
#   scripts/build-static.sh --strip    # also writes .../release/mcp-tunnel.stripped (no symbols or
#                                      # debug info, ~1/5 the size; what the container image ships)
#
# A separate target dir keeps these artefacts apart from the normal `cargo build` ones:
# RUSTFLAGS differ, so sharing a dir would make each build invalidate the other. It is
# MCPT_STATIC_TARGET_DIR if set, else `static/` under CARGO_TARGET_DIR (default target/),
# so a CARGO_TARGET_DIR shared with normal builds is never rebuilt with these flags.
# Checks with `file` and `ldd` (when installed) that the result is statically linked; exits
# non-zero otherwise. Cargo's progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR=${MCPT_STATIC_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/static}
strip=0
for arg in "$@"; do
    case "$arg" in
    --strip) strip=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "build-static: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

# crt-static links glibc statically. getrandom 0.3+ (via quinn-proto -> rand) looks up
# libc's getrandom() with dlsym(), which finds nothing in a static binary, and then falls
# back to reading /dev/urandom: mcp-tunnel would panic ("could not initialize ThreadRng")
# in a root without /dev/urandom. The linux_getrandom backend calls getrandom(2) directly instead
# (Linux >= 3.17). getrandom 0.2 (ring) already uses the syscall.
# Appended to (not replacing) any RUSTFLAGS the caller set.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\""

cargo build --release --target "$target" --bin mcp-tunnel >&2

bin=$CARGO_TARGET_DIR/$target/release/mcp-tunnel
[ -x "$bin" ] || { echo "build-static: no binary at $bin" >&2; exit 1; }

if command -v file >/dev/null 2>&1; then
    desc=$(file -b "$bin")
    echo "build-static: file: $desc" >&2
    case "$desc" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) echo "build-static: $bin is not statically linked" >&2; exit 1 ;;
    esac
fi
if command -v ldd >/dev/null 2>&1; then
    # glibc's ldd prints "statically linked" (static-pie) or "not a dynamic executable"
    # and exits 1 for the latter; any listed library means a dynamic binary.
    out=$(ldd "$bin" 2>&1 || true)
    echo "build-static: ldd: $out" >&2
    case "$out" in
    *"statically linked"* | *"not a dynamic executable"*) ;;
    *) echo "build-static: ldd lists shared libraries for $bin" >&2; exit 1 ;;
    esac
fi

if [ "$strip" = 1 ]; then
    strip -o "$bin.stripped" "$bin"
    echo "build-static: $(du -h "$bin" | cut -f1) -> $(du -h "$bin.stripped" | cut -f1) stripped" >&2
    bin=$bin.stripped
fi

echo "$bin"
