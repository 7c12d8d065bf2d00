"""Helpers shared by the blueprints."""
from __future__ import annotations

from flask import current_app, g, request

from controller.accounts import access
from controller.accounts import users as accounts
from controller.apps import queries
from core.errors import AppNotFound, BadRequest, Forbidden
from core.names import APP_NAME_RE
from core.numbers import whole_number
from core.models import App, Release
from controller.services import Services


def svc() -> Services:
    return current_app.extensions["dockyard"]


def audit(action: str, app: str | None = None, **detail) -> None:
    """Record this request's action in the audit log with its details (names only, never
    secret values); the catch-all recorder in api/audit.py then leaves the request alone."""
    g.audited = True
    accounts.audit(svc(), g.user.name, action, app, detail, 200)


def body() -> dict:
    """The JSON object the request sent ({} for none); parsed once, before the view (app.py)."""
    data = g.body if "body" in g else request.get_json(silent=True)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    return data


def load_app(name: str, admin: bool = False) -> App:
    app = queries.find_app(svc(), name)
    collaborators = accounts.collaborator_ids(svc(), app) if app is not None else set()
    if app is None or not access.can_read(g.user, app, collaborators):
        hint = f"`dockyard apps:create {name}`" if APP_NAME_RE.fullmatch(name) else "`dockyard apps:create NAME`"
        raise AppNotFound(f"App {name[:40]!r} not found: check the name with `dockyard apps`, "
                          f"or create it with {hint}.")
    if admin and not access.can_admin(g.user, app, collaborators):
        raise Forbidden(f"Only the owner of {name} may do that: you are a collaborator "
                        f"(see `dockyard access -a {name}`); ask the owner.")
    return app


def release_version(raw) -> int:
    """A release as the API, the CLI and the dashboard name it: 3, "3" or "v3"."""
    text = raw[1:] if isinstance(raw, str) and raw.startswith("v") else raw
    return whole_number(text, "release", 1, message=f"Release {str(raw)[:20]!r} is not a version like v3.")


def app_json(app: App, fresh: bool = False) -> dict:
    """`fresh`: `app` was read from the store in this request (a listing): its version is current."""
    s = svc().settings
    return {
        "id": app.id, "name": app.name, "created_at": app.created_at,
        "web_url": f"http://{s.app_host(app.name)}:{s.router_port}/",
        "git_url": f"{s.api_url}/{app.name}.git",
        "released_version": app.current_version if fresh else queries.current_version(svc(), app),
    }


def release_json(r: Release, current: int) -> dict:
    return {
        "version": r.version, "description": r.description, "status": r.status,
        "created_at": r.created_at, "user": r.created_by, "build_id": r.build_id,
        "current": r.version == current, "image": r.image,
        "process_types": sorted(r.process_types),
        "config_keys": sorted(r.config),   # values are secret: only the API's config-vars shows them
    }
