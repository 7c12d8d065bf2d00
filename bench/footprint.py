"""The platform's own memory while idle with one app: PSS, USS and RSS of every process it runs
(supervisor and its children, nginx included), and the modules each Python entry point imports
at start-up. USS (private pages) does not depend on what else runs on the machine, PSS does;
the load average is printed with the totals. Never asserts.

    .venv/bin/python bench/footprint.py
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import platform_memory, push_and_wait  # noqa: E402
from tests.conftest import ensure_busybox_base, httpd_app, make_app_repo, start_platform, stop_platform  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = ("controller.daemons.supervisor", "controller.daemons.platformd", "controller.daemons.wsgi")


def import_cost(module: str) -> tuple[int, float]:
    """(modules loaded, seconds) for `import module` in a fresh interpreter."""
    code = ("import sys, time; t = time.perf_counter(); import importlib; importlib.import_module(%r); "
            "print(len(sys.modules), time.perf_counter() - t)" % module)
    proc = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", code], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        return 0, 0.0
    n, t = proc.stdout.split()
    return int(n), float(t)


def report(home: Path) -> int:
    rows = platform_memory(home)
    total_pss = sum(r[2] for r in rows)
    total_rss = sum(r[3] for r in rows)
    total_uss = sum(r[4] for r in rows)
    for pid, name, pss, rss, uss in rows:
        print(f"  {pid:>7}  PSS {pss / 1024:6.1f} MB  USS {uss / 1024:6.1f} MB  RSS {rss / 1024:6.1f} MB  {name}")
    print(f"platform total: {len(rows)} processes, PSS {total_pss / 1024:.1f} MB, USS {total_uss / 1024:.1f} MB, "
          f"RSS {total_rss / 1024:.1f} MB")
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    return total_pss


def main() -> int:
    for module in ENTRY_POINTS:
        n, t = import_cost(module)
        if n:
            print(f"import {module}: {n} modules, {t * 1000:.0f} ms")
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        tmp = Path(tmp)
        ensure_busybox_base(tmp / "busybox")
        p = start_platform(tmp / "platform")
        try:
            repo = make_app_repo(tmp / "one", httpd_app("one"), p)
            p.cli("apps:create", "one", cwd=repo)
            push_and_wait(["git", "push", "-q", "dockyard", "main"], repo, p.env, p.router_port,
                          f"one.{p.domain}", "one")
            time.sleep(10)    # idle: a few reconciler, router and metrics passes
            report(p.home)
        finally:
            stop_platform(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
