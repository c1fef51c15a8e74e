#!/usr/bin/env bash
# Offline checks of the systemd units in deploy/systemd (nothing is started):
#   - `systemd-analyze verify` on every unit (the binary path is pointed at a stub, since
#     verify insists that ExecStart= binaries exist);
#   - `systemd-analyze security --offline` exposure of both services stays <= 2.0;
#   - the gateway unit carries the hardening the deployment docs promise;
#   - TimeoutStopSec= exceeds shutdown_timeout of deploy/systemd/gateway.toml;
#   - with an mcp-tunnel binary (MCPT_BIN or target/release/mcp-tunnel): that config passes
#     `mcp-tunnel check` against a throwaway PKI.
# Without systemd-analyze it prints a SKIP line and exits 0 (apt-get install systemd).
# Ends with "N passed, F failed"; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
units_dir=deploy/systemd
unit=$units_dir/mcp-tunnel-gateway.service

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze not found; install it (apt-get install -y systemd) to verify $units_dir"
    exit 0
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "$(systemd-analyze --version | head -1)"

# Copies of the units with the binary path pointed at a stub.
printf '#!/bin/sh\nexit 0\n' >"$work/mcp-tunnel"
chmod +x "$work/mcp-tunnel"
mkdir -p "$work/units"
for f in "$units_dir"/*.service "$units_dir"/*.timer "$units_dir"/*.path; do
    sed "s#/usr/local/bin/mcp-tunnel#$work/mcp-tunnel#g" "$f" >"$work/units/$(basename "$f")"
done

if out=$(cd "$work/units" && systemd-analyze verify ./*.service ./*.timer ./*.path 2>&1) && [ -z "$out" ]; then
    ok "systemd-analyze verify: $(cd "$work/units" && ls | tr '\n' ' ')"
else
    fail "systemd-analyze verify:"
    echo "$out"
fi

for svc in mcp-tunnel-gateway.service mcp-tunnel-certs-renew.service; do
    # --threshold fails the command when the exposure (x10) is above it.
    if out=$(cd "$work/units" && systemd-analyze security --offline=true --threshold=20 "./$svc" 2>&1); then
        ok "systemd-analyze security $svc: $(echo "$out" | grep -o 'exposure level.*' | sed 's/for [^:]*: //')"
    else
        fail "systemd-analyze security $svc (exposure above 2.0):"
        echo "$out" | grep -E '✗|exposure'
    fi
done

# The gateway unit's promised settings, line by line (exact values).
required=(
    "User=mcp-tunnel"
    "ExecStart=/usr/local/bin/mcp-tunnel gateway --config /etc/mcp-tunnel/gateway.toml"
    'ExecReload=/bin/kill -HUP $MAINPID'
    "Type=notify"
    "WatchdogSec=30s"
    "StateDirectory=mcp-tunnel"
    "LogsDirectory=mcp-tunnel"
    "NoNewPrivileges=yes"
    "ProtectSystem=strict"
    "ProtectHome=yes"
    "PrivateTmp=yes"
    "PrivateDevices=yes"
    "CapabilityBoundingSet="
    "AmbientCapabilities="
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"
    "RestrictNamespaces=yes"
    "LockPersonality=yes"
    "MemoryDenyWriteExecute=yes"
    "SystemCallFilter=@system-service"
    "Restart=on-failure"
    "KillSignal=SIGTERM"
)
missing=()
for line in "${required[@]}"; do
    grep -qxF -- "$line" "$unit" || missing+=("$line")
done
if [ ${#missing[@]} -eq 0 ]; then
    ok "gateway unit has all ${#required[@]} required settings"
else
    fail "gateway unit lacks: ${missing[*]}"
fi

# TimeoutStopSec (seconds) must exceed shutdown_timeout of the shipped config.
to_seconds() { # 45s, 2min, 30 -> seconds (the forms used in these files)
    case "$1" in
    *min) echo $((${1%min} * 60)) ;; *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;;
    esac
}
stop=$(sed -n 's/^TimeoutStopSec=//p' "$unit")
drain=$(sed -n 's/^shutdown_timeout = "\(.*\)"/\1/p' "$units_dir/gateway.toml")
if [ -n "$stop" ] && [ -n "$drain" ] && [ "$(to_seconds "$stop")" -gt "$(to_seconds "$drain")" ]; then
    ok "TimeoutStopSec=$stop > shutdown_timeout $drain"
else
    fail "TimeoutStopSec=$stop must exceed shutdown_timeout ${drain:-?}"
fi

bin=${MCPT_BIN:-target/release/mcp-tunnel}
if [ -x "$bin" ]; then
    pki=$work/pki
    if "$bin" certs init --out "$pki" --tunnel-id acme --tunnel-domain mcp.acme.example \
        --edge-name edge.example.com >/dev/null 2>&1; then
        mkdir -p "$work/etc/mcp-tunnel/certs" "$work/var/lib/mcp-tunnel" "$work/var/log/mcp-tunnel"
        chmod 0700 "$work/var/lib/mcp-tunnel" "$work/var/log/mcp-tunnel"
        cp -r "$pki/edge" "$pki/tunnel" "$work/etc/mcp-tunnel/certs/"
        cp -r "$pki/inner" "$work/var/lib/mcp-tunnel/"
        sed -e "s#\"/etc/#\"$work/etc/#" -e "s#\"/var/#\"$work/var/#" "$units_dir/gateway.toml" >"$work/gateway.toml"
        if out=$("$bin" check --config "$work/gateway.toml" 2>&1); then
            ok "mcp-tunnel check accepts $units_dir/gateway.toml"
        else
            fail "mcp-tunnel check $units_dir/gateway.toml: $out"
        fi
    else
        fail "mcp-tunnel certs init failed"
    fi
else
    echo "SKIP mcp-tunnel check of $units_dir/gateway.toml: no binary at $bin (set MCPT_BIN)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
