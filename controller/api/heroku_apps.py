"""Heroku's apps, account and releases (`heroku apps`, `apps:info`, `maintenance:on`,
`auth:whoami`, `releases`, `rollback`) over Dockyard's use cases."""
from __future__ import annotations

import secrets

from flask import g, jsonify

from core.errors import BadRequest, Forbidden
from core.models import App
from core.names import validate_app_name

from controller.apps import rename as app_rename
from controller.accounts import users as accounts
from controller.addons import lifecycle as addons
from controller.routing import app_routes
from controller.apps import queries
from controller.apps import releases
from controller.web.heroku import shapes
from controller.web.common import audit, body, svc
from controller.api.heroku import Users, find_app, listing, route


def app_shape(app: App, users: Users) -> dict:
    s = svc()
    app = queries.fresh(s, app.name)
    current = queries.current_release(s, app)
    owner_id, owner_login = users.ref(user_id=app.owner_id)
    return shapes.app(app_id=app.id, name=app.name, created_at=app.created_at,
                      released_at=current.created_at if current else None, owner_id=owner_id, owner_login=owner_login,
                      web_url=f"http://{s.settings.app_host(app.name)}:{s.settings.router_port}/",
                      git_url=f"{s.settings.api_url}/{app.name}.git", stack=s.settings.stack_image,
                      maintenance=bool(app_routes.router_settings(s, app).get("maintenance")))


@route("/apps", "GET")
def list_apps():
    """Every app the caller may see (an admin sees all)."""
    users = Users()
    return listing([app_shape(a, users) for a in queries.visible_apps(svc(), g.user)])


@route("/users/<who>/apps", "GET")
def list_user_apps(who):
    """`~` is the caller: the apps they own or collaborate on (not all an admin may see)."""
    users = Users()
    user = g.user if who == "~" else accounts.find_user(svc(), who)
    if user.id != g.user.id and not g.user.is_admin:
        raise Forbidden("You can list only your own apps (/users/~/apps); an admin lists anyone's.")
    return listing([app_shape(a, users) for a in queries.apps_of(svc(), user)])


@route("/apps/<ident>", "GET")
def get_app(ident):
    return jsonify(app_shape(find_app(ident), Users()))


@route("/apps", "POST")
def create_app():
    """apps:create [NAME]: without a name, one is made up, as Heroku does."""
    name = body().get("name")
    if name is None:
        name = shapes.new_app_name(secrets.choice, 1000 + secrets.randbelow(9000))
    app = releases.create_app(svc(), validate_app_name(name), g.user)
    audit("apps:create", app.name)
    return jsonify(app_shape(app, Users())), 201


@route("/apps/<ident>", "PATCH")
def update_app(ident):
    """maintenance:on/off (the router answers 503 meanwhile) and apps:rename."""
    app = find_app(ident, admin=True)
    new_name, maintenance = shapes.app_changes(body())
    if maintenance is not None:
        app_routes.set_router_settings(svc(), app, {"maintenance": maintenance}, g.user)
        audit("maintenance:on" if maintenance else "maintenance:off", app.name)
    if new_name is not None and new_name != app.name:
        old = app.name
        app = app_rename.rename_app(svc(), app, new_name, g.user)
        audit("apps:rename", app.name, old=old)
    return jsonify(app_shape(app, Users()))


@route("/apps/<ident>", "DELETE")
def destroy_app(ident):
    """apps:destroy, after the CLI's own confirmation: as on Heroku, the app's add-ons go with it
    (each after a final backup)."""
    app = find_app(ident, admin=True)
    shape = app_shape(app, Users())
    addons.destroy_app(svc(), app, g.user.name, True, lambda line: None)
    audit("apps:destroy", app.name)
    return jsonify(shape)


# ---- account ---------------------------------------------------------------------------------
def _account_shape(user):
    return shapes.account(user.id, user.login, user.name, user.is_admin)


@route("/account", "GET")
def get_account():
    return jsonify(_account_shape(g.user))


@route("/account", "PATCH")
def update_account():
    """{"email": "alice@example.com"}: the email Heroku's tools know the caller by (null: the name)."""
    data = body()
    if "email" not in data:
        raise BadRequest('Send {"email": "you@example.com"}: Dockyard changes only the email of an account.')
    user = accounts.set_email(svc(), g.user, data["email"])
    audit("account:email", email=user.email)
    return jsonify(_account_shape(user))


# ---- releases --------------------------------------------------------------------------------
def release_shapes(app: App) -> list[dict]:
    users = Users()
    current = queries.current_version(svc(), app)
    rows = []
    for r in queries.releases(svc(), app):
        user_id, login = users.ref(name=r.created_by)
        rows.append(shapes.release(app_id=app.id, app_name=app.name, version=r.version, status=r.status,
                                   description=r.description, created_at=r.created_at, current=r.version == current,
                                   user_id=user_id, user_login=login, build_id=r.build_id))
    return rows


@route("/apps/<ident>/releases", "GET")
def list_releases(ident):
    return listing(release_shapes(find_app(ident)))


@route("/apps/<ident>/releases/<version>", "GET")
def get_release(ident, version):
    app = find_app(ident)
    rows = release_shapes(app)
    wanted = shapes.release_version(version, app.id, [r["version"] for r in rows])
    match = next((r for r in rows if r["version"] == wanted), None)
    if match is None:
        queries.release(svc(), app, wanted)     # raises Dockyard's not-found with its fix
    return jsonify(match)


@route("/apps/<ident>/releases/<version>/config-vars", "GET")
def release_config(ident, version):
    """`releases:info`: the config a release ran with (readable by whoever may read the app's config)."""
    app = find_app(ident)
    wanted = shapes.release_version(version, app.id, [r.version for r in queries.releases(svc(), app)])
    return jsonify(queries.release(svc(), app, wanted).config)


@route("/apps/<ident>/releases", "POST")
def rollback(ident):
    """`heroku rollback [vN]`: the CLI sends the chosen release's id."""
    app = find_app(ident)
    data = body()
    versions = [r.version for r in queries.releases(svc(), app)]
    version = shapes.release_version(data["release"], app.id, versions) if data.get("release") else None
    made = releases.rollback(svc(), app, version, g.user.name, lambda line: None)
    audit("rollback", app.name, release=f"v{made.version}")
    rows = release_shapes(app)
    return jsonify(next(r for r in rows if r["version"] == made.version)), 201
