"""Metrics sampler cost: 50 app instances (busybox containers labelled as instances of a
throw-away platform), the real sampler (controller.observe.sampler.Sampler over the Docker backend
and a real store) run every --interval seconds for --seconds; prints the sampler process's
CPU time as % of one core, the engine's (dockerd) CPU over the same window beside its CPU
just before with no sampler,
the time one pass takes, and the rows stored. Target: sampler < 2 % of one core. Never asserts.

    .venv/bin/python bench/metrics.py [--instances 50] [--interval 5] [--seconds 60]
"""
from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controller.observe.sampler import Sampler  # noqa: E402
from controller.scheduler import make_scheduler  # noqa: E402
from controller.services import scheduler_config  # noqa: E402
from controller.settings import from_env  # noqa: E402
from controller.store import Store  # noqa: E402

IMAGE = "dockyard-test/busybox:1"   # tests/conftest.py's base (built by the e2e tests or below)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def ensure_image(tmp: Path) -> None:
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return
    import shutil
    shutil.copy("/bin/busybox", tmp / "busybox")
    (tmp / "Dockerfile").write_text('FROM scratch\nCOPY busybox /bin/busybox\n'
                                    'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n')
    docker("build", "-q", "-t", IMAGE, str(tmp))


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process; NaN when it is gone (an engine restarted meanwhile)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dockerd_pid() -> int | None:
    """The host's engine (its pid file), not a Docker-in-Docker node's dockerd."""
    try:
        return int(Path("/var/run/docker.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def storage(apps: int = 100, per_app: int = 2, interval: int = 5) -> None:
    """Steady-state store size and rows written per day for a platform of `apps` apps with
    `per_app` instances each: one app simulated over 8 days (samples every `interval` s,
    requests every minute with a spread of latencies, downsampled every 10 min), scaled up."""
    import json
    from core import latency
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    store = Store(tmp / "db")
    store.migrate()
    owner = store.create_user("bench")
    app = store.create_app("one", owner.id)
    start = int(time.time()) - 8 * 86400
    hist = {str(latency.bucket(ms)): n for ms, n in ((3, 50), (8, 30), (20, 12), (60, 5), (250, 2), (900, 1))}
    for t0 in range(start, start + 8 * 86400, 600):
        store.add_samples([("one", "web", i, t, 3.0, 40 << 20, 512 << 20, 0, t - start)
                           for t in range(t0, t0 + 600, interval) for i in range(1, per_app + 1)])
        store.add_request_minutes({("one", 1, m): {"requests": 100, "s2xx": 98, "s3xx": 0, "s4xx": 1, "s5xx": 1,
                                                   "bytes": 120000, "hist": dict(hist)}
                                   for m in range(t0, t0 + 600, 60)})
        store.downsample(t0 + 600)
    with store.read() as db:
        db.execute("VACUUM")
    size = (tmp / "db").stat().st_size
    rows = store.sample_count() + len(store.request_minutes(app, 0))
    per_day_rows = per_app * (86400 // interval) + 1440
    print(f"store, steady state: {size / 1e6:.1f} MB for 1 app x {per_app} instances ({rows} rows) -> "
          f"{apps * size / 1e6:.0f} MB for {apps} apps; it stops growing after 7 days")
    print(f"written per day for {apps} apps: {apps * per_day_rows / 1e6:.2f} M rows "
          f"({apps * per_app} instances every {interval} s + {apps} apps' request minutes), "
          f"of which the store keeps 1 h raw, 24 h per minute, 7 days per ten minutes")
    print(json.dumps({"bytes_per_app": size, "rows_per_app": rows}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--storage", action="store_true", help="Only the store-size estimate (no engine).")
    args = ap.parse_args()
    if args.storage:
        storage(interval=int(args.interval))
        return
    name = "dyb" + secrets.token_hex(3)
    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    ensure_image(tmp)
    settings = from_env({"DOCKYARD_HOME": str(tmp / "home"), "DOCKYARD_NAME": name})
    store = Store(settings.db_path)
    store.migrate()
    owner = store.create_user("bench")
    apps = [f"app{i}" for i in range((args.instances + 1) // 2)]
    for a in apps:
        store.create_app(a, owner.id)
    ids = []
    try:
        for i in range(args.instances):
            app, index = apps[i // 2], i % 2 + 1
            ids.append(docker("run", "-d", "--memory", "32m", "--label", f"dockyard.instance={name}",
                              "--label", f"dockyard.app={app}", "--label", "dockyard.process=web",
                              "--label", f"dockyard.index={index}", "--label", "dockyard.release=1",
                              IMAGE, "sh", "-c", "while true; do sleep 1; done").strip())
        sampler = Sampler(store, make_scheduler(scheduler_config(settings)))
        sampler.sample_once()          # warm up (engine client, first readings)
        dpid = dockerd_pid()
        # the engine's CPU with no sampler first: on a shared machine it is busy with others
        b0, bw = cpu_seconds(dpid), time.monotonic()
        time.sleep(min(20.0, args.seconds / 3))
        base = (cpu_seconds(dpid) - b0) / (time.monotonic() - bw)
        d0 = cpu_seconds(dpid)
        c0, w0 = time.process_time(), time.monotonic()
        passes, durations = 0, []
        while time.monotonic() - w0 < args.seconds:
            t = time.monotonic()
            n = sampler.sample_once()
            durations.append(time.monotonic() - t)
            passes += 1
            time.sleep(max(0.0, args.interval - (time.monotonic() - t)))
        wall = time.monotonic() - w0
        cpu = time.process_time() - c0
        dcpu = cpu_seconds(dpid) - d0
        durations.sort()
        sys.stdout.flush()
        print(f"instances {args.instances}, interval {args.interval:g} s, {passes} passes over {wall:.0f} s "
              f"({n} readings per pass)")
        print(f"sampler CPU: {cpu:.2f} s = {100 * cpu / wall:.2f} % of one core (target < 2 %)")
        print(f"dockerd CPU over the same window: {100 * dcpu / wall:.2f} % of one core, "
              f"{100 * base:.2f} % just before without the sampler (the difference is the inspects)")
        print(f"one pass: median {durations[len(durations) // 2]:.2f} s, max {durations[-1]:.2f} s")
        print(f"rows stored: {store.sample_count()}")
    finally:
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


if __name__ == "__main__":
    main()
