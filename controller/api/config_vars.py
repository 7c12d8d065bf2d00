from flask import Blueprint, g, jsonify, request

from ..deploy import create_release
from core.errors import BadRequest
from ..locks import app_lock
from core.names import validate_config_key
from .common import body, load_app, svc

bp = Blueprint("config_vars", __name__)


@bp.get("/apps/<name>/config-vars")
def get_config(name):
    app = load_app(name)
    current = svc().store.current_release(app)
    return jsonify(current.config if current else {})


@bp.patch("/apps/<name>/config-vars")
def update_config(name):
    """{KEY: "value", OTHER: null}: one new release and one rolling restart for all pairs
    (`?restart=false`: the release is made, the processes pick it up at the next restart)."""
    s = svc()
    restart = request.args.get("restart", "true").lower() not in ("false", "0", "no")
    load_app(name)
    changes = body()
    for key, value in changes.items():
        validate_config_key(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"The value of {key} must be a string (or null to unset it).")
    lines: list[str] = []
    with app_lock(s.settings, name, "config change"):
        app = s.store.get_app(name)
        current = s.store.current_release(app)
        config = dict(current.config) if current else {}
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        if current is not None and config == current.config:
            return jsonify(config)
        set_keys = sorted(k for k, v in changes.items() if v is not None)
        unset_keys = sorted(k for k, v in changes.items() if v is None)
        desc = "; ".join(filter(None, [f"Set {', '.join(set_keys)}" if set_keys else "",
                                       f"Unset {', '.join(unset_keys)}" if unset_keys else ""]))
        build = s.store.get_build(current.build_id) if current and current.build_id else None
        create_release(s, app, build, config, desc + " config vars", g.user.name, lines.append, restart=restart)
    return jsonify(config)
