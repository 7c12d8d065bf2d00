"""Heroku's add-ons and attachments (`addons:create heroku-postgresql`, `addons`, `addons:info`,
`addons:destroy`) over Dockyard's postgres and redis add-ons. Heroku's tools find an add-on by
name, id or attachment name (DATABASE) through the resolve actions."""
from __future__ import annotations

from flask import g, jsonify

from core.errors import BadRequest, NotFound
from core.models import Addon

from controller.addons import ops as addon_ops
from controller.addons import queries as addon_queries
from controller.apps import queries
from controller.addons import lifecycle as addons
from controller.web.heroku import resources
from controller.web.common import audit, body, svc
from controller.api.heroku import find_app, listing, route


def addon_shape(a: Addon) -> dict:
    s = svc()
    owner = addon_queries.owner(s, a)
    state, _ = addon_ops.state(s, a)
    owned = [t.var for t in addon_queries.attachments(s, a) if t.app == a.app]
    return resources.addon(addon_id=a.id, name=a.name, service=a.service, memory_mb=a.memory_mb, state=state,
                           app_id=owner.id, app_name=owner.name, config_vars=owned, created_at=a.created_at)


def attachment_shapes(a: Addon, shape: dict | None = None) -> list[dict]:
    shape = shape or addon_shape(a)
    rows = []
    for t in addon_queries.attachments(svc(), a):
        rows.append(resources.attachment(addon_json=shape, app_id=t.app_id, app_name=t.app, var=t.var))
    return rows


def _visible_addons() -> list[Addon]:
    seen: dict[str, Addon] = {}
    for app in queries.visible_apps(svc(), g.user):
        for a in addon_queries.of_app(svc(), app):
            seen.setdefault(a.id, a)
    return list(seen.values())


@route("/apps/<ident>/addons", "GET")
def list_app_addons(ident):
    return listing([addon_shape(a) for a in addon_queries.of_app(svc(), find_app(ident))])


@route("/addons", "GET")
def list_addons():
    return listing([addon_shape(a) for a in _visible_addons()])


@route("/apps/<ident>/addons", "POST")
def create_addon(ident):
    """{"plan": {"name": "heroku-postgresql:essential-0"}, "attachment": {"name": "AS"}}: Dockyard
    starts the service before it answers, so the add-on is provisioned and its var set."""
    app = find_app(ident)
    data = body()
    service = resources.service_from_plan(data.get("plan"))
    attachment = data.get("attachment") if isinstance(data.get("attachment"), dict) else {}
    addon = addons.create(svc(), app, service, attachment.get("name"), g.user.name, lambda line: None, None)
    audit("addons:create", app.name, addon=addon.name, service=addon.service)
    return jsonify(addon_shape(addon)), 201


def _resolve(ident: str, app_name: str | None) -> list[Addon]:
    """By name or id; with an app, also by the app's attachment name (DATABASE) or var (DATABASE_URL)."""
    candidates = addon_queries.of_app(svc(), find_app(app_name)) if app_name else _visible_addons()
    found = [a for a in candidates if ident in (a.name, a.id)]
    if not found and app_name:
        app = find_app(app_name)
        for a in candidates:
            var = addon_queries.attachment(svc(), a, app).var
            if ident.upper() in (var, var.removesuffix("_URL")):
                found.append(a)
    if not found:
        where = f" on {app_name}" if app_name else ""
        raise NotFound(f"No add-on {ident[:60]!r}{where}: see `heroku addons{' -a ' + app_name if app_name else ''}`.")
    return found


@route("/actions/addons/resolve", "POST")
def resolve_addon():
    data = body()
    return jsonify([addon_shape(a) for a in _resolve(str(data.get("addon") or ""), data.get("app"))])


@route("/actions/addon-attachments/resolve", "POST")
def resolve_attachment():
    data = body()
    app_name = data.get("app")
    rows = [t for a in _resolve(str(data.get("addon_attachment") or ""), app_name) for t in attachment_shapes(a)]
    return jsonify([t for t in rows if not app_name or t["app"]["name"] == app_name])


@route("/apps/<ident>/addons/<addon>", "GET")
def addon_info(ident, addon):
    return jsonify(addon_shape(_resolve(addon, find_app(ident).name)[0]))


@route("/addons/<addon>", "GET")
def addon_by_id(addon):
    return jsonify(addon_shape(_resolve(addon, None)[0]))


@route("/addons/<addon>/addon-attachments", "GET")
def addon_attachments(addon):
    return listing(attachment_shapes(_resolve(addon, None)[0]))


@route("/apps/<ident>/addon-attachments", "GET")
def app_attachments(ident):
    app = find_app(ident)
    return listing([t for a in addon_queries.of_app(svc(), app) for t in attachment_shapes(a)
                    if t["app"]["name"] == app.name])


@route("/addon-attachments", "GET")
def all_attachments():
    names = {a.name for a in queries.visible_apps(svc(), g.user)}
    return listing([t for a in _visible_addons() for t in attachment_shapes(a) if t["app"]["name"] in names])


@route("/apps/<ident>/addons/<addon>", "DELETE")
def destroy_addon(ident, addon):
    """addons:destroy, after the CLI's own confirmation: Dockyard keeps a final backup first."""
    app = find_app(ident, admin=True)
    a = _resolve(addon, app.name)[0]
    if a.app != app.name:
        raise BadRequest(f"{a.name} belongs to {a.app}: destroy it there, or detach it from {app.name}.")
    shape = addon_shape(a)
    addons.destroy(svc(), a, a.app, g.user.name, lambda line: None)
    audit("addons:destroy", app.name, addon=a.name)
    return jsonify({**shape, "state": "deprovisioned"})
