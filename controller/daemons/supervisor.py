"""Runs the platform's own processes from the top-level Procfile in the background:
`python -m controller.daemons.supervisor start|stop|status`. Each process is restarted with back-off
if it dies (honcho instead stops everything when one process exits, which is right for
development, not for a platform); the back-off resets once a process has run for a while.

Children die with the supervisor (the kernel sends them SIGTERM when it goes, even on
kill -9), so no set of platform processes ever runs unsupervised; a new `start` first ends
any the old supervisor left behind (found by pid file, checked by command line), and
`status` and `stop` tell the truth and work from any of these states.

Each process's output goes through the supervisor into <home>/logs/<name>.log, rotated at
DOCKYARD_LOG_MAX_MB with DOCKYARD_LOG_KEEP old files. Signal handlers only set a flag."""
from __future__ import annotations

import ctypes
import hashlib
import logging.handlers
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import click

from core.fsutil import atomic_write
from core.procfile import parse_procfile

from controller.daemons.loops import read_states, restart_delay
from controller.settings import Settings, from_env, router_config

ROOT = Path(__file__).resolve().parents[2]   # the checkout (this file is controller/daemons/supervisor.py)
_PR_SET_PDEATHSIG = 1


# ---- processes by pid file, verified ------------------------------------------------------
def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie has exited: it only waits for its parent to read its status
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _read_pid(path: Path, *looks_like: str) -> int | None:
    """The pid in `path` when that process is alive and its command line contains one of
    `looks_like` (a recycled pid belongs to someone else)."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    cmdline = _cmdline(pid) if _alive(pid) else ""
    return pid if cmdline and any(sign in cmdline for sign in looks_like) else None


def supervisor_pid(s: Settings) -> int | None:
    return _read_pid(s.run_dir / "supervisor.pid", "controller.daemons.supervisor run")


def _signature(command: str) -> str:
    """What a Procfile process's command line contains once running (its program's
    arguments, without the venv path that the shell resolves)."""
    words = command.split()
    return " ".join(words[1:3]) if len(words) > 1 else words[0]


def child_pids(s: Settings, processes: dict[str, str]) -> dict[str, int]:
    """The platform processes that are alive, by name (whoever started them). A process that
    prepared and then exec'd a program (sshd, docker-registry) names its config under this
    platform's home on its command line instead."""
    found = {}
    for name, command in processes.items():
        pid = _read_pid(s.run_dir / f"{name}.pid", _signature(command).strip("'\""), f"{s.home}/")
        if pid:
            found[name] = pid
    return found


def _end(pids: list[int], timeout: float = 20.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left after `timeout`."""
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def code_version(root: Path = ROOT) -> str:
    """A fingerprint of the platform's code as it is on disk (paths, sizes, mtimes): when it
    differs from what the running processes started from, `start` restarts them (upgrade)."""
    h = hashlib.sha256()
    for pkg in ("core", "builder", "router", "controller", "buildpacks"):
        for path in sorted((root / pkg).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                st = path.stat()
                h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    procfile = root / "Procfile"
    h.update(procfile.read_bytes() if procfile.exists() else b"")
    return h.hexdigest()[:16]


# ---- the supervisor loop -------------------------------------------------------------------
_LIBC = ctypes.CDLL(None, use_errno=True)   # loaded here: a forked child must not load libraries


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, however it dies."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _log_handler(s: Settings, name: str) -> logging.Handler:
    handler = logging.handlers.RotatingFileHandler(s.logs_dir / f"{name}.log", maxBytes=s.log_max_bytes,
                                                   backupCount=s.log_keep)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


@dataclass
class Child:
    name: str
    command: str
    log: logging.Handler
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = 1.0
    next_start: float = 0.0
    pump: threading.Thread | None = field(default=None, repr=False)

    def say(self, text: str) -> None:
        self.log.emit(logging.makeLogRecord({"msg": text}))

    def spawn(self, s: Settings) -> None:
        self.say(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}")
        self.proc = subprocess.Popen(["/bin/sh", "-c", f"exec {self.command}"], cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        self.started = time.monotonic()
        atomic_write(s.run_dir / f"{self.name}.pid", str(self.proc.pid))
        self.pump = threading.Thread(target=self._copy_output, args=(self.proc,), name=f"log-{self.name}", daemon=True)
        self.pump.start()

    def _copy_output(self, proc: subprocess.Popen) -> None:
        with proc.stdout:
            for line in proc.stdout:
                self.say(line.decode("utf-8", "replace").rstrip("\n"))

    def check(self, s: Settings, now: float) -> None:
        """Start it when it is due; note an exit and schedule the restart."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if self.proc is not None:
            delay, self.backoff = restart_delay(now - self.started, self.backoff, s.stable_after)
            self.say(f"--- {self.name} exited with code {self.proc.returncode}; restarting in {delay:.0f} s")
            self.next_start = now + delay
            self.proc = None
        if now >= self.next_start:
            self.spawn(s)


def run(s: Settings, procfile: Path) -> int:
    """The supervisor loop (foreground). SIGHUP restarts every process, one at a time, on the
    code now on disk (an in-place upgrade: nginx keeps serving throughout)."""
    processes = parse_procfile(procfile.read_bytes())
    stopping: list[int] = []
    restarting: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    signal.signal(signal.SIGHUP, lambda *_: restarting.append(1))
    leftovers = child_pids(s, processes)   # a previous supervisor's, if it could not end them
    if leftovers:
        _end(list(leftovers.values()))
    children = [Child(name, command, _log_handler(s, name)) for name, command in processes.items()]
    atomic_write(s.run_dir / "supervisor.version", code_version())
    while not stopping:
        if restarting:
            restarting.clear()
            children = _restart_all(s, children, procfile)
        now = time.monotonic()
        for child in children:
            child.check(s, now)
        time.sleep(0.2)
    _end([c.proc.pid for c in children if c.proc is not None and c.proc.poll() is None])
    for child in children:
        if child.proc is not None:
            child.proc.wait()
        if child.pump is not None:
            child.pump.join(2)
        child.log.close()
        (s.run_dir / f"{child.name}.pid").unlink(missing_ok=True)
    (s.run_dir / "supervisor.pid").unlink(missing_ok=True)
    return 0


def _restart_all(s: Settings, children: list[Child], procfile: Path) -> list[Child]:
    """One process at a time: end it, start it again, let it come up before the next. The
    Procfile is read again: a process the new code no longer lists is ended, a new one started."""
    version = code_version()
    wanted = parse_procfile(procfile.read_bytes())
    kept = []
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            child.say(f"--- restarting {child.name} on the code now on disk (upgrade)")
            _end([child.proc.pid])
            child.proc.wait()
        child.proc = None
        if child.name not in wanted:
            child.say(f"--- {child.name} is no longer in the Procfile: not restarted")
            (s.run_dir / f"{child.name}.pid").unlink(missing_ok=True)
            continue
        child.command, child.backoff, child.next_start = wanted[child.name], 1.0, 0.0
        child.spawn(s)
        kept.append(child)
        time.sleep(1.0)
    for name in wanted.keys() - {c.name for c in kept}:
        child = Child(name, wanted[name], _log_handler(s, name))
        child.spawn(s)
        kept.append(child)
    atomic_write(s.run_dir / "supervisor.version", version)
    return kept


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
            _end(list(orphans.values()))
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
    orphans = child_pids(s, _procfile_processes()) if not pid else {}
    if not pid and not orphans:
        serving = _nginx(s).running()
        stop_nginx(s)
        click.echo("platform not running" + (" (stopped the router's nginx it left serving)" if serving else ""))
        return
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 40
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            raise click.ClickException(f"supervisor pid {pid} did not stop within 40 s")
    left = child_pids(s, _procfile_processes())
    if left:
        _end(list(left.values()))
    stop_nginx(s)
    click.echo("platform stopped" + (f" (ended {', '.join(sorted(orphans))} left without a supervisor)"
                                     if orphans else ""))


@cli.command()
def status():
    """Show which platform processes run (exit 3 unless all of them run supervised)."""
    s = from_env()
    pid = supervisor_pid(s)
    alive = child_pids(s, _procfile_processes())
    click.echo(f"supervisor: {'running, pid %d' % pid if pid else 'stopped'}")
    for name in _procfile_processes():
        p = alive.get(name)
        state = f"running, pid {p}" if p else "stopped"
        if p and not pid:
            state += " (orphaned: no supervisor; `make up` or `make down` ends it)"
        click.echo(f"{name}: {state}")
    failing = _echo_loops(s) if alive.get("platform") else []
    nginx = _nginx(s).master_pid()
    click.echo(f"nginx (router data plane): {'serving, pid %d' % nginx if nginx else 'stopped'}")
    if not pid or len(alive) < len(_procfile_processes()):
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


if __name__ == "__main__":
    cli()
