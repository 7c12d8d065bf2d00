"""The reconciler, a loop of the platform process (controller/daemons/platformd.py): every
DOCKYARD_RECONCILE_INTERVAL seconds it converges every app to its desired state (reconcile.py)
and reads the instances' crashes (crashes.py); every DOCKYARD_SWEEP_INTERVAL seconds it sweeps
what killed processes left behind (sweep.py)."""
from __future__ import annotations

import logging
import threading
import time

from core.errors import DockyardError

from controller.addons import health as addon_health
from controller.addons.backups import prune_destroyed
from controller.observe import prometheus
from controller.pipelines import review
from controller.apps.crashes import CrashWatch
from controller.runtime import sleep
from controller.runtime.reconcile import reconcile_all
from controller.services import Services
from controller.settings import Settings
from controller.runtime.sweep import sweep_app

log = logging.getLogger("dockyard.reconciler")


def one_pass(svc: Services, watch: CrashWatch, sweep: bool) -> list[str]:
    """One pass; returns the steps that failed (each logged with its reason)."""
    failed = []
    for step, what, name in ((lambda: reconcile_all(svc), "reconcile", "reconcile"),
                             (lambda: addon_health.check_all(svc, log), "add-on health", "addon_health"),
                             (lambda: watch.poll(svc), "crash watch", "crash_watch"),
                             (lambda: sleep.tick(svc), "autosleep", "autosleep")):
        try:
            step()
        except DockyardError as e:
            log.warning("%s failed: %s", what, e.message)
            failed.append(name)
        except Exception:  # noqa: BLE001 - keep the loop alive, with the traceback in the log
            log.exception("%s failed", what)
            failed.append(name)
    if sweep:
        try:
            for name in prune_destroyed(svc):
                log.info("%s: the destroyed app's backups are past DOCKYARD_DESTROYED_BACKUP_DAYS: deleted", name)
        except OSError as e:
            log.warning("deleting destroyed apps' old backups failed: %s", e)
        try:
            for name in review.destroy_stale(svc, lambda line: log.info("review apps: %s", line)):
                log.info("%s: review app stale (no push for DOCKYARD_REVIEW_APP_STALE_DAYS): destroyed", name)
        except DockyardError as e:
            log.warning("destroying stale review apps failed: %s", e.message)
            failed.append("review_apps")
        try:    # one look at the engine for all apps: asking each app's costs the engine 5 listings per app
            dirty = svc.scheduler.apps_with_leftovers()
        except DockyardError as e:
            log.warning("listing leftover containers failed: %s", e.message)
            dirty = None
        for app in svc.store.list_apps():
            try:
                for line in sweep_app(svc, app.name, engine=dirty is None or app.name in dirty):
                    log.info("%s: cleanup: %s", app.name, line)
            except DockyardError as e:
                log.warning("%s: cleanup failed: %s", app.name, e.message)
                failed.append("sweep")
            except OSError as e:
                log.warning("%s: cleanup failed: %s", app.name, e)
                failed.append("sweep")
    return sorted(set(failed))


def _record(svc: Services, seconds: float, failed: list[str]) -> None:
    try:
        prometheus.record_pass(svc.store, seconds, failed)
    except Exception:  # noqa: BLE001 - a store that cannot take metrics must not stop reconciling
        log.exception("could not record the pass in the metrics")


def _start_series(svc: Services) -> None:
    try:
        prometheus.reconciler_started(svc.store)
    except Exception:  # noqa: BLE001 - as in _record
        log.exception("could not record the reconciler's start in the metrics")


def serve(settings: Settings, stop: threading.Event) -> None:
    """Reconcile until `stop` is set (a loop of the platform process)."""
    svc = Services(settings)
    log.info("reconciling every %.1f s, sweeping every %.0f s", settings.reconcile_interval, settings.sweep_interval)
    watch = CrashWatch()
    _start_series(svc)
    next_sweep = time.monotonic()     # the first pass sweeps: a restart follows what may have been a kill
    while not stop.is_set():
        started = time.monotonic()
        sweep = started >= next_sweep
        if sweep:
            next_sweep = started + settings.sweep_interval
        _record(svc, time.monotonic() - started, one_pass(svc, watch, sweep))
        stop.wait(max(0.5, settings.reconcile_interval - (time.monotonic() - started)))
