"""What the dashboard's pipeline page shows: each app of the pipeline the user may read, by
stage, with its live release, commit, age and state, and where a promotion from it goes."""
from __future__ import annotations

import time
from datetime import datetime

from core.models import App, Coupling, User

from controller.pipelines import couplings
from controller.pipelines.stages import PROMOTION_ORDER, downstream
from controller.services import Services


def _state(svc: Services, app: App) -> str:
    """up (every wanted instance runs), degraded, or idle (none wanted), as the apps list says."""
    stopped = svc.store.stopped_types(app)
    wanted = sum(q for t, q in svc.store.formation(app).items() if t not in stopped)
    running = [i for i in svc.scheduler.instances(app.name) if i.state == "running"]
    return "idle" if not wanted else ("up" if len(running) >= wanted else "degraded")


def _card(svc: Services, c: Coupling, now: float) -> dict:
    app = svc.store.get_app(c.app)
    release = svc.store.live_release(app)
    build = svc.store.get_build(release.build_id) if release and release.build_id else None
    age = int(now - datetime.fromisoformat(release.created_at).timestamp()) if release else None
    return {"app": app.name, "stage": c.stage, "branch": c.branch, "version": release.version if release else None,
            "description": release.description if release else "", "commit": build.source_commit[:8] if build else "",
            "age": age, "state": _state(svc, app), "promote_to": downstream(c.stage) if build else None,
            "url": f"http://{svc.settings.app_host(app.name)}:{svc.settings.router_port}/"}


def overview(svc: Services, user: User, ident: str) -> dict:
    pipeline = couplings.get(svc, user, ident)
    now = time.time()
    cards = [_card(svc, c, now) for c in couplings.couplings(svc, user, pipeline.id)]
    return {"pipeline": pipeline, "stages": {s: [c for c in cards if c["stage"] == s] for s in PROMOTION_ORDER},
            "review_apps": [c for c in cards if c["stage"] == "review"]}


def listing(svc: Services, user: User) -> list[dict]:
    """The pipelines the user may see, with how many apps each has per stage."""
    rows = []
    for p in couplings.visible(svc, user):
        stages = [c.stage for c in couplings.couplings(svc, user, p.id)]
        rows.append({"name": p.name, "review_apps": p.review_apps,
                     "counts": {s: stages.count(s) for s in ("review", *PROMOTION_ORDER)}})
    return rows
