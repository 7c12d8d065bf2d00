"""The metrics sampler: every few seconds, one resource reading per app instance (through the
scheduler's `stats`), turned into CPU % and stored for the dashboard; the same readings as
they are (CPU seconds so far, memory, restarts) replace the instance series Prometheus
scrapes; once a minute the store downsamples.

`cpu_percent` and `rows` are pure; `Sampler.sample_once` is the shell."""
from __future__ import annotations

import time
from datetime import datetime

from core import prom
from core.models import Instance, InstanceStats

from controller.scheduler.base import Scheduler
from controller.store import Store


def cpu_percent(prev: InstanceStats | None, cur: InstanceStats) -> float:
    """CPU use between two readings in % of one core (200 = two cores busy); 0 for a first
    reading or a restarted container (its counter went back)."""
    if prev is None or cur.cpu_ns < prev.cpu_ns or cur.at <= prev.at:
        return 0.0
    return round((cur.cpu_ns - prev.cpu_ns) / ((cur.at - prev.at) * 1e9) * 100, 2)


def started(started_at: str) -> float:
    """ISO start time -> Unix seconds (0 when unknown)."""
    try:
        return datetime.fromisoformat(started_at).timestamp() if started_at else 0.0
    except ValueError:
        return 0.0


def uptime(started_at: str, now: float) -> int:
    t = started(started_at)
    return max(0, int(now - t)) if t else 0


def prom_readings(instances: list[Instance], readings: dict[str, InstanceStats]) -> list[prom.Delta]:
    """Pure: the readings as Prometheus instance series (core.prom.instance_deltas)."""
    return prom.instance_deltas(
        (i.app, i.process, i.index, started(r.started_at), r.cpu_ns, r.mem_bytes if r.running else 0,
         r.mem_limit, r.restarts, r.running)
        for i in instances if (r := readings.get(i.container_id)) is not None)


def rows(instances: list[Instance], readings: dict[str, InstanceStats],
         previous: dict[str, InstanceStats]) -> list[tuple]:
    out = []
    for inst in instances:
        r = readings.get(inst.container_id)
        if r is None:
            continue
        out.append((inst.app, inst.process, inst.index, int(r.at), cpu_percent(previous.get(inst.container_id), r),
                    r.mem_bytes if r.running else 0, r.mem_limit, r.restarts, uptime(r.started_at, r.at) if r.running else 0))
    return out


class Sampler:
    def __init__(self, store: Store, scheduler: Scheduler, downsample_every: float = 60.0):
        self.store = store
        self.scheduler = scheduler
        self.previous: dict[str, InstanceStats] = {}
        self.downsample_every = downsample_every
        self._last_downsample = 0.0

    def sample_once(self) -> int:
        instances = self.scheduler.instances()
        readings = self.scheduler.stats(i.container_id for i in instances)
        found = rows(instances, readings, self.previous)
        self.previous = readings
        self.store.add_samples(found)
        self.store.replace_prom(prom.INSTANCE_FAMILIES, prom_readings(instances, readings))
        if time.monotonic() - self._last_downsample >= self.downsample_every:
            self._last_downsample = time.monotonic()
            self.store.downsample()
        return len(found)
