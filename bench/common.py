"""What the benchmarks share: one GET through a port with a Host header, and waiting until
a host serves a page that contains a marker (the moment a deploy counts as done)."""
from __future__ import annotations

import http.client
import json
import subprocess
import time

from core.isolation import Isolation, apps_network

# What every Dockyard instance gets (controller/scheduler/docker_engine.py), so a floor can run
# the same container
SAME_LIMITS = ["--memory", "512m", "--memory-swap", "512m", "--cpus", "1", "--pids-limit", "1024",
               "--security-opt", "no-new-privileges", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
               "--cap-drop", "ALL", "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m,mode=1777"]


def apps_network_of(p) -> str:
    """The network platform `p`'s app containers join on this engine (core/isolation.py): a
    floor's container runs on it too."""
    out = subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True, check=False)
    options = json.loads(out.stdout)[0].get("Options") if out.returncode == 0 else None
    return apps_network(Isolation(network=p.env.get("DOCKYARD_APPS_NETWORK", "auto")), p.name, options)


# The platform's own intervals (controller/settings.py), not the tests' faster ones: a benchmark
# measures what a user runs (the tests' reconciler looks twice a second)
PRODUCT_INTERVALS = {"DOCKYARD_RECONCILE_INTERVAL": 5, "DOCKYARD_SWEEP_INTERVAL": 60, "DOCKYARD_STABLE_AFTER": 30,
                     "DOCKYARD_HEALTH_TIMEOUT": 30}


def get(port: int, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_for(port: int, host: str, text: str, timeout: float = 300, near=lambda: True) -> None:
    """Poll every 5 ms until `host` answers 200 with `text` in its body; every 50 ms while
    `near()` says the change cannot be there yet (a request every 5 ms is load of its own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            code, body = get(port, host)
            if code == 200 and text in body:
                return
        except OSError:
            pass
        time.sleep(0.005 if near() else 0.05)
    raise RuntimeError(f"{host}:{port} never served {text!r}")


def wait_retired(platform: str, app: str, keep: int = 1, timeout: float = 30) -> float:
    """Wait until the app has only `keep` containers: a redeploy stops its old instances in the
    background (SIGTERM, SIGKILL after the grace), and one still dying would share the engine
    with the next measurement, as a floor's own `docker rm -f` never does. Returns the wait."""
    import subprocess
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=dockyard.instance={platform}",
                              "--filter", f"label=dockyard.app={app}"], capture_output=True, text=True,
                             check=True).stdout.split()
        if len(ids) <= keep:
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError(f"{app}'s old instances were still there after {timeout:.0f} s")


def push_and_wait(push_cmd: list[str], cwd, env: dict, port: int, host: str, marker: str,
                  trace: bool = False, timed: list | None = None,
                  starting: str | None = None) -> tuple[float, float]:
    """Run `git push`, wait for the first 200 with `marker` through the router. Returns (seconds
    to that 200, seconds until git push returned). `trace` prints each line of the push's output
    with its arrival time (where the time goes); `timed` receives those (seconds, line) pairs.
    `starting`: a mark of the push's output before which the new code cannot serve."""
    import subprocess
    import threading
    start = time.monotonic()
    push = subprocess.Popen(push_cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic() - start, line.rstrip())
                                                          for line in push.stderr), daemon=True)
    reader.start()
    # no new instance serves before one starts: until the push says so, poll gently, as a floor
    # polls nothing while its build and `docker run` go on
    wait_for(port, host, marker, near=lambda: starting is None or any(starting in text for _, text in lines))
    served = time.monotonic() - start
    push.wait(timeout=600)
    returned = time.monotonic() - start
    reader.join(timeout=10)
    if push.returncode != 0:
        raise RuntimeError("push failed: " + "\n".join(text for _, text in lines))
    seen = sorted(lines + [(served, "(first 200 of the new code through the router)")])
    if timed is not None:
        timed.extend(seen)
    if trace:
        for at, text in seen:
            print(f"  trace {at:6.2f} s  {text}")
    return served, returned


def wait_all_answer(port: int, host: str, expected: set[str], timeout: float = 120) -> float:
    """Poll the router over one keep-alive connection (nginx's round robin then cycles
    through every upstream) until each page in `expected` (the last word of the body: the
    instance's $DYNO) has answered. Returns the seconds it took; raises if some never did."""
    start = time.monotonic()
    seen: set[str] = set()
    conn = None
    while time.monotonic() - start < timeout:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            body = resp.read().decode()
            if resp.status == 200 and body.split():
                seen.add(body.split()[-1])
        except (OSError, http.client.HTTPException):
            conn = None
        if expected <= seen:
            return time.monotonic() - start
    raise RuntimeError(f"{host}: only {sorted(seen & expected)} of {len(expected)} instances answered")


# ---- the platform's own footprint -----------------------------------------------------------
def _children(pid: int) -> list[int]:
    import os
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _smaps_kb(pid: int) -> tuple[int, int, int]:
    """(PSS, RSS, USS) in kB from /proc/PID/smaps_rollup. USS (private pages only) does not
    depend on what else maps the same files, so other processes on the machine cannot
    flatter it the way they flatter PSS."""
    pss = rss = uss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith(("Private_Clean:", "Private_Dirty:")):
                uss += int(line.split()[1])
    return pss, rss, uss


def _name(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        words = f.read().split(b"\0")
    text = " ".join(w.decode("utf-8", "replace") for w in words if w)
    return text[:90]


def platform_memory(home) -> list[tuple[int, str, int, int, int]]:
    """Every process of a running platform (the supervisor's tree, nginx's master and workers,
    whatever they spawned): [(pid, command line, PSS kB, RSS kB, USS kB)]. Build sandboxes and app
    containers are the engine's and not counted."""
    from pathlib import Path
    run_dir = Path(home) / "run"
    roots = [int((run_dir / "supervisor.pid").read_text())]
    for pidfile in Path(home).rglob("nginx.pid"):
        try:
            roots.append(int(pidfile.read_text()))
        except (OSError, ValueError):
            pass
    rows = []
    for pid in sorted({p for r in roots for p in _tree(r)}):
        try:
            rows.append((pid, _name(pid), *_smaps_kb(pid)))
        except OSError:
            pass    # ended meanwhile
    return rows
