"""Two locks per app, always taken in this order:

- the app lock (`app_lock`): one change at a time (a push, a config change, a rollback, a
  scale...). A push holds it through its whole build.
- the formation lock (`formation_lock`): whoever starts or stops the app's containers. A
  change takes it only for its rollout, after the build; the reconciler takes only this one,
  so it repairs the running release (a crashed instance) while the next one builds.

A lock is an fcntl.flock on a file under <home>/locks: the kernel drops it when the holder
dies, so a killed push or controller never leaves a stale lock behind. Who holds it is
written into the file, so the one that waits is told what it waits for."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from typing import Callable, Iterator

from core.errors import Locked

from controller.settings import Settings


def app_lock(settings: Settings, app: str, what: str, wait: float = 900.0,
             on_wait: Callable[[str], None] | None = None) -> contextlib.AbstractContextManager[None]:
    return _flock(settings, f"{app}.lock", app, what, wait, on_wait)


def formation_lock(settings: Settings, app: str, what: str, wait: float = 900.0
                   ) -> contextlib.AbstractContextManager[None]:
    return _flock(settings, f"{app}.formation.lock", app, what, wait, None)


def addon_lock(settings: Settings, addon: str, what: str, wait: float = 300.0
               ) -> contextlib.AbstractContextManager[None]:
    """Whoever starts, stops or removes an add-on's container: its provisioning, a restore,
    its destruction, and the reconciler (which skips an add-on whose lock is held)."""
    return _flock(settings, f"{addon}.addon.lock", addon, what, wait, None)


@contextlib.contextmanager
def _flock(settings: Settings, name: str, app: str, what: str, wait: float,
           on_wait: Callable[[str], None] | None) -> Iterator[None]:
    settings.locks_dir.mkdir(parents=True, exist_ok=True)
    path = settings.locks_dir / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(path)
                if time.monotonic() >= deadline:
                    raise Locked(f"{app} is busy with {holder}; try again when it has finished.") from None
                if on_wait and not told:
                    on_wait(f"Waiting for {holder} of {app} to finish (one deploy per app at a time)...")
                    told = True
                time.sleep(0.2)
        info = json.dumps({"pid": os.getpid(), "what": what, "since": time.strftime("%H:%M:%S")})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
        return f"a {info['what']} (pid {info['pid']}, since {info['since']})"
    except (OSError, ValueError, KeyError):
        return "another operation"
