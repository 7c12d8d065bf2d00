"""Scheduled jobs (app.json `cron`, Dokku's shape): each job runs as a detached one-off of the
app's live release when its schedule comes due. The reconciler calls `tick` every pass; a slot
is claimed in the store by compare-and-swap before anything starts, so a pass repeated, or two
reconcilers at once, never fire one slot twice. Missed slots (the reconciler was down) are not
caught up: only the latest one fires. A job whose previous run is still going skips the slot.
The one-off's output goes to the app's logs when the reconciler collects it, with its exit
code recorded for `dockyard cron`."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from core.appjson import next_run, slot_due
from core.errors import DockyardError
from core.models import App

from controller.services import Services

log = logging.getLogger("dockyard.cron")


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds")


def tick(svc: Services, app: App, now: datetime | None = None) -> list[str]:
    """Fire the app's due jobs; returns the commands started."""
    now = now or datetime.now(timezone.utc)
    release = svc.store.live_release(app)
    jobs = release.manifest.get("cron", []) if release and release.build_id else []
    runs = svc.store.cron_runs(app)
    if set(runs) - {j["key"] for j in jobs}:     # jobs a deploy removed (a write only then)
        svc.store.cron_forget(app, {j["key"] for j in jobs})
    fired = []
    for job in jobs:
        slot = _iso(slot_due(job["schedule"], now))
        row = runs.get(job["key"])
        if row is None:        # new job: its first slot is the next one
            svc.store.cron_init(app, job["key"], slot)
            continue
        if slot <= row["last_slot"] or not svc.store.cron_claim(app, job["key"], slot):
            continue
        if row.get("container_id") and row.get("finished_at") is None:
            prev = svc.scheduler.get(row["container_id"])
            if prev is not None and prev.state in ("running", "created", "restarting"):
                svc.store.cron_started(app, job["key"], row["container_id"], row["label"])
                svc.store.add_event(app, "dockyard", "cron", f"Cron job {job['command']!r} skipped the {slot} "
                                    f"run: its previous run ({row['label']}) is still going")
                continue
        image = f"{svc.settings.image_repo(app.name)}:v{release.version}"
        try:
            one = svc.scheduler.run_detached(app.name, release, job["command"], image)
        except DockyardError as e:
            svc.store.cron_ended(app, job["key"], None, "not started")
            svc.store.add_event(app, "dockyard", "cron", f"Cron job {job['command']!r} did not start: {e.message}")
            continue
        label = f"run.{one.index}"
        svc.store.cron_started(app, job["key"], one.container_id, label)
        svc.store.add_event(app, "dockyard", "cron", f"Cron job {job['command']!r} ({job['schedule']}) "
                            f"started as {label} for {slot}")
        fired.append(job["command"])
    return fired


def list_jobs(svc: Services, app: App, now: datetime | None = None) -> list[dict]:
    """Each job of the live release with its next run and its last run's state and exit code."""
    now = now or datetime.now(timezone.utc)
    release = svc.store.live_release(app)
    jobs = release.manifest.get("cron", []) if release and release.build_id else []
    runs = svc.store.cron_runs(app)
    out = []
    for job in jobs:
        row = runs.get(job["key"]) or {}
        started = row.get("started_at")
        if not started:
            state = "scheduled"
        elif row.get("label") == "not started":
            state = "not started"
        elif row.get("finished_at") is None:
            state = "running"
        else:
            state = "succeeded" if row.get("exit_code") == 0 else "failed"
        out.append({"command": job["command"], "schedule": job["schedule"],
                    "next_run": _iso(next_run(job["schedule"], now)), "last_run": started,
                    "last_slot": row.get("last_slot") if started else None, "state": state,
                    "exit_code": row.get("exit_code"), "process": row.get("label")})
    return out
