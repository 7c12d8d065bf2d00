"""The platform's processes found by their pid files, each checked against its command line (a
recycled pid belongs to someone else), ended by process group; and the fingerprint of the code
they run. Shared by the supervisor loop and its start/stop/status commands."""
from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

from controller.settings import Settings

ROOT = Path(__file__).resolve().parents[2]   # the checkout (this file is controller/daemons/pidfiles.py)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
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
    cmdline = _cmdline(pid) if alive(pid) else ""
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


def end_processes(pids: list[int], timeout: float = 20.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left after `timeout`."""
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
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
