"""Idle apps sleep and wake on their first request.

A process type with autosleep runs no instance once its app had no request for `after`
seconds (its quantity is kept: `desired_formation` counts it as zero while it sleeps). A
sleeping `web` is routed to the wake listener (controller/daemons/waked.py), which calls `wake`
once per app however many requests wait: every sleeping type of the app starts again through
`converge` (the release live now, so a deploy made while asleep is what wakes), and the held
requests go on to the first healthy web instance. `tick` runs in the reconciler's pass and puts
idle types to sleep; the router process records each app's last request (`latest_requests`)."""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable

from core import prom
from core.durations import format_duration
from core.errors import DockyardError, Locked, WakeFailed
from core.models import App

from router.table import Upstream

from controller.routing.table import apply_routes
from controller.runtime import standby
from controller.runtime.locks import formation_lock
from controller.runtime.reconcile import converge
from controller.services import Services
from controller.store.sleep import SleepRow

log = logging.getLogger("dockyard.sleep")
OUTPUT_LINES = 10   # lines of a failed wake's output the waiting requests are shown
WAKE_POLL = 0.01    # seconds between a waking instance's health probes (a deploy's are 0.05)


# ---- pure ---------------------------------------------------------------------------------
def latest_requests(reqs: Iterable[dict]) -> dict[str, float]:
    """Router requests (accesslog.requests) -> each app's latest request time."""
    out: dict[str, float] = {}
    for r in reqs:
        if r["at"] > out.get(r["app"], 0.0):
            out[r["app"]] = r["at"]
    return out


def idle_for(row: SleepRow, now: float) -> float:
    """Seconds since the type last had a reason to be awake (a request, a wake, autosleep set)."""
    return now - max(row.awake_at, row.last_request or 0.0)


def due(rows: Iterable[SleepRow], now: float) -> dict[str, list[str]]:
    """Pure: app -> its awake types idle for longer than their window."""
    out: dict[str, list[str]] = {}
    for row in rows:
        if row.sleeping_since is None and idle_for(row, now) >= row.after:
            out.setdefault(row.app, []).append(row.type)
    return out


def wake_target(instances, healthy_ids) -> Upstream | None:
    """Pure: where held requests go: a running web instance that passed its checks."""
    for inst in sorted(instances, key=lambda i: i.index):
        if inst.process == "web" and inst.state == "running" and inst.host_port and inst.container_id in healthy_ids:
            return Upstream(inst.address, inst.host_port)
    return None


def wake_failure(app: str, message: str, output: list[str]) -> str:
    """Pure: what the requests that waited are told when the wake failed: why, and the
    instance's last output (a deploy's "the previous release keeps serving" does not apply)."""
    reason = re.sub(r";? its last output is shown above\.| The previous release keeps serving\.", "", message)
    text = f"App {app} could not wake: {reason.strip()}"
    if output:
        text += "\nIts last output:\n" + "\n".join(f"  | {line}" for line in output)
    return text + f"\nSee `dockyard logs -a {app}`; the next request tries again."


def describe(rows: Iterable[SleepRow]) -> dict[str, dict]:
    """Pure: type -> {"after": "30m", "sleeping_since": epoch or None} (formation, ps)."""
    return {r.type: {"after": format_duration(r.after), "after_seconds": r.after,
                     "sleeping_since": r.sleeping_since} for r in rows}


# ---- shells -------------------------------------------------------------------------------
def tick(svc: Services, now: float | None = None) -> list[str]:
    """Put every idle type to sleep (one reconciler step); returns "app:type" of those that slept.
    An app whose formation lock is held (a rollout, a wake) is left for the next pass."""
    slept = []
    now = time.time() if now is None else now
    for name, types in due(svc.store.sleep_rows(), now).items():
        app = svc.store.find_app(name)
        if app is None:
            continue
        try:
            with formation_lock(svc.settings, name, "autosleep", wait=0):
                slept += [f"{name}:{t}" for t in _sleep(svc, app, now)]
        except Locked:
            continue
    return slept


def _sleep(svc: Services, app: App, now: float) -> list[str]:
    """Under the formation lock: judge again on fresh rows, then stop the idle types' instances."""
    running = svc.store.desired_formation(app)
    types = [t for t in due(svc.store.sleep_rows(app), now).get(app.name, []) if running.get(t, 0) > 0]
    if not types:
        return []
    svc.store.mark_sleeping(app, types, now)
    rows = {r.type: r for r in svc.store.sleep_rows(app)}
    converge(svc, app, out=lambda line: log.info("%s: %s", app.name, line.strip()), background=True)
    apply_routes(svc)     # a sleeping web is routed to the wake listener even with nothing to stop
    standby.sync(svc, app)   # its instances' containers, created now, so a wake only starts them
    for t in types:
        svc.store.add_event(app, "dockyard", "autosleep", f"{t} sleeps: no request for "
                            f"{format_duration(int(idle_for(rows[t], now)))} (autosleep after "
                            f"{format_duration(rows[t].after)}); the next request wakes it")
    svc.store.add_prom([prom.Delta("dockyard_app_sleeps", {"app": app.name, "process": t}, 1.0, app=app.name)
                        for t in types])
    return types


def wake(svc: Services, name: str, wait: float) -> Upstream:
    """Wake the app's sleeping types (idempotent: an awake app just names its instance) and
    return where its held requests go, as soon as a web instance passed its checks (the route
    switch and the other instances finish in the background). WakeFailed when an instance does
    not start or pass its checks: the app goes back to sleep, so the next request tries again."""
    app = svc.store.find_app(name)
    if app is None:
        raise WakeFailed(f"No app is named {name!r}.")
    state: dict = {}
    ready = threading.Event()
    threading.Thread(target=_wake, args=(svc, app, wait, state, ready), name=f"wake-{name}", daemon=True).start()
    ready.wait()
    if "target" in state:
        return state["target"]
    if "error" in state:
        raise state["error"]
    target = _target(svc, app)
    if target is None:
        raise WakeFailed(f"App {name} has no web instance to wake: scale it with `dockyard ps:scale web=1 -a {name}`.")
    return target


def _wake(svc: Services, app: App, wait: float, state: dict, ready: threading.Event) -> None:
    """Sets `ready` once the held requests have their answer (a target, or an error); what is
    left (the other instances, the route's last render, the standbys) finishes after."""
    started = time.monotonic()
    try:
        with formation_lock(svc.settings, app.name, "wake", wait=wait):
            try:
                woke = svc.store.mark_awake(app, time.time())
                if woke or _target(svc, app) is None:
                    _start(svc, app, woke, started, state, ready)
            except Exception as e:  # noqa: BLE001 - the waiting requests get the reason, not a hang
                state["error"] = _failure(app, e)
            ready.set()              # before the tidying: the held requests wait for no more
            _tidy(svc, app)
    except Locked as e:
        state["error"] = WakeFailed(f"App {app.name} could not wake: {e.message}")
    finally:
        ready.set()


def _failure(app: App, e: Exception) -> WakeFailed:
    if isinstance(e, WakeFailed):
        return e
    log.error("%s: wake failed", app.name, exc_info=e)
    return WakeFailed(f"App {app.name} could not wake: {type(e).__name__}: {e}")


def _start(svc: Services, app: App, woke: list[str], started: float, state: dict, ready: threading.Event) -> None:
    seen = max((e["id"] for e in svc.store.events(app, limit=1)), default=0)

    def on_ready(inst) -> None:
        """The first web instance whose check passed: the held requests go on to it now."""
        if "target" not in state and inst.host_port:
            state["target"] = Upstream(inst.address, inst.host_port)
            ready.set()

    try:
        converge(svc, app, out=lambda line: log.info("%s: %s", app.name, line.strip()), background=True,
                 on_ready=on_ready, poll=WAKE_POLL)
    except DockyardError as e:
        if woke:
            svc.store.mark_sleeping(app, woke, time.time())
        svc.store.end_waking(app)
        apply_routes(svc)
        output = [f"{r['process']}: {r['message']}" for r in svc.store.events(app, after_id=seen)
                  if r["source"] == "app"][-OUTPUT_LINES:]
        reason = wake_failure(app.name, e.message, output)
        svc.store.add_event(app, "dockyard", "autosleep", f"Wake failed: {e.message}")
        svc.store.add_prom([prom.Delta("dockyard_app_wakes", {"app": app.name, "result": "failed"}, 1.0,
                                       app=app.name)])
        raise WakeFailed(reason) from None
    svc.store.end_waking(app)     # its instance is in the route now (converge applied it)
    if woke:
        seconds = time.monotonic() - started
        svc.store.add_event(app, "dockyard", "autosleep", f"Woke {', '.join(woke)} on a request in {seconds:.2f} s")
        svc.store.add_prom([prom.Delta("dockyard_app_wakes", {"app": app.name, "result": "ok"}, 1.0, app=app.name),
                            prom.observe("dockyard_app_wake_duration_seconds", {"app": app.name}, seconds,
                                         app=app.name)])


def _tidy(svc: Services, app: App) -> None:
    """After a wake: the standbys it started are instances now; a failed wake's are made again."""
    try:
        standby.sync(svc, app)
    except DockyardError as e:
        log.warning("%s: standbys after the wake: %s", app.name, e.message)


def _target(svc: Services, app: App) -> Upstream | None:
    return wake_target(svc.scheduler.instances(app.name), svc.store.healthy_ids())
