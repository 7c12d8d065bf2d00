"""Desired state -> containers. `converge` compares an app's current release and formation
with the containers found by label and fixes the difference; it is safe to repeat. The
reconciler process (controller/daemons/reconcilerd.py) runs it for every app in a loop,
skipping apps whose formation lock is held by a rollout (not by a build: a crashed instance
of the running release is replaced while the next release builds)."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from core.errors import DockyardError, Locked
from core.models import App, Instance

from controller.runtime import cron
from controller.runtime import repos
from controller.runtime import standby
from controller.runtime.health import probe
from controller.runtime.locks import formation_lock
from controller.runtime.rollout import retire, collect_images, default_quantities, keep_logs, plan, retire_in_background, start_instance
from controller.routing.table import apply_routes
from controller.services import Out, Services

log = logging.getLogger("dockyard.reconciler")


def diff(wanted: list[tuple[str, int]], version: int, instances: list[Instance], misplaced=lambda inst: False):
    """Pure: which (type, index) to start, and which instances to retire (misplaced ones too:
    their replacements start first). An instance in state "unknown" (on a node the cluster
    lost, being moved by the cluster itself) or "unreachable" (this host does not reach its
    node) is kept: the cluster replaces it."""
    have: dict[tuple[str, int], Instance] = {}
    stale: list[Instance] = []
    for inst in instances:
        key = (inst.process, inst.index)
        if (inst.version == version and key in wanted and key not in have
                and inst.state in ("running", "restarting", "unknown", "unreachable") and not misplaced(inst)):
            have[key] = inst
        else:
            stale.append(inst)
    start = [key for key in wanted if key not in have]
    return start, stale, have


def converge(svc: Services, app: App, out: Out = lambda line: None, background: bool = False,
             seen: tuple[list[Instance], set[str]] | None = None,
             on_ready: Callable[[Instance], None] | None = None, poll: float = 0.05) -> dict:
    """Make the app's containers match its current release and formation. Caller holds the
    formation lock (and, with background=False, the app lock: no build is running). `seen` is a
    whole pass's look at the engine and the healthy marks (one call for every app): when it shows
    nothing to do, nothing is asked per app; when it shows a change, the app is looked at again
    now, under its lock, before anything is started or stopped. An instance to start uses the
    app's standby when one matches; `on_ready` hears of each web instance the moment its checks
    pass (a wake hands it its held requests); checks poll every `poll` s."""
    sched, store = svc.scheduler, svc.store
    for release in store.list_releases(app):
        if release.status == "pending":   # a deploy died mid-way: it never went live
            store.finish_release(release, "failed")
            phase = store.release_phase_exit(release)
            after = (f" after its release command exited {phase}" if phase is not None
                     else " before its release command finished" if release.process_types.get("release")
                     else " before its instances passed their checks")
            store.add_event(app, "dockyard", "reconciler", f"Release v{release.version} was interrupted; marked "
                            f"failed (it never went live; the deploy ended{after})")
    release = store.live_release(app)
    instances = sched.instances(app.name) if seen is None else seen[0]
    if release is None or release.build_id is None:
        wanted, version = [], 0
    else:
        missing = default_quantities(release.process_types, store.formation(app))
        if missing:    # a write only when a process type is new
            store.set_formation(app, missing, only_missing=True)
        wanted, version = plan(release.process_types, store.desired_formation(app)), release.version
    start, stale, have = diff(wanted, version, instances, sched.misplaced)
    healthy = store.healthy_ids() if seen is None else seen[1]
    if seen is not None and (start or stale or {i.container_id for i in have.values()} - healthy):
        return converge(svc, app, out, background, on_ready=on_ready, poll=poll)
    for inst in have.values():   # running but never marked (e.g. the controller died after starting it)
        if inst.container_id not in healthy and inst.state == "running":
            if inst.process != "web" or (inst.host_port and _answers(inst, svc.settings.app_host(app.name))):
                store.mark_healthy(app, inst.container_id, inst.version, inst.process)

    errors = []
    ready = [s for s in sched.standbys(app.name) if not sched.misplaced(s)] if start else []
    if start:
        with ThreadPoolExecutor(max_workers=min(16, len(start))) as pool:
            for fut in [pool.submit(_start_one, svc, app, release, key, out, ready, poll, on_ready)
                        for key in start]:
                try:
                    fut.result()
                except DockyardError as e:
                    errors.append(e.message)
    for inst in stale:
        store.forget_instance(inst.container_id)
    if start or stale or set(i.container_id for i in have.values()) - healthy:
        apply_routes(svc)
    if stale:
        out(f"       Stopping {', '.join(f'{i.process}.{i.index}' for i in stale)}")
        if background:
            retire_in_background(svc, app, stale)
        else:
            retire(svc, app, stale)
            try:
                collect_images(svc, app)     # the caller holds the app lock: no build is running
            except DockyardError:
                pass                         # the next deploy's cleanup tries again
    if errors:
        raise DockyardError("; ".join(errors))
    return {"started": len(start), "stopped": len(stale)}


def _start_one(svc: Services, app: App, release, key: tuple[str, int], out: Out, standbys: list[Instance],
               poll: float, on_ready: Callable[[Instance], None] | None) -> None:
    """One instance of `converge`: started (from its standby when one matches), checked, marked
    healthy; on a wake (`on_ready`), its held requests go to the first web instance whose
    check passed, and the router is told once it is marked."""
    ptype, index = key
    started: list[Instance] = []
    try:
        inst = start_instance(svc, app, release, ptype, index, out, started, standbys=standbys, poll=poll,
                              on_passed=on_ready if ptype == "web" else None)
        svc.store.mark_healthy(app, inst.container_id, release.version, ptype)
        if on_ready is not None and ptype == "web":
            apply_routes(svc)
    except DockyardError as e:
        for inst in started:
            keep_logs(svc, app, inst)
            svc.scheduler.stop(inst.container_id, 0)
        svc.store.add_event(app, "dockyard", "reconciler", f"{ptype}.{index} failed to start: {e.message}")
        raise


def _answers(inst: Instance, host: str) -> bool:
    try:
        probe(inst.host_port, host, timeout=2, address=inst.address)
        return True
    except OSError:
        return False
    except Exception:  # noqa: BLE001 - any HTTP-level oddity still means "it answered"
        return True


def reconcile_all(svc: Services) -> None:
    """One pass over every app, then routes; removes containers of deleted apps. (Add-ons are
    the reconciler process's next step: they are not apps' containers.)"""
    apps = svc.store.list_apps()
    names = {a.name for a in apps}
    by_app: dict[str, list[Instance]] = {}
    for inst in svc.scheduler.instances():
        if inst.app not in names:
            svc.scheduler.stop(inst.container_id, 0)
        by_app.setdefault(inst.app, []).append(inst)
    healthy = svc.store.healthy_ids()
    spare = _standbys(svc, names)
    by_name = {a.name: a for a in apps}
    for one in svc.scheduler.oneoffs():
        if one.app not in names:
            svc.scheduler.stop(one.container_id, 0)
        elif one.detached and one.state in ("exited", "dead"):   # `run --detach` ended: keep its output
            keep_logs(svc, by_name[one.app], one)
            svc.scheduler.remove(one.container_id)   # gone from `ps` once the logs say it ended
            job = " (cron job)" if svc.store.cron_finished(one.container_id, one.exit_code) else ""
            svc.store.add_event(by_name[one.app], "dockyard", "reconciler",
                                f"One-off {one.label}{job} exited with code {one.exit_code}")
    for app in apps:
        try:
            with formation_lock(svc.settings, app.name, "reconcile", wait=0):
                # retiring drains for up to STOP_GRACE: in the background, so a push waits for
                # no reconcile (the retire thread cleans images once the app's lock is free)
                converge(svc, app, out=lambda line, a=app.name: log.info("%s: %s", a, line.strip()),
                         background=True, seen=(by_app.get(app.name, []), healthy))
                if app.name in spare:
                    standby.sync(svc, app, spare[app.name])
        except Locked:
            pass       # a rollout is running; it owns the app's containers for now
        except DockyardError as e:
            log.warning("%s: %s", app.name, e.message)
        try:
            for command in cron.tick(svc, app):
                log.info("%s: cron job started: %s", app.name, command)
        except DockyardError as e:
            log.warning("%s: cron: %s", app.name, e.message)
        _compact_repo(svc, app)
    apply_routes(svc)


def _standbys(svc: Services, names: set[str]) -> dict[str, list[Instance]]:
    """Each app's standbys, for the apps that sleep or hold some (one engine call, one query);
    those of deleted apps are removed."""
    out: dict[str, list[Instance]] = {r.app: [] for r in svc.store.sleep_rows() if r.sleeping_since is not None}
    for inst in svc.scheduler.standbys():
        if inst.app not in names:
            svc.scheduler.remove(inst.container_id)
        else:
            out.setdefault(inst.app, []).append(inst)
    return out


def _compact_repo(svc: Services, app: App) -> None:
    try:
        packed = repos.compact(svc.settings, app.name)
    except (OSError, ValueError) as e:
        log.warning("%s: repacking the git repository failed: %s", app.name, e)
        return
    if packed is not None:
        log.info("%s: repacked the git repository (%d objects)", app.name, packed)
