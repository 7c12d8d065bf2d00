"""What each dashboard page shows, gathered through the use cases' reads (read side;
actions go through controller/apps/releases.py like the API's)."""
from __future__ import annotations

import time
from datetime import datetime

from core.models import App, User

from controller.accounts import access
from controller.accounts import users as accounts
from controller.observe import drains
from controller.observe import metrics
from controller.apps import queries
from controller.apps import releases
from controller.web import views as dynos
from controller.routing import app_routes
from controller.runtime.rollout import RELEASE_PHASE
from controller.services import Services


def visible_apps(svc: Services, user: User) -> list[App]:
    return queries.visible_apps(svc, user)


def app_row(svc: Services, app: App) -> dict:
    """One line of the apps list: state, release, formation, last deploy, requests/min."""
    release = queries.current_release(svc, app)
    formation = queries.formation(svc, app)
    running = [i for i in svc.scheduler.instances(app.name) if i.state == "running"]
    stopped = queries.stopped_types(svc, app)
    asleep = queries.sleeping_types(svc, app)       # autosleep: up again on the next request
    wanted = sum(q for t, q in formation.items() if t not in stopped | asleep)
    state = ("sleeping" if asleep and not running else "idle") if not wanted else (
        "up" if len(running) >= wanted else "degraded")
    now = int(time.time())
    minutes = metrics.request_minutes(svc, app, now - 600)
    return {"name": app.name, "state": state, "release": f"v{release.version}" if release else "-",
            "deployed_at": release.created_at[:16].replace("T", " ") if release else "-",
            "formation": " ".join(f"{t}={q}" for t, q in sorted(formation.items()) if t != RELEASE_PHASE) or "-",
            "running": len(running), "rpm": round(sum(m["requests"] for m in minutes) / 10, 1)}


def instances(svc: Services, app: App) -> list[dict]:
    """Each instance with its state, and why it last crashed (as `ps` says it) with the setting
    to change when the kernel killed it for memory."""
    now = time.time()
    health = queries.instance_health(svc, app)
    healthy = queries.healthy_ids(svc)
    limits = queries.limits(svc, app)
    out = []
    for i in svc.scheduler.instances(app.name):
        try:
            up = int(now - datetime.fromisoformat(i.started_at).timestamp()) if i.started_at else 0
        except ValueError:
            up = 0
        h = health.get(i.container_id) or {}
        limit = (limits.get(i.process) or {}).get("memory_mb") or svc.settings.app_memory_mb
        state = dynos.instance_state(i, healthy, bool(h.get("stopping")))
        detail = dynos.state_detail(state, bool(h.get("oom")) or i.oom_killed, h.get("last_exit"),
                                    h.get("restarts", i.restart_count), limit)
        if bool(h.get("oom")) or i.oom_killed:
            detail += f"; raise it with `dockyard ps:limits {i.process} --memory {limit * 2} -a {app.name}`"
        out.append({"label": i.label, "state": state, "version": i.version,
                    "restarts": h.get("restarts", i.restart_count), "detail": detail,
                    "uptime": duration(up) if i.state == "running" else "-"})
    return out


def duration(s: int) -> str:
    """Seconds -> `3m20s`, `2h5m`, `1d4h` (the template filter `duration`)."""
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else (
        f"{s // 3600}h{s % 3600 // 60}m" if s >= 3600 else f"{s // 60}m{s % 60}s")


def domains(svc: Services, app: App) -> tuple[list[dict], dict | None]:
    """Custom domains and the app's certificate (names and expiry, never the key)."""
    return app_routes.domains(svc, app), app_routes.certificate_summary(svc, app)


def app_page(svc: Services, app: App, user: User) -> dict:
    current = queries.current_release(svc, app)
    recent = sorted(queries.releases(svc, app), key=lambda r: -r.version)[:20]
    doms, cert = domains(svc, app)
    collab = accounts.collaborator_ids(svc, app)
    return {"app": app, "row": app_row(svc, app), "formation": releases.formation(svc, app),
            "instances": instances(svc, app), "releases": recent, "addons": dynos.addon_rows(app),
            "current": current.version if current else 0,
            "config_keys": sorted(current.config) if current else [],
            "domains": doms, "cert": cert, "builds": queries.builds(svc, app)[:10],
            "access": accounts.access_list(svc, app), "drains": drains.of_app(svc, app),
            "is_owner": access.can_admin(user, app, collab), "web_url": f"http://{svc.settings.app_host(app.name)}:"
                                                                        f"{svc.settings.router_port}/",
            "summary": metrics.app_metrics(svc, app, 3600)["summary"], "sleep_events": queries.sleep_events(svc, app)}
