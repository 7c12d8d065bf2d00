"""Heroku's domains, collaborators (`heroku access`), account keys and buildpack installations
over Dockyard's use cases. Buildpack installations are Dockyard's BUILDPACK_URL config var."""
from __future__ import annotations

from flask import g, jsonify

from builder.buildpacks import BUILTIN_ORDER, parse_buildpack_ref
from core.errors import NotFound

from controller.accounts import users as accounts
from controller.routing import app_routes
from controller.accounts import keys
from controller.apps import queries
from controller.apps import releases
from controller.web.heroku import resources
from controller.web.common import audit, body, svc
from controller.api.heroku import Users, find_app, listing, route


# ---- domains -----------------------------------------------------------------------------------
def domain_shapes(app) -> list[dict]:
    default = svc().settings.app_host(app.name)
    rows = [resources.domain(app_id=app.id, app_name=app.name, hostname=default, kind="default",
                             default_host=default, created_at=app.created_at)]
    return rows + [resources.domain(app_id=app.id, app_name=app.name, hostname=d["hostname"], kind="custom",
                                    default_host=default, created_at=d["created_at"])
                   for d in app_routes.domains(svc(), app)]


@route("/apps/<ident>/domains", "GET")
def list_domains(ident):
    return listing(domain_shapes(find_app(ident)))


@route("/apps/<ident>/domains/<hostname>", "GET")
def get_domain(ident, hostname):
    app = find_app(ident)
    match = next((d for d in domain_shapes(app) if hostname in (d["hostname"], d["id"])), None)
    if match is None:
        raise NotFound(f"{app.name} has no domain {hostname[:80]!r}: see `heroku domains -a {app.name}`.")
    return jsonify(match)


@route("/apps/<ident>/domains", "POST")
def add_domain(ident):
    app = find_app(ident, admin=True)
    host = app_routes.add_domain(svc(), app, body().get("hostname"), g.user)
    return jsonify(next(d for d in domain_shapes(app) if d["hostname"] == host)), 201


@route("/apps/<ident>/domains/<hostname>", "DELETE")
def remove_domain(ident, hostname):
    app = find_app(ident, admin=True)
    match = next((d for d in domain_shapes(app) if hostname in (d["hostname"], d["id"])), None)
    app_routes.remove_domain(svc(), app, match["hostname"] if match else hostname, g.user)
    return jsonify(match or {"hostname": hostname})


# ---- collaborators -------------------------------------------------------------------------------
def collaborator_shapes(app) -> list[dict]:
    users = Users()
    rows = []
    for entry in accounts.access_list(svc(), app):
        user_id, login = users.ref(name=entry["user"])
        rows.append(resources.collaborator(app_id=app.id, app_name=app.name, user_id=user_id, login=login,
                                           role=entry["role"], since=entry.get("since") or app.created_at))
    return rows


@route("/apps/<ident>/collaborators", "GET")
def list_collaborators(ident):
    return listing(collaborator_shapes(find_app(ident)))


@route("/apps/<ident>/collaborators", "POST")
def add_collaborator(ident):
    """`heroku access:add EMAIL`: a user by email, or by name where they set none."""
    app = find_app(ident, admin=True)
    user = accounts.find_user(svc(), body().get("user"))
    accounts.add_collaborator(svc(), app, user)
    audit("access:add", app.name, user=user.name)
    return jsonify(next(c for c in collaborator_shapes(app) if c["user"]["email"] == user.login)), 201


@route("/apps/<ident>/collaborators/<who>", "DELETE")
def remove_collaborator(ident, who):
    app = find_app(ident, admin=True)
    user = accounts.find_user(svc(), who)
    shape = next((c for c in collaborator_shapes(app) if c["user"]["email"] == user.login), {})
    accounts.remove_collaborator(svc(), app, user)
    audit("access:remove", app.name, user=user.name)
    return jsonify(shape)


# ---- account keys --------------------------------------------------------------------------------
def key_shapes() -> list[dict]:
    return [resources.key(row=k, login=g.user.login) for k in accounts.list_keys(svc(), g.user)]


@route("/account/keys", "GET")
def list_keys():
    return listing(key_shapes())


@route("/account/keys", "POST")
def add_key():
    added = keys.add_key(svc(), g.user, body().get("public_key"))
    audit("keys:add", name=added["name"], fingerprint=added["fingerprint"])
    return jsonify(next(k for k in key_shapes() if k["fingerprint"] == added["fingerprint"])), 201


@route("/account/keys/<path:which>", "DELETE")
def remove_key(which):
    removed = keys.remove_key(svc(), g.user, which)
    audit("keys:remove", name=removed["name"], fingerprint=removed["fingerprint"])
    return jsonify({"id": removed["fingerprint"], "fingerprint": removed["fingerprint"], "comment": removed["name"]})


# ---- buildpacks ----------------------------------------------------------------------------------
def _buildpack_url(app) -> str | None:
    current = queries.current_release(svc(), queries.fresh(svc(), app.name))
    return (current.config if current else {}).get("BUILDPACK_URL")


@route("/apps/<ident>/buildpack-installations", "GET")
def list_buildpacks(ident):
    return jsonify(resources.buildpack_installations(_buildpack_url(find_app(ident)), BUILTIN_ORDER))


@route("/apps/<ident>/buildpack-installations", "PUT")
def set_buildpacks(ident):
    """buildpacks:set/add/remove/clear: BUILDPACK_URL, used by the next build (a new release
    that restarts nothing, as on Heroku where the next push uses it)."""
    app = find_app(ident)
    url = resources.buildpack_url_for(body().get("updates"), BUILTIN_ORDER)
    if url is not None:
        parse_buildpack_ref(url, "buildpack", svc().settings.buildpack_paths)   # refused now, not at the next build
    if url != _buildpack_url(app):
        releases.set_config(svc(), app, {"BUILDPACK_URL": url}, g.user.name, False, lambda line: None)
    audit("buildpacks:set", app.name, buildpack=url)
    return jsonify(resources.buildpack_installations(url, BUILTIN_ORDER))


@route("/buildpacks/<path:slug>", "GET")
def registry_lookup(slug):
    """The CLI resolves `heroku/python` at its buildpack registry (HEROKU_BUILDPACK_REGISTRY_URL):
    Dockyard answers for the buildpacks it ships (public: names only)."""
    entry = resources.registry_entry(slug, BUILTIN_ORDER)
    if entry is None:
        names = ", ".join(resources.BUILDPACK_PREFIX + n for n in BUILTIN_ORDER)
        raise NotFound(f"Dockyard ships no buildpack {slug[:60]!r}: use one of {names}, or a git URL.")
    return jsonify(entry)
