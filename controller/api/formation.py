from flask import Blueprint, jsonify

from ..errors import BadRequest
from ..locks import app_lock
from ..names import validate_process_type
from ..reconcile import converge
from .common import body, load_app, require_process_type, svc

bp = Blueprint("formation", __name__)
MAX_QUANTITY = 50


def _formation_json(name):
    s = svc()
    app = s.store.get_app(name)
    release = s.store.current_release(app)
    types = release.process_types if release else {}
    quantities = s.store.formation(app)
    return [{"type": t, "quantity": quantities.get(t, 0), "command": types.get(t, "")}
            for t in sorted(set(types) | set(quantities))]


@bp.get("/apps/<name>/formation")
def get_formation(name):
    load_app(name)
    return jsonify(_formation_json(name))


@bp.patch("/apps/<name>/formation")
def scale(name):
    s = svc()
    load_app(name)
    updates = body().get("updates")
    if not isinstance(updates, list) or not updates:
        raise BadRequest('Send {"updates": [{"type": "web", "quantity": 2}]}.')
    lines: list[str] = []
    with app_lock(s.settings, name, "scale"):
        app = s.store.get_app(name)
        release = s.store.current_release(app)
        types = release.process_types if release else {}
        quantities = {}
        for u in updates:
            ptype = validate_process_type((u or {}).get("type"))
            qty = u.get("quantity")
            if not isinstance(qty, int) or isinstance(qty, bool) or not 0 <= qty <= MAX_QUANTITY:
                raise BadRequest(f"Quantity for {ptype} must be a whole number from 0 to {MAX_QUANTITY}.")
            require_process_type(name, types, ptype)
            quantities[ptype] = qty
        s.store.set_formation(app, quantities)
        s.store.add_event(app, "dockyard", "api", "Scaled " + " ".join(f"{k}={v}" for k, v in quantities.items()))
        converge(s, app, lines.append, background=True)
    return jsonify(_formation_json(name))
