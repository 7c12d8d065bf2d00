"""Prometheus: what each platform process records in the store (core.prom's series), for
`GET /metrics` to serve (promexport.py). A store that cannot take a count costs the count,
never the work it counts."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core import prom

from .store import Store

log = logging.getLogger("dockyard.metrics")


def reload_recorder(store: Store) -> Callable[[str, float], None]:
    """Router.Nginx's on_reload: each apply's result and reload time into the store. A store
    that cannot take it (locked too long, disk full) costs the count, never the route change."""
    def record(result: str, seconds: float) -> None:
        deltas = [prom.Delta("dockyard_router_reloads", {"result": result}, 1.0)]
        if result == "ok":
            deltas.append(prom.observe("dockyard_router_reload_duration_seconds", {}, seconds))
        try:
            store.add_prom(deltas)
        except Exception:  # noqa: BLE001 - the reload happened; only its count is lost
            log.exception("could not record a router reload in the metrics")
    return record


def reconciler_started(store: Store) -> None:
    """Make the failure, reload and build series exist at 0, so the first one is an increase."""
    store.add_prom(prom.zero_series("dockyard_reconcile_failures", prom.RECONCILE_STEPS, "step")
                   + prom.zero_series("dockyard_router_reloads", prom.RELOAD_RESULTS, "result")
                   + prom.zero_series("dockyard_build_duration_seconds", prom.BUILD_RESULTS, "result"))


def record_pass(store: Store, seconds: float, failed: list[str]) -> None:
    """One reconciler pass: its time, its failed steps, and when all steps last succeeded."""
    deltas = [prom.observe("dockyard_reconcile_duration_seconds", {}, seconds)]
    deltas += [prom.Delta("dockyard_reconcile_failures", {"step": s}, 1.0) for s in failed]
    if not failed:
        deltas.append(prom.Delta("dockyard_reconcile_last_success_timestamp_seconds", {}, time.time()))
    store.add_prom(deltas)
