"""Whether the platform host reaches a node, asked of the node itself (its engine's port), not
of the swarm's managers. App traffic goes from nginx on this host to the tasks' addresses, so
a node this host cannot reach serves no request whatever the managers say, and the managers
can be slow to say it: when the Raft leader itself is lost, no manager answers until the
others elect a new one (10-20 s), and the new leader first reports every node unknown. The
router process probes every node twice a second (NodeProbe, started by the swarm's `watch`);
instances on a node that does not answer are "unreachable", routed only when an app has
nothing else. Other processes probe the nodes of the instances they list, at most once a second
each, so every process that writes routes agrees."""
from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Iterable

from core.models import Instance

ENGINE_PORT = 2375
PROBE_TIMEOUT = 0.5    # seconds a node's engine port has to accept a connection
PROBE_EVERY = 0.5      # seconds between the router's looks at every node
CACHE_FOR = 1.0        # seconds an answer is reused by a process that probes on demand
STALE_LIMIT = 120.0    # seconds the router may route by the last listing while no manager answers
FRESH_LIMIT = 15.0     # seconds a listing may be old to drop a node the probe just lost, before asking
LOST_NOW = 1.0         # seconds after the probe lost a node during which the router routes by that listing


def answers(address: str, timeout: float = PROBE_TIMEOUT) -> bool:
    try:
        with socket.create_connection((address, ENGINE_PORT), timeout=timeout):
            return True
    except OSError:
        return False


def mark_unreachable(instances: Iterable[Instance], unreachable: set[str]) -> list[Instance]:
    """Pure: instances running (or "unknown") on a node this host does not reach (by address) ->
    state "unreachable" (routed last, kept by the reconciler while Swarm moves them); ended ones
    and "lost" ones (no node can take their new task: the reconciler replaces them) stay."""
    return [replace(i, state="unreachable") if i.node and i.address in unreachable
            and i.state in ("running", "unknown") else i for i in instances]


class NodeProbe:
    """The addresses of nodes whose engine did not accept a connection at the last look."""

    def __init__(self) -> None:
        self.unreachable: set[str] = set()
        self.running = False            # the router's loop probes every node continuously
        self.lost_at = 0.0              # when the probe last found a node that stopped answering
        self._looked: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def look(self, addresses: Iterable[str], max_age: float = CACHE_FOR) -> set[str]:
        """Probe `addresses` at once (answers younger than `max_age` s reused); the unreachable ones."""
        now = time.monotonic()
        addresses = sorted(set(addresses))
        with self._lock:
            todo = [a for a in addresses if a not in self._looked or now - self._looked[a][0] >= max_age]
        if todo:
            with ThreadPoolExecutor(len(todo)) as pool:
                results = dict(zip(todo, pool.map(answers, todo)))
            with self._lock:
                self._looked.update((a, (now, ok)) for a, ok in results.items())
        with self._lock:
            return {a for a in addresses if not self._looked[a][1]}

    def doubted(self, instances: list[Instance]) -> list[Instance]:
        """Instances with the state this host's view gives them: the router's continuous probe,
        or else a probe of their nodes now (answers reused for CACHE_FOR s), so every process
        that computes routes (the reconciler's, a deploy's) drops the same nodes."""
        if self.running:
            return mark_unreachable(instances, self.unreachable)
        addresses = {i.address for i in instances if i.node and i.state in ("running", "unknown")}
        return mark_unreachable(instances, self.look(addresses)) if addresses else instances

    def watch(self, addresses: Callable[[], set[str]], on_change: Callable[[], None],
              stopped: Callable[[], bool]) -> None:
        """Probe every node until `stopped()`; `on_change()` when one stops or starts answering."""
        self.running = True
        try:
            while not stopped():
                found = self.look(addresses(), max_age=0)
                if found != self.unreachable:
                    if found - self.unreachable:
                        self.lost_at = time.monotonic()
                    self.unreachable = found
                    on_change()
                time.sleep(PROBE_EVERY)
        finally:
            self.running = False
