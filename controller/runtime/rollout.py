"""Rolling out a release: start the new instances, check their health, switch the router,
then stop the old ones. A failure at any step removes what it started and leaves the
previous release serving. Callers hold the app's lock (the use cases in releases.py and
the reconciler take it)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from core.checkspec import Check, effective
from core.errors import DeployFailed, DockyardError
from core.models import App, Instance, Release

from controller.accounts import tenancy
from controller.runtime import standby
from controller.runtime.health import run_checks, wait_until_answers
from controller.runtime.locks import app_lock
from controller.routing.table import apply_routes
from controller.services import Out, Services


RELEASE_PHASE = "release"   # Heroku's release phase: run once per release, not scaled


def default_quantities(process_types: dict, current: dict[str, int]) -> dict[str, int]:
    """Pure: quantities for process types seen for the first time. `web` starts with 1; when
    an app has no `web`, each of its process types starts with 1 (worker-only apps run)."""
    new = {}
    process_types = {k: v for k, v in process_types.items() if k != RELEASE_PHASE}
    for ptype in process_types:
        if ptype in current:
            continue
        new[ptype] = 1 if ptype == "web" or "web" not in process_types else 0
    return new


def plan(process_types: dict, formation: dict[str, int]) -> list[tuple[str, int]]:
    """Pure: the (process type, index) pairs a release should run."""
    return [(ptype, i) for ptype in sorted(process_types) if ptype != RELEASE_PHASE
            for i in range(1, formation.get(ptype, 0) + 1)]


def images_to_keep(releases: list[Release], current: int, live: int, keep: int, repo: str) -> set[str]:
    """Pure: the image tags an app must keep: those of the current and live releases and of
    the newest `keep` succeeded releases (what `rollback` may go back to), with their builds."""
    ok = [r for r in releases if r.status == "succeeded" and r.build_id]
    versions = {r.version for r in ok[-keep:]} | {current, live}
    tags = set()
    for r in releases:
        if r.version in versions and r.build_id:
            tags.add(f"{repo}:v{r.version}")
            if r.image:
                tags.add(r.image)
    return tags


def collect_images(svc: Services, app: App) -> int:
    """Remove the app's images no release may still need (only images Dockyard labelled as
    this app's, never another tenant's or the stack). Returns how many were removed."""
    fresh = svc.store.get_app(app.name)
    keep = images_to_keep(svc.store.list_releases(fresh), fresh.current_version, fresh.live_version,
                          svc.settings.keep_releases, svc.settings.image_repo(app.name))
    removed = svc.scheduler.remove_images(app.name, keep=keep, builds_only=True)
    return removed + svc.scheduler.collect_pulled_images()   # base images no image builds on now


def run_release_phase(svc: Services, app: App, release: Release, image: str, out: Out) -> None:
    """app.json's `scripts.predeploy`, then the Procfile's `release`, each in a one-off of the
    new release before any of its instances starts; a failure releases nothing."""
    steps = [("predeploy", "app.json predeploy script", release.manifest.get("scripts", {}).get("predeploy")),
             (RELEASE_PHASE, "release command", release.process_types.get(RELEASE_PHASE))]
    for process, what, command in steps:
        if not command:
            continue
        out(f"-----> Running {what} for v{release.version}: {command}")
        code = svc.scheduler.run_once(app.name, release, process, command, image,
                                      lambda line: out(f"       {line}"), svc.settings.build_timeout)
        svc.store.record_release_phase(release, code)   # an interrupted deploy reports it, not a guess
        if code != 0:
            raise DeployFailed(f"The {what} exited with code {code}: v{release.version} was not "
                               "released and the previous release keeps serving.")
        out(f"       {what[0].upper()}{what[1:]} succeeded")


def release_checks(svc: Services, app: App, release: Release) -> dict[str, tuple[str, list[Check]]]:
    """Per process type: (source, checks), checks:set overriding the build's app.json."""
    return effective(svc.store.checks(app), release.healthchecks, release.port or svc.settings.app_port,
                     release.manifest.get("checks_from"))


def start_instance(svc: Services, app: App, release: Release, ptype: str, index: int, out: Out,
                   started: list[Instance] | None = None,
                   checks: dict[str, tuple[str, list[Check]]] | None = None,
                   standbys: list[Instance] = (), poll: float = 0.05,
                   on_passed: Callable[[Instance], None] | None = None, durable: bool = True) -> Instance:
    """Start one instance of `release` with the type's limits, run its health checks (or, for
    `web` without any, wait until it answers HTTP, looking every `poll` s), tell `on_passed`,
    then make it durable (unless `durable` is False: the caller does, e.g. while the router
    switches). A matching standby among `standbys` is started instead of a new container.
    Appends the instance to `started` as soon as it exists, so a caller can clean up after a
    failure."""
    sched = svc.scheduler
    image, command, limits, spec = standby.recipe(svc, app, release, ptype)
    ready = standby.take(standbys, ptype, index, spec)
    inst = None
    if ready is not None:
        try:
            inst = sched.start_prepared(ready.container_id)
        except DockyardError:
            sched.remove(ready.container_id)     # gone or broken: a new container instead
    if inst is None:
        inst = sched.start(app.name, release, ptype, index, command, image, limits)
    if started is not None:
        started.append(inst)
    label = f"{ptype}.{index}"
    out(f"       Starting {label} (v{release.version})")
    checks = release_checks(svc, app, release) if checks is None else checks
    host = svc.settings.app_host(app.name)
    port = release.port or svc.settings.app_port
    refresh = lambda: sched.get(inst.container_id)   # noqa: E731
    if checks.get(ptype, ("", []))[1]:
        source, mine = checks[ptype]
        out(f"       {label}: running {len(mine)} health check{'s' if len(mine) != 1 else ''} from {source}")
        if ptype == "web":   # a check is about content; first the port must answer at all
            wait_until_answers(label, refresh, host, port, svc.settings.health_timeout, out, interval=poll,
                               first=inst)
        run_checks(label, mine, refresh, host, port,
                   lambda cmd, timeout: sched.exec(inst.container_id, cmd, timeout), out)
    elif ptype == "web":
        wait_until_answers(label, refresh, host, port, svc.settings.health_timeout, out, interval=poll, first=inst)
    if on_passed is not None:
        on_passed(inst)
    if durable:
        sched.make_durable(inst.container_id)
    return inst


def deploy_release(svc: Services, app: App, release: Release, out: Out, only: str | None = None,
                   release_phase: bool = True) -> None:
    """Roll out `release` (or re-roll one process type with `only`): new instances first,
    old ones retired once the router has switched. On success the release is live."""
    sched = svc.scheduler
    image = f"{svc.settings.image_repo(app.name)}:v{release.version}"
    checks = release_checks(svc, app, release)     # a bad checks:set fails before anything starts
    new_types = default_quantities(release.process_types, svc.store.formation(app))
    if any(new_types.values()):      # a first deploy's web=1 counts against the owner's quota too
        tenancy.check_app_change(svc, app, new_types, {})
    if release_phase:
        run_release_phase(svc, app, release, image, out)
    # judged again as it is written: concurrent first deploys of one owner's apps take turns
    tenancy.reserve_app_change(svc, app, new_types, {}, only_missing=True, judged=any(new_types.values()))
    formation = svc.store.desired_formation(app)
    wanted = [w for w in plan(release.process_types, formation) if only in (None, w[0])]
    old = [i for i in sched.instances(app.name) if only in (None, i.process)]
    sleeping = sorted(t for t in svc.store.sleeping_types(app) if only in (None, t))
    if sleeping:     # released without waking: the next request starts this release
        out(f"       {', '.join(sleeping)} sleeping (autosleep): v{release.version} starts on the next request")
    if not wanted and not sleeping:
        stopped = sorted(svc.store.stopped_types(app))
        out("       No processes to start (" + (f"stopped with ps:stop: {', '.join(stopped)}; start them with "
            "`dockyard ps:start`" if stopped else "the formation is scaled to zero") + ").")
    started: list[Instance] = []

    try:
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(wanted)))) as pool:
            for _ in pool.map(lambda w: start_instance(svc, app, release, w[0], w[1], out, started, checks,
                                                       durable=False), wanted):
                pass
            # the restart policies change while the router switches (neither waits for the
            # other); a failure of either rolls back below
            durable = [pool.submit(sched.make_durable, inst.container_id) for inst in started]
            for inst in started:
                svc.store.mark_healthy(app, inst.container_id, release.version, inst.process)
            for inst in old:
                svc.store.forget_instance(inst.container_id)
            apply_routes(svc, app.name)
            for done in durable:
                done.result()
    except BaseException as e:
        for inst in started:
            _show_last_output(svc, app, inst, out)
        retire(svc, app, started, grace=0)
        for inst in old:
            fresh = sched.get(inst.container_id)
            if fresh and fresh.state == "running":
                svc.store.mark_healthy(app, inst.container_id, inst.version, inst.process)
        try:
            apply_routes(svc, app.name)
        except DockyardError:
            pass
        if isinstance(e, DockyardError):
            raise
        if isinstance(e, Exception):
            raise DeployFailed(f"The deploy failed ({e.__class__.__name__}: {e}); the previous release "
                               "keeps serving.") from e
        raise
    if release.status == "succeeded" and only is None:
        svc.store.set_live(app, release.version)     # a restart that applies a --no-restart config
    if old:
        out(f"       Stopping {len(old)} old instance{'s' if len(old) != 1 else ''} in the background "
            f"(SIGTERM, then SIGKILL after {svc.settings.stop_grace} s)")
    retire_in_background(svc, app, old)
    if sleeping and release.status == "succeeded":   # live already (a restart): else once it goes live
        standby.sync(svc, app)      # the next request starts this release's containers


def _show_last_output(svc: Services, app: App, inst: Instance, out: Out, lines: int = 20) -> None:
    logs = svc.scheduler.logs(inst.container_id, tail=lines)
    if logs:
        out(f"       Last output of {inst.process}.{inst.index}:")
        for line in logs:
            out(f"       | {line.text}")


def retire(svc: Services, app: App, instances: list[Instance], grace: int | None = None) -> None:
    """Stop instances (SIGTERM, grace, SIGKILL) in parallel, keeping their logs in the store.
    Instances already being stopped by another thread of this process are skipped."""
    with svc.retiring_lock:
        mine = [i for i in instances if i.container_id not in svc.retiring]
        svc.retiring.update(i.container_id for i in mine)

    def one(inst: Instance) -> None:
        try:
            svc.store.forget_instance(inst.container_id)
            svc.scheduler.stop(inst.container_id, grace, remove=False)
            keep_logs(svc, app, inst)
            svc.scheduler.remove(inst.container_id)
            svc.store.drop_instance(inst.container_id)
        finally:
            with svc.retiring_lock:
                svc.retiring.discard(inst.container_id)

    if mine:
        with ThreadPoolExecutor(max_workers=min(16, len(mine))) as pool:
            list(pool.map(one, mine))


def collect_images_when_idle(svc: Services, app: App) -> None:
    """Image cleanup from outside the app's lock (after a background retire): only when no
    deploy holds the lock, because a push builds under it and its new image carries no
    release tag yet. When busy, that deploy's own cleanup runs at its end."""
    try:
        with app_lock(svc.settings, app.name, "image cleanup", wait=0):
            collect_images(svc, app)     # the retired instances' images were in use until now
    except DockyardError:
        pass                             # busy, or the engine said no: the next cleanup tries again


def retire_in_background(svc: Services, app: App, instances: list[Instance]) -> None:
    """Traffic has already moved: drain and stop the old instances without holding up the
    caller. If this process dies first, the reconciler retires them (they are not current)."""
    def retire_then_collect() -> None:
        retire(svc, app, instances)
        collect_images_when_idle(svc, app)

    if instances:
        threading.Thread(target=retire_then_collect, name=f"retire-{app.name}", daemon=True).start()


def keep_logs(svc: Services, app: App, inst: Instance, tail: int = 1000) -> None:
    rows = [(l.at, "app", f"{inst.process}.{inst.index}", l.text)
            for l in svc.scheduler.logs(inst.container_id, tail=tail)]
    svc.store.add_events(app, rows)
