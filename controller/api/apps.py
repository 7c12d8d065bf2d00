from flask import Blueprint, g, jsonify, request

from core.names import validate_app_name

from controller.addons import lifecycle as addons
from controller.apps import autosleep
from controller.apps import rename as app_rename
from controller.apps import queries
from controller.apps import releases
from controller.web.common import app_json, body, load_app, svc

bp = Blueprint("apps", __name__)


@bp.get("/apps")
def list_apps():
    return jsonify([app_json(a, fresh=True) for a in queries.visible_apps(svc(), g.user)])


@bp.post("/apps")
def create_app_():
    """{"name": NAME, "autosleep": "30m" (optional: web sleeps from the start, with that window)}"""
    data = body()
    asleep = data.get("autosleep")
    if asleep is not None:
        autosleep.require_known(asleep)
        asleep = autosleep.parse_after(asleep)
    app = releases.create_app(svc(), validate_app_name(data.get("name")), g.user, asleep_after=asleep)
    return jsonify(app_json(app)), 201


@bp.get("/apps/<name>")
def get_app(name):
    app = load_app(name)
    data = app_json(app)
    data["formation"] = queries.formation(svc(), app)
    return jsonify(data)


@bp.patch("/apps/<name>")
def rename_app(name):
    """{"name": NEW}: only an app not deployed yet and without add-ons (app_rename.py says why)."""
    app = app_rename.rename_app(svc(), load_app(name, admin=True), body().get("name"), g.user)
    return jsonify(app_json(app))


@bp.delete("/apps/<name>")
def delete_app(name):
    """?addons=destroy: also delete the data of the app's add-ons (after a final backup of each);
    without it, an app with add-ons is refused (409) with their names."""
    app = load_app(name, admin=True)
    lines: list[str] = []
    kept = addons.destroy_app(svc(), app, g.user.name, request.args.get("addons") == "destroy", lines.append)
    return jsonify({**app_json_deleted(app), "final_backups": kept, "output": lines})


def app_json_deleted(app):
    return {"id": app.id, "name": app.name, "deleted": True}
