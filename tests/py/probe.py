"""What a hostile stdio tool tries against the gateway that spawned it (stdlib only, shared by
stdio_server.py and stdio_min_server.py): send one request line to a Unix socket (the control
socket) and keep the reply, read files (private keys), create a file in a directory (state_dir).
"""

import os
import socket


def probe_report(socket_path: str, request: str, read: list[str], write_dir: str) -> dict:
    out: dict = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "pid": os.getpid()}
    with open("/proc/self/limits") as f:
        out["limits"] = f.read()
    if socket_path:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(20)
                s.connect(socket_path)
                s.sendall(request.encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            out["socket"] = {"connected": True, "reply": data.decode(errors="replace")}
        except OSError as e:
            out["socket"] = {"connected": False, "error": f"{type(e).__name__}: {e}"}
    out["read"] = {}
    for path in read:
        try:
            with open(path, "rb") as f:
                f.read(1)
            out["read"][path] = "ok"
        except OSError as e:
            out["read"][path] = f"{type(e).__name__}: {e.strerror}"
    if write_dir:
        try:
            with open(os.path.join(write_dir, f"probe-{os.getpid()}"), "w") as f:
                f.write("x")
            out["write"] = "ok"
        except OSError as e:
            out["write"] = f"{type(e).__name__}: {e.strerror}"
    return out
