"""Workflow benchmarks, each side by side in one run; prints numbers and ratios,
never asserts.

(a) Deploys under steady load: a bounded HTTP load (3 keep-alive clients on loopback) runs
    through the router while 10 deploys happen; prints failed requests and p99 latency,
    beside the p99 of the same load with no deploy.
(b) `ps:scale web=10` until all 10 are routed (the CLI returns once the router serves them),
    beside the raw floor: 10 `docker run`s started in parallel until each answers.

    .venv/bin/python bench/workflow.py [--deploys 10]
"""
from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SAME_LIMITS, apps_network_of, wait_all_answer  # noqa: E402
from tests.conftest import (BUSYBOX_BASE, ensure_busybox_base, make_app_repo, run,  # noqa: E402
                            start_platform, stop_platform)

MAX_REQUESTS = 300_000     # bound on the load, whatever the timing


def env_app(text: str) -> dict[str, str]:
    return {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                          f"CMD [\"/bin/sh\", \"-c\", \"echo {text} $DYNO > /www/index.html; "
                          "exec httpd -f -p $PORT -h /www\"]\n"}


class Load:
    """Keep-alive GET loop in a few threads; records latency and failures."""

    def __init__(self, port: int, host: str, clients: int = 3):
        self.port, self.host, self.clients = port, host, clients
        self.latencies: list[float] = []
        self.failed: list[str] = []
        self.fail_times: list[float] = []     # time.monotonic() of each failure (recovery windows)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(clients)]

    def loop(self) -> None:
        conn = None
        while not self.stop.is_set() and len(self.latencies) < MAX_REQUESTS:
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/", headers={"Host": self.host})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    self.failed.append(str(resp.status))
                    self.fail_times.append(time.monotonic())
                else:
                    self.latencies.append(time.perf_counter() - start)
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn = None     # an idle keep-alive connection closed by a reload: clients retry it
            except OSError as e:
                self.failed.append(repr(e))
                self.fail_times.append(time.monotonic())
                conn = None

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def p99_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] * 1000 if len(self.latencies) > 100 else float("nan")


def floor_scale(n: int, flags: list[str]) -> float:
    """n containers started in parallel with the raw CLI, until each answers."""
    import socket

    def one(i: int) -> str:
        cid = run(["docker", "run", "-d", "-p", "127.0.0.1::5000", "-e", "PORT=5000", "--label",
                   "dockyard-bench=scale", *flags, "dockyard-bench/scale:latest"]).stdout.strip()
        port = int(run(["docker", "port", cid, "5000/tcp"]).stdout.split(":")[-1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/")
                if conn.getresponse().status == 200:
                    return cid
            except (OSError, socket.timeout, http.client.HTTPException):
                time.sleep(0.02)
        raise RuntimeError("a floor container never answered")

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=n) as pool:
        ids = list(pool.map(one, range(n)))
    took = time.monotonic() - start
    run(["docker", "rm", "-f", *ids], check=False)
    return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deploys", type=int, default=10)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--baseline-seconds", type=float, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        tmp = Path(tmp)
        ensure_busybox_base(tmp / "busybox")
        ctx = tmp / "floor"
        ctx.mkdir()
        for rel, content in env_app("floor").items():
            (ctx / rel).write_text(content)
        run(["docker", "build", "-q", "-t", "dockyard-bench/scale:latest", str(ctx)])
        p = start_platform(tmp / "platform", DOCKYARD_STOP_GRACE=10)
        try:
            app = "bench"
            repo = make_app_repo(tmp / app, env_app("v0"), p)
            p.cli("apps:create", app, cwd=repo)
            p.git("push", "-q", "dockyard", "main", cwd=repo)
            host = f"{app}.{p.domain}"

            with Load(p.router_port, host) as base:
                time.sleep(args.baseline_seconds)
            durations = []
            with Load(p.router_port, host) as load:
                for i in range(1, args.deploys + 1):
                    make_app_repo(repo, env_app(f"v{i}"), p)
                    start = time.monotonic()
                    p.git("push", "-q", "dockyard", "main", cwd=repo)
                    durations.append(time.monotonic() - start)
                time.sleep(3)   # old instances drain: keep the load on

            floors, bare, scales = [], [], []
            for _ in range(3):   # interleaved, medians
                floors.append(floor_scale(args.scale, [*SAME_LIMITS, "--network", apps_network_of(p)]))
                bare.append(floor_scale(args.scale, []))
                start = time.monotonic()
                p.cli("ps:scale", f"web={args.scale}", "-a", app)
                # counted until every instance has answered through the router (raises if one never does)
                wait_all_answer(p.router_port, host, {f"web.{i}" for i in range(1, args.scale + 1)})
                scales.append(time.monotonic() - start)
                p.cli("ps:scale", "web=1", "-a", app)
                time.sleep(3)
        finally:
            stop_platform(p)
            run(["docker", "rmi", "-f", "dockyard-bench/scale:latest"], check=False)
    print(f"(a) {args.deploys} deploys under load (3 keep-alive clients through the router)")
    print(f"    requests served during deploys: {len(load.latencies)}; failed: {len(load.failed)} "
          f"{sorted(set(load.failed))[:5]}  (target 0)")
    print(f"    p99 latency: no deploy {base.p99_ms():.1f} ms, during deploys {load.p99_ms():.1f} ms, "
          f"ratio {load.p99_ms() / base.p99_ms():.2f}")
    print(f"    git push median {statistics.median(durations):.2f} s")
    f, s = statistics.median(floors), statistics.median(scales)
    print(f"(b) scale web=1 -> web={args.scale} (medians of 3)")
    print(f"    raw floor, {args.scale} parallel docker run (same limits, caps, /tmp, apps network) until each answers: {f:.2f} s")
    print(f"    (plain docker run, default network and no limits: {statistics.median(bare):.2f} s)")
    print(f"    dockyard ps:scale web={args.scale}, until each instance answered through the router: {s:.2f} s")
    print(f"    ratio scale / floor: {s / f:.2f}  (target <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
