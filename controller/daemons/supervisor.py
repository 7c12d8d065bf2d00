"""Runs the platform's own processes from the top-level Procfile in the background:
`python -m controller.daemons.supervisor start|stop|status`. Each process is restarted with back-off
if it dies (honcho instead stops everything when one process exits, which is right for
development, not for a platform); the back-off resets once a process has run for a while.

Children die with the supervisor (the kernel sends them SIGTERM when it goes, even on
kill -9), so no set of platform processes ever runs unsupervised; a new `start` first ends
any the old supervisor left behind (found by pid file, checked by command line), and
`status` and `stop` tell the truth and work from any of these states.

Each process's output goes through the supervisor into <home>/logs/<name>.log, rotated at
DOCKYARD_LOG_MAX_MB with DOCKYARD_LOG_KEEP old files. Signal handlers only set a flag.

This module is the long-running supervisor and imports only what supervising needs: `start`,
`stop` and `status` (click, HTTP checks, nginx) live in supervisor_cli.py, which `python -m
controller.daemons.supervisor` hands every command but `run` to. The supervisor runs as long as
the platform, so every module it loads is memory held all that time."""
from __future__ import annotations

import argparse
import ctypes
import logging.handlers
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.fsutil import atomic_write
from core.procfile import parse_procfile

from controller.daemons.loops import restart_delay
from controller.daemons.pidfiles import ROOT, child_pids, code_version, end_processes
from controller.settings import Settings, from_env

_PR_SET_PDEATHSIG = 1


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


def child_env(environ) -> dict[str, str]:
    """Pure: the environment of a platform process. glibc gives each thread that allocates an
    arena of its own (up to 8 per core), and the platform's processes run many threads (the API's
    request threads, the platform process's loops) that each keep a few partly used arenas; two
    arenas hold the same work in less memory. An operator's own MALLOC_ARENA_MAX wins."""
    return {"MALLOC_ARENA_MAX": "2", **environ}


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
                                     preexec_fn=_die_with_parent, env=child_env(os.environ))
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
        end_processes(list(leftovers.values()))
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
    end_processes([c.proc.pid for c in children if c.proc is not None and c.proc.poll() is None])
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
            end_processes([child.proc.pid])
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


def main(argv: list[str]) -> int:
    """`run [--procfile PATH]`: the supervisor in the foreground; any other command is the CLI's."""
    if argv[:1] != ["run"]:
        from controller.daemons.supervisor_cli import cli
        cli.main(args=argv, prog_name="python -m controller.daemons.supervisor")
        return 0
    parser = argparse.ArgumentParser(prog="python -m controller.daemons.supervisor run",
                                     description="Run the supervisor in the foreground.")
    parser.add_argument("--procfile", type=Path, default=ROOT / "Procfile")
    args = parser.parse_args(argv[1:])
    if not args.procfile.is_file():
        parser.error(f"the Procfile {args.procfile} does not exist: pass the platform's Procfile")
    s = from_env()
    s.ensure_dirs()
    return run(s, args.procfile)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
