"""The published port of each running web task, also when the manager no longer says it.

A task's host-mode port is in its status (`Status.PortStatus`), which the node reports when the
task starts. After a change of Raft leader, the nodes report their running tasks again to the
new leader, and those reports carry no ports: the tasks keep running and serving on the same
ports, but a listing from the new leader shows them without one (seen on engine 20.10: every
instance that was running before the election stayed without a port until it was restarted).
Routes need the port, so an app would be left with whatever still had one (its instances on
the lost node). A running container's published port cannot change, so the port is taken from
an earlier listing of the same task, or else from the container on its node's engine (the
port binding is the container's own)."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from copy import deepcopy
from typing import Callable

KEEP = 4096   # task ports remembered (a task's id is never reused; old ones are simply forgotten)
LABEL_TASK = "com.docker.swarm.task.id"


def task_port(task: dict, app_port: int) -> int | None:
    """Pure: the host port a task publishes for `app_port`, as its status says, or None."""
    for p in (((task.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []):
        if p.get("TargetPort") == app_port and p.get("PublishedPort"):
            return int(p["PublishedPort"])
    return None


def publishing(services: list, app_port: int) -> set[str]:
    """Pure: the ids of the services that publish `app_port` (web instances)."""
    return {svc["ID"] for svc in services
            if any(p.get("TargetPort") == app_port
                   for p in (((svc.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []))}


def needs_port(task: dict, app_port: int, services: set[str]) -> bool:
    """Pure: a running task of a service in `services` (those that publish) whose status has no port."""
    return ((task.get("Status") or {}).get("State") == "running" and task.get("ServiceID") in services
            and task_port(task, app_port) is None)


def with_ports(tasks: list, known: dict[str, int], app_port: int, services: set[str]) -> list:
    """Pure: `tasks` with the status port filled in from `known` (task id -> port) where a task
    of a service in `services` runs without one; the others are returned as they are."""
    out = []
    for t in tasks:
        port = known.get(t.get("ID", ""))
        if port and needs_port(t, app_port, services):
            t = deepcopy(t)
            status = t.setdefault("Status", {})
            status["PortStatus"] = {"Ports": [{"Protocol": "tcp", "TargetPort": app_port, "PublishedPort": port,
                                               "PublishMode": "host"}]}
        out.append(t)
    return out


def container_ports(containers: list, app_port: int) -> dict[str, int]:
    """Pure: a node engine's container list -> task id -> the host port published for `app_port`."""
    out = {}
    for c in containers:
        tid = (c.get("Labels") or {}).get(LABEL_TASK)
        port = next((p.get("PublicPort") for p in c.get("Ports") or []
                     if p.get("PrivatePort") == app_port and p.get("PublicPort")), None)
        if tid and port:
            out[tid] = int(port)
    return out


class TaskPorts:
    """Task id -> published port, from every listing that had it and, for a running task whose
    status lost it, from its node's engine (`node_containers(address)` lists that node's task
    containers, [] when the node does not answer: the task then stays without a port, as before;
    a task not found there is looked for again after ASK_AGAIN s, not at every listing)."""

    ASK_AGAIN = 2.0

    def __init__(self, app_port: int, node_containers: Callable[[str], list]):
        self.app_port = app_port
        self._node_containers = node_containers
        self._known: OrderedDict[str, int] = OrderedDict()
        self._asked: dict[str, float] = {}
        self._lock = threading.Lock()

    def fill(self, services: list, tasks: list, node_addresses: dict[str, str]) -> list:
        """`tasks` with every running web task's port (node_addresses: node id -> address)."""
        web = publishing(services, self.app_port)
        now = time.monotonic()
        with self._lock:
            for t in tasks:
                port = task_port(t, self.app_port)
                if port:
                    self._remember(t["ID"], port)
            missing = [t for t in tasks if needs_port(t, self.app_port, web) and t.get("ID") not in self._known
                       and now - self._asked.get(t.get("ID", ""), -self.ASK_AGAIN) >= self.ASK_AGAIN]
            self._asked = {tid: at for tid, at in self._asked.items() if now - at < self.ASK_AGAIN}
            self._asked.update((t.get("ID", ""), now) for t in missing)
        for address in sorted({node_addresses.get(t.get("NodeID", ""), "") for t in missing} - {""}):
            found = container_ports(self._node_containers(address), self.app_port)
            with self._lock:
                for tid, port in found.items():
                    self._remember(tid, port)
        with self._lock:
            return with_ports(tasks, dict(self._known), self.app_port, web)

    def _remember(self, tid: str, port: int) -> None:
        self._known[tid] = port
        self._known.move_to_end(tid)
        while len(self._known) > KEEP:
            self._known.popitem(last=False)
