"""An app's log lines: platform events and router lines from the store, app output from its
live instances (kept across containers), merged by time. The API's `logs` and the
dashboard's live log both read them here."""
from __future__ import annotations

from core.models import App

from controller.services import Services


def lines(svc: Services, app: App, count: int = 100, since: str = "", source: str = "", ps: str = "") -> list[dict]:
    """The newest `count` lines after the ISO time `since`, of one source (`app`, `router`,
    `dockyard`) and process (`web.1`, or a type `web`) when given, oldest first."""
    rows = list(svc.store.events(app, limit=5000))
    live = svc.scheduler.instances(app.name) + [o for o in svc.scheduler.oneoffs(app.name) if o.detached]
    for inst in live:
        for line in svc.scheduler.logs(inst.container_id, tail=count):
            rows.append({"at": line.at, "source": "app", "process": inst.label, "message": line.text})

    def wanted_ps(p: str) -> bool:
        return not ps or p == ps or ("." not in ps and p.split(".")[0] == ps)

    rows = [r for r in rows if (not since or r["at"] > since) and (not source or r["source"] == source)
            and wanted_ps(r["process"])]
    rows.sort(key=lambda r: r["at"])
    return [{"at": r["at"], "source": r["source"], "process": r["process"], "message": r["message"]}
            for r in rows[-count:]]
