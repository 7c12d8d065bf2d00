"""Health before traffic: a new instance is routed only once it answers HTTP on $PORT, or
passes the checks of its process type (core/checkspec.py parses them; this runs them)."""
from __future__ import annotations

import http.client
import socket
import time
from typing import Callable

from core.checkspec import Check
from core.errors import DeployFailed
from core.models import Instance

Exec = Callable[[str, float], tuple[int, str]]     # (command, timeout) -> (exit code, output)


class InstanceCrashed(DeployFailed):
    code = "instance_crashed"


class NeverListened(DeployFailed):
    code = "never_listened"


class HealthCheckFailed(DeployFailed):
    code = "healthcheck_failed"


def http_get(port: int, host: str, path: str = "/", timeout: float = 2.0, headers: dict | None = None,
             limit: int = 65536, address: str = "127.0.0.1") -> tuple[int, str]:
    """One HTTP GET to an instance's published port, straight (no proxy, no ~/.netrc):
    (status, the first `limit` bytes of the body). Raises OSError/HTTPException."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "dockyard-healthcheck", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read(limit).decode("utf-8", "replace")
    finally:
        conn.close()


def probe(port: int, host: str, path: str = "/", timeout: float = 2.0, address: str = "127.0.0.1") -> int:
    """One HTTP GET; returns the status code or raises OSError/HTTPException."""
    return http_get(port, host, path, timeout, address=address)[0]


START_LIMIT = 300.0   # seconds an instance may take to start at all (a cluster node pulls its image first)


def wait_until_answers(label: str, refresh: Callable[[], Instance | None], host: str, app_port: int,
                       timeout: float, out: Callable[[str], None], interval: float = 0.05,
                       refresh_every: float = 0.5, first: Instance | None = None) -> None:
    """Poll until the instance answers any HTTP response on its published port. Raises
    InstanceCrashed if the container exits, NeverListened after `timeout` seconds from the
    moment its process started (a node's image pull comes before and is not the app's time).
    The engine is asked about the container only every `refresh_every` s (many instances start
    at once on a scale-out; their probes must not crowd the engine); `first`, the instance as
    its start returned it, spares the first look when it is running with its port."""
    start = time.monotonic()
    attempt = 0
    last_said = -10.0
    known = first is not None and first.state == "running" and bool(first.host_port)
    inst = first if known else None
    last_refresh = 0.0 if known else -refresh_every
    reason = "not started"
    begun: float | None = 0.0 if known else None
    while True:
        elapsed = time.monotonic() - start
        if inst is None or not inst.host_port or elapsed - last_refresh >= refresh_every:
            inst = refresh()
            last_refresh = elapsed
            _raise_if_exited(label, inst, app_port, out)
            if begun is None and inst.state != "created":
                begun = elapsed
        if inst.host_port:
            attempt += 1
            try:
                status = probe(inst.host_port, host, address=inst.address)
                out(f"       {label}: check passed: GET / answered {status} after {elapsed:.1f} s "
                    f"({attempt} attempt{'s' if attempt > 1 else ''})")
                return
            except (OSError, http.client.HTTPException) as e:
                reason = _reason(e)
        if (begun is not None and elapsed - begun >= timeout) or elapsed >= max(timeout, START_LIMIT):
            out(f"       {label}: check failed: no HTTP answer on port {app_port} after {timeout} s ({reason})")
            raise NeverListened(
                f"{label} did not answer HTTP on 0.0.0.0:$PORT ({app_port}) within {timeout} s: make the "
                "app listen on 0.0.0.0:$PORT (not 127.0.0.1), or raise DOCKYARD_HEALTH_TIMEOUT. "
                "The previous release keeps serving.")
        if elapsed - last_said >= 2.0:
            out(f"       {label}: check attempt {attempt}: GET / on port {app_port}: {reason}")
            last_said = elapsed
        time.sleep(interval)


def _raise_if_exited(label: str, inst: Instance | None, app_port: int, out: Callable[[str], None]) -> None:
    if inst is None or inst.state in ("exited", "dead"):
        code = inst.exit_code if inst else "unknown"
        out(f"       {label}: check failed: the process exited with code {code}")
        raise InstanceCrashed(
            f"{label} exited with code {code} before answering HTTP on $PORT ({app_port}); "
            "its last output is shown above. The previous release keeps serving.")


def _reason(e: Exception) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (ConnectionResetError, http.client.RemoteDisconnected)):
        return "connection closed without an HTTP answer"
    if isinstance(e, TimeoutError):
        return "timed out"
    return f"{e.__class__.__name__}"


# ---- the checks of a process type, against a started instance ------------------------


def run_checks(label: str, checks: list[Check], refresh: Callable[[], Instance | None], host: str,
               app_port: int, exec_in: Exec, out: Callable[[str], None],
               sleep: Callable[[float], None] = time.sleep) -> None:
    """Run each check in turn; raise HealthCheckFailed after a check's last failed attempt
    (unless it is `warn`), InstanceCrashed-style failure if the process exits meanwhile."""
    for check in checks:
        if check.initial_delay:
            out(f"       {label}: waiting {check.initial_delay} s before check {check.name!r}")
            sleep(check.initial_delay)
        reason = ""
        for attempt in range(1, check.attempts + 1):
            inst = refresh()
            if inst is None or inst.state in ("exited", "dead"):
                code = inst.exit_code if inst else "unknown"
                raise InstanceCrashed(
                    f"{label} exited with code {code} during health check {check.describe()}; its last "
                    "output is shown above. Rolled back automatically: the previous release keeps serving.")
            ok, reason = _attempt(check, inst, host, app_port, exec_in)
            out(f"       {label}: check {check.name!r} attempt {attempt}/{check.attempts}: "
                f"{'passed' if ok else 'failed'}: {reason}")
            if ok:
                break
            if attempt < check.attempts:
                sleep(check.wait)
        else:
            message = (f"{label} failed health check {check.describe()} after {check.attempts} attempts "
                       f"(last: {reason}). Fix the app or the check (app.json `healthchecks`, or "
                       "`dockyard checks:set`). Rolled back automatically: the previous release keeps serving.")
            if check.warn:
                out(f"       {label}: warning only (warn: true): {message}")
                continue
            raise HealthCheckFailed(message)


def _attempt(check: Check, inst: Instance, host: str, app_port: int, exec_in: Exec) -> tuple[bool, str]:
    if check.command:
        try:
            code, output = exec_in(check.command, check.timeout)
        except Exception as e:  # noqa: BLE001 - reported as this attempt's failure
            return False, f"could not run the command ({e})"
        tail = output.strip().splitlines()[-1][:200] if output.strip() else ""
        if code != 0:
            return False, f"exit code {code}" + (f": {tail}" if tail else "")
        if check.content and check.content not in output:
            return False, f"output does not contain {check.content!r}"
        return True, "exit code 0"
    if not inst.host_port:
        return False, f"port {app_port} is not published (is this a web process?)"
    if check.listening:
        try:
            with socket.create_connection((inst.address, inst.host_port), timeout=check.timeout):
                return True, f"port {app_port} accepts connections"
        except OSError as e:
            return False, f"port {app_port}: {e.__class__.__name__}"
    try:
        status, body = http_get(inst.host_port, host, check.path or "/", check.timeout, dict(check.headers), 1 << 20,
                                address=inst.address)
    except (OSError, http.client.HTTPException) as e:
        return False, f"GET {check.path}: {_reason(e)}"
    if not 200 <= status < 400:
        return False, f"GET {check.path} answered {status}"
    if check.content and check.content not in body:
        return False, f"GET {check.path} answered {status} without {check.content!r} in the body"
    return True, f"GET {check.path} answered {status}"
