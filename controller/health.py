"""Health before traffic: a new instance is routed only once it answers HTTP on $PORT."""
from __future__ import annotations

import http.client
import time
from typing import Callable

from core.errors import DeployFailed
from core.models import Instance


class InstanceCrashed(DeployFailed):
    code = "instance_crashed"


class NeverListened(DeployFailed):
    code = "never_listened"


def probe(port: int, host: str, path: str = "/", timeout: float = 2.0) -> int:
    """One HTTP GET; returns the status code or raises OSError/HTTPException."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "dockyard-healthcheck"})
        resp = conn.getresponse()
        resp.read(65536)
        return resp.status
    finally:
        conn.close()


def wait_until_answers(label: str, refresh: Callable[[], Instance | None], host: str, app_port: int,
                       timeout: float, out: Callable[[str], None], interval: float = 0.05,
                       refresh_every: float = 0.5) -> None:
    """Poll until the instance answers any HTTP response on its published port. Raises
    InstanceCrashed if the container exits, NeverListened after `timeout` seconds. The engine
    is asked about the container only every `refresh_every` s (many instances start at once
    on a scale-out; their probes must not crowd the engine)."""
    start = time.monotonic()
    attempt = 0
    last_said = -10.0
    last_refresh = -refresh_every
    reason = "not started"
    inst = None
    while True:
        elapsed = time.monotonic() - start
        if inst is None or not inst.host_port or elapsed - last_refresh >= refresh_every:
            inst = refresh()
            last_refresh = elapsed
            if inst is None or inst.state in ("exited", "dead"):
                code = inst.exit_code if inst else "unknown"
                out(f"       {label}: check failed: the process exited with code {code}")
                raise InstanceCrashed(
                    f"{label} exited with code {code} before answering HTTP on $PORT ({app_port}); "
                    "its last output is shown above. The previous release keeps serving.")
        if inst.host_port:
            attempt += 1
            try:
                status = probe(inst.host_port, host)
                out(f"       {label}: check passed: GET / answered {status} after {elapsed:.1f} s "
                    f"({attempt} attempt{'s' if attempt > 1 else ''})")
                return
            except (OSError, http.client.HTTPException) as e:
                reason = _reason(e)
        if elapsed >= timeout:
            out(f"       {label}: check failed: no HTTP answer on port {app_port} after {timeout} s ({reason})")
            raise NeverListened(
                f"{label} did not answer HTTP on 0.0.0.0:$PORT ({app_port}) within {timeout} s: make the "
                "app listen on 0.0.0.0:$PORT (not 127.0.0.1), or raise DOCKYARD_HEALTH_TIMEOUT. "
                "The previous release keeps serving.")
        if elapsed - last_said >= 2.0:
            out(f"       {label}: check attempt {attempt}: GET / on port {app_port}: {reason}")
            last_said = elapsed
        time.sleep(interval)


def _reason(e: Exception) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (ConnectionResetError, http.client.RemoteDisconnected)):
        return "connection closed without an HTTP answer"
    if isinstance(e, TimeoutError):
        return "timed out"
    return f"{e.__class__.__name__}"
