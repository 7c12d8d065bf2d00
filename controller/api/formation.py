from flask import Blueprint, g, jsonify

from core.appjson import MAX_QUANTITY
from core.errors import BadRequest

from controller.apps import autosleep, releases
from controller.web.common import body, load_app, svc

bp = Blueprint("formation", __name__)


@bp.get("/apps/<name>/formation")
def get_formation(name):
    return jsonify(releases.formation(svc(), load_app(name)))


@bp.patch("/apps/<name>/formation")
def scale(name):
    app = load_app(name)
    updates = body().get("updates")
    if not isinstance(updates, list) or not updates:
        raise BadRequest('Send {"updates": [{"type": "web", "quantity": 2}]}.')
    lines: list[str] = []
    releases.scale(svc(), app, updates, g.user.name, lines.append, MAX_QUANTITY)
    return jsonify(releases.formation(svc(), app))


@bp.post("/apps/<name>/formation/actions/<action>")
def stop_or_start(name, action):
    """ps:stop / ps:start (Dokku's verbs): stop all process types (or `{"type": ...}`) without
    losing their quantities, or start them again. A stopped web process gets the router's 503."""
    app = load_app(name)      # first: nobody learns anything about an app they cannot see
    if action not in ("stop", "start"):
        raise BadRequest(f"Unknown action {action!r}: use stop or start.")
    lines: list[str] = []
    chosen = releases.stop_or_start(svc(), app, action, body().get("type"), g.user.name, lines.append)
    return jsonify({"action": action, "types": chosen, "formation": releases.formation(svc(), app),
                    "output": lines})


@bp.get("/apps/<name>/autosleep")
def get_autosleep(name):
    return jsonify(autosleep.show(svc(), load_app(name)))


@bp.put("/apps/<name>/autosleep/<ptype>")
def set_autosleep(name, ptype):
    """ps:autosleep TYPE --after 30m (`{"after": null}` turns it off)."""
    app = load_app(name)
    after = body().get("after")
    autosleep.require_known(after)
    lines: list[str] = []
    rows = autosleep.set_autosleep(svc(), app, ptype, after, g.user, lines.append)
    return jsonify({"autosleep": rows, "output": lines})


@bp.delete("/apps/<name>/autosleep/<ptype>")
def unset_autosleep(name, ptype):
    lines: list[str] = []
    rows = autosleep.set_autosleep(svc(), load_app(name), ptype, None, g.user, lines.append)
    return jsonify({"autosleep": rows, "output": lines})
