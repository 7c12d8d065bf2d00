"""The authorized_keys file the platform's sshd reads, rewritten atomically from the key store on
every change, and where the SSH side keeps its files and gateway socket."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from core.fsutil import atomic_write

from controller.accounts import users
from controller.accounts.sshkeys import render_authorized_keys
from controller.services import Services
from controller.settings import Settings

LISTEN_HOST = "127.0.0.1"   # the only address the platform's sshd listens on; clients are given this one
SOCKET_ROOT = Path("/run/dockyard-ssh")


def ssh_dir(s: Settings) -> Path:
    return s.home / "ssh"


def socket_path(s: Settings) -> Path:
    return SOCKET_ROOT / (hashlib.sha256(str(s.home).encode()).hexdigest()[:16] + ".sock")


# The forced command is the git transport's stdlib-only client script, run by path as `git`.
COMMAND = Path(__file__).resolve().parent.parent / "git" / "ssh_command.py"


def python_bin() -> str:
    """The interpreter for the forced command, which runs as `git`: the venv's python may
    live where `git` cannot reach (here it links into /root/.pyenv), so the system python3
    runs the stdlib-only client script by path."""
    for candidate in ("/usr/bin/python3", sys.executable):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def forced_command(s: Settings) -> str:
    return f"{python_bin()} -I {COMMAND} {socket_path(s)}"


def write_authorized_keys(svc: Services) -> Path:
    s = svc.settings
    d = ssh_dir(s)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = d / "authorized_keys"
    atomic_write(path, render_authorized_keys(users.all_keys(svc), forced_command(s)))
    return path
