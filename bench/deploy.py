"""Deploy benchmark: for a tiny Dockerfile app, time `git push` -> first 200 of the
new content through the Dockyard router, and, in the same run, the raw floor: `docker build`
+ `docker run` + first 200 with no platform, plain and with the limits and apps network (ICC
off) every Dockyard instance gets. Prints medians and the ratios, and the median time of each
stage of a redeploy (from its output lines' arrival times); never asserts. --trace prints the
last redeploy's output lines with their arrival times.

Measured alike on both sides: the platform runs with its own intervals (not the tests'); the
router is polled every 50 ms until the push says the new instance started, then every 5 ms (a
floor polls nothing during its build and `docker run`); each redeploy's old instance is gone
before the next round (a floor removes its container with `docker rm -f`).

    .venv/bin/python bench/deploy.py [--runs 5] [--trace] [--apps-network auto|own]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (PRODUCT_INTERVALS, SAME_LIMITS, apps_network_of, push_and_wait, wait_for,  # noqa: E402
                          wait_retired)
from core.isolation import NETWORK_CHOICES  # noqa: E402
from tests.conftest import (BUSYBOX_BASE, ensure_busybox_base, httpd_app, make_app_repo, run,  # noqa: E402
                            start_platform, stop_platform)


def floor_once(ctx: Path, text: str, flags: tuple[str, ...] = ()) -> float:
    """docker build + docker run + first 200; `flags` for docker run (e.g. Dockyard's limits)."""
    (ctx / "index.html").write_text(text)
    start = time.monotonic()
    run(["docker", "build", "-q", "-t", "dockyard-bench/floor:latest", str(ctx)])
    cid = run(["docker", "run", "-d", "-p", "127.0.0.1::5000", "-e", "PORT=5000", *flags,
               "dockyard-bench/floor:latest"]).stdout.strip()
    try:
        port = int(run(["docker", "port", cid, "5000/tcp"]).stdout.split(":")[-1])
        wait_for(port, "localhost", text)
        return time.monotonic() - start
    finally:
        run(["docker", "rm", "-f", cid], check=False)
        # its layers change every round: none of them is a later round's cache, and nothing dangles
        run(["docker", "rmi", "dockyard-bench/floor:latest"], check=False)


def dockyard_once(p, repo: Path, app: str, text: str, trace: bool = False,
                  timed: list | None = None) -> tuple[float, float]:
    make_app_repo(repo, {"index.html": text}, p)
    out = push_and_wait(["git", "push", "-q", "dockyard", "main"], repo, p.env, p.router_port,
                        f"{app}.{p.domain}", text, trace, timed, starting=STARTING)
    wait_retired(p.name, app)   # as the floor's `docker rm -f`: nothing left dying for the next run
    return out


STARTING = "Starting web.1"   # the push's line once the new instance runs: no 200 of it comes earlier

# A redeploy's stages, each ending at the first output line that contains its mark
STAGES = (("push, checks, sandbox, context upload", "Step 1/"), ("build steps in the sandbox", "Successfully tagged"),
          ("image out of the sandbox (push, labels, pull)", "-----> Build succeeded"),
          ("release, container create + start", "Starting web.1"), ("health check", "check passed"),
          ("route switch, to the first 200", "(first 200"))


def stages(timed: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds per stage of one redeploy's timed output (a stage whose mark is missing is left out)."""
    out, prev = {}, 0.0
    for label, mark in STAGES:
        at = next((t for t, line in timed if mark in line), None)
        if at is not None:
            out[label], prev = at - prev, at
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--trace", action="store_true", help="print the last redeploy's output with timestamps")
    ap.add_argument("--apps-network", choices=NETWORK_CHOICES, default="auto",
                    help="DOCKYARD_APPS_NETWORK of the platform measured (the floor's second row runs on the same)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        tmp = Path(tmp)
        ensure_busybox_base(tmp / "busybox")
        ctx = tmp / "floor"
        ctx.mkdir()
        for rel, content in httpd_app("floor").items():
            (ctx / rel).write_text(content)
        p = start_platform(tmp / "platform", **PRODUCT_INTERVALS, DOCKYARD_APPS_NETWORK=args.apps_network)
        try:
            app = "bench"
            repo = make_app_repo(tmp / app, httpd_app("cold"), p)
            p.cli("apps:create", app, cwd=repo)
            cold, _ = dockyard_once(p, repo, app, "cold-2")
            floors, hardened, served, pushes, split = [], [], [], [], []
            # the same container Dockyard runs: its limits, and its apps network (ICC off)
            same = (*SAME_LIMITS, "--network", apps_network_of(p))
            for i in range(args.runs):       # interleaved, so all see the same machine state
                floors.append(floor_once(ctx, f"floor {i} {time.time()}"))
                hardened.append(floor_once(ctx, f"hard {i} {time.time()}", same))
                timed: list = []
                s, total = dockyard_once(p, repo, app, f"dockyard {i} {time.time()}",
                                         trace=args.trace and i == args.runs - 1, timed=timed)
                split.append(stages(timed))
                served.append(s)
                pushes.append(total)
        finally:
            stop_platform(p)
    f, d, t = statistics.median(floors), statistics.median(served), statistics.median(pushes)
    h = statistics.median(hardened)
    print(f"base image: {BUSYBOX_BASE}; runs: {args.runs} (medians); app containers on {same[-1]}")
    print(f"raw floor  docker build + docker run + first 200:          {f:.2f} s")
    print(f"raw floor  the same, with Dockyard's limits and apps network:  {h:.2f} s")
    print(f"dockyard   first deploy, git push -> first 200 via router: {cold:.2f} s")
    print(f"dockyard   redeploy, git push -> first 200 via router:     {d:.2f} s")
    print(f"dockyard   redeploy, git push until it returns:            {t:.2f} s")
    paired = statistics.median(one / two for one, two in zip(served, floors))
    print(f"ratio      redeploy / floor:                               {d / f:.2f}  (target <= 1.5)")
    print(f"ratio      the same, the median of each round's own ratio:  {paired:.2f}  (rounds side by side: "
          "the machine's drift cancels)")
    print(f"ratio      redeploy / floor with Dockyard's limits and network: {d / h:.2f}")
    print("redeploy stages (medians):")
    for label, _ in STAGES:
        times = [one[label] for one in split if label in one]
        if times:
            print(f"  {label:48s} {statistics.median(times):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
