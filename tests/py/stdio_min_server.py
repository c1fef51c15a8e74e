#!/usr/bin/env python3
"""A minimal stdio MCP server in the standard library alone, for children that run as another
user (`stdio_user`), who may not be able to reach the SDK's virtualenv. Newline-delimited
JSON-RPC on stdin/stdout: initialize, ping, tools/list and tools/call of one tool, `probe`
(see probe.py).
"""

import json
import sys

from probe import probe_report

PROBE = {
    "name": "probe",
    "description": "Report what this process can reach.",
    "inputSchema": {"type": "object", "properties": {
        "socket_path": {"type": "string"}, "request": {"type": "string"},
        "read": {"type": "array", "items": {"type": "string"}}, "write_dir": {"type": "string"}}},
}


def answer(msg: dict):
    method, params = msg.get("method"), msg.get("params") or {}
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion", "2025-11-25"), "capabilities": {"tools": {}},
                "serverInfo": {"name": "stdio-min", "version": "1"}}
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": [PROBE]}
    if method == "tools/call" and params.get("name") == "probe":
        a = params.get("arguments") or {}
        report = probe_report(a.get("socket_path", ""), a.get("request", ""), a.get("read") or [], a.get("write_dir", ""))
        return {"content": [{"type": "text", "text": json.dumps(report)}], "isError": False}
    return None


def main() -> None:
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "id" not in msg or "method" not in msg:
            continue  # notifications and responses need no answer
        result = answer(msg)
        reply = {"jsonrpc": "2.0", "id": msg["id"]}
        if result is None:
            reply["error"] = {"code": -32601, "message": f"method not found: {msg['method']}"}
        else:
            reply["result"] = result
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
