#!/usr/bin/env bash
# End-to-end check of deploy/docker/Dockerfile.prebuilt and deploy/compose:
#   1. builds the static binary (scripts/build-static.sh --strip, or MCPT_STATIC_BIN) and an
#      image from Dockerfile.prebuilt with a context holding only that binary; checks the
#      image (one file, user 65532, runs with a read-only root, no network, no capabilities);
#   2. generates a throwaway PKI with `certs init` for the tunnel id and domain of
#      deploy/compose/config/*.toml (edge name `edge`, the compose service name);
#   3. `docker-compose --profile edge up -d` under a unique project name (the edge's public
#      port is published on a free 127.0.0.1 port Docker picks), waits for the gateway's
#      "tunnel registered";
#   4. runs real MCP sessions from the host through the edge's published 127.0.0.1 port to
#      both MCP servers with the project's Python client (tests/py/mcp_client.py, official
#      MCP SDK; curl if target/py-venv is missing), and a request for an unrouted name;
#   5. checks the topology with `docker inspect`: the internal network is internal, the MCP
#      servers are only on it, only the edge publishes a port (on 127.0.0.1), every
#      container is read-only, unprivileged, without capabilities, with read-only mounts,
#      and the edge has no inner-TLS key;
#   6. probes isolation from inside the containers' network namespaces (as root, with
#      nsenter and the host's bash/python3; the scratch image has no shell or probe tool):
#      the edge can neither connect to nor resolve the MCP servers, the MCP servers cannot
#      reach the edge network, the gateway can reach them (control), and the gateway has
#      no listening TCP socket at all;
#   7. tears the stack down and checks that no container, network or image of the run is
#      left.
# On failure, Ctrl-C or SIGTERM (`timeout`) the same teardown runs from an exit trap
# (containers and networks also by their project label, in case Compose itself failed);
# each step has a time limit. Only 127.0.0.1 and the test's own container addresses are
# contacted. Binary: as in static_check.sh (MCPT_STATIC_BIN, else build-static.sh).
# Without a running Docker engine (or Compose) it prints a SKIP line and exits 0;
# `compose_check.sh --prereqs` only tells (exit 0/1).
# Ends with "N passed, F failed"; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
compose_dir=deploy/compose

if ! command -v docker >/dev/null 2>&1 || ! timeout 20 docker info >/dev/null 2>&1; then
    echo "SKIP: no running Docker engine (docker info failed); compose_check needs one"
    [ "${1:-}" = --prereqs ] && exit 1
    exit 0
fi
if command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
elif timeout 20 docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    echo "SKIP: neither docker-compose nor the docker compose plugin is installed"
    [ "${1:-}" = --prereqs ] && exit 1
    exit 0
fi
[ "${1:-}" = --prereqs ] && exit 0

. tests/deploy/lib.sh

project=mcptcheck$$$RANDOM
image=mcp-tunnel:compose-check-$project
env_file=$work/compose.env
: >"$env_file"
dc() { (cd "$compose_dir" && timeout "${DC_TIMEOUT:-120}" "${compose[@]}" -p "$project" --env-file "$env_file" --profile edge "$@"); }
label=mcpt-compose-check=$project
# What this run created, by label: Compose labels its containers and networks with the
# project; the one `docker run` below carries $label.
leftovers() {
    {
        docker ps -aq --filter "label=com.docker.compose.project=$project"
        docker ps -aq --filter "label=$label"
        docker network ls -q --filter "label=com.docker.compose.project=$project"
        docker images -q "$image"
    } 2>/dev/null | sort -u | tr '\n' ' '
}
teardown() {
    if [ "$failed" -gt 0 ]; then
        echo "logs of $project:"
        DC_TIMEOUT=30 dc logs --no-color --tail 30 2>&1 | show 60
    fi
    echo "teardown: ${compose[*]} -p $project down; docker rmi $image"
    DC_TIMEOUT=60 dc down -v --remove-orphans -t 5 >/dev/null 2>&1
    # Whatever Compose did not remove (e.g. it was killed half-way).
    { docker ps -aq --filter "label=com.docker.compose.project=$project"; docker ps -aq --filter "label=$label"; } 2>/dev/null |
        xargs -r timeout 60 docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=com.docker.compose.project=$project" 2>/dev/null |
        xargs -r timeout 60 docker network rm >/dev/null 2>&1
    timeout 60 docker rmi -f "$image" >/dev/null 2>&1
}
torn_down=0
on_exit '[ "$torn_down" = 1 ] || teardown'

# --- 1. static binary and image ----------------------------------------------------------
static_binary

mkdir "$work/ctx"
cp "$bin" "$work/ctx/mcp-tunnel"
t0=$(now)
if out=$(timeout 300 docker build --force-rm -f deploy/docker/Dockerfile.prebuilt -t "$image" "$work/ctx" 2>&1); then
    size=$(docker image inspect -f '{{.Size}}' "$image")
    ok "image $image from Dockerfile.prebuilt in $(since "$t0"): $((size / 1024 / 1024)) MiB ($size bytes)"
else
    echo "$out" | show
    fail "docker build -f deploy/docker/Dockerfile.prebuilt"
    finish
fi

cfg=$(docker image inspect -f '{{.Config.User}}|{{json .Config.Entrypoint}}' "$image")
if [ "$cfg" = '65532:65532|["/mcp-tunnel"]' ]; then
    ok "image runs /mcp-tunnel as 65532:65532"
else
    fail "image user|entrypoint is $cfg, expected 65532:65532|[\"/mcp-tunnel\"]"
fi

# The image's layers hold exactly one file.
mkdir "$work/save"
if timeout 120 docker save "$image" | tar -x -C "$work/save" 2>/dev/null; then
    # manifest.json names the layer tarballs (.../layer.tar, or blobs/sha256/... in the OCI
    # layout that newer engines save).
    layers=$(grep -o '"Layers":\[[^]]*\]' "$work/save/manifest.json" | grep -o '"[^"]*"' | grep -v '"Layers"' | tr -d '"')
    files=$(for l in $layers; do tar -tf "$work/save/$l"; done | grep -v '/$' | sort -u | tr '\n' ' ')
    if [ "$files" = "mcp-tunnel " ]; then
        ok "image content: only /mcp-tunnel"
    else
        fail "image holds more than /mcp-tunnel: $files"
    fi
else
    fail "docker save $image"
fi
rm -rf "$work/save"

if out=$(timeout 30 docker run --rm --label "$label" --read-only --cap-drop ALL --security-opt no-new-privileges:true \
    --network none "$image" --version 2>&1); then
    ok "docker run --read-only --cap-drop ALL --network none: $out"
else
    fail "image does not run: $out"
fi

# --- 2. PKI for the shipped configs ------------------------------------------------------
domain=$(sed -n 's/^tunnel_domain *= *"\(.*\)"/\1/p' "$compose_dir/config/gateway.toml")
tunnel_id=$(sed -n 's/^\[tunnels\.\([A-Za-z0-9_-]*\)\].*/\1/p' "$compose_dir/config/edge.toml" | head -1)
certs=$work/certs
if ! out=$("$bin" certs init --out "$certs" --tunnel-id "$tunnel_id" --tunnel-domain "$domain" --edge-name edge 2>&1); then
    echo "$out" | show
    fail "certs init --tunnel-id $tunnel_id --tunnel-domain $domain"
    finish
fi
# Keys are 0600: give them to the containers' user. As root, to the image's own 65532;
# otherwise run the containers as the current user, who owns the files.
if [ "$(id -u)" = 0 ]; then
    chown -R 65532:65532 "$certs"
    user=65532:65532
else
    user=$(id -u):$(id -g)
fi
chmod 0755 "$work"

# --- 3. compose up -----------------------------------------------------------------------
cat >"$env_file" <<EOF
MCPT_IMAGE=$image
MCPT_CERTS=$certs
MCPT_USER=$user
MCPT_EDGE_PUBLIC_PORT=
MCPT_LOG=info
EOF
echo "compose: ${compose[*]} -p $project --profile edge (tunnel $tunnel_id, domain $domain)"

t0=$(now)
if out=$(dc up -d 2>&1); then
    ok "compose up -d (gateway, mcp-tickets, mcp-wiki, edge) in $(since "$t0")"
else
    echo "$out" | show
    fail "compose up"
    finish
fi

# MCPT_EDGE_PUBLIC_PORT is empty: Docker picked a free loopback port.
published=$(DC_TIMEOUT=20 dc port edge 8443 2>/dev/null | tail -n 1)
port=${published##*:}
if [[ "$published" == 127.0.0.1:* && "$port" =~ ^[0-9]+$ ]]; then
    ok "the edge's public port 8443 is published on $published"
else
    fail "dc port edge 8443: '$published', expected 127.0.0.1:<port>"
    finish
fi

registered=0
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    # Into a file first: with pipefail, `grep -q` closing the pipe early could fail the test.
    DC_TIMEOUT=20 dc logs --no-color gateway >"$work/gateway.log" 2>/dev/null
    if grep -q 'tunnel registered' "$work/gateway.log"; then
        registered=1
        break
    fi
    sleep 0.1
done
if [ "$registered" = 1 ]; then
    ok "gateway registered $(since "$t0") after up: $(grep -m1 -o 'tunnel registered.*' "$work/gateway.log")"
else
    fail "gateway did not log 'tunnel registered' within 60s"
    finish
fi

healthy=""
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
    gw_id=$(DC_TIMEOUT=20 dc ps -q gateway 2>/dev/null | head -1)
    healthy=$(docker inspect -f '{{.State.Health.Status}}' "$gw_id" 2>/dev/null)
    [ "$healthy" = healthy ] && break
    sleep 1
done
if [ "$healthy" = healthy ]; then
    ok "gateway healthcheck (mcp-tunnel probe ... ready inside the container): healthy $(since "$t0") after up"
else
    fail "gateway health status '$healthy' 60s after registering, expected healthy"
fi

# --- 4. MCP sessions through the published edge port ------------------------------------
py=${MCPT_PYTHON:-$repo/target/py-venv/bin/python}
if [ -x "$py" ] && "$py" -c 'import mcp' 2>/dev/null; then
    for route in tickets wiki; do
        host=$route.$domain
        marker="compose-$route-$$-$RANDOM"
        # tests/py/mcp_client.py expects the tools of tests/py/mcp_server.py; the example
        # server has echo, add and countdown.
        out=$(timeout 90 "$py" - --url "https://$host:$port/mcp" --ca "$certs/inner/ca.pem" \
            --resolve "$host=127.0.0.1" --timeout 30 basic --marker "$marker" 2>&1 <<'EOF'
import sys
sys.path.insert(0, "tests/py")
import mcp_client
mcp_client.EXPECTED_TOOLS = {"echo", "add", "countdown"}
sys.argv = ["mcp_client.py"] + sys.argv[1:]
mcp_client.main()
EOF
        )
        last=$(echo "$out" | tail -n 1)
        if echo "$last" | grep -q '"ok": true' && echo "$last" | grep -q "\"result\": \"$marker\""; then
            ok "MCP session (Python SDK) https://$host:$port/mcp -> mcp-$route: $last"
        else
            echo "$out" | show
            fail "MCP session to $host"
        fi
    done
elif command -v curl >/dev/null 2>&1; then
    info "no Python MCP SDK at $py (scripts/test.sh creates target/py-venv): using curl"
    for route in tickets wiki; do
        host=$route.$domain
        marker="compose-$route-$$-$RANDOM"
        mcp() {
            curl -sS --max-time 10 --cacert "$certs/inner/ca.pem" --resolve "$host:$port:127.0.0.1" \
                -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
                ${2:+-H "Mcp-Session-Id: $2"} -D "$work/headers" -d "$1" "https://$host:$port/mcp"
        }
        r1=$(mcp '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"compose_check","version":"1"}}}' 2>&1)
        session=$(tr -d '\r' <"$work/headers" 2>/dev/null | sed -n 's/^mcp-session-id: //Ip')
        r2=$(mcp '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'"$marker"'"}}}' "$session" 2>&1)
        if echo "$r1" | grep -q serverInfo && echo "$r2" | grep -q "\"text\":\"$marker\""; then
            ok "MCP initialize + tools/call (curl) https://$host:$port/mcp -> mcp-$route"
        else
            fail "MCP via curl to $host: $r1 / $r2"
        fi
    done
else
    fail "neither the Python MCP SDK ($py) nor curl is available for the MCP session"
fi

if command -v curl >/dev/null 2>&1; then
    # A GET: a POST with a body to an unrouted name sometimes ends in an HTTP/2 stream
    # error instead of the 404 (seen with curl 7.88), which is not what this step checks.
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$certs/inner/ca.pem" \
        --resolve "nope.$domain:$port:127.0.0.1" "https://nope.$domain:$port/mcp")
    if [ "$code" = 404 ]; then
        ok "unrouted name nope.$domain: the gateway answers 404"
    else
        fail "unrouted name nope.$domain: HTTP $code, expected 404"
    fi
fi

# --- 5. topology -------------------------------------------------------------------------
cid() { DC_TIMEOUT=20 dc ps -q "$1" 2>/dev/null | head -1; }
declare -A id
for s in gateway mcp-tickets mcp-wiki edge; do
    id[$s]=$(cid "$s")
    [ -n "${id[$s]}" ] || fail "no container for service $s"
done
net_internal=${project}_internal
net_edge=${project}_edge

flags=$(docker network inspect -f '{{.Internal}}' "$net_internal" "$net_edge" 2>&1 | tr '\n' ' ')
if [ "$flags" = "true false " ]; then
    ok "network $net_internal is internal: true; $net_edge is not (the gateway's way out)"
else
    fail "network Internal flags (internal, edge): $flags, expected true false"
fi

nets() { docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$1" | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' '; }
expect_nets() { # service expected-networks...
    local s=$1 got want
    shift
    got=$(nets "${id[$s]}")
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    if [ "$got" = "$want" ]; then ok "$s is attached to: $got"; else fail "$s is attached to: $got, expected: $want"; fi
}
expect_nets mcp-tickets "$net_internal"
expect_nets mcp-wiki "$net_internal"
expect_nets gateway "$net_internal" "$net_edge"
expect_nets edge "$net_edge"

ports() { docker inspect -f '{{range $p, $b := .NetworkSettings.Ports}}{{if $b}}{{range $b}}{{$p}}={{.HostIp}}:{{.HostPort}} {{end}}{{end}}{{end}}' "$1"; }
published=""
for s in gateway mcp-tickets mcp-wiki; do published+=$(ports "${id[$s]}"); done
edge_ports=$(ports "${id[edge]}")
if [ -z "$published" ] && [ "$edge_ports" = "8443/tcp=127.0.0.1:$port " ]; then
    ok "only the edge publishes a port: $edge_ports(gateway and MCP servers: none)"
else
    fail "published ports: gateway+MCP servers '$published', edge '$edge_ports' (expected none, and 8443/tcp=127.0.0.1:$port)"
fi

for s in gateway mcp-tickets mcp-wiki edge; do
    h=$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}|{{.Config.User}}|{{json .HostConfig.CapDrop}}|{{json .HostConfig.SecurityOpt}}|{{range .Mounts}}{{.RW}},{{end}}' "${id[$s]}")
    case "$h" in
    "true|$user|"*ALL*"|"*no-new-privileges*"|"*true,*) fail "$s: a writable mount: $h" ;;
    "true|$user|"*ALL*"|"*no-new-privileges*) ok "$s: read-only root, user $user, cap_drop ALL, no-new-privileges, read-only mounts" ;;
    *) fail "$s hardening: $h" ;;
    esac
done

edge_mounts=$(docker inspect -f '{{range .Mounts}}{{.Destination}} {{end}}' "${id[edge]}")
gw_mounts=$(docker inspect -f '{{range .Mounts}}{{.Destination}} {{end}}' "${id[gateway]}")
if [[ "$edge_mounts" != *inner/* && "$edge_mounts" != *gateway.key* && "$gw_mounts" != *ca.key* && "$gw_mounts" != *edge/server.key* ]]; then
    ok "secrets split: edge has no inner/ or gateway key, gateway has no CA key or edge key"
else
    fail "mounts: edge [$edge_mounts] gateway [$gw_mounts]"
fi

# --- 6. isolation probes -----------------------------------------------------------------
ip_on() { docker inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }
tickets_ip=$(ip_on "${id[mcp-tickets]}" "$net_internal")
wiki_ip=$(ip_on "${id[mcp-wiki]}" "$net_internal")
edge_ip=$(ip_on "${id[edge]}" "$net_edge")
gw_edge_ip=$(ip_on "${id[gateway]}" "$net_edge")
info "addresses: mcp-tickets $tickets_ip, mcp-wiki $wiki_ip (internal); edge $edge_ip, gateway $gw_edge_ip (edge network)"

# From the host (not asserted: the host has an address on every bridge, internal or not).
if timeout 3 bash -c "exec 3<>/dev/tcp/$tickets_ip/8080" 2>/dev/null; then
    info "host -> mcp-tickets $tickets_ip:8080 connects: the Docker host itself can reach containers on an internal network (expected; 'internal' blocks forwarding between networks and to the outside, not the host)"
else
    info "host -> mcp-tickets $tickets_ip:8080 does not connect on this engine"
fi

pid_of() { docker inspect -f '{{.State.Pid}}' "$1"; }
if [ "$(id -u)" != 0 ] || ! command -v nsenter >/dev/null 2>&1 || [ ! -e "/proc/$(pid_of "${id[edge]}")/ns/net" ]; then
    info "LIMITATION: no isolation probes from inside the containers (needs root, nsenter and the engine's processes in this PID namespace). The scratch image has no shell and mcp-tunnel has no connect-probe subcommand, so isolation was checked only through docker inspect above."
else
    # TCP connect from a container's network namespace, with the host's bash.
    connects() { nsenter --net="/proc/$(pid_of "$1")/ns/net" timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; }
    # A-record lookup via the container's Docker DNS (127.0.0.11), with the host's python3.
    resolve() {
        nsenter --net="/proc/$(pid_of "$1")/ns/net" timeout 5 python3 - "$2" 2>/dev/null <<'EOF'
import random, socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, ("127.0.0.11", 53))
r = s.recv(1500)
ips, i = [], len(q)
for _ in range(struct.unpack(">H", r[6:8])[0]):
    i = i + 2 if r[i] & 0xC0 == 0xC0 else r.index(b"\0", i) + 1
    t, _, _, n = struct.unpack(">HHIH", r[i:i + 10])
    i += 10
    if t == 1 and n == 4:
        ips.append(socket.inet_ntoa(r[i:i + 4]))
    i += n
print(" ".join(ips) if ips else "none")
EOF
    }
    if connects "${id[gateway]}" "$tickets_ip" 8080 && connects "${id[gateway]}" "$wiki_ip" 8080; then
        ok "control: from the gateway's network namespace mcp-tickets and mcp-wiki :8080 connect"
    else
        fail "control: the gateway's network namespace cannot connect to the MCP servers"
    fi
    if ! connects "${id[edge]}" "$tickets_ip" 8080 && ! connects "${id[edge]}" "$wiki_ip" 8080; then
        ok "from the edge's network namespace, $tickets_ip:8080 and $wiki_ip:8080 (MCP servers) do not connect"
    else
        fail "the edge's network namespace can connect to an MCP server"
    fi
    if ! connects "${id[mcp-tickets]}" "$edge_ip" 8443 && ! connects "${id[mcp-tickets]}" "$edge_ip" 7844 \
        && ! connects "${id[mcp-tickets]}" "$gw_edge_ip" 8443; then
        ok "from mcp-tickets' network namespace, the edge network ($edge_ip:8443, :7844, $gw_edge_ip) does not connect"
    else
        fail "mcp-tickets can connect into the edge network"
    fi
    if command -v python3 >/dev/null 2>&1; then
        from_gw=$(resolve "${id[gateway]}" mcp-tickets)
        from_edge=$(resolve "${id[edge]}" mcp-tickets)
        if [ "$from_gw" = "$tickets_ip" ] && [ "$from_edge" = none ]; then
            ok "Docker DNS: mcp-tickets resolves to $tickets_ip for the gateway, not at all for the edge"
        else
            fail "Docker DNS for mcp-tickets: gateway '$from_gw' (want $tickets_ip), edge '$from_edge' (want none)"
        fi
    fi
    gw_ns=/proc/$(pid_of "${id[gateway]}")/ns/net
    if command -v ss >/dev/null 2>&1; then
        # Loopback listeners are unreachable from outside the namespace (Docker's embedded
        # DNS listens on 127.0.0.11 in every container on a user-defined network).
        all_listen=$(nsenter --net="$gw_ns" ss -Htln 2>&1)
        tcp_listen=$(echo "$all_listen" | awk 'NF && $4 !~ /^(127\.|\[::1\]:)/')
        if [ -z "$tcp_listen" ]; then
            ok "the gateway's network namespace has no TCP listener outside loopback ($(echo "$all_listen" | awk 'NF {print $4}' | tr '\n' ' ')): nothing on the edge or internal network can connect to it"
        else
            fail "the gateway listens on TCP: $(echo $tcp_listen)"
        fi
        udp=$(nsenter --net="$gw_ns" ss -Huan 2>/dev/null | awk '{print $4 "<->" $5}' | tr '\n' ' ')
        info "gateway UDP sockets (QUIC client endpoints dialing the edge; they accept no new connection): ${udp:-none}"
    else
        info "ss not installed: the gateway's listening sockets were not listed"
    fi
    # The loopback admin endpoint from inside the gateway's namespace: the MCP sessions
    # above are counted (docs/metrics.md).
    if command -v curl >/dev/null 2>&1; then
        metrics=$(nsenter --net="$gw_ns" curl -s --max-time 5 http://127.0.0.1:9090/metrics 2>&1)
        registered_metric=$(echo "$metrics" | grep -c '^mcp_tunnel_gateway_tunnel_connections{transport="quic",state="registered"} 1$')
        ok_requests=$(echo "$metrics" | awk '/^mcp_tunnel_gateway_requests_total\{route="(tickets|wiki)\./ && /status="200"/ {n += $NF} END {print n + 0}')
        if [ "$registered_metric" = 1 ] && [ "$ok_requests" -ge 2 ]; then
            ok "gateway /metrics (loopback, from its namespace): tunnel registered over QUIC, $ok_requests MCP requests answered 200"
        else
            echo "$metrics" | grep -E 'tunnel_connections|requests_total' | show
            fail "gateway /metrics does not show the registered tunnel and the MCP requests"
        fi
    fi
    info "the probes run the host's bash/python3 inside the containers' network namespaces (nsenter --net): they test Docker's network policy, not the image, which has no shell or probe tool"
fi

DC_TIMEOUT=30 dc logs --no-color >"$work/all.log" 2>&1
if grep -qiE 'panicked|ERROR' "$work/all.log"; then
    fail "errors in the container logs:"
    grep -iE 'panicked|ERROR' "$work/all.log" | show 10
else
    ok "no ERROR or panic in the logs of the four containers"
fi

# --- 7. teardown -------------------------------------------------------------------------
t0=$(now)
teardown
torn_down=1
left=$(leftovers)
if [ -z "$left" ]; then
    ok "teardown in $(since "$t0"): no container, network or image of $project left"
else
    fail "left after teardown: $left"
fi

finish
