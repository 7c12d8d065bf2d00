"""Scale benchmark: one platform, measured empty (one app) and again with N apps each running
one busybox instance, in the same run. Prints, side by side: a redeploy of a tiny Dockerfile
app (git push -> first 200 via the router; median of --runs) with its stages, a bare `docker run`
of the same kind of container beside each (the engine's own share), API latency p50/p99 over the app
routes, one reconciler pass, one router render, one `nginx -t` + reload, one route switch (what a deploy waits for: the
table loaded, rendered and applied, nginx reloaded on it), one metrics pass,
the platform's PSS (nginx included), and the engine's own CPU while idle. Never asserts.

The N apps are released from one local image through the API (`POST /apps/<app>/builds`),
--parallel at a time, so setting them up costs container starts, not N builds. Bounded:
setting up stops at --setup-limit seconds, and the figures say how many apps ran.

    .venv/bin/python bench/scale.py [--apps 100] [--runs 5] [--requests 300]

`--switch-only` times just the router's route switch (a changed table applied: rendered,
written, nginx reloaded on it) on its own nginx, with 1 and --apps apps that all have the
platform's certificate, as on a platform; no Docker, a few seconds:

    .venv/bin/python bench/scale.py --switch-only --apps 200
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (PRODUCT_INTERVALS, SAME_LIMITS, _tree, apps_network_of, platform_memory,  # noqa: E402
                          push_and_wait, wait_for, wait_retired)
from bench.deploy import STARTING, STAGES, stages  # noqa: E402
from core.isolation import NETWORK_CHOICES  # noqa: E402
from tests.conftest import (BUSYBOX_BASE, ensure_busybox_base, httpd_app, make_app_repo, run,  # noqa: E402
                            start_platform, stop_platform)

IMAGE = "dockyard-bench/scale-app:1"


def api(p, method: str, path: str, body: dict | None = None, timeout: float = 120):
    req = urllib.request.Request(p.api + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {p.token()}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def build_image(ctx: Path) -> None:
    ctx.mkdir(parents=True, exist_ok=True)
    for rel, content in httpd_app("scale").items():
        (ctx / rel).write_text(content)
    run(["docker", "build", "-q", "--label", "dockyard-bench=scale", "-t", IMAGE, str(ctx)])


def add_app(p, i: int) -> bool:
    name = f"s{i:03d}"
    try:
        api(p, "POST", "/apps", {"name": name})
        api(p, "POST", f"/apps/{name}/builds", {"image": IMAGE})
        return True
    except OSError as e:
        print(f"  {name}: {e}", file=sys.stderr)
        return False


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def api_latency(p, apps: list[str], n: int) -> tuple[float, float, str]:
    """p50, p99 in ms over GET /apps, /apps/<app>, its releases and its dynos, round robin; and
    the three slowest requests (path, ms, and the machine's 1-minute load average then)."""
    paths = ["/apps"] + [f"/apps/{a}{tail}" for a in apps for tail in ("", "/releases", "/dynos")]
    times = []
    for i in range(n):
        start = time.perf_counter()
        api(p, "GET", paths[i % len(paths)])
        times.append(((time.perf_counter() - start) * 1000, paths[i % len(paths)]))
    ms = [t for t, _ in times]
    slow = ", ".join(f"{path} {t:.0f} ms" for t, path in sorted(times, reverse=True)[:3])
    return percentile(ms, 0.5), percentile(ms, 0.99), f"{slow} (load {os.getloadavg()[0]:.1f})"


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def passes(p, profile: bool = False) -> dict[str, float]:
    """One reconciler pass, router render, nginx test + reload, route switch, metrics pass: each the median of 3, run
    here on the platform's own store, engine and nginx. The route switch is a deploy's: the live
    routes file differs from the table (a comment appended), so it is loaded, rendered, checked
    and nginx reloaded, as when a new release's instances replace the old ones."""
    os.environ.update({k: v for k, v in p.env.items() if k.startswith("DOCKYARD_")})
    from controller.apps.crashes import CrashWatch
    from controller.daemons.reconcilerd import one_pass
    from controller.observe.sampler import Sampler
    from controller.routing.table import apply_routes, load_routes
    from controller.services import Services
    from controller.settings import from_env
    svc = Services(from_env())
    watch, sampler = CrashWatch(), Sampler(svc.store, svc.scheduler)
    render = lambda: svc.router._render_tolerant(load_routes(svc.settings, svc.store, svc.scheduler), {})  # noqa: E731
    def switch():
        with open(svc.router.routes_path, "a") as f:
            f.write("# changed\n")
        if not apply_routes(svc):
            raise RuntimeError("the route switch did not reload nginx")
    steps = {"reconciler pass": lambda: one_pass(svc, watch, sweep=False), "router render": render,
             "nginx test + reload": lambda: (svc.router.test_config(), svc.router.reload()),
             "route switch": switch, "metrics pass": sampler.sample_once}
    if profile:
        import cProfile
        import pstats
        for name, step in steps.items():
            prof = cProfile.Profile()
            prof.runcall(step)
            print(f"  --- profile of one {name} ---")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
    return {name: statistics.median(timed(step) for _ in range(3)) for name, step in steps.items()}


def engine_cpu(seconds: float) -> float:
    """The host engine's CPU (dockerd by its pid file, and its children) in % of one core over
    `seconds` of idle; build sandboxes' engines are not counted."""
    def cpu() -> float:
        total = 0.0
        for pid in _tree(int(Path("/var/run/docker.pid").read_text().strip())):
            try:
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return total
    before = cpu()
    time.sleep(seconds)
    return (cpu() - before) / seconds * 100


def engine_start(network: str) -> float:
    """The engine's part of a deploy with no platform: `docker run` of the apps' image with
    Dockyard's limits, on its apps network `network`, port published on loopback, to its first 200."""
    start = time.monotonic()
    cid = run(["docker", "run", "-d", "-p", "127.0.0.1::5000", "-e", "PORT=5000", *SAME_LIMITS,
               "--network", network, IMAGE]).stdout.strip()
    try:
        wait_for(int(run(["docker", "port", cid, "5000/tcp"]).stdout.split(":")[-1]), "localhost", "scale")
        return time.monotonic() - start
    finally:
        run(["docker", "rm", "-f", cid], check=False)


def busy_share(seconds: float) -> float:
    """The machine's busy share of all cores over `seconds` (from /proc/stat)."""
    def read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]      # all, idle + iowait
    total, idle = read()
    time.sleep(seconds)
    total2, idle2 = read()
    return 1 - (idle2 - idle) / max(1, total2 - total)


def settle(limit: float = 90.0, below: float = 0.15) -> str:
    """Wait (at most `limit` s) until the machine is quiet: starting N containers leaves the
    engine and the kernel busy for a while, and a phase compares deploys on a quiet machine."""
    started = time.monotonic()
    share = busy_share(2)
    while share >= below and time.monotonic() - started < limit:
        share = busy_share(2)
    return f"settled in {time.monotonic() - started:.0f} s (busy {share:.0%})"


def measure(p, repo: Path, apps: list[str], args, phase: str) -> dict[str, float]:
    """Each phase the same way: one redeploy not counted (the engine and the platform's loops
    settle after the set-up), then --runs redeploys, each followed by a bare `docker run` of the
    same kind of container (the engine's share, side by side), then the rest."""
    quiet = settle()
    network = apps_network_of(p)      # asked once, not inside a bare run's timing
    deploys, bare, split = [], [], []
    for i in range(args.runs + 1):
        text = f"scale {len(apps)} {i} {time.time()}"
        make_app_repo(repo, {"index.html": text}, p)
        timed: list = []
        deploys.append(push_and_wait(["git", "push", "-q", "dockyard", "main"], repo, p.env, p.router_port,
                                     f"bench.{p.domain}", text, timed=timed, starting=STARTING)[0])
        wait_retired(p.name, "bench")
        split.append(stages(timed))
        bare.append(engine_start(network))
    deploys, bare, split = deploys[1:], bare[1:], split[1:]
    p50, p99, slow = api_latency(p, apps, args.requests)
    print(f"  {phase} ({quiet}): redeploys {', '.join(f'{d:.2f}' for d in deploys)} s; bare docker runs "
          f"{', '.join(f'{d:.2f}' for d in bare)} s; slowest GETs: {slow}")
    out = {"redeploy (s)": statistics.median(deploys), "redeploy, fastest (s)": min(deploys),
           "bare docker run to first 200 (s)": statistics.median(bare)}
    for label, _ in STAGES:
        times = [one[label] for one in split if label in one]
        if times:
            out[f"  {label} (s)"] = statistics.median(times)
    out.update({"API p50 (ms)": p50, "API p99 (ms)": p99})
    out.update({f"{k} (s)": v for k, v in passes(p, args.profile and len(apps) > 1).items()})
    time.sleep(5)
    out["platform PSS (MB)"] = sum(r[2] for r in platform_memory(p.home)) / 1024
    out["engine idle CPU (% of a core)"] = engine_cpu(args.idle)
    return out


def switch_only(apps: int, runs: int = 7) -> None:
    """The route switch alone, with 1 and `apps` apps (median and fastest of `runs`)."""
    import socket
    from dataclasses import replace

    from controller.settings import Settings, router_config
    from router.nginx import Nginx
    from router.table import Tls, Upstream, build_table
    from tests.router_helpers import write_pair

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="dockyard-switch-") as tmp:
        crt, key = write_pair(Path(tmp) / "tls", "platform", ["*.localhost", "localhost"])
        nginx = Nginx(router_config(Settings(home=Path(tmp) / "home", router_port=port(), router_tls_port=port())))
        nginx.ensure_layout()
        nginx.start_foreground()
        try:
            for n in (1, apps):
                table = build_table([(f"s{i:03d}", [("127.0.0.1", 5000 + i)]) for i in range(n)], "localhost")
                table = tuple(replace(r, platform_tls=Tls(str(crt), str(key)), platform_hosts=r.hostnames)
                              for r in table)
                nginx.apply(table)
                times = []
                for k in range(runs):
                    changed = (replace(table[0], upstreams=(Upstream("127.0.0.1", 6000 + k),)),) + table[1:]
                    times.append(timed(lambda: nginx.apply(changed)))
                print(f"route switch, {n} app(s): median {statistics.median(times) * 1000:.0f} ms, fastest "
                      f"{min(times) * 1000:.0f} ms (routes file {len(nginx.routes_path.read_text()) // 1024} kB; "
                      f"load {os.getloadavg()[0]:.1f})")
        finally:
            nginx.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle engine CPU measured")
    ap.add_argument("--setup-limit", type=float, default=900.0)
    ap.add_argument("--profile", action="store_true", help="print a profile of each pass with N apps")
    ap.add_argument("--switch-only", action="store_true", help="time the route switch alone (no Docker)")
    ap.add_argument("--apps-network", choices=NETWORK_CHOICES, default="auto",
                    help="DOCKYARD_APPS_NETWORK of the platform measured (the bare `docker run` uses the same)")
    args = ap.parse_args()
    if args.switch_only:
        switch_only(args.apps)
        return 0
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        tmp = Path(tmp)
        ensure_busybox_base(tmp / "busybox")
        build_image(tmp / "image")
        p = start_platform(tmp / "platform", **PRODUCT_INTERVALS, DOCKYARD_ALLOWED_IMAGES=f"{BUSYBOX_BASE},{IMAGE}",
                           DOCKYARD_APPS_NETWORK=args.apps_network)
        try:
            repo = make_app_repo(tmp / "bench", httpd_app("cold"), p)
            p.cli("apps:create", "bench", cwd=repo)
            p.git("push", "-q", "dockyard", "main", cwd=repo)
            empty = measure(p, repo, ["bench"], args, "empty")
            started = time.monotonic()
            made = 0
            with ThreadPoolExecutor(args.parallel) as pool:
                for ok in pool.map(lambda i: time.monotonic() - started < args.setup_limit and add_app(p, i),
                                   range(args.apps)):
                    made += bool(ok)
            setup, network = time.monotonic() - started, apps_network_of(p)
            full = measure(p, repo, ["bench"] + [f"s{i:03d}" for i in range(0, args.apps, max(1, args.apps // 20))],
                           args, f"{made} apps")
        finally:
            stop_platform(p)
            run(["docker", "rmi", "-f", IMAGE], check=False)
    print(f"apps running: {made} of {args.apps} (set up in {setup:.0f} s, {args.parallel} at a time); "
          f"redeploys: median of {args.runs}; API: {args.requests} GETs; app containers on {network}")
    print(f"{'measure':50} {'empty':>10} {f'{made} apps':>10} {'ratio':>7}")
    for key in empty:
        ratio = full[key] / empty[key] if empty[key] and key in full else float("nan")
        print(f"{key:50} {empty[key]:10.3f} {full.get(key, float('nan')):10.3f} {ratio:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
