"""Cluster backend: build slots. Each node runs SLOTS_PER_NODE builds at once; a build takes a
slot on the node its app built on last when that one is free (its build cache is there), else
on the least loaded node with one free, and waits its turn (first come, first served) when
every node is building. Slots are lock files of the platform's home, so every process of the
platform counts the same ones."""
from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path
from typing import IO, Callable

from core.errors import ImageBuildFailed, SchedulerError
from core.fsutil import atomic_write

SLOTS_PER_NODE = 1       # builds a node runs at once: one build's steps already use its cores
MANAGERLESS_WAIT = 60.0  # seconds a build waits for a manager to answer (a Raft election takes 10-20 s)


def build_order(nodes: list[dict], prefer: str = "") -> list[dict]:
    """Pure: the nodes (parse_nodes rows) a build may go to: ready and active; `prefer` (the
    node the app built on last: its build cache is there) first, then the least loaded (fewest
    instances, then by name)."""
    usable = [n for n in nodes if n["state"] == "ready" and n["availability"] == "active" and n["address"]]
    return sorted(usable, key=lambda n: (n["hostname"] != prefer, n["instances"], n["hostname"]))


class Slot:
    """A build slot held on a node: a lock file of the platform's home, so every process of
    the platform (API workers, the git and SSH front doors) counts the same slots."""

    def __init__(self, node: dict, handle: IO):
        self.node, self._handle = node, handle

    @property
    def hostname(self) -> str:
        return self.node["hostname"]

    def release(self) -> None:
        self._handle.close()   # closing drops the lock


class BuildSlots:
    """SLOTS_PER_NODE slots per node; builds that find every slot taken wait in arrival order."""

    def __init__(self, root: Path, slots: int = SLOTS_PER_NODE):
        self.root, self.slots = root, slots
        self._queue: list[object] = []
        self._cond = threading.Condition()

    def _try(self, node: dict) -> Slot | None:
        self.root.mkdir(parents=True, exist_ok=True)
        for k in range(self.slots):
            handle = open(self.root / f"{node['hostname']}.{k}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return Slot(node, handle)
            except BlockingIOError:
                handle.close()
        return None

    def take(self, nodes: Callable[[], list[dict]], on_wait: Callable[[str], None],
             cancelled: Callable[[], bool], avoid: frozenset[str] = frozenset(), app: str = "") -> Slot:
        """A slot on the node `app` built on last when it is free, else on the least loaded node
        with one free (not one of `avoid`), waiting in arrival order. While no manager answers
        (an election, MANAGERLESS_WAIT s at most) it waits."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
        told, since = False, time.monotonic()
        try:
            while True:
                try:
                    order = [n for n in build_order(nodes(), self.last_node(app)) if n["hostname"] not in avoid]
                    since = time.monotonic()
                except SchedulerError:
                    if time.monotonic() - since > MANAGERLESS_WAIT:
                        raise
                    order = None
                if order == []:
                    raise SchedulerError("No node of the cluster can take a build (none is ready and active): see "
                                         "`dockyard nodes`.")
                with self._cond:
                    if self._queue[0] is ticket:
                        for node in order or []:
                            slot = self._try(node)
                            if slot is not None:
                                return slot
                    if not told and order:
                        ahead = self._queue.index(ticket)
                        on_wait(f"-----> Every node is building ({len(order)} ready): waiting for a build slot"
                                + (f" ({ahead} build(s) ahead)" if ahead else ""))
                        told = True
                    self._cond.wait(0.5)
                if cancelled():
                    raise ImageBuildFailed("The build was cancelled while it waited for a build slot: the client "
                                           "went away.")
        finally:
            with self._cond:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def last_node(self, app: str) -> str:
        try:
            return (self.root / "last" / app).read_text().strip() if app else ""
        except OSError:
            return ""

    def built_on(self, app: str, hostname: str) -> None:
        (self.root / "last").mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / "last" / app, hostname)

    def give_back(self, slot: Slot) -> None:
        slot.release()
        with self._cond:
            self._cond.notify_all()
