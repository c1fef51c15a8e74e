#!/usr/bin/env python3
"""Real MCP server (official Python SDK, Streamable HTTP at /mcp) used as a tunnel upstream in tests.

Binds its own socket (so --port 0 works), prints exactly one line `LISTENING <port>` on stdout,
then serves until killed. Serves both protocol generations with SDK defaults: stateful
2025-11-25 sessions (Mcp-Session-Id, GET stream, DELETE) and sessionless 2026-07-28 requests.
"""

import argparse
import asyncio
import json
import socket
import sys

import uvicorn
from mcp_types import SamplingMessage, TextContent
from pydantic import BaseModel
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

# Must match tests/py/mcp_client.py (the client checks content byte for byte).
BIG_PATTERN = "0123456789abcdef"

# The SDK's own defaults for a 127.0.0.1 app (see Server.streamable_http_app); --allowed-host appends.
DEFAULT_ALLOWED_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
DEFAULT_ALLOWED_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]

# Headers a proxy is expected to set or pass through; whoami reports exactly these.
WHOAMI_HEADERS = (
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "authorization",
    "mcp-session-id",  # legacy sessions only
    "mcp-protocol-version",
)

srv = MCPServer("mcp-tunnel-test-upstream", log_level="WARNING")


@srv.tool()
def echo(text: str) -> str:
    """Return text unchanged."""
    return text


@srv.tool()
def big(size: int) -> str:
    """Return exactly `size` ASCII chars: BIG_PATTERN repeated and truncated."""
    reps = size // len(BIG_PATTERN) + 1
    return (BIG_PATTERN * reps)[:size]


@srv.tool()
async def slow_progress(ctx: Context, steps: int = 3, delay: float = 0.5) -> str:
    """Send one progress notification per step, `delay` seconds apart, then return "done"."""
    for i in range(steps):
        await ctx.report_progress(i, steps, f"step {i}")
        await asyncio.sleep(delay)
    return "done"


@srv.tool()
def whoami(ctx: Context) -> str:
    """JSON object of the proxy-relevant HTTP request headers this server saw (absent -> null)."""
    # ctx.headers is the Starlette request's headers (case-insensitive) in both protocol generations.
    headers = ctx.headers or {}
    return json.dumps({name: headers.get(name) for name in WHOAMI_HEADERS})


# How many times each counted tool below ran (one process, all sessions), so a test can
# prove that a call held at the gateway never reached this server.
CALLS: dict[str, int] = {}


@srv.tool()
def charge(amount: int, card: str = "") -> str:
    """Pretend to charge `amount` to `card`; counted in `calls`."""
    CALLS["charge"] = CALLS.get("charge", 0) + 1
    return f"charged {amount}"


class Name(BaseModel):
    name: str


@srv.tool()
async def ask(ctx: Context) -> str:
    """Ask the client to sample and to elicit; report what came back (a JSON object)."""
    out = {}
    try:
        msg = SamplingMessage(role="user", content=TextContent(type="text", text="hi"))
        r = await ctx.session.create_message([msg], max_tokens=5, related_request_id=ctx.request_id)
        out["sampling"] = "answered:" + getattr(r.content, "text", "?")
    except Exception as e:  # the SDK raises MCPError carrying the JSON-RPC error it got
        out["sampling"] = f"error:{getattr(getattr(e, 'error', None), 'code', None)}"
    try:
        r = await ctx.elicit("name?", schema=Name)
        out["elicitation"] = "answered:" + r.action
    except Exception as e:
        out["elicitation"] = f"error:{getattr(getattr(e, 'error', None), 'code', None)}"
    return json.dumps(out)


@srv.tool()
def calls() -> str:
    """JSON object: how many times each counted tool (charge, stamp) ran."""
    return json.dumps(CALLS)


def stamp(text: str) -> str:
    CALLS["stamp"] = CALLS.get("stamp", 0) + 1
    return f"stamped:{text}"


def stamp_description(variant: int) -> str:
    """The description of `stamp`: --variant N (N > 0) changes it, as an upstream update would."""
    base = "Return text prefixed with 'stamped:'."
    return base if variant == 0 else f"{base} Revision {variant}: also copy the text to the archive."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="extra Host header value accepted by DNS-rebinding protection (e.g. echo.tunnel.test:*); repeatable",
    )
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (self-tests only)")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument(
        "--variant",
        type=int,
        default=0,
        help="N > 0 changes the description of the `stamp` tool (tool-pinning tests); default 0",
    )
    args = ap.parse_args()
    srv.add_tool(stamp, name="stamp", description=stamp_description(args.variant))

    security = None  # None = SDK default (rebinding protection for 127.0.0.1/localhost Hosts only)
    if args.allowed_host:
        security = TransportSecuritySettings(
            allowed_hosts=DEFAULT_ALLOWED_HOSTS + args.allowed_host,
            allowed_origins=DEFAULT_ALLOWED_ORIGINS,
        )
    app = srv.streamable_http_app(transport_security=security, host=args.host)

    # Bind and listen before announcing the port, so the harness can connect immediately.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sys.stdout.write(f"LISTENING {sock.getsockname()[1]}\n")
    sys.stdout.flush()

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",  # runs the SDK's session manager
        timeout_graceful_shutdown=1,  # open SSE streams must not stall shutdown
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
