"""What the long-running processes import at start: every module is memory they hold as long as
the platform runs (bench/footprint.py measures it). Each check starts a fresh interpreter."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def loaded_after(code: str) -> set[str]:
    """The top-level names of the modules a fresh interpreter holds after running `code`."""
    probe = code + "\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("code, absent", [
    # the supervisor only supervises: its start/stop/status commands (click, HTTP checks) are not loaded
    ("import controller.daemons.supervisor",
     {"click", "urllib.request", "controller.daemons.supervisor_cli", "router.nginx", "cryptography"}),
    # the API serves the rendezvous certificate without parsing it; Prometheus' client is loaded when scraped
    ("import controller.daemons.wsgi", {"cryptography", "prometheus_client"}),
    # gunicorn's master reads its settings only; the log redaction is the worker's
    ("import controller.daemons.gunicorn_conf", {"controller.observe.heroku_logs", "flask", "controller.services"}),
    ("import controller.daemons.platformd", {"cryptography", "flask", "docker"}),
    # the loops: the router's certificate inspections are kept, the reconciler only records its passes
    ("from controller.daemons import platformd\nfrom controller.daemons.loops import resolve\n"
     "[resolve(target) for target in platformd.LOOPS.values()]", {"cryptography", "prometheus_client", "flask"}),
])
def test_a_long_running_process_does_not_load_what_it_does_not_use(code, absent):
    loaded = loaded_after(code)
    assert not absent & loaded, sorted(absent & loaded)


def test_platform_processes_get_two_malloc_arenas_unless_the_operator_chose():
    from controller.daemons.supervisor import child_env
    assert child_env({"PATH": "/bin"}) == {"PATH": "/bin", "MALLOC_ARENA_MAX": "2"}
    assert child_env({"MALLOC_ARENA_MAX": "8"})["MALLOC_ARENA_MAX"] == "8"


def test_the_supervisor_module_runs_the_cli_for_every_command_but_run():
    run = subprocess.run([sys.executable, "-m", "controller.daemons.supervisor", "run", "--procfile", "/nonexistent"],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "Procfile /nonexistent does not exist" in run.stderr
    helped = subprocess.run([sys.executable, "-m", "controller.daemons.supervisor", "--help"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert all(command in helped.stdout for command in ("start", "stop", "status"))
