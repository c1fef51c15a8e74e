#!/usr/bin/env python3
"""Real MCP client (official Python SDK) driven by the Rust test harness.

Runs one scenario against --url and prints exactly one JSON object as the last stdout line:
{"ok": true, "scenario": ..., ...} with exit code 0, or {"ok": false, "error": ...} with exit 1.

--mode legacy: ClientSession + initialize (2025-11-25: Mcp-Session-Id, GET stream, DELETE).
--mode modern: mcp.Client(mode="auto") probing server/discover (2026-07-28, sessionless); the run
               fails if it fell back to the legacy handshake, so a gateway cannot silently downgrade.
"""

import argparse
import json
import os
import socket
import ssl
import sys
import threading
import time
from contextlib import asynccontextmanager

import anyio
import httpx2
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

# Must match tests/py/mcp_server.py.
BIG_PATTERN = "0123456789abcdef"
EXPECTED_TOOLS = {"echo", "big", "slow_progress"}

_result_printed = threading.Lock()

# HTTP responses with status >= 400 (the SDK's MCPError hides them); reported on failure.
HTTP_ERRORS: list[str] = []


def emit(obj: dict) -> None:
    """Print the single result line, at most once (the watchdog thread may race the main thread)."""
    if _result_printed.acquire(blocking=False):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class ScenarioFailed(Exception):
    """Failure that still carries the scenario's measurements for the JSON line."""

    def __init__(self, msg: str, fields: dict):
        super().__init__(msg)
        self.fields = fields


def describe(e: BaseException) -> str:
    """First leaf of an exception group, as `Type: message`."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"


def install_resolve(pairs: list[str]) -> None:
    """Make HOST resolve to IP in-process (test hostnames are not in DNS).

    Only name resolution changes: the URL keeps HOST, so TLS SNI and certificate checks use HOST.
    Patching the module attribute works because asyncio's loop.getaddrinfo looks it up per call.
    """
    table = {}
    for pair in pairs:
        host, _, ip = pair.partition("=")
        table[host.lower()] = ip
    if not table:
        return
    orig = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower() in table:
            host = table[name.lower()]
        return orig(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def http_client(args) -> httpx2.AsyncClient:
    headers = {}
    for pair in args.header:
        name, _, value = pair.partition("=")
        headers[name] = value
    verify = ssl.create_default_context(cafile=args.ca) if args.ca else True

    async def record_error(response: httpx2.Response) -> None:
        if response.status_code >= 400 and len(HTTP_ERRORS) < 10:
            HTTP_ERRORS.append(f"{response.request.method} {response.request.url} -> {response.status_code}")

    return httpx2.AsyncClient(
        verify=verify,
        headers=headers,
        # Read timeout must outlast slow tools; the overall --timeout bounds everything anyway.
        timeout=httpx2.Timeout(30, read=args.timeout),
        trust_env=False,  # never route test traffic via an environment proxy
        event_hooks={"response": [record_error]},
    )


@asynccontextmanager
async def connect(args, **callbacks):
    """Yield a connected object with list_tools()/call_tool() (ClientSession or Client);
    `callbacks` (sampling_callback=…, elicitation_callback=…) go to the legacy session."""
    async with http_client(args) as hc:
        # max_sse_event_size=None: the SDK default caps one SSE event at 1 MiB, too small for `big`.
        transport = streamable_http_client(args.url, http_client=hc, max_sse_event_size=None)
        if args.mode == "legacy":
            async with transport as (read, write), ClientSession(read, write, **callbacks) as session:
                await session.initialize()
                yield session
        else:
            # cache=None: every list_tools must hit the wire.
            async with Client(transport, mode="auto", cache=None) as client:
                if client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
                    raise AssertionError(f"modern mode fell back to handshake version {client.protocol_version}")
                yield client


def tool_text(result) -> str:
    if result.is_error:
        raise AssertionError(f"tool returned error: {result.content}")
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def basic_exchange(args, marker: str) -> dict:
    async with connect(args) as conn:
        tools = sorted(t.name for t in (await conn.list_tools()).tools)
        missing = EXPECTED_TOOLS - set(tools)
        if missing:
            raise AssertionError(f"tools missing from tools/list: {sorted(missing)} (got {tools})")
        text = tool_text(await conn.call_tool("echo", {"text": marker}))
        if text != marker:
            raise AssertionError(f"echo returned {text!r}, expected {marker!r}")
        return {"tools": tools, "result": text, "protocol_version": conn.protocol_version}


async def scenario_basic(args) -> dict:
    return await basic_exchange(args, args.marker)


async def scenario_big(args) -> dict:
    expected = (BIG_PATTERN * (args.size // len(BIG_PATTERN) + 1))[: args.size]
    async with connect(args) as conn:
        text = tool_text(await conn.call_tool("big", {"size": args.size}))
        out = {"length": len(text), "protocol_version": conn.protocol_version}
    if len(text) != args.size:
        raise ScenarioFailed(f"big returned {len(text)} chars, expected {args.size}", out)
    if text != expected:
        first = next(i for i, (a, b) in enumerate(zip(text, expected)) if a != b)
        raise ScenarioFailed(f"big content differs at offset {first}", out)
    return out


async def scenario_progress(args) -> dict:
    times, events = [], []

    async def on_progress(progress, total, message):
        times.append(round(time.monotonic() - t0, 4))
        events.append({"progress": progress, "total": total, "message": message})

    async with connect(args) as conn:
        t0 = time.monotonic()
        result = await conn.call_tool(
            "slow_progress", {"steps": args.steps, "delay": args.delay}, progress_callback=on_progress
        )
        result_time = round(time.monotonic() - t0, 4)
        text = tool_text(result)
        out = {
            "progress_times": times,
            "progress": events,
            "result_time": result_time,
            "result": text,
            "protocol_version": conn.protocol_version,
        }
    if text != "done":
        raise ScenarioFailed(f"slow_progress returned {text!r}", out)
    if len(times) != args.steps:
        raise ScenarioFailed(f"got {len(times)} progress notifications, expected {args.steps}", out)
    return out


async def scenario_concurrent(args) -> dict:
    ok, errors = 0, []

    async def one(i: int) -> None:
        nonlocal ok
        try:
            await basic_exchange(args, f"concurrent-{i}-{os.getpid()}")
            ok += 1
        except Exception as e:  # count, don't abort the others
            errors.append(describe(e))

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(args.n):
            tg.start_soon(one, i)
    out = {
        "n": args.n,
        "ok_count": ok,
        "fail_count": len(errors),
        "first_error": errors[0] if errors else None,
        "elapsed": round(time.monotonic() - t0, 3),
    }
    if ok != args.n:
        raise ScenarioFailed(f"{len(errors)}/{args.n} sessions failed; first: {out['first_error']}", out)
    return out


async def scenario_whoami(args) -> dict:
    async with connect(args) as conn:
        headers = json.loads(tool_text(await conn.call_tool("whoami", {})))
        return {"headers": headers, "protocol_version": conn.protocol_version}


async def scenario_policy(args) -> dict:
    """List tools, call a tool the gateway should refuse, then echo a (secret) value."""
    async with connect(args) as conn:
        tools = sorted(t.name for t in (await conn.list_tools()).tools)
        denied = {}
        try:
            result = await conn.call_tool(args.denied, {"size": 1})
            denied = {"called": True, "is_error": result.is_error}
        except Exception as e:  # the SDK raises MCPError for a JSON-RPC error response
            err = getattr(e, "error", None)
            denied = {"called": False, "code": getattr(err, "code", None), "message": str(e)}
        text = tool_text(await conn.call_tool("echo", {"text": args.secret}))
        return {"tools": tools, "denied": denied, "echo": text, "protocol_version": conn.protocol_version}


async def scenario_hold(args) -> dict:
    """Open --n sessions, each with a long slow_progress call; print `READY` once every call has
    streamed a progress notification, then wait for all of them to end and report how each ended."""
    streaming, ended = set(), {}
    all_streaming = anyio.Event()

    async def one(i: int) -> None:
        async def on_progress(progress, total, message):
            streaming.add(i)
            if len(streaming) == args.n:
                all_streaming.set()

        try:
            async with connect(args) as conn:
                result = await conn.call_tool(
                    "slow_progress", {"steps": args.steps, "delay": args.delay}, progress_callback=on_progress
                )
                ended[i] = "result_error" if result.is_error else "completed"
        except Exception as e:  # the cut: the stream ends without a result
            ended[i] = "error:" + describe(e)[:120]
        finally:
            streaming.add(i)  # a call that ended before streaming must not stall READY
            if len(streaming) == args.n:
                all_streaming.set()

    async with anyio.create_task_group() as tg:
        for i in range(args.n):
            tg.start_soon(one, i)
        await all_streaming.wait()
        sys.stdout.write("READY\n")
        sys.stdout.flush()
    kinds = sorted(set(v.split(":")[0] for v in ended.values()))
    return {"n": args.n, "ended": len(ended), "kinds": kinds, "completed": sum(v == "completed" for v in ended.values()),
            "first_error": next((v for v in ended.values() if v.startswith("error")), None)}


async def scenario_calls(args) -> dict:
    """Optionally list tools, then make each --call NAME=JSON in one session; never raises on a
    JSON-RPC error (it is reported per call)."""
    async with connect(args) as conn:
        out = {"protocol_version": conn.protocol_version}
        if args.list:
            out["tools"] = sorted(t.name for t in (await conn.list_tools()).tools)
        calls = []
        for spec in args.call:
            name, _, raw = spec.partition("=")
            try:
                result = await conn.call_tool(name, json.loads(raw or "{}"))
                calls.append({"tool": name, "ok": not result.is_error, "text": tool_text(result)})
            except Exception as e:  # the SDK raises MCPError for a JSON-RPC error response
                err = getattr(e, "error", None)
                calls.append({"tool": name, "ok": False, "code": getattr(err, "code", None), "message": str(e)})
        out["calls"] = calls
        return out


async def scenario_ask(args) -> dict:
    """Call the server's `ask` tool (it asks this client to sample and to elicit) with callbacks
    that count what reached the client; report the tool's text and the counts."""
    from mcp_types import CreateMessageResult, ElicitResult, TextContent

    reached = {"sampling": 0, "elicitation": 0}

    async def sampling(context, params):
        reached["sampling"] += 1
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="sampled"), model="test")

    async def elicitation(context, params):
        reached["elicitation"] += 1
        return ElicitResult(action="accept", content={"name": "client"})

    async with connect(args, sampling_callback=sampling, elicitation_callback=elicitation) as conn:
        text = tool_text(await conn.call_tool("ask", {}))
        echo = tool_text(await conn.call_tool("echo", {"text": "after"}))
    return {"asked": json.loads(text), "reached": reached, "echo": echo}


SCENARIOS = {
    "ask": scenario_ask,
    "hold": scenario_hold,
    "calls": scenario_calls,
    "policy": scenario_policy,
    "basic": scenario_basic,
    "big": scenario_big,
    "progress": scenario_progress,
    "concurrent": scenario_concurrent,
    "whoami": scenario_whoami,
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="e.g. https://echo.tunnel.test:PORT/mcp")
    ap.add_argument("--ca", help="PEM CA bundle to trust (default: system trust store)")
    ap.add_argument("--resolve", action="append", default=[], metavar="HOST=IP", help="repeatable")
    ap.add_argument("--mode", choices=["legacy", "modern"], default="legacy")
    ap.add_argument("--header", action="append", default=[], metavar="NAME=VALUE", help="repeatable")
    ap.add_argument("--timeout", type=float, default=60, help="overall limit in seconds")
    sub = ap.add_subparsers(dest="scenario", required=True)
    sub.add_parser("basic").add_argument("--marker", required=True)
    sub.add_parser("big").add_argument("--size", type=int, required=True)
    p = sub.add_parser("progress")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--delay", type=float, default=0.5)
    sub.add_parser("concurrent").add_argument("--n", type=int, default=100)
    sub.add_parser("whoami")
    sub.add_parser("ask")
    p = sub.add_parser("hold")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--delay", type=float, default=1.0)
    p = sub.add_parser("calls")
    p.add_argument("--list", action="store_true", help="list tools first")
    p.add_argument("--call", action="append", default=[], metavar="NAME=JSON", help="repeatable, in order")
    p = sub.add_parser("policy")
    p.add_argument("--denied", required=True)
    p.add_argument("--secret", required=True)
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    install_resolve(args.resolve)
    base = {"scenario": args.scenario, "mode": args.mode}

    # Last resort if cancellation itself hangs (e.g. a shielded cleanup waiting on a dead peer).
    def watchdog():
        error = f"watchdog: hard timeout after {args.timeout + 10}s"
        emit({"ok": False, **base, "error": error, "http_errors": HTTP_ERRORS})
        os._exit(1)

    timer = threading.Timer(args.timeout + 10, watchdog)
    timer.daemon = True
    timer.start()

    async def run():
        with anyio.fail_after(args.timeout):
            return await SCENARIOS[args.scenario](args)

    try:
        fields = anyio.run(run)
    except TimeoutError:
        fail(base, f"timeout after {args.timeout}s")
    except ScenarioFailed as e:
        fail({**base, **e.fields}, str(e))
    except Exception as e:  # any failure must become the JSON line
        fail(base, describe(e))
    emit({"ok": True, **base, **fields})
    sys.exit(0)


def fail(fields: dict, error: str) -> None:
    emit({"ok": False, **fields, "error": error, "http_errors": HTTP_ERRORS})
    sys.exit(1)


if __name__ == "__main__":
    main()
