"""What the benchmarks share: one GET through a port with a Host header, and waiting until
a host serves a page that contains a marker (the moment a deploy counts as done)."""
from __future__ import annotations

import http.client
import time

# What every Dockyard instance gets (controller/scheduler.py), so a floor can run the same container
SAME_LIMITS = ["--memory", "512m", "--memory-swap", "512m", "--cpus", "1", "--pids-limit", "1024",
               "--security-opt", "no-new-privileges", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
               "--cap-drop", "ALL", "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m,mode=1777"]


def get(port: int, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_for(port: int, host: str, text: str, timeout: float = 300) -> None:
    """Poll every 5 ms until `host` answers 200 with `text` in its body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            code, body = get(port, host)
            if code == 200 and text in body:
                return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{host}:{port} never served {text!r}")
