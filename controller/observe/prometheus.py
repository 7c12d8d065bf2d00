"""Prometheus: what `GET /metrics` serves, and what the reconciler records for it (the
router's reloads: services.reload_recorder; requests: the router process; instances: the
sampler; builds: the store as they finish).

The API (gunicorn workers), the router, the reconciler and the metrics process are separate
processes, so each records what it measures in the store (core.prom's series: counters and
histograms added to, gauges set) and `GET /metrics` reads the store. Nothing lives in one
process's memory: any API worker serves the same numbers, and a restart of any process loses
no count. A few gauges are read when scraped: pending builds, drains' counts, add-on states,
free disk."""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator

from core import prom
from core.errors import SchedulerError

from controller.services import Services
from controller.store import Store

log = logging.getLogger("dockyard.metrics")


# ---- recorded by the reconciler ----------------------------------------------------------
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


# ---- served (GET /metrics) ------------------------------------------------------------------
def _family(f: prom.Family, extra: tuple[str, ...] = ()):
    # imported when /metrics is scraped: the reconciler, which only records its passes here,
    # and an API that is never scraped do not hold the client library
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    kind = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}[f.kind]
    return kind(f.name, f.help, labels=list(f.labels + extra))


def stored_families(rows: list[dict], now: float, readings_stale_after: float) -> dict[str, object]:
    """Pure: the store's series -> prometheus_client families (every family, even empty).
    Instance readings older than `readings_stale_after` seconds are left out: the metrics
    process that refreshes them is down, and an absent series says "unknown", a stale one lies."""
    out = {name: _family(f) for name, f in prom.FAMILIES.items()}
    for r in rows:
        f = prom.FAMILIES.get(r["family"])
        if f is None:
            continue                       # a family an older or newer version recorded
        if f.name in prom.INSTANCE_FAMILIES and now - r["updated_at"] > readings_stale_after:
            continue
        values = [str(r["labels"].get(k, "")) for k in f.labels]
        if f.kind == "histogram":
            out[f.name].add_metric(values, prom.cumulative(f.buckets, r["buckets"], r["count"]), r["value"])
        else:
            out[f.name].add_metric(values, r["value"])
    return out


_DATA_ROOT: dict[str, tuple[float, str | None]] = {}


def _data_root(svc: Services) -> str | None:
    """The engine's data root, asked at most every 5 minutes (it changes only with the engine)."""
    hit = _DATA_ROOT.get(svc.settings.name)
    if hit is None or time.monotonic() - hit[0] > 300:
        hit = (time.monotonic(), svc.scheduler.data_root())
        _DATA_ROOT[svc.settings.name] = hit
    return hit[1]


def _live(svc: Services, out: dict) -> None:
    """The gauges and counters read at scrape time, added to `out`'s families."""
    out["dockyard_builds_pending"].add_metric([], svc.store.builds_pending())
    for d in svc.store.drains():
        out["dockyard_drain_lines_sent"].add_metric([d["app"], str(d["id"])], d["sent"])
        out["dockyard_drain_lines_dropped"].add_metric([d["app"], str(d["id"])], d["dropped"])
    for volume, path in (("home", str(svc.settings.home)), ("engine", _data_root(svc))):
        if not path:
            continue
        try:
            usage = shutil.disk_usage(path)
        except OSError as e:
            log.warning("cannot read the free space of %s: %s", path, e)
            continue
        out["dockyard_disk_free_bytes"].add_metric([volume, path], usage.free)
        out["dockyard_disk_size_bytes"].add_metric([volume, path], usage.total)
    addons = svc.store.list_addons()
    if addons:
        try:
            live = svc.scheduler.services()
        except SchedulerError as e:
            log.warning("add-on states left out of /metrics: %s", e.message)
            return
        for a in addons:
            st = live.get(a.name)
            now = prom.addon_state(st.state if st is not None else None)
            for state in prom.ADDON_STATES:
                out["dockyard_addon_state"].add_metric([a.name, a.service, a.app, state], 1 if state == now else 0)


class Collector:
    """prometheus_client's custom collector: every family, from the store and at scrape time."""

    def __init__(self, svc: Services):
        self.svc = svc

    def collect(self) -> Iterator:
        stale = max(60.0, 5 * self.svc.settings.metrics_interval)
        out = stored_families(self.svc.store.prom_series(), time.time(), stale)
        _live(self.svc, out)
        yield from out.values()
