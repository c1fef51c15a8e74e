#!/usr/bin/env python3
"""Real stdio MCP server (official Python SDK) behind the gateway's stdio bridge in tests.

Speaks newline-delimited JSON-RPC on stdin/stdout via `MCPServer.run("stdio")`. Before the
SDK takes over stdout it prints one line that is not JSON (many real servers print a banner),
which the bridge must skip. Tools:
- echo(text), add(a, b): plain results.
- pid(): this process's PID, so tests can prove one process per session and that it is killed.
- env(names): JSON object of those environment variables (null if unset): the cleared environment.
- slow_progress(steps, delay): one progress notification per step, then "done".
- sleep(seconds): returns after `seconds` (timeouts).
- crash(code): exits the process at once with `code` (child crash while a request is pending).
- probe(socket_path, request, read, write_dir): what a hostile tool tries: send one request line
  to a Unix socket (the gateway's control socket) and report the reply, read files (keys),
  create a file in a directory (state_dir); also reports this process's uid/gid/groups.
- run(argv): runs a subprocess (a grandchild of the gateway) and reports its exit code and output.
- alloc(mib): allocates that much memory; "MemoryError" when a limit refuses it.
- burn(seconds): spins on the CPU for that long (wall time).
"""

import asyncio
import json
import os
import subprocess
import sys
import time

from mcp.server.mcpserver import Context, MCPServer
from probe import probe_report

srv = MCPServer("mcp-tunnel-test-stdio", log_level="WARNING")


@srv.tool()
def echo(text: str) -> str:
    """Return text unchanged."""
    return text


@srv.tool()
def add(a: int, b: int) -> int:
    """Return a + b."""
    return a + b


@srv.tool()
def pid() -> int:
    """This server process's PID."""
    return os.getpid()


@srv.tool()
def env(names: list[str]) -> str:
    """JSON object: each of `names` -> its value in this process's environment, or null."""
    return json.dumps({name: os.environ.get(name) for name in names})


@srv.tool()
async def slow_progress(ctx: Context, steps: int = 3, delay: float = 0.5) -> str:
    """Send one progress notification per step, `delay` seconds apart, then return "done"."""
    for i in range(steps):
        await ctx.report_progress(i, steps, f"step {i}")
        await asyncio.sleep(delay)
    return "done"


@srv.tool()
async def sleep(seconds: float) -> str:
    """Return "slept" after `seconds`."""
    await asyncio.sleep(seconds)
    return "slept"


@srv.tool()
def crash(code: int = 3) -> str:
    """Exit the process immediately, without answering."""
    os._exit(code)


@srv.tool()
def probe(socket_path: str = "", request: str = "", read: list[str] | None = None, write_dir: str = "") -> str:
    """JSON report of what this process could do: socket reply, file reads, a file write."""
    return json.dumps(probe_report(socket_path, request, read or [], write_dir))


@srv.tool()
def run(argv: list[str]) -> str:
    """Run argv as a subprocess; JSON {code, stdout, stderr}."""
    p = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return json.dumps({"code": p.returncode, "stdout": p.stdout.decode(errors="replace"),
                       "stderr": p.stderr.decode(errors="replace")})


@srv.tool()
def alloc(mib: int) -> str:
    """Allocate and touch `mib` MiB; "MemoryError" if refused."""
    try:
        block = bytearray(mib << 20)
        return f"allocated {len(block) >> 20} MiB"
    except MemoryError:
        return "MemoryError"


@srv.tool()
def burn(seconds: float) -> str:
    """Spin on the CPU for `seconds` of wall time."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return f"burned {n}"


def main() -> None:
    # Not JSON: the bridge must log and skip it, not fail the session.
    sys.stdout.write("stdio_server: starting (this banner line is not JSON-RPC)\n")
    sys.stdout.flush()
    srv.run("stdio")


if __name__ == "__main__":
    main()
