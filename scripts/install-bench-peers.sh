#!/usr/bin/env bash
# Installs the peers `examples/bench` compares against: nginx (Debian package, used as
# the TLS-terminating reverse proxy) and rathole (crates.io, built into a directory
# under the cargo target dir, so nothing global is needed). Idempotent: what is already
# there is left alone. The bench finds rathole at $BENCH_PEERS_DIR/bin/rathole.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
peers="${BENCH_PEERS_DIR:-${CARGO_TARGET_DIR:-$repo/target}/bench-peers}"

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    echo "nginx: already installed ($(/usr/sbin/nginx -v 2>&1))"
else
    # Debian's package would start a system nginx on port 80; policy-rc.d (present in
    # container images) stops that, and the bench never uses the system instance.
    if [ "$(id -u)" = 0 ]; then apt=(apt-get); else apt=(sudo apt-get); fi
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq nginx-light || \
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq nginx
    # Stop a system instance if the package started one anyway; the bench runs its own.
    if [ -f /run/nginx.pid ]; then /usr/sbin/nginx -s quit 2>/dev/null || true; fi
    echo "nginx: installed ($(/usr/sbin/nginx -v 2>&1))"
fi

if [ -x "$peers/bin/rathole" ]; then
    echo "rathole: already installed at $peers/bin/rathole"
else
    # Not --locked: rathole 0.5.0's lockfile does not build with current compilers.
    # Its own target dir keeps it out of the project's shared build lock.
    cargo install rathole --version 0.5.0 --root "$peers" --target-dir "$peers/build"
    echo "rathole: installed at $peers/bin/rathole"
fi
