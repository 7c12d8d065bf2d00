"""Buildpack benchmark: the Python sample app (tests/samples/python, gunicorn from
PyPI), pushed without a Dockerfile, `git push` -> first 200 of the new content through the
router:

  cold  the build cache purged first (`repo:purge-cache`): pip downloads and installs again
  warm  a code-only change: the cached virtualenv is reused, nothing is downloaded

beside the raw floor, measured in the same run: the same app from an equivalent hand-written
Dockerfile with a dependency layer (requirements.txt copied and installed before the code),
`docker build` (dependency layer cached) + `docker run` + first 200 after a code-only change.
The floor is measured twice: plain `docker run`, and with the limits and the apps network
(ICC off) every Dockyard instance gets, which cost the engine ~0.1-0.2 s per container start.
Prints medians and the ratios warm/floor (target <= 1.5) and warm/cold (target <= 0.25);
never asserts. --trace prints the last warm push's output lines with their arrival times.

    .venv/bin/python bench/buildpack.py [--runs 5] [--cold-runs 2] [--trace] [--only python,next,cra]

`--only next,cra` measures the JavaScript samples instead (bench/samples/, each with a lockfile;
about 600 MB from npm on a cold push): a Next.js app served by `next start` (cold push, warm push
after a one-line change, target warm <= 40% of cold) and a Create React App app (react-scripts)
whose build output is served as static files (cold push; image target < 50 MB). Each prints its
image size and what node_modules holds in it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import SAME_LIMITS, apps_network_of, push_and_wait, wait_for  # noqa: E402
from bench.js_samples import measure_js  # noqa: E402
from tests.conftest import make_app_repo, run, start_platform, stop_platform  # noqa: E402

SAMPLE = ROOT / "tests" / "samples" / "python"
FLOOR_IMAGE = "dockyard-bench/buildpack-floor:latest"
CA = "/etc/ssl/certs/ca-certificates.crt"
FLOOR_DOCKERFILE = """FROM {stack}
COPY ca.crt /etc/dockyard-bench-ca.crt
ENV PIP_CERT=/etc/dockyard-bench-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN python3 -m venv /app/.venv
COPY requirements.txt /app/requirements.txt
RUN /app/.venv/bin/pip install -q -r /app/requirements.txt
COPY app.py /app/app.py
WORKDIR /app
USER 1000:1000
CMD ["/bin/sh", "-c", "exec /app/.venv/bin/gunicorn app:app --bind 0.0.0.0:$PORT"]
"""


def app_source(marker: str) -> str:
    return (SAMPLE / "app.py").read_text().replace("hello from python", marker)


def floor_once(ctx: Path, marker: str, flags: tuple[str, ...] = ()) -> float:
    """docker build + docker run + first 200; `flags` for docker run (e.g. Dockyard's limits)."""
    (ctx / "app.py").write_text(app_source(marker))
    start = time.monotonic()
    run(["docker", "build", "-q", "-t", FLOOR_IMAGE, str(ctx)], timeout=600)
    cid = run(["docker", "run", "-d", "-p", "127.0.0.1::5000", "-e", "PORT=5000", *flags,
               FLOOR_IMAGE]).stdout.strip()
    try:
        port = int(run(["docker", "port", cid, "5000/tcp"]).stdout.split(":")[-1])
        wait_for(port, "localhost", marker)
        return time.monotonic() - start
    finally:
        run(["docker", "rm", "-f", cid], check=False)


def push_once(p, repo: Path, app: str, marker: str, returned: list | None = None, trace: bool = False) -> float:
    make_app_repo(repo, {"app.py": app_source(marker)}, p)
    served, total = push_and_wait(["git", "push", "-q", f"{p.api}/{app}.git", "HEAD:main"], repo, p.env,
                                  p.router_port, f"{app}.{p.domain}", marker, trace)
    if returned is not None:
        returned.append(total)
    return served


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="warm and floor runs (interleaved)")
    ap.add_argument("--cold-runs", type=int, default=2)
    ap.add_argument("--trace", action="store_true", help="print the last warm push's output with timestamps")
    ap.add_argument("--no-interleave", action="store_true", help="all floor runs first, then the warm pushes")
    ap.add_argument("--only", default="python", help="comma-separated: python, next, cra")
    ap.add_argument("--js-runs", type=int, default=2, help="warm pushes of each JavaScript sample")
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if only - {"python", "next", "cra"}:
        ap.error("--only takes python, next and cra")
    if only & {"next", "cra"}:
        measure_js(sorted(only & {"next", "cra"}), args.js_runs, args.trace)
    if "python" not in only:
        return 0
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-bp-") as tmp:
        tmp = Path(tmp)
        ctx = tmp / "floor"
        ctx.mkdir()
        for name in ("requirements.txt", "app.py"):
            shutil.copy(SAMPLE / name, ctx / name)
        shutil.copy(CA, ctx / "ca.crt")
        stack = os.environ.get("DOCKYARD_STACK_IMAGE") or "dockyard/stack:bookworm"
        (ctx / "Dockerfile").write_text(FLOOR_DOCKERFILE.format(stack=stack))
        floor_first = floor_once(ctx, "floor first")        # fills the floor's dependency layer
        p = start_platform(tmp / "platform")
        try:
            app = "benchpy"
            files = {str(f.relative_to(SAMPLE)): f.read_bytes() for f in SAMPLE.rglob("*") if f.is_file()}
            repo = make_app_repo(tmp / app, files, p)
            p.cli("apps:create", app, cwd=repo)
            colds, warms, floors, hardened, returns = [], [], [], [], []
            for i in range(args.cold_runs):
                p.cli("repo:purge-cache", "-a", app)
                colds.append(push_once(p, repo, app, f"cold {i} {time.time()}"))
            # the same container Dockyard runs: its limits, and its apps network (ICC off)
            same = (*SAME_LIMITS, "--network", apps_network_of(p))
            if args.no_interleave:
                floors = [floor_once(ctx, f"floor {i} {time.time()}") for i in range(args.runs)]
                hardened = [floor_once(ctx, f"hard {i} {time.time()}", same) for i in range(args.runs)]
            for i in range(args.runs):       # interleaved, so all see the same machine state
                if not args.no_interleave:
                    floors.append(floor_once(ctx, f"floor {i} {time.time()}"))
                    hardened.append(floor_once(ctx, f"hard {i} {time.time()}", same))
                warms.append(push_once(p, repo, app, f"warm {i} {time.time()}", returns,
                                       trace=args.trace and i == args.runs - 1))
        finally:
            stop_platform(p)
            run(["docker", "rmi", "-f", FLOOR_IMAGE], check=False)
    f, c, w = statistics.median(floors), statistics.median(colds), statistics.median(warms)
    h = statistics.median(hardened)
    print(f"app: tests/samples/python (gunicorn from PyPI); warm/floor runs: {args.runs}, cold runs: "
          f"{args.cold_runs} (medians)")
    print(f"raw floor  first docker build (deps installed) + run + first 200:   {floor_first:.2f} s")
    print(f"raw floor  code change: docker build (deps cached) + run + 200:     {f:.2f} s")
    print(f"raw floor  the same, run with Dockyard's limits and apps network:   {h:.2f} s")
    print(f"dockyard   cold push (cache purged) -> first 200 via router:        {c:.2f} s")
    print(f"dockyard   warm push (code-only change) -> first 200 via router:    {w:.2f} s")
    print(f"dockyard   warm push, git push until it returns:                {statistics.median(returns):.2f} s")
    print("samples    floor " + " ".join(f"{x:.2f}" for x in floors) + " | hardened " + " ".join(f"{x:.2f}" for x in hardened) + " | warm " + " ".join(f"{x:.2f}" for x in warms)
          + " | cold " + " ".join(f"{x:.2f}" for x in colds))
    print(f"ratio      warm / floor:                                            {w / f:.2f}  (target <= 1.5)")
    print(f"ratio      warm / floor with Dockyard's limits and network:         {w / h:.2f}")
    print(f"ratio      warm / cold:                                             {w / c:.2f}  (target <= 0.25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
