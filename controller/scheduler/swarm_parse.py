"""Pure readers of what a swarm manager returns: services + tasks + nodes -> Instance, nodes ->
plain records. No engine call here, so each is tested with plain dicts."""
from __future__ import annotations

from datetime import datetime

from core.models import Crash, Instance

from controller.scheduler.docker_parse import iso
from controller.scheduler.labels import LABEL_APP, LABEL_INDEX, LABEL_PROCESS, LABEL_RELEASE

PREFIX = "swarm:"                       # instance ids of this backend: the service id behind it
LABEL_IMAGE = "dockyard.image"          # the release's image as the platform names it (not the registry's)
LABEL_DURABLE = "dockyard.durable"      # "1" once the instance passed its health check

_STARTING = ("new", "pending", "assigned", "accepted", "ready", "preparing", "starting")
_ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")


def service_id(container_id: str) -> str:
    return container_id[len(PREFIX):] if container_id.startswith(PREFIX) else container_id


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _state(latest: dict, failures: int, durable: bool, node_ready: bool = True) -> str:
    """One instance's state from its newest task: a crash before its health check passed is
    final ("exited"); after, Swarm is restarting it. A durable instance whose task Swarm is
    placing again (its node was lost) is restarting too, unless no node can take it (its
    placement no longer fits the cluster): then it is exited, and the reconciler replaces it.
    A task still running on a node the manager reports down is "unknown": the router uses it
    only when the app has nothing else (a new leader can report a live node down for a moment)."""
    status = latest.get("Status") or {}
    state = status.get("State", "new")
    if state == "running":
        return "running" if node_ready else "unknown"
    if failures and not durable:
        return "exited"
    if state in _STARTING:
        if state == "pending" and "no suitable node" in str(status.get("Err", "")):
            return "exited"
        return "restarting" if failures or durable else "created"
    return "restarting" if durable and latest.get("DesiredState") == "running" else "exited"


def node_address(node: dict) -> str:
    """A node's address as the others reach it. Swarm reports a manager's as 0.0.0.0 when it
    was not told one (`swarm join` without --advertise-addr): its manager address says it."""
    addr = (node.get("Status") or {}).get("Addr", "")
    if addr in ("", "0.0.0.0"):
        addr = ((node.get("ManagerStatus") or {}).get("Addr", "") or "").rpartition(":")[0] or addr
    return addr


def node_down(node: dict) -> bool:
    """Whether the manager does not vouch for the node now: reported down, or "unknown" (a new
    leader has not heard from it yet; after a leader change it can even report live nodes down
    for a moment). Its instances are "unknown": routed only when an app has nothing better."""
    return (node.get("Status") or {}).get("State") != "ready"


def parse_services(services: list, tasks: list, nodes: list, app_port: int) -> list[Instance]:
    """Each service (one instance) with its newest task, its node's hostname and address."""
    by_service: dict[str, list] = {}
    for t in tasks:
        by_service.setdefault(t.get("ServiceID", ""), []).append(t)
    node_info = {n["ID"]: ((n.get("Description") or {}).get("Hostname", ""), node_address(n)) for n in nodes}
    lost = {n["ID"] for n in nodes if node_down(n)}
    out = []
    for svc in services:
        labels = (svc.get("Spec") or {}).get("Labels") or {}
        mine = sorted(by_service.get(svc["ID"], []), key=lambda t: t.get("CreatedAt", ""))
        # the task Swarm wants running (not one it is shutting down) speaks for the instance
        wanted = [t for t in mine if t.get("DesiredState") == "running"] or mine
        latest = wanted[-1] if wanted else {}
        durable = labels.get(LABEL_DURABLE) == "1"
        serving = [t for t in mine if (t.get("Status") or {}).get("State") == "running"]
        moving = bool(durable and serving and latest and (latest.get("Status") or {}).get("State") in _STARTING)
        stuck = moving and _state(latest, 0, True) == "exited"
        if moving:
            # Swarm is moving the instance off a node it lost (rightly, or for a moment after a
            # leader change): the old task may still serve until the new one runs
            latest = serving[-1]
        failed = [t for t in mine if (t.get("Status") or {}).get("State") in ("failed", "complete", "rejected")]
        status = latest.get("Status") or {}
        port = None
        for p in ((status.get("PortStatus") or {}).get("Ports") or []):
            if p.get("TargetPort") == app_port and p.get("PublishedPort"):
                port = int(p["PublishedPort"])
        hostname, addr = node_info.get(latest.get("NodeID", ""), ("", ""))
        last_exit = (failed[-1].get("Status") or {}).get("ContainerStatus", {}).get("ExitCode") if failed else None
        state = _state(latest, len(failed), durable, latest.get("NodeID") not in lost) if latest else "created"
        if moving and state in ("running", "unknown"):
            # no node can take the new task: "lost", which the reconciler replaces, while the
            # router may still try the old one
            state = "lost" if stuck else "unknown"
        replicas = (((svc.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)
        if replicas == 0:
            state = "exited"
        out.append(Instance(
            container_id=PREFIX + svc["ID"], name=(svc.get("Spec") or {}).get("Name", ""),
            app=labels.get(LABEL_APP, ""), version=_int(labels.get(LABEL_RELEASE)),
            process=labels.get(LABEL_PROCESS, ""), index=_int(labels.get(LABEL_INDEX)), state=state,
            exit_code=last_exit if state not in ("running", "unknown", "lost") else None,
            host_port=port if state in ("running", "unknown", "lost") else None, image=labels.get(LABEL_IMAGE, ""),
            started_at=iso(status["Timestamp"]) if status.get("Timestamp") else "",
            restart_count=len(failed), node=hostname, address=addr or "127.0.0.1"))
    return out


def epoch(stamp: str) -> float | None:
    """Docker's RFC 3339 stamp -> epoch seconds (None when it is not one)."""
    try:
        return datetime.fromisoformat(iso(stamp)).timestamp()
    except ValueError:
        return None


def parse_task_exits(services: list, tasks: list, since: float, until: float) -> list[tuple[Crash, dict]]:
    """The tasks of `services` that ended on their own between two epoch times (`failed`: a
    non-zero exit, `complete`: exit 0; a task Swarm was asked to stop ends `shutdown`) -> one
    Crash per exit, oldest first, each with its task (its node and container say more)."""
    mine = {svc["ID"] for svc in services}
    out = []
    for t in tasks:
        status = t.get("Status") or {}
        at = epoch(status.get("Timestamp", ""))
        if t.get("ServiceID") not in mine or status.get("State") not in ("failed", "complete") or at is None:
            continue
        if since <= at < until:
            code = (status.get("ContainerStatus") or {}).get("ExitCode")
            out.append((Crash(container_id=PREFIX + t["ServiceID"], at=at,
                              exit_code=_int(code) if code is not None else None), t))
    return sorted(out, key=lambda pair: pair[0].at)


REPORT_LAG = 60.0   # seconds a node's report of a task's exit may reach the manager late


class ReportedExits:
    """Task exits handed out already. A node tells the manager of an exit a moment after it
    happened, so a window of exit times that has passed can still gain one: each call looks
    REPORT_LAG seconds further back (never before the first call's start) and hands out each
    task's exit once."""

    def __init__(self) -> None:
        self.floor: float | None = None
        self.seen: dict[str, float] = {}

    def start(self, since: float) -> float:
        """Where the look for exits begins for a call asking from `since`."""
        if self.floor is None:
            self.floor = since
        return max(self.floor, since - REPORT_LAG)

    def new(self, found: list[tuple[Crash, dict]], since: float) -> list[tuple[Crash, dict]]:
        fresh = [(crash, task) for crash, task in found if task.get("ID") not in self.seen]
        self.seen.update((task.get("ID"), crash.at) for crash, task in fresh)
        self.seen = {tid: at for tid, at in self.seen.items() if at >= since - 2 * REPORT_LAG}
        return fresh


def parse_nodes(nodes: list, instances: list[Instance]) -> list[dict]:
    """Nodes as `dockyard nodes` shows them: hostname, address, state, availability, role, instances."""
    count: dict[str, int] = {}
    for inst in instances:
        if inst.state == "running":
            count[inst.node] = count.get(inst.node, 0) + 1
    rows = []
    for n in nodes:
        hostname = (n.get("Description") or {}).get("Hostname", "")
        spec, status = n.get("Spec") or {}, n.get("Status") or {}
        rows.append({"id": n["ID"], "hostname": hostname, "address": node_address(n),
                     "state": status.get("State", "unknown"), "availability": spec.get("Availability", ""),
                     "role": spec.get("Role", ""), "instances": count.get(hostname, 0)})
    return sorted(rows, key=lambda r: r["hostname"])


def spread_constraints(nodes: list, instances: list[Instance], app: str, process: str, version: int) -> list[str]:
    """Placement constraints that keep an app's instances of one process type on different
    nodes whenever the cluster can: the nodes that take new instances (ready, active) holding
    more of them than the emptiest such node are left out. Instances of `version` count; when
    it has none yet (a deploy's first new instance), every version's do. Swarm's own spread
    counts only one service's tasks, and each instance is a service of its own."""
    usable = {(n.get("Description") or {}).get("Hostname", ""): n["ID"] for n in nodes
              if (n.get("Status") or {}).get("State") == "ready"
              and (n.get("Spec") or {}).get("Availability") == "active"}
    same = [i for i in instances if i.app == app and i.process == process and i.node
            and i.state in ("running", "restarting", "created")]
    current = [i for i in same if i.version == version] or same
    count = dict.fromkeys(usable, 0)
    for inst in current:
        if inst.node in count:
            count[inst.node] += 1
    if not count:
        return []
    low = min(count.values())
    return [f"node.id!={usable[host]}" for host, n in sorted(count.items()) if n > low]
