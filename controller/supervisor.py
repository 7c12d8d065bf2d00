"""Runs the platform's own processes from the top-level Procfile in the background:
`python -m controller.supervisor start|stop|status`. Each process logs to
<home>/logs/<name>.log and is restarted with back-off if it dies (honcho instead stops
everything when one process exits, which is right for development, not for a platform).
Signal handlers only set a flag; the loop does the work."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

from core.procfile import parse_procfile
from core.fsutil import atomic_write

from .settings import Settings, from_env

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def supervisor_pid(s: Settings) -> int | None:
    return _read_pid(s.run_dir / "supervisor.pid")


def run(s: Settings, procfile: Path) -> int:
    """The supervisor loop (foreground)."""
    processes = parse_procfile(procfile.read_bytes())
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    children: dict[str, subprocess.Popen] = {}
    backoff = {name: 1.0 for name in processes}
    next_start = {name: 0.0 for name in processes}

    def spawn(name: str) -> None:
        log = open(s.logs_dir / f"{name}.log", "ab", buffering=0)
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        children[name] = subprocess.Popen(["/bin/sh", "-c", f"exec {processes[name]}"], cwd=ROOT,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        atomic_write(s.run_dir / f"{name}.pid", str(children[name].pid))

    while not stopping:
        now = time.monotonic()
        for name in processes:
            proc = children.get(name)
            if proc is not None and proc.poll() is None:
                continue
            if proc is not None:
                with open(s.logs_dir / f"{name}.log", "ab") as log:
                    log.write(f"--- {name} exited with code {proc.returncode}; restarting in "
                              f"{backoff[name]:.0f} s\n".encode())
                next_start[name] = now + backoff[name]
                backoff[name] = min(backoff[name] * 2, 30.0)
                children.pop(name)
            if now >= next_start[name]:
                spawn(name)
        time.sleep(0.5)
    for proc in children.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for name in processes:
        (s.run_dir / f"{name}.pid").unlink(missing_ok=True)
    (s.run_dir / "supervisor.pid").unlink(missing_ok=True)
    return 0


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
        click.echo(f"platform already running (supervisor pid {pid})")
    else:
        log = open(s.logs_dir / "supervisor.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "controller.supervisor", "run", "--procfile", str(procfile)],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        atomic_write(s.run_dir / "supervisor.pid", str(proc.pid))
        click.echo(f"platform started (supervisor pid {proc.pid}); logs in {s.logs_dir}")
    wait_serving(s)


@cli.command("run")
@click.option("--procfile", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=ROOT / "Procfile")
def run_cmd(procfile):
    """Run the supervisor in the foreground."""
    s = from_env()
    s.ensure_dirs()
    sys.exit(run(s, procfile))


@cli.command()
def stop():
    """Stop the platform's processes (apps keep running; they are the engine's)."""
    s = from_env()
    pid = supervisor_pid(s)
    if not pid:
        click.echo("platform not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        raise click.ClickException(f"supervisor pid {pid} did not stop within 40 s")
    click.echo("platform stopped")


@cli.command()
def status():
    """Show which platform processes run."""
    s = from_env()
    pid = supervisor_pid(s)
    click.echo(f"supervisor: {'running, pid %d' % pid if pid else 'stopped'}")
    for name in parse_procfile((ROOT / "Procfile").read_bytes()):
        p = _read_pid(s.run_dir / f"{name}.pid") if pid else None
        click.echo(f"{name}: {'running, pid %d' % p if p else 'stopped'}")
    if not pid:
        sys.exit(3)


if __name__ == "__main__":
    cli()
