#!/usr/bin/env python3
"""Minimal stdio JSON-RPC peer that floods stdout (tests/it/stdio_bridge.rs, memory bound test).

Plain Python, no SDK: answers `initialize`; for a request with method "flood" and params
{"count": N, "size": S} writes N `notifications/message` of S padding bytes each as fast as the
pipe takes them, then the response {"result": {"sent": N}}. Anything else gets -32601.
"""

import json
import sys


def send(msg: dict) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        msg = json.loads(line)
        if "id" not in msg:
            continue  # notifications need no answer
        if msg.get("method") == "initialize":
            result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {},
                      "serverInfo": {"name": "flood", "version": "1"}}
            send({"jsonrpc": "2.0", "id": msg["id"], "result": result})
        elif msg.get("method") == "flood":
            pad = "x" * msg["params"]["size"]
            for i in range(msg["params"]["count"]):
                send({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "info", "data": {"i": i, "pad": pad}}})
            send({"jsonrpc": "2.0", "id": msg["id"], "result": {"sent": msg["params"]["count"]}})
        else:
            send({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "Method not found"}})


if __name__ == "__main__":
    main()
