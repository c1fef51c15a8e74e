#!/usr/bin/env bash
# Proves that the static mcp-tunnel binary (scripts/build-static.sh) needs nothing from the
# file system but itself, its config and its certificates, which is what a `FROM scratch`
# container image gives it:
#   - `file` and `ldd` say the binary is statically linked;
#   - in a temp root holding only /mcp-tunnel, /etc/hosts, /etc/mcp-tunnel/gateway.toml and
#     the gateway's five certificate/key files (no /dev, /proc, /lib, /etc/nsswitch.conf,
#     /etc/resolv.conf, no shell), run under chroot as uid/gid 65532 (the image's user):
#       * `mcp-tunnel check` accepts the config;
#       * a gateway dials `edge.test:PORT` (edge.test is known only to that root's
#         /etc/hosts) to a real edge running outside the chroot on 127.0.0.1, with the same
#         PKI, and logs "tunnel registered";
#       * with curl: an MCP initialize + tools/call travels client -> edge -> chrooted
#         gateway -> `upstream.test` (again from that /etc/hosts) -> an example MCP server
#         on 127.0.0.1, and back.
# Everything listens on loopback only; every process is bounded by a timeout and killed on
# exit, and the temp dir is removed.
#
# Binary: MCPT_STATIC_BIN if set (.ci/run builds it once for this and compose_check.sh),
# otherwise `scripts/build-static.sh --strip` (an up-to-date build returns in seconds).
# Needs root (chroot); uses `unshare` for fresh PID/mount/IPC/UTS namespaces when it works
# (the network namespace stays the host's so loopback is shared). Without root or chroot
# it prints a SKIP line and exits 0; `static_check.sh --prereqs` only tells (exit 0/1).
# Ends with "N passed, F failed"; exits non-zero if anything failed.
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ] || ! command -v chroot >/dev/null 2>&1; then
    echo "SKIP: static_check needs root and chroot(8) (uid $(id -u)); run it as root to test the static binary in an empty root"
    [ "${1:-}" = --prereqs ] && exit 1
    exit 0
fi
[ "${1:-}" = --prereqs ] && exit 0

. tests/deploy/lib.sh

pids=()
stop_pids() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
}
on_exit stop_pids

# --- the binary -------------------------------------------------------------------------
static_binary

if command -v file >/dev/null 2>&1; then
    desc=$(file -b "$bin")
    case "$desc" in
    *"statically linked"* | *"static-pie linked"*) ok "file: ${desc%%, BuildID*}" ;;
    *) fail "file does not say statically linked: $desc" ;;
    esac
else
    skip "file(1) not installed"
fi
if command -v ldd >/dev/null 2>&1; then
    out=$(ldd "$bin" 2>&1)
    case "$out" in
    *"statically linked"* | *"not a dynamic executable"*) ok "ldd: $(echo $out)" ;;
    *) fail "ldd lists shared libraries: $(echo $out)" ;;
    esac
else
    skip "ldd not installed"
fi

# --- PKI, host-side edge and upstream ---------------------------------------------------
domain=static.test
"$bin" certs init --out "$work/pki" --tunnel-id st --tunnel-domain "$domain" --edge-name edge.test \
    >/dev/null 2>"$work/certs.log" || { show_log "$work/certs.log"; fail "certs init"; }

export NO_COLOR=1 RUST_BACKTRACE=0

cat >"$work/edge.toml" <<EOF
[tunnel_listener]
listen = "127.0.0.1:0"
cert = "pki/edge/server.pem"
key = "pki/edge/server.key"
client_ca = "pki/tunnel/ca.pem"

[public_listener]
listen = "127.0.0.1:0"

[tunnels.st]
hostnames = ["*.$domain"]
EOF

timeout 120 "$bin" edge --config "$work/edge.toml" >"$work/edge.log" 2>&1 &
pids+=($!)
if ! wait_log "$work/edge.log" 10 'edge listening'; then
    show_log "$work/edge.log"
    fail "edge did not start"
    finish
fi
line=$(grep -m1 'edge listening' "$work/edge.log")
tunnel_port=$(echo "$line" | sed -n 's/.* tunnel=127\.0\.0\.1:\([0-9]*\).*/\1/p')
public_port=$(echo "$line" | sed -n 's/.* public=127\.0\.0\.1:\([0-9]*\).*/\1/p')
echo "edge (outside the chroot): tunnel 127.0.0.1:$tunnel_port (udp+tcp), public 127.0.0.1:$public_port"

# The example MCP server on a free loopback port; it logs the port it got.
timeout 120 "$bin" example-server --listen 127.0.0.1:0 >"$work/upstream.log" 2>&1 &
pids+=($!)
if ! wait_log "$work/upstream.log" 10 'example MCP server listening'; then
    show_log "$work/upstream.log"
    fail "example server did not start"
    finish
fi
up_port=$(grep -m1 'example MCP server listening' "$work/upstream.log" | sed -n 's/.*listen=127\.0\.0\.1:\([0-9]*\).*/\1/p')

# --- the empty root ---------------------------------------------------------------------
root=$work/root
mkdir -p "$root/etc/mcp-tunnel/certs/edge" "$root/etc/mcp-tunnel/certs/tunnel" "$root/etc/mcp-tunnel/certs/inner"
cp "$bin" "$root/mcp-tunnel"
printf '127.0.0.1 localhost\n127.0.0.1 edge.test\n127.0.0.1 upstream.test\n' >"$root/etc/hosts"
cp "$work/pki/edge/ca.pem" "$root/etc/mcp-tunnel/certs/edge/"
cp "$work/pki/tunnel/gateway.pem" "$work/pki/tunnel/gateway.key" "$root/etc/mcp-tunnel/certs/tunnel/"
cp "$work/pki/inner/server.pem" "$work/pki/inner/server.key" "$root/etc/mcp-tunnel/certs/inner/"
cat >"$root/etc/mcp-tunnel/gateway.toml" <<EOF
tunnel_domain = "$domain"
shutdown_timeout = "2s"

[edge]
address = "edge.test:$tunnel_port"
ca = "certs/edge/ca.pem"
cert = "certs/tunnel/gateway.pem"
key = "certs/tunnel/gateway.key"

[inner_tls]
cert = "certs/inner/server.pem"
key = "certs/inner/server.key"

[[routes]]
host = "echo"
upstream = "http://upstream.test:$up_port"
EOF
chown -R 65532:65532 "$root/etc/mcp-tunnel"
chmod 0555 "$root/mcp-tunnel"
echo "root $root holds: $(cd "$root" && find . -type f | sort | tr '\n' ' ')"

# chroot, in new namespaces when unshare works here (not in every container runtime).
runner=(chroot --userspec=65532:65532 "$root")
if command -v unshare >/dev/null 2>&1 && unshare --mount --uts --ipc --pid --fork --kill-child true 2>/dev/null; then
    runner=(unshare --mount --uts --ipc --pid --fork --kill-child "${runner[@]}")
    echo "runner: unshare (pid/mount/ipc/uts namespaces) + chroot as 65532:65532"
else
    echo "runner: chroot as 65532:65532 (unshare unavailable)"
fi

if out=$(timeout 20 "${runner[@]}" /mcp-tunnel check --config /etc/mcp-tunnel/gateway.toml 2>&1); then
    ok "in the empty root: $out"
else
    fail "mcp-tunnel check in the empty root:"
    echo "$out" | sed 's/^/    | /'
fi

timeout 60 "${runner[@]}" /mcp-tunnel gateway --config /etc/mcp-tunnel/gateway.toml >"$work/gateway.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
if wait_log "$work/gateway.log" 20 'tunnel registered'; then
    ok "gateway in the empty root resolved edge.test from its /etc/hosts and registered: $(grep -m1 -o 'tunnel registered.*' "$work/gateway.log")"
else
    fail "gateway in the empty root did not register within 20s:"
    show_log "$work/gateway.log"
    show_log "$work/edge.log" 5
fi

if ! command -v curl >/dev/null 2>&1; then
    skip "curl not installed: no MCP request through the chrooted gateway"
elif grep -q 'tunnel registered' "$work/gateway.log"; then
    url=https://echo.$domain:$public_port/mcp
    curl_mcp() { # json-body [session-id]: POST to the MCP endpoint through the edge
        curl -sS --max-time 10 --cacert "$work/pki/inner/ca.pem" \
            --resolve "echo.$domain:$public_port:127.0.0.1" \
            -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
            -H 'MCP-Protocol-Version: 2025-06-18' ${2:+-H "Mcp-Session-Id: $2"} \
            -D "$work/headers" -d "$1" "$url"
    }
    init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"static_check","version":"1"}}}'
    marker="static-$$-$RANDOM"
    call='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'$marker'"}}}'
    if r1=$(curl_mcp "$init" 2>&1) && echo "$r1" | grep -q '"serverInfo"'; then
        session=$(tr -d '\r' <"$work/headers" | sed -n 's/^mcp-session-id: //Ip')
        if r2=$(curl_mcp "$call" "$session" 2>&1) && echo "$r2" | grep -q "\"text\":\"$marker\""; then
            ok "MCP initialize + tools/call echo via edge -> chrooted gateway -> upstream.test:$up_port"
        else
            fail "tools/call echo through the chrooted gateway: $r2"
        fi
    else
        fail "MCP initialize through the chrooted gateway: $r1"
        show_log "$work/gateway.log" 5
    fi
fi

if grep -qiE 'panicked|could not initialize' "$work/gateway.log"; then
    fail "the chrooted gateway panicked:"
    show_log "$work/gateway.log"
fi

# Stop the gateway (with unshare, --kill-child takes the chrooted process down too).
kill "$gw_pid" 2>/dev/null
wait "$gw_pid" 2>/dev/null

finish
