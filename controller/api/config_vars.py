from flask import Blueprint, g, jsonify, request

from core.errors import BadRequest
from core.names import validate_config_key

from controller.apps import queries
from controller.apps import releases
from controller.web.common import body, load_app, svc

bp = Blueprint("config_vars", __name__)


@bp.get("/apps/<name>/config-vars")
def get_config(name):
    app = load_app(name)
    current = queries.current_release(svc(), app)
    return jsonify(current.config if current else {})


@bp.patch("/apps/<name>/config-vars")
def update_config(name):
    """{KEY: "value", OTHER: null}: one new release and one rolling restart for all pairs
    (`?restart=false`: the release is made, the processes pick it up at the next restart)."""
    restart = request.args.get("restart", "true").lower() not in ("false", "0", "no")
    app = load_app(name)
    changes = body()
    for key, value in changes.items():
        validate_config_key(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"The value of {key} must be a string (or null to unset it).")
    lines: list[str] = []
    return jsonify(releases.set_config(svc(), app, changes, g.user.name, restart, lines.append))
