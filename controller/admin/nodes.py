"""The cluster's nodes: list them, take one out of service (drain) and put it back, remove it,
and the command that joins a new host. Cluster mode only; the admin's.

Drain moves instances itself rather than leaving it to Swarm (which stops a task before its
replacement answers): the node is paused (it keeps its tasks, takes no new ones), each of the
platform's instances on it gets a health-checked replacement elsewhere, routes switch, the old
one drains and stops; then the node is set to drain, so Swarm moves whatever else runs there."""
from __future__ import annotations

from core.errors import DockyardError

from controller.runtime.locks import formation_lock
from controller.runtime.rollout import retire, start_instance
from controller.routing.table import apply_routes
from controller.services import Out, Services


def list_nodes(svc: Services) -> list[dict]:
    return svc.scheduler.nodes()


def join_command(svc: Services) -> list[str]:
    return svc.scheduler.join_command()


def activate(svc: Services, node: str) -> dict:
    svc.scheduler.set_availability(node, "active")
    return _row(svc, node)


def remove(svc: Services, node: str) -> None:
    svc.scheduler.remove_node(node)


def _row(svc: Services, node: str) -> dict:
    return next((n for n in svc.scheduler.nodes() if node in (n["id"], n["hostname"])), {})


def drain(svc: Services, node: str, out: Out = lambda line: None) -> dict:
    """Move the platform's instances off `node` with no failed request, then drain it."""
    sched, store = svc.scheduler, svc.store
    sched.set_availability(node, "pause")
    hostname = _row(svc, node).get("hostname", node)
    moved = 0
    for app in store.list_apps():
        on_node = [i for i in sched.instances(app.name) if i.node == hostname]
        if not on_node:
            continue
        with formation_lock(svc.settings, app.name, f"drain {hostname}"):
            moved += _move(svc, app, [i for i in sched.instances(app.name) if i.node == hostname], out)
    sched.set_availability(node, "drain")
    out(f"       {hostname}: drained ({moved} instance{'s' if moved != 1 else ''} moved)")
    return {**_row(svc, node), "moved": moved}


def _move(svc: Services, app, instances, out: Out) -> int:
    """Start each instance's replacement (placed off the paused node), health-checked; then
    switch routes and retire the old ones. A replacement that fails leaves the old one serving."""
    release = svc.store.live_release(app)
    if release is None:
        return 0
    replaced, errors = [], []
    for old in instances:
        started = []
        try:
            new = start_instance(svc, app, release, old.process, old.index, out, started)
            svc.store.mark_healthy(app, new.container_id, release.version, old.process)
            replaced.append(old)
        except DockyardError as e:
            for inst in started:
                svc.scheduler.stop(inst.container_id, 0)
            errors.append(f"{old.label}: {e.message}")
    for old in replaced:
        svc.store.forget_instance(old.container_id)
    apply_routes(svc)
    retire(svc, app, replaced)
    if errors:
        raise DockyardError(f"Could not move every instance of {app.name}: " + "; ".join(errors),
                            fix="see the messages; the old instances keep serving on the paused node")
    return len(replaced)
