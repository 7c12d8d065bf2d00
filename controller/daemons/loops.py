"""Loops that share one process, each in a thread of its own, and none able to stop the others.

A loop is a function `serve(settings, stop)` that runs until the `stop` event is set. When it
raises, or returns while `stop` is not set, its guard logs why and starts it again after a
back-off (the supervisor's rule for processes: doubling while it keeps failing, back to 1 s once
it ran `stable_after` seconds). Each loop's state (running, waiting to restart, its restarts and
last error) is written to one JSON file that `make status` reads: a loop that keeps failing
shows there, not only in the log.

The loops are imported by name when they start (`module:function`), so a process imports only
what its loops use, and a loop whose module fails to import fails alone."""
from __future__ import annotations

import contextlib
import importlib
import json
import logging
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from core.fsutil import atomic_write

STABLE_AFTER = 30.0       # seconds a process or loop must run before its restart back-off resets (DOCKYARD_STABLE_AFTER)
MAX_BACKOFF = 30.0

log = logging.getLogger("dockyard.loops")


def restart_delay(ran_for: float, backoff: float, stable_after: float = STABLE_AFTER) -> tuple[float, float]:
    """Pure: (seconds before a restart, the back-off for the next one). The back-off doubles
    while a process keeps crashing and starts over once it ran `stable_after` seconds: a crash
    after a healthy hour is not a crash loop and waits 1 s, not 30."""
    if ran_for >= stable_after:
        backoff = 1.0
    return backoff, min(backoff * 2, MAX_BACKOFF)


def resolve(target: str) -> Callable:
    """`package.module:function` -> the function (imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class LoopState:
    name: str
    state: str = "starting"          # running | restarting | stopped
    restarts: int = 0
    last_error: str = ""
    since: float = field(default_factory=time.time)


class Guarded:
    """Runs one loop in its own thread and restarts it when it fails."""

    def __init__(self, name: str, target: str, settings, stop: threading.Event, on_change: Callable[[], None]):
        self.name, self.target, self.settings, self.stop = name, target, settings, stop
        self.status = LoopState(name)
        self._on_change = on_change
        self.thread = threading.Thread(target=self._run, name=f"loop-{name}", daemon=True)

    def _set(self, state: str, error: str | None = None) -> None:
        self.status.state, self.status.since = state, time.time()
        if error is not None:
            self.status.last_error = error
        self._on_change()

    def _run(self) -> None:
        backoff = 1.0
        while not self.stop.is_set():
            started = time.monotonic()
            self._set("running")
            try:
                resolve(self.target)(self.settings, self.stop)
                if self.stop.is_set():
                    break
                error = "returned while the platform was running"
            except (Exception, SystemExit) as e:  # noqa: BLE001 - one loop's failure must not end the others
                error = f"{type(e).__name__}: {e}"
                log.error("loop %s failed:\n%s", self.name, traceback.format_exc().rstrip())
            delay, backoff = restart_delay(time.monotonic() - started, backoff, self.settings.stable_after)
            self.status.restarts += 1
            log.warning("loop %s %s; restarting it in %.0f s", self.name, error, delay)
            self._set("restarting", error[-500:])
            self.stop.wait(delay)
        self._set("stopped")


class LoopSet:
    """Every loop of a process, their states written to `state_path` on every change."""

    def __init__(self, loops: dict[str, str], settings, state_path: Path):
        self.stop = threading.Event()
        self.state_path = state_path
        self._lock = threading.Lock()
        self.loops = [Guarded(name, target, settings, self.stop, self._write) for name, target in loops.items()]

    def _write(self) -> None:
        with self._lock:
            atomic_write(self.state_path, json.dumps({g.name: asdict(g.status) for g in self.loops}, indent=1))

    def start(self) -> None:
        self._write()
        # Each loop's module imported here first, one after another: loops importing at once in
        # their threads can meet in the import system's module locks (a _DeadlockError, the loop
        # restarting a second later). A module that fails to import fails in its loop, as before.
        for g in self.loops:
            with contextlib.suppress(Exception):
                resolve(g.target)
        for g in self.loops:
            g.thread.start()

    def join(self, timeout: float) -> list[str]:
        """After `stop` is set: wait for the loops to end; returns those that did not."""
        deadline = time.monotonic() + timeout
        for g in self.loops:
            g.thread.join(max(0.0, deadline - time.monotonic()))
        return [g.name for g in self.loops if g.thread.is_alive()]


def read_states(state_path: Path) -> dict[str, dict]:
    """What a LoopSet last wrote (empty when the process never ran)."""
    try:
        return json.loads(state_path.read_text())
    except (OSError, ValueError):
        return {}
