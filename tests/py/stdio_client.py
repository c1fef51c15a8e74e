#!/usr/bin/env python3
"""Real MCP client (official Python SDK) for the stdio bridge tests (tests/it/stdio_bridge.rs).

Plain HTTP to a loopback URL; the server behind it is tests/py/stdio_server.py run by the bridge.
Prints one JSON object per line; the last line is the result {"ok": true, ...} (exit 0) or
{"ok": false, "error": ...} (exit 1). Scenario `hold` also prints an early line and then waits
for a line on stdin before going on.

Every HTTP exchange is recorded as "METHOD mcp-method-header -> status [retry-after]" in
"http" so the Rust side can check what went over the wire.
"""

import argparse
import json
import os
import sys
import threading
import time
from contextlib import asynccontextmanager

import anyio
import httpx2
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

HTTP: list[str] = []


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def http_client(timeout: float) -> httpx2.AsyncClient:
    async def record(response: httpx2.Response) -> None:
        req = response.request
        entry = f"{req.method} {req.headers.get('mcp-method', '-')} -> {response.status_code}"
        if "retry-after" in response.headers:
            entry += f" retry-after={response.headers['retry-after']}"
        if len(HTTP) < 100:
            HTTP.append(entry)

    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(30, read=timeout),
        trust_env=False,  # never route test traffic via an environment proxy
        event_hooks={"response": [record]},
    )


@asynccontextmanager
async def legacy(args):
    """ClientSession + initialize: the 2025-11-25 handshake era (Mcp-Session-Id, GET, DELETE)."""
    async with http_client(args.timeout) as hc:
        async with streamable_http_client(args.url, http_client=hc) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def text(result) -> str:
    if result.is_error:
        raise AssertionError(f"tool returned error: {result.content}")
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def error_fields(e: BaseException) -> dict:
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return {"error_type": type(e).__name__, "error_code": getattr(e, "code", None), "error_message": str(e)}


async def scenario_sessions(args) -> dict:
    """N sessions open at the same time; each reports its server's PID."""
    pids: list[int] = []
    all_open = anyio.Event()

    async def one() -> None:
        async with legacy(args) as s:
            pids.append(int(text(await s.call_tool("pid", {}))))
            if int(text(await s.call_tool("add", {"a": 2, "b": 3}))) != 5:
                raise AssertionError("add(2, 3) != 5")
            if len(pids) == args.n:
                all_open.set()
            await all_open.wait()  # every session still open: no PID can be recycled yet

    async with anyio.create_task_group() as tg:
        for _ in range(args.n):
            tg.start_soon(one)
    return {"pids": pids}


async def scenario_progress(args) -> dict:
    times, events = [], []

    async def on_progress(progress, total, message):
        times.append(round(time.monotonic() - t0, 4))
        events.append({"progress": progress, "total": total, "message": message})

    async with legacy(args) as s:
        t0 = time.monotonic()
        result = await s.call_tool(
            "slow_progress", {"steps": args.steps, "delay": args.delay}, progress_callback=on_progress
        )
        return {"progress_times": times, "progress": events, "result_time": round(time.monotonic() - t0, 4),
                "result": text(result)}


async def scenario_modern(args) -> dict:
    """mcp.Client in its default mode "auto": probes server/discover first."""
    async with http_client(args.timeout) as hc:
        async with Client(streamable_http_client(args.url, http_client=hc), mode="auto", cache=None) as c:
            tools = sorted(t.name for t in (await c.list_tools()).tools)
            echoed = text(await c.call_tool("echo", {"text": "via-auto"}))
            return {"protocol_version": c.protocol_version, "tools": tools, "result": echoed}


async def scenario_cap(args) -> dict:
    """With one session open, a second initialize must be refused."""
    async with legacy(args) as first:
        pid = int(text(await first.call_tool("pid", {})))
        try:
            async with legacy(args):
                second = "opened"
        except Exception as e:  # the refusal is the expected outcome
            second = error_fields(e)
        again = text(await first.call_tool("echo", {"text": "still-alive"}))
    return {"pid": pid, "second": second, "first_after": again}


async def scenario_hold(args) -> dict:
    """Open a session, report its PID, wait for a stdin line, then try one more call."""
    async with legacy(args) as s:
        emit({"pid": int(text(await s.call_tool("pid", {})))})
        await anyio.to_thread.run_sync(sys.stdin.readline)
        try:
            return {"after": text(await s.call_tool("echo", {"text": "late"}))}
        except Exception as e:
            return {"after": error_fields(e)}


async def scenario_crash(args) -> dict:
    async with legacy(args) as s:
        pid = int(text(await s.call_tool("pid", {})))
        t0 = time.monotonic()
        try:
            crash = {"result": text(await s.call_tool("crash", {"code": 3}))}
        except Exception as e:
            crash = error_fields(e)
        crash["elapsed"] = round(time.monotonic() - t0, 3)
        try:
            after = {"result": text(await s.call_tool("echo", {"text": "after-crash"}))}
        except Exception as e:
            after = error_fields(e)
    return {"pid": pid, "crash": crash, "after": after}


async def scenario_call(args) -> dict:
    """One tool call with JSON arguments; its text or its error."""
    async with legacy(args) as s:
        t0 = time.monotonic()
        try:
            out = {"result": text(await s.call_tool(args.tool, json.loads(args.arguments)))}
        except Exception as e:
            out = error_fields(e)
        out["elapsed"] = round(time.monotonic() - t0, 3)
        return out


SCENARIOS = {
    "sessions": scenario_sessions,
    "progress": scenario_progress,
    "modern": scenario_modern,
    "cap": scenario_cap,
    "hold": scenario_hold,
    "crash": scenario_crash,
    "call": scenario_call,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--timeout", type=float, default=60, help="overall limit in seconds")
    sub = ap.add_subparsers(dest="scenario", required=True)
    sub.add_parser("sessions").add_argument("--n", type=int, default=2)
    p = sub.add_parser("progress")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--delay", type=float, default=0.5)
    for name in ("modern", "cap", "hold", "crash"):
        sub.add_parser(name)
    p = sub.add_parser("call")
    p.add_argument("--tool", required=True)
    p.add_argument("--arguments", default="{}")
    args = ap.parse_args()

    def watchdog():
        emit({"ok": False, "error": f"watchdog: hard timeout after {args.timeout + 10}s", "http": HTTP})
        os._exit(1)

    timer = threading.Timer(args.timeout + 10, watchdog)
    timer.daemon = True
    timer.start()

    async def run():
        with anyio.fail_after(args.timeout):
            return await SCENARIOS[args.scenario](args)

    try:
        fields = anyio.run(run)
    except Exception as e:  # any failure must become the JSON line
        emit({"ok": False, **error_fields(e), "error": error_fields(e)["error_message"], "http": HTTP})
        sys.exit(1)
    emit({"ok": True, **fields, "http": HTTP})
    sys.exit(0)


if __name__ == "__main__":
    main()
