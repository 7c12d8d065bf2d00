"""The JavaScript samples of bench/buildpack.py (`--only next,cra`): bench/samples/nextjs (Next.js
served by `next start`) and bench/samples/cra (Create React App, its build served as static
files). For each: a cold push (build cache purged), warm pushes after a one-line change, each
timed from `git push` to the first 200 of the new content through the router; the image's size
and what its node_modules holds (devDependencies must be gone)."""
from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import push_and_wait, wait_for
from tests.conftest import make_app_repo, run, start_platform, stop_platform

SAMPLES = Path(__file__).resolve().parent / "samples"
# sample -> (dir, file changed by a one-line change, the text in it that the marker replaces)
JS = {"next": ("nextjs", "pages/index.tsx", "hello from next"),
      "cra": ("cra", "public/index.html", "hello from cra")}
# a devDependency of each sample, which the image must not hold (the CRA image has no node_modules)
DEV_DEPENDENCY = {"next": "typescript", "cra": "react-scripts"}


def _push(p, repo: Path, app: str, marker: str, timeout: float = 1200) -> tuple[float, str]:
    """git push until the new content answers through the router: (seconds, the push's output)."""
    start = time.monotonic()
    proc = subprocess.run(["git", "push", "-q", f"{p.api}/{app}.git", "HEAD:main"], cwd=repo, env=p.env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"push of {app} failed:\n{proc.stderr[-4000:]}")
    wait_for(p.router_port, f"{app}.{p.domain}", marker, timeout=120)
    return time.monotonic() - start, proc.stderr


def _image_facts(p, app: str, dev: str) -> str:
    """The running release's image size, and the sizes of /app/node_modules and /app/.heroku in it."""
    tags = run(["docker", "images", "--format", "{{.Tag}}", f"{p.name}/{app}"]).stdout.split()
    release = max((t for t in tags if t.startswith("v") and t[1:].isdigit()), key=lambda t: int(t[1:]))
    image = f"{p.name}/{app}:{release}"
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", image]).stdout.strip())
    script = ("for d in /app/node_modules /app/.heroku/node /app/.heroku/static; do [ -e $d ] && du -sm $d; done; "
              "[ -d /app/node_modules ] && cd /app/node_modules && du -sm * @*/* 2>/dev/null | sort -rn | head -n 4 "
              "| sed 's/^/  largest: /'; "
              f"[ -e /app/node_modules/{dev} ] && echo 'devDependency {dev}: present' || echo 'devDependency {dev}: absent'")
    facts = run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c", script],
                check=False).stdout.split("\n")
    return f"image {size / 1e6:.1f} MB; " + "; ".join(f.replace("\t", " MB ") for f in facts if f.strip())


def measure_js(names: list[str], warm_runs: int, trace: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-js-") as tmp:
        tmp = Path(tmp)
        p = start_platform(tmp / "platform")
        results = []
        try:
            for name in names:
                folder, changed, text = JS[name]
                sample = SAMPLES / folder
                files = {str(f.relative_to(sample)): f.read_bytes() for f in sample.rglob("*") if f.is_file()}
                app = f"bench{name}"
                repo = make_app_repo(tmp / app, files, p)
                p.cli("apps:create", app, cwd=repo)
                original = (sample / changed).read_text()

                def change(marker: str) -> str:
                    make_app_repo(repo, {changed: original.replace(text, marker)}, p)
                    return marker

                p.cli("repo:purge-cache", "-a", app)
                cold, out = _push(p, repo, app, change(f"cold {name} {time.time()}"))
                build = next((line for line in out.splitlines() if "Build succeeded" in line), "?")
                warms = []
                for i in range(warm_runs):   # the last one's output with its arrival times
                    marker = change(f"warm {name} {i} {time.time()}")
                    warms.append(push_and_wait(["git", "push", "-q", f"{p.api}/{app}.git", "HEAD:main"], repo, p.env,
                                               p.router_port, f"{app}.{p.domain}", marker,
                                               trace and i == warm_runs - 1)[0])
                results.append((name, cold, warms, build.split("----->")[-1].strip(),
                                _image_facts(p, app, DEV_DEPENDENCY[name])))
        finally:
            stop_platform(p)
    for name, cold, warms, build, facts in results:
        w = statistics.median(warms) if warms else float("nan")
        print(f"{name:5}  cold push -> first 200: {cold:.2f} s; warm (one-line change): {w:.2f} s "
              f"(samples {' '.join(f'{x:.2f}' for x in warms)}); warm/cold {w / cold:.2f}"
              + ("  (target <= 0.40)" if name == "next" else ""))
        print(f"{name:5}  {facts}")
        print(f"{name:5}  last cold build: {build}")
