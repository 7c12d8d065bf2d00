"""Add-on health, for the reconciler: every add-on that is not running is started again on
its volume (its data is there), with an event saying why and its last output lines; then the
daily backups that are due."""
from __future__ import annotations

from core.errors import DockyardError

from . import backups
from .addon_ops import start
from .services import Services


def check_all(svc: Services, log) -> None:
    """The reconciler's pass over the add-ons: start each one that is not running (its data
    is in its volume), saying why with its last lines; then the daily backups."""
    live = svc.scheduler.services()
    for addon in svc.store.list_addons():
        st = live.get(addon.name)
        if st is None or st.state not in ("running", "restarting"):
            lines = [line.text for line in svc.scheduler.service_logs(addon.name, 5)] if st else []
            why = "missing" if st is None else st.state
            try:
                start(svc, addon)
                svc.store.add_event(svc.store.get_app(addon.app), "dockyard", "reconciler",
                                    f"Add-on {addon.name} was {why}; restarted"
                                    + (f" (last output: {' | '.join(lines)[:300]})" if lines else ""))
            except DockyardError as e:
                log.warning("add-on %s: %s", addon.name, e.message)
        try:
            backups.run_schedule(svc, addon, log)
        except DockyardError as e:
            log.warning("add-on %s backup: %s", addon.name, e.message)
