"""Crashes made visible. The engine restarts an instance whose process exits; without this,
an out-of-memory kill or a crash loop would show only in `docker inspect`. Each crash of a
serving instance is counted in the store (`ps` shows restarts and the last exit), written as
a platform log line that names the limit or setting to change, and a release whose instances
crash-loop within their first minute is marked failed and rolled back automatically when an
earlier release was healthy, as a failed health check is."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from core.errors import DockyardError
from core.models import Crash

from controller.apps import releases
from controller.services import Services

log = logging.getLogger("dockyard.crashes")
LOOP_CRASHES = 3       # crashes of one instance ...
LOOP_WINDOW = 60.0     # ... within this many seconds of passing its check: a crash loop
REPORT_DELAY = 2.0     # seconds the crash watch reads behind now (CrashWatch.poll)


def describe(label: str, ptype: str, app: str, crash: Crash, limit_mb: int, restarts: int) -> str:
    """Pure: the platform log line for one crash."""
    if crash.oom_killed:
        return (f"{label} crashed: out of memory (limit {limit_mb} MB); the engine restarts it "
                f"({restarts} restart{'s' if restarts != 1 else ''}). Raise the limit with "
                f"`dockyard ps:limits {ptype} --memory {limit_mb * 2} -a {app}`.")
    return (f"{label} crashed with exit code {crash.exit_code}; the engine restarts it ({restarts} "
            f"restart{'s' if restarts != 1 else ''}). Its last output is in `dockyard logs -a {app}`.")


def is_crash_loop(restarts: int, healthy_at: str, crashed_at: float) -> bool:
    """Pure: enough crashes soon enough after the instance first passed its check."""
    try:
        since = datetime.fromisoformat(healthy_at).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return False
    return restarts >= LOOP_CRASHES and crashed_at - since <= LOOP_WINDOW


class CrashWatch:
    """Reads the engine's exits since the last call (the reconciler calls it every pass)."""

    def __init__(self, since: float | None = None):
        self.since = time.time() if since is None else since

    def poll(self, svc: Services) -> int:
        # a moment behind now: the engine's report of an exit's cause (out of memory) can follow
        # the exit itself, and the backend reads a little past each exit for it
        until = time.time() - REPORT_DELAY
        if until <= self.since:
            return 0
        crashes = svc.scheduler.crashes(self.since, until)
        self.since = until
        handled = 0
        for crash in crashes:
            try:
                handled += _handle(svc, crash)
            except DockyardError as e:
                log.warning("crash of %s: %s", crash.container_id[:12], e.message)
        return handled


def _handle(svc: Services, crash: Crash) -> int:
    row = svc.store.record_crash(crash.container_id, crash.exit_code, crash.oom_killed)
    if row is None:
        return 0            # not a serving instance: the platform stopped it (retire, scale down)
    app = svc.store.find_app(row["app"])
    if app is None:
        return 0
    inst = svc.scheduler.get(crash.container_id)
    label = inst.label if inst else row["type"]
    limit = (svc.store.limits(app).get(row["type"]) or {}).get("memory_mb") or svc.settings.app_memory_mb
    message = describe(label, row["type"], app.name, crash, limit, row["restarts"])
    svc.store.add_event(app, "dockyard", "reconciler", message)
    log.info("%s: %s", app.name, message)
    if row["version"] == app.live_version and is_crash_loop(row["restarts"], row["healthy_at"], crash.at):
        reason = "out of memory" if crash.oom_killed else f"exit code {crash.exit_code}"
        releases.roll_back_crash_loop(svc, app, row["version"], f"{label}: {row['restarts']} crashes, {reason}",
                                      lambda line: log.info("%s: %s", app.name, line.strip()))
    return 1
