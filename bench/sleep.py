"""Autosleep benchmark, loopback only, bounded in count and time. Prints numbers; never asserts.

1. Wake: a tiny busybox httpd app sleeps (autosleep 2 s); one GET through the router wakes it;
   the time to its first byte, over --wakes wakes. Side by side, the raw floor: `docker start`
   of a stopped container of the same image, with the limits every instance gets, + polling
   until its first 200 (5 ms), one of each in turn. Prints p50/p99 of both and their ratios
   (target <= 2x). `--apps 0` skips the density part.
2. Density: --apps apps (default 300) created asleep (`POST /apps` with an autosleep window,
   --parallel at a time), each released from the same image (no build; nothing starts); --busy
   of them are woken and kept busy (requests in a loop) while --wake-samples sleeping ones are
   woken one after another. Prints
   the platform's memory (RSS of its processes and nginx), the engine's (dockerd, containerd,
   shims; the containers' own use), the router's render and reload times with every app in the
   table, and the wake times under that load. Creating apps stops at --budget seconds: the
   figures then say how many apps there were.

    .venv/bin/python bench/sleep.py [--wakes 20] [--apps 300] [--busy 20] [--budget 900] [--parallel 8]
"""
from __future__ import annotations

import argparse
import http.client
import re
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SAME_LIMITS, get, wait_for  # noqa: E402
from tests.conftest import (ensure_busybox_base, free_port, httpd_app, make_app_repo, run,  # noqa: E402
                            start_platform, stop_platform)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def first_byte(port: int, host: str, timeout: float = 60) -> float:
    """Seconds from sending a GET to its response's status line (one request: it is held)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        at = time.monotonic() - start
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{host}: {resp.status} {body[:300]!r}")
        return at
    finally:
        conn.close()


class Api:
    def __init__(self, p):
        self.base, self.s = p.api, requests.Session()
        self.s.headers["Authorization"] = f"Bearer {p.token()}"
        self.s.trust_env = False

    def __call__(self, method: str, path: str, body=None):
        r = self.s.request(method, self.base + path, json=body, timeout=600)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()


def running(p, app: str) -> bool:
    return bool(run(["docker", "ps", "-q", "--filter", f"label=dockyard.app={app}",
                     "--filter", f"label=dockyard.instance={p.name}"]).stdout.strip())


def wait_asleep(p, api: Api, app: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = api("GET", f"/apps/{app}/autosleep")
        if rows.get("web", {}).get("sleeping_since") and not running(p, app):
            time.sleep(0.3)      # the router applied the sleeping route in the same step
            return
        time.sleep(0.2)
    raise RuntimeError(f"{app} did not sleep within {timeout} s")


@contextmanager
def floor_container(p, image: str):
    """A stopped container of the app's image (the limits every instance gets); yields a
    function that does one `docker start` of it + polling until its first 200, stops it again
    and returns the seconds to the first 200."""
    port = free_port()
    # A container inherits its image's labels, the platform's build label among them: under
    # them the platform's sweep would take it for a leftover build container and remove it.
    copy = f"dockyard-bench/sleep-floor:{p.name}"
    run(["docker", "tag", image, copy])
    cid = run(["docker", "create", "--label", f"dockyard.instance={p.name}-floor", "--label", "dockyard.build=",
               "-p", f"127.0.0.1:{port}:5000", "-e", "PORT=5000", *SAME_LIMITS, copy]).stdout.strip()

    def one() -> float:
        start = time.monotonic()
        run(["docker", "start", cid])
        try:
            wait_for(port, "localhost", "", timeout=30)
        except RuntimeError:
            state = run(["docker", "inspect", "-f", "{{json .State}}", cid], check=False)
            logs = run(["docker", "logs", "--tail", "20", cid], check=False)
            raise RuntimeError(f"the floor's container never answered: {state.stdout}{state.stderr} "
                               f"{logs.stdout}{logs.stderr}") from None
        took = time.monotonic() - start
        run(["docker", "stop", "-t", "0", cid])
        return took

    try:
        yield one
    finally:
        run(["docker", "rm", "-f", cid], check=False)
        run(["docker", "rmi", copy], check=False)


def wake_bench(p, api: Api, app: str, image: str, wakes: int) -> None:
    """Wakes and floor starts taken in turn (one of each per round), so a neighbour's load
    weighs on both alike."""
    host = f"{app}.{p.domain}"
    raw, woke = [], []
    with floor_container(p, image) as one:
        for _ in range(wakes):
            raw.append(one())
            wait_asleep(p, api, app)
            woke.append(first_byte(p.router_port, host))
    print(f"raw floor, docker start + first 200 ({wakes} starts): p50 {statistics.median(raw) * 1000:.0f} ms, "
          f"p99 {pct(raw, 0.99) * 1000:.0f} ms")
    print(f"wake, first byte through the router ({wakes} wakes): p50 {statistics.median(woke) * 1000:.0f} ms, "
          f"p99 {pct(woke, 0.99) * 1000:.0f} ms")
    print(f"ratio wake / floor: p50 {statistics.median(woke) / statistics.median(raw):.2f}x, "
          f"p99 {pct(woke, 0.99) / pct(raw, 0.99):.2f}x")


def rss_kb(pids) -> int:
    total = 0
    for pid in pids:
        try:
            m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def platform_pids(p) -> list[int]:
    """The platform's own processes (DOCKYARD_HOME in their environment) and its nginx."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"DOCKYARD_HOME={p.home}".encode() in env.split(b"\0") or str(p.home).encode() in cmd and b"nginx" in cmd:
            out.append(int(proc.name))
    return out


def engine_pids() -> list[int]:
    names = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2")
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() in names:
                    out.append(int(proc.name))
            except OSError:
                pass
    return out


def containers_mb(p) -> float:
    """Memory the platform's running instances use (named `<instance>.<app>...`)."""
    out = run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"], check=False).stdout
    total = 0.0
    for line in out.splitlines():
        name, _, usage = line.partition(" ")
        m = re.match(r"([\d.]+)(KiB|MiB|GiB|B)", usage.strip())
        if name.startswith(p.name + ".") and m:
            total += float(m.group(1)) * {"B": 1 / 1048576, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[m.group(2)]
    return total


def reload_stats(api: Api) -> tuple[float, int]:
    text = api.s.get(api.base + "/metrics", timeout=30).text
    s = re.search(r"^dockyard_router_reload_duration_seconds_sum (\S+)", text, re.M)
    c = re.search(r"^dockyard_router_reload_duration_seconds_count (\S+)", text, re.M)
    return (float(s.group(1)) if s else 0.0), (int(float(c.group(1))) if c else 0)


def render_time(p) -> tuple[int, float]:
    """(apps in the table, seconds to load and render it), as the router process does it (its
    HTTPS port and certificates included)."""
    code = ("import time; from controller.settings import from_env; from controller.services import Services;"
            "from controller.routing.table import load_routes; svc=Services(from_env()); router=svc.router;"
            "load_routes(svc.settings, svc.store, svc.scheduler);"   # connections made, as in the router process
            "t=time.monotonic(); r=load_routes(svc.settings, svc.store, svc.scheduler); router._render_tolerant(r, {});"
            "print(len(r), time.monotonic()-t)")
    out = run([sys.executable, "-c", code], env={**p.env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
              cwd=str(Path(__file__).resolve().parent.parent)).stdout.split()
    return int(out[0]), float(out[1])


def populate(p, api: Api, image: str, n: int, parallel: int, budget: float) -> list[str]:
    """Create `n` apps asleep from the start (`POST /apps` with an autosleep window) and release
    `image` to each (`POST /apps/<app>/builds`): nothing starts, so an app costs two API calls
    and its share of the route reloads, `parallel` apps at a time. Stops at `budget` seconds."""
    started = time.monotonic()

    def one(i: int) -> str | None:
        if time.monotonic() - started > budget:
            return None
        name = f"d{i:03d}"
        t0 = time.monotonic()
        api("POST", "/apps", {"name": name, "autosleep": "3s"})
        t1 = time.monotonic()
        api("POST", f"/apps/{name}/builds", {"image": image})
        calls.append((t1 - t0, time.monotonic() - t1))
        return name

    calls: list[tuple[float, float]] = []
    with ThreadPoolExecutor(parallel) as pool:
        apps = [name for name in pool.map(one, range(n)) if name]
    if len(apps) < n:
        print(f"density: stopped creating apps at {len(apps)} of {n} (budget {budget:.0f} s)")
    made = time.monotonic() - started
    print(f"density: {len(apps)} apps created asleep and released in {made:.0f} s "
          f"({made / max(1, len(apps)):.2f} s each, {parallel} at a time; per call p50: create "
          f"{statistics.median(c for c, _ in calls):.2f} s, release {statistics.median(r for _, r in calls):.2f} s)")
    return apps


def density(p, api: Api, image: str, n: int, busy: int, samples: int, budget: float, parallel: int = 8) -> None:
    apps = populate(p, api, image, n, parallel, budget)
    up = set(run(["docker", "ps", "--filter", f"label=dockyard.instance={p.name}", "--format",
                  '{{.Label "dockyard.app"}}']).stdout.split())
    awake = [a for a in apps if a in up]
    if awake:
        print(f"density: {len(awake)} apps run an instance before any request: {awake[:5]}")
    hot = apps[:busy]
    stop = threading.Event()
    counts = [0]

    def hammer(names):
        while not stop.is_set():
            for name in names:
                try:
                    if get(p.router_port, f"{name}.{p.domain}")[0] == 200:
                        counts[0] += 1
                except OSError:
                    pass

    asleep_mb = rss_kb(platform_pids(p)) / 1024, rss_kb(engine_pids()) / 1024
    print(f"density: all {len(apps)} asleep: platform memory (its processes + nginx, RSS) {asleep_mb[0]:.0f} MB, "
          f"engine (dockerd + containerd + shims, machine-wide) {asleep_mb[1]:.0f} MB")
    woken = time.monotonic()
    for name in hot:
        first_byte(p.router_port, f"{name}.{p.domain}")
    print(f"density: {busy} apps woken one after another in {time.monotonic() - woken:.1f} s", flush=True)
    threads = [threading.Thread(target=hammer, args=(hot[k::4],), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    t0, r0 = time.monotonic(), reload_stats(api)
    wakes = []
    for name in apps[busy:busy + samples]:
        wakes.append(first_byte(p.router_port, f"{name}.{p.domain}"))
    served, seconds = counts[0], time.monotonic() - t0
    r1 = reload_stats(api)
    platform_mb, engine_mb, cont_mb = rss_kb(platform_pids(p)) / 1024, rss_kb(engine_pids()) / 1024, containers_mb(p)
    stop.set()
    for t in threads:
        t.join(10)
    reloads = r1[1] - r0[1]
    print(f"density: {len(apps)} apps, {busy} busy ({served / seconds:.0f} req/s through the router meanwhile), "
          f"{len(apps) - busy - len(wakes)} asleep")
    print(f"  platform memory (its processes + nginx, RSS): {platform_mb:.0f} MB")
    print(f"  engine memory (dockerd + containerd + shims, RSS, machine-wide: other work shares the engine): {engine_mb:.0f} MB; "
          f"the running containers' own use: {cont_mb:.0f} MB")
    print(f"  router: reloads (nginx -t + reload) during the wakes: {reloads}, "
          f"mean {((r1[0] - r0[0]) / reloads * 1000) if reloads else 0:.0f} ms")
    if wakes:
        print(f"  wake under load ({len(wakes)} wakes, one after another): p50 {statistics.median(wakes) * 1000:.0f} ms, "
              f"max {max(wakes) * 1000:.0f} ms", flush=True)
    routes, render_s = render_time(p)
    print(f"  router: load + render of {routes} routes {render_s * 1000:.0f} ms")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--wakes", type=int, default=20)
    ap.add_argument("--apps", type=int, default=300)
    ap.add_argument("--busy", type=int, default=20)
    ap.add_argument("--wake-samples", type=int, default=10)
    ap.add_argument("--budget", type=float, default=900, help="seconds at most for creating the density apps")
    ap.add_argument("--parallel", type=int, default=8, help="density apps created at a time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        tmp = Path(tmp)
        base = ensure_busybox_base(tmp / "busybox")
        p = start_platform(tmp / "platform", DOCKYARD_RECONCILE_INTERVAL="1", DOCKYARD_AUTOSLEEP_DEFAULT="3s",
                           DOCKYARD_STOP_GRACE="1")
        try:
            api = Api(p)
            repo = make_app_repo(tmp / "nap", httpd_app("nap", base), p)
            p.cli("apps:create", "nap", cwd=repo)
            p.git("push", "-q", "dockyard", "main", cwd=repo)
            image = f"{p.name}/nap:v1"
            wake_bench(p, api, "nap", image, args.wakes)
            if args.apps:
                density(p, api, image, args.apps, args.busy, args.wake_samples, args.budget, args.parallel)
        finally:
            stop_platform(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
