"""The nginx master process of one router prefix: start it as our child, reload it and wait
until the new workers took over, stop it gracefully (then harder), find it again from its
pid file, and kill the workers a dead master left behind.

Callers serialise these with the router lock (``router.nginx``). Linux only: process
checks read ``/proc``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from router import render
from router.errors import RouterError

_POLL = 0.02  # seconds between checks while waiting on nginx
_RELOAD_POLL = 0.005  # a deploy waits for its reload: checks of the master's few children are cheap


class NginxMaster:
    def __init__(self, prefix: Path, nginx_bin: str, conf_path: Path, port: int, *,
                 reload_timeout: float = 15.0, start_command: str = "") -> None:
        self.prefix = prefix
        self.nginx_bin = nginx_bin
        self.conf_path = conf_path
        self.port = port
        self.pid_path = prefix / render.PID_FILE
        self.error_log = prefix / render.ERROR_LOG
        self.reload_timeout = reload_timeout
        self.start_command = start_command
        self._proc: subprocess.Popen | None = None  # set when we started nginx ourselves

    # ------------------------------------------------------------ finding it
    def pid(self) -> int | None:
        """The live nginx master for this prefix named by the pid file, or None."""
        pid = self.pid_from_file()
        if pid is None:
            return None
        stat = _proc_stat(pid)
        if stat is None or stat[0] == "Z":
            return None
        cmdline = _cmdline(pid)
        if "nginx" not in cmdline or str(self.prefix) not in cmdline:
            return None  # stale pid file, pid reused by something else
        return pid

    def pid_from_file(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def workers(self, master: int) -> dict[int, str]:
        """Live children of ``master`` -> their process title."""
        out = {}
        for pid in _children(master):
            stat = _proc_stat(pid)
            if stat is not None and stat[1] == master and stat[0] != "Z":
                out[pid] = _cmdline(pid)
        return out

    # ------------------------------------------------------------ start, reload, stop
    def start(self, *, stdout: IO | int | None = None, stderr: IO | int | None = None,
              timeout: float = 10.0) -> subprocess.Popen:
        """Start nginx (``daemon off``, own process group) on the config the caller checked.

        Returns once nginx listens and its workers are up. Raises RouterError
        (with nginx's log) if it exits or does not come up within ``timeout``.
        """
        argv = [self.nginx_bin, "-p", f"{self.prefix}/", "-c", str(self.conf_path), "-g", "daemon off;"]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                    start_new_session=True)
        except FileNotFoundError:
            raise RouterError(f"nginx is not installed at {argv[0]}: install it or set DOCKYARD_NGINX.") from None
        self._proc = proc
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                raise RouterError(
                    f"nginx exited with code {code} while starting on port {self.port}. "
                    f"Is another program using that port (set DOCKYARD_ROUTER_PORT)? "
                    f"End of {self.error_log}:\n{tail(self.error_log)}"
                )
            if self.pid_from_file() == proc.pid and self.workers(proc.pid):
                return proc
            if time.monotonic() > deadline:
                _kill_group(proc.pid, signal.SIGKILL)
                _wait_child(proc, 5.0)
                raise RouterError(
                    f"nginx did not come up within {timeout:g}s; it was killed. "
                    f"End of {self.error_log}:\n{tail(self.error_log)}"
                )
            time.sleep(_POLL)

    def reload(self) -> None:
        """SIGHUP the master and wait until its new workers took over. A config the master
        refuses (it keeps its old workers and logs why) raises ReloadRefused with its words."""
        pid = self.pid()
        if pid is None:
            how = f" with: {self.start_command}" if self.start_command else ""
            raise RouterError(f"nginx is not running for {self.prefix}, so it cannot be reloaded. "
                              f"Start the router{how}")
        old, told = set(self.workers(pid)), set()
        offset = _size(self.error_log)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + self.reload_timeout
        while True:
            workers = self.workers(pid)
            old_active = [w for w in old if w in workers and "shutting down" not in workers[w]]
            new_active = [w for w in workers if w not in old and "shutting down" not in workers[w]]
            if new_active and not old_active:
                return
            if old_active and new_active and all("worker process" in workers[w] for w in new_active):
                # The new workers run the new config. The master tells the old ones to finish
                # (SIGQUIT: stop accepting, complete open requests) only after a fixed 100 ms
                # pause; telling them now, as the master will, ends the switch that much sooner.
                for w in set(old_active) - told:
                    _kill(w, signal.SIGQUIT)
                    told.add(w)
            refusal = _refusal(self.error_log, offset, pid)
            if refusal:
                raise ReloadRefused(refusal)
            if self.pid() != pid:
                raise RouterError(
                    f"nginx (pid {pid}) exited while reloading. End of {self.error_log}:\n{tail(self.error_log)}"
                )
            if time.monotonic() > deadline:
                raise RouterError(
                    f"nginx (pid {pid}) did not switch to the new config within {self.reload_timeout:g}s. "
                    f"End of {self.error_log}:\n{tail(self.error_log)}"
                )
            time.sleep(_RELOAD_POLL)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGQUIT): open requests finish, then nginx exits.

        Escalates to SIGTERM (fast shutdown), then SIGKILL of nginx's process
        group, 2 s apart, if it is still running after ``timeout`` seconds, so
        this returns within ``timeout + 4`` s. No-op if nginx is not running.
        """
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGQUIT)
            if not self._wait_exit(pid, timeout):
                own_group = (_proc_stat(pid) or ("", 0, 0))[2] == pid
                for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
                    if own_group:
                        _kill_group(pid, sig)
                    else:
                        _kill(pid, sig)
                    if self._wait_exit(pid, grace):
                        break
        self.reap_leftovers()

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return _wait_child(self._proc, timeout)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL)
        return True

    def reap_leftovers(self) -> None:
        """Kill workers orphaned by a master that died (e.g. SIGKILL): they keep
        the port and serve stale routes. nginx masters we start lead their own
        process group, so the orphans are the nginx processes in the group of a
        dead master."""
        groups = set()
        if self._proc is not None:
            if self._proc.poll() is None:
                return  # our master is alive: nothing is orphaned
            groups.add(self._proc.pid)
        stale = self.pid_from_file()
        if stale is not None and self.pid() is None:
            groups.add(stale)
        for pgid in groups:
            members = _nginx_group_members(pgid)
            if not members:
                continue
            for member in members:
                _kill(member, signal.SIGQUIT)  # closes the listening socket at once
            deadline = time.monotonic() + 5.0
            while any(_alive(m) for m in members) and time.monotonic() < deadline:
                time.sleep(_POLL)
            for member in members:
                if _alive(member):
                    _kill(member, signal.SIGKILL)


class ReloadRefused(RouterError):
    """The master refused the new config at a reload and kept serving the old one; ``output``
    is what it logged (nginx's `[emerg]` lines, as `nginx -t` prints them)."""

    def __init__(self, output: str) -> None:
        super().__init__(f"nginx refused the new config and keeps serving the previous one:\n{output}")
        self.output = output


# ---------------------------------------------------------------- helpers
def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _refusal(error_log: Path, offset: int, master: int) -> str:
    """The master's fatal lines logged since ``offset`` (a reload it refused), or "". A log
    capped meanwhile (shorter than ``offset``) is read from its start."""
    try:
        with open(error_log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(offset if f.tell() >= offset else 0)
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    mark = f" {master}#"
    lines = [line for line in data.splitlines()
             if mark in line and "[emerg]" in line]
    return "\n".join(lines)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file (for error messages)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(data.splitlines()[-lines:])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _children(pid: int) -> list[int]:
    """Candidate children of ``pid``: the kernel's list for its main thread (nginx's master has
    one thread), else every process. A reload polls this every _RELOAD_POLL seconds: scanning all of
    /proc costs more with every app's container processes on the host."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(word) for word in f.read().split()]
    except (OSError, ValueError):
        return _pids()


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of ``pid``, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rfind(")") + 2 :].split()  # the command name may contain spaces and parens
    return fields[0], int(fields[1]), int(fields[2])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _alive(pid: int) -> bool:
    """Exists and is not a zombie (our container's init may never reap them)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _nginx_group_members(pgid: int) -> list[int]:
    members = []
    for pid in _pids():
        stat = _proc_stat(pid)
        if stat is not None and stat[2] == pgid and stat[0] != "Z" and _cmdline(pid).startswith("nginx"):
            members.append(pid)
    return members


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_child(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False
