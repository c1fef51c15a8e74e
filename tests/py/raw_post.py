#!/usr/bin/env python3
"""POST a body of --size bytes with the HTTP client the official MCP SDK uses (httpx2), and
print one JSON line: {"status": N, "body": ...} or {"error": "Type: message"}.

Used by the adversarial tests to check that an answer the gateway gives before reading the
body (413, 401, 404, ...) reaches a client that sends its whole body before reading.
"""

import argparse
import json
import socket
import ssl

import httpx2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--resolve", required=True, metavar="HOST=IP")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()

    host, _, ip = args.resolve.partition("=")
    orig = socket.getaddrinfo

    def getaddrinfo(name, *a, **kw):
        n = name.decode() if isinstance(name, bytes) else name
        return orig(ip if isinstance(n, str) and n.lower() == host.lower() else name, *a, **kw)

    socket.getaddrinfo = getaddrinfo
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    for pair in args.header:
        name, _, value = pair.partition("=")
        headers[name] = value
    verify = ssl.create_default_context(cafile=args.ca)
    try:
        with httpx2.Client(verify=verify, trust_env=False, timeout=30) as client:
            resp = client.post(args.url, content=b"x" * args.size, headers=headers)
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
            print(json.dumps({"status": resp.status_code, "body": body}))
    except Exception as e:  # the test reports any transport failure as the finding
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()
