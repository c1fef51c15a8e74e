#!/usr/bin/env python3
"""Calls one tool through the gateway with the official Python MCP SDK (connection setup shared
with mcp_client.py) and prints exactly one JSON line:
{"ok": true, "result": TEXT, "is_error": BOOL} when the call returned, or
{"ok": true, "error": {"code": CODE, "message": MESSAGE}} when it was answered with a JSON-RPC error,
or {"ok": false, "error": ...} when the client itself failed.

Prints `CONNECTED` on its own line once the session is up and the call is about to be sent.
"""

import argparse
import json
import sys

import anyio

from mcp_client import connect, describe, install_resolve


async def run(args) -> dict:
    async with connect(args) as conn:
        sys.stdout.write("CONNECTED\n")
        sys.stdout.flush()
        try:
            result = await conn.call_tool(args.tool, json.loads(args.arguments))
        except Exception as e:  # the SDK raises MCPError for a JSON-RPC error response
            err = getattr(e, "error", None)
            return {"error": {"code": getattr(err, "code", None), "message": str(e)}}
        text = "".join(c.text for c in result.content if getattr(c, "type", None) == "text")
        return {"result": text, "is_error": result.is_error}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--resolve", action="append", default=[], metavar="HOST=IP")
    ap.add_argument("--mode", choices=["legacy", "modern"], default="legacy")
    ap.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--arguments", default="{}", help="JSON object")
    args = ap.parse_args()
    install_resolve(args.resolve)

    async def bounded():
        with anyio.fail_after(args.timeout):
            return await run(args)

    try:
        out = {"ok": True, **anyio.run(bounded)}
    except Exception as e:
        out = {"ok": False, "error": describe(e)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
