"""Add-on health, for the reconciler: every add-on that is not running is started again on
its volume (its data is there), with an event saying why and its last output lines; then the
daily backups that are due."""
from __future__ import annotations

from core.errors import DockyardError, Locked

from controller.addons import backups
from controller.addons.ops import start
from controller.runtime.locks import addon_lock
from controller.services import Services


def check_all(svc: Services, log) -> None:
    """The reconciler's pass over the add-ons: start each one that is not running (its data
    is in its volume), saying why with its last lines; remove the containers of add-ons the
    store no longer has (their volumes stay); then the daily backups that are due."""
    live = svc.scheduler.services()      # listed before the store is read: an add-on being
    known = {a.name: a for a in svc.store.list_addons()}   # made has its record first
    for name in set(live) - set(known):
        try:
            with addon_lock(svc.settings, name, "reconcile", wait=0):
                if svc.store.find_addon(name) is None:
                    svc.scheduler.remove_service(name, keep_data=True)
                    log.info("removed the container of %s, an add-on the store does not have", name)
        except Locked:
            pass
    for addon in known.values():
        st = live.get(addon.name)
        if st is None or st.state not in ("running", "restarting"):
            _restart(svc, addon.name, "missing" if st is None else st.state, log)
        try:
            backups.run_schedule(svc, addon, log)
        except DockyardError as e:
            log.warning("add-on %s backup: %s", addon.name, e.message)


def _restart(svc: Services, name: str, why: str, log) -> None:
    try:
        with addon_lock(svc.settings, name, "reconcile", wait=0):
            addon = svc.store.find_addon(name)    # again, under its lock: it may be going
            if addon is None or svc.scheduler.service_status(name).state == "running":
                return
            lines = [line.text for line in svc.scheduler.service_logs(name, 5)]
            start(svc, addon)
            svc.store.add_event(svc.store.get_app(addon.app), "dockyard", "reconciler",
                                f"Add-on {name} was {why}; restarted"
                                + (f" (last output: {' | '.join(lines)[:300]})" if lines else ""))
    except Locked:
        pass     # being provisioned, restored or destroyed
    except DockyardError as e:
        log.warning("add-on %s: %s", name, e.message)
