"""`python -m controller.daemons.supervisor start|stop|status`: start the supervisor (if not
running) and wait until the platform serves, stop it, or show what runs. The long-running loop
itself is supervisor.py's `run`, kept free of these commands' imports."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import click

from core.fsutil import atomic_write
from core.procfile import parse_procfile

from controller.daemons.loops import read_states
from controller.daemons.pidfiles import ROOT, alive, child_pids, code_version, end_processes, supervisor_pid
from controller.settings import Settings, from_env, router_config


# ---- start / stop / status -------------------------------------------------------------
def _nginx(s: Settings):
    """The router's nginx (imported here: the supervisor loop itself never needs it)."""
    from router.nginx import Nginx
    return Nginx(router_config(s))


def stop_nginx(s: Settings) -> None:
    _nginx(s).stop(timeout=float(s.stop_grace))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except OSError:
        return False


def wait_serving(s: Settings, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    api = f"{s.api_url}/healthz"
    router = f"http://127.0.0.1:{s.router_port}/"
    while time.monotonic() < deadline:
        if _answers(api) and _answers(router):
            return
        time.sleep(0.3)
    raise click.ClickException(f"The platform did not start serving within {timeout:.0f} s "
                               f"(API {api}, router {router}); see the logs in {s.logs_dir}.")


def _procfile_processes(procfile: Path = ROOT / "Procfile") -> dict[str, str]:
    return parse_procfile(procfile.read_bytes())


@click.group()
def cli():
    """Run the platform's Procfile processes in the background."""


@cli.command()
@click.option("--procfile", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=ROOT / "Procfile")
def start(procfile):
    """Start the platform (if not running) and wait until it serves."""
    s = from_env()
    s.ensure_dirs()
    pid = supervisor_pid(s)
    if pid:
        _upgrade_if_changed(s, pid)
    else:
        orphans = child_pids(s, _procfile_processes(procfile))
        if orphans:
            click.echo("ending platform processes left without a supervisor: "
                       + ", ".join(f"{n} (pid {p})" for n, p in sorted(orphans.items())))
            end_processes(list(orphans.values()))
        with open(s.logs_dir / "supervisor.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "controller.daemons.supervisor", "run", "--procfile", str(procfile)],
                                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        atomic_write(s.run_dir / "supervisor.pid", str(proc.pid))
        click.echo(f"platform started (supervisor pid {proc.pid}); logs in {s.logs_dir}")
    wait_serving(s)


def _upgrade_if_changed(s: Settings, pid: int) -> None:
    """The platform runs: restart its processes when the code on disk changed since they
    started (`git pull && make up`), else say it runs."""
    version_file = s.run_dir / "supervisor.version"
    running = version_file.read_text().strip() if version_file.exists() else ""
    wanted = code_version()
    if running == wanted:
        click.echo(f"platform already running (supervisor pid {pid})")
        return
    click.echo(f"platform running (supervisor pid {pid}) on older code: restarting its processes, "
               "one at a time; apps keep serving")
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if version_file.exists() and version_file.read_text().strip() == wanted:
            click.echo("platform upgraded")
            return
        time.sleep(0.3)
    raise click.ClickException(f"the platform's processes did not restart within 120 s; see {s.logs_dir}")


@cli.command()
def stop():
    """Stop the platform's processes (apps keep running; they are the engine's)."""
    s = from_env()
    pid = supervisor_pid(s)
    orphans = child_pids(s, _procfile_processes()) if not pid else {}
    if not pid and not orphans:
        serving = _nginx(s).running()
        stop_nginx(s)
        click.echo("platform not running" + (" (stopped the router's nginx it left serving)" if serving else ""))
        return
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 40
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            raise click.ClickException(f"supervisor pid {pid} did not stop within 40 s")
    left = child_pids(s, _procfile_processes())
    if left:
        end_processes(list(left.values()))
    stop_nginx(s)
    click.echo("platform stopped" + (f" (ended {', '.join(sorted(orphans))} left without a supervisor)"
                                     if orphans else ""))


@cli.command()
def status():
    """Show which platform processes run (exit 3 unless all of them run supervised)."""
    s = from_env()
    pid = supervisor_pid(s)
    running = child_pids(s, _procfile_processes())
    click.echo(f"supervisor: {'running, pid %d' % pid if pid else 'stopped'}")
    for name in _procfile_processes():
        p = running.get(name)
        state = f"running, pid {p}" if p else "stopped"
        if p and not pid:
            state += " (orphaned: no supervisor; `make up` or `make down` ends it)"
        click.echo(f"{name}: {state}")
    failing = _echo_loops(s) if running.get("platform") else []
    nginx = _nginx(s).master_pid()
    click.echo(f"nginx (router data plane): {'serving, pid %d' % nginx if nginx else 'stopped'}")
    if not pid or len(running) < len(_procfile_processes()):
        sys.exit(3)
    if failing:
        click.echo("platform: degraded: loops restarting after a failure: " + ", ".join(failing))
        sys.exit(4)
    problems = _health_problems(s)
    click.echo("platform: " + ("degraded: " + "; ".join(problems) if problems else "ok"))
    if problems:
        sys.exit(4)


def _echo_loops(s: Settings) -> list[str]:
    """Each loop of the platform process, as it last wrote its state; returns those waiting
    to restart after a failure."""
    from controller.daemons.platformd import state_path
    failing = []
    for name, st in read_states(state_path(s)).items():
        line = f"  {name} loop: {st.get('state')}"
        if st.get("restarts"):
            line += f" ({st['restarts']} restarts; last error: {st.get('last_error', '')[:200]})"
        if st.get("state") == "restarting":
            failing.append(name)
        click.echo(line)
    return failing


def _health_problems(s: Settings) -> list[str]:
    """What the API's /healthz says stops the platform from working fully."""
    try:
        with urllib.request.urlopen(f"{s.api_url}/healthz", timeout=5) as resp:
            body = json.loads(resp.read() or b"{}")
    except (OSError, ValueError) as e:
        return [f"the API does not answer /healthz ({e})"]
    return list(body.get("problems") or [])
