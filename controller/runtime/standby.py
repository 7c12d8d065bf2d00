"""Standby instances: what makes a start slow is done before a wake needs it. While a process type
sleeps, each of its instances exists as a created, never started container of the live release
(the user lookup, the limits, the apps network and the add-ons' networks done), so a wake only
starts it. A standby is marked with its spec (release, image, command, limits): one that no longer
matches (a new release or config, ps:limits, a scale) is replaced, one no longer wanted (awake,
scaled down, destroyed) is removed. `instances()` never lists a standby, so the reconciler never
takes one for a crashed or stray instance; it calls `sync` in each pass for apps that sleep or
hold standbys. A backend that keeps none (the cluster) gives the wake a plain start."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from core.errors import DockyardError
from core.models import App, Instance, Limits, Release

from controller.services import Services

log = logging.getLogger("dockyard.standby")
RELEASE_PHASE = "release"   # never an instance (rollout.RELEASE_PHASE; that module imports this one)


# ---- pure ---------------------------------------------------------------------------------
def spec_of(version: int, image: str, command: str | None, limits: Limits) -> str:
    """Pure: what a standby was made for; a start may use it only when its spec is the same."""
    text = f"v{version}\0{image}\0{command or ''}\0{limits.memory_mb}\0{limits.cpus}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(wanted: dict[tuple[str, int], str], have: Iterable[Instance],
         misplaced=lambda inst: False) -> tuple[list[tuple[str, int]], list[Instance]]:
    """Pure: (the (type, index) to make a standby for, the standbys to remove): one standby per
    wanted key with the wanted spec; stale, unwanted, duplicate and misplaced ones go."""
    kept: set[tuple[str, int]] = set()
    remove = []
    for inst in sorted(have, key=lambda i: i.container_id):
        key = (inst.process, inst.index)
        if wanted.get(key) == inst.standby and key not in kept and not misplaced(inst):
            kept.add(key)
        else:
            remove.append(inst)
    return [key for key in sorted(wanted) if key not in kept], remove


def take(standbys: Iterable[Instance], process: str, index: int, spec: str) -> Instance | None:
    """Pure: the standby a start of `process.index` with `spec` may use instead of a new container."""
    return next((s for s in standbys if (s.process, s.index, s.standby) == (process, index, spec)), None)


# ---- shells -------------------------------------------------------------------------------
def recipe(svc: Services, app: App, release: Release, ptype: str,
           limits: dict | None = None) -> tuple[str, str | None, Limits, str]:
    """(image, command, limits, spec) of an instance of `ptype` of `release`, as a start makes it."""
    image = f"{svc.settings.image_repo(app.name)}:v{release.version}"
    command = release.process_types.get(ptype) or None
    row = (svc.store.limits(app) if limits is None else limits).get(ptype) or {}
    lim = Limits(row.get("memory_mb"), row.get("cpus"))
    return image, command, lim, spec_of(release.version, image, command, lim)


def wanted(svc: Services, app: App) -> tuple[Release | None, dict[tuple[str, int], str]]:
    """The live release and (type, index) -> spec of every instance of the app's sleeping types."""
    sleeping = svc.store.sleeping_types(app) - set(svc.store.stopped_types(app))
    release = svc.store.live_release(app) if sleeping else None
    if release is None or release.build_id is None:
        return None, {}
    formation, limits = svc.store.formation(app), svc.store.limits(app)
    out = {}
    for ptype in sorted(sleeping):
        if ptype in release.process_types and ptype != RELEASE_PHASE:
            spec = recipe(svc, app, release, ptype, limits)[3]
            out.update({(ptype, i): spec for i in range(1, formation.get(ptype, 0) + 1)})
    return release, out


def sync(svc: Services, app: App, have: list[Instance] | None = None) -> tuple[int, int]:
    """Make the app's standbys match its sleeping instances (caller holds the formation lock);
    `have` is a listing of the app's standbys made earlier (a reconciler pass's, for every app):
    when it shows a change, the engine is asked again before anything is made or removed. Returns (made, removed).
    A standby that cannot be made is logged: the wake then starts a new container."""
    sched = svc.scheduler
    release, want = wanted(svc, app)
    make, remove = plan(want, sched.standbys(app.name) if have is None else have, sched.misplaced)
    if have is not None and (make or remove):    # a pass's listing is old: look again, under the lock
        make, remove = plan(want, sched.standbys(app.name), sched.misplaced)
    for inst in remove:
        sched.remove(inst.container_id)
    made = 0
    limits = svc.store.limits(app) if make else {}
    for ptype, index in make:
        image, command, lim, spec = recipe(svc, app, release, ptype, limits)
        try:
            made += sched.prepare(app.name, release, ptype, index, command, image, lim, spec) is not None
        except DockyardError as e:
            log.warning("%s: no standby for %s.%d: %s", app.name, ptype, index, e.message)
    return made, len(remove)


def remove_all(svc: Services, app_name: str) -> int:
    """Remove every standby of the app (it is destroyed)."""
    found = svc.scheduler.standbys(app_name)
    for inst in found:
        svc.scheduler.remove(inst.container_id)
    return len(found)
