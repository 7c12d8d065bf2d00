from flask import Blueprint, g, jsonify

from ..deploy import RELEASE_PHASE
from core.errors import BadRequest
from ..locks import app_lock
from core.names import validate_process_type
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
    stopped = s.store.stopped_types(app)
    return [{"type": t, "quantity": quantities.get(t, 0), "command": types.get(t, ""), "stopped": t in stopped}
            for t in sorted(set(types) | set(quantities)) if t != RELEASE_PHASE]


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
        s.store.set_stopped(app, [t for t, q in quantities.items() if q > 0], False)   # scaling up starts it
        s.store.add_event(app, "dockyard", "api", "Scaled " + " ".join(f"{k}={v}" for k, v in quantities.items()))
        converge(s, app, lines.append, background=True)
    return jsonify(_formation_json(name))


@bp.post("/apps/<name>/formation/actions/<action>")
def stop_or_start(name, action):
    """ps:stop / ps:start (Dokku's verbs): stop all process types (or `{"type": ...}`) without
    losing their quantities, or start them again. A stopped web process gets the router's 503."""
    s = svc()
    load_app(name)      # first: nobody learns anything about an app they cannot see
    if action not in ("stop", "start"):
        raise BadRequest(f"Unknown action {action!r}: use stop or start.")
    ptype = body().get("type")
    lines: list[str] = []
    with app_lock(s.settings, name, f"ps:{action}"):
        app = s.store.get_app(name)
        release = s.store.live_release(app)
        types = {t for t in (release.process_types if release else {}) if t != RELEASE_PHASE}
        if ptype is not None:
            validate_process_type(ptype)
            require_process_type(name, types, ptype)
        chosen = sorted(types if ptype is None else {ptype})
        if not chosen:
            raise BadRequest(f"{name} has no processes yet: deploy it with `git push dockyard main`.")
        s.store.set_stopped(app, chosen, action == "stop")
        s.store.add_event(app, "dockyard", "api", f"{'Stopped' if action == 'stop' else 'Started'} "
                          f"{', '.join(chosen)} by {g.user.name}")
        converge(s, app, lines.append, background=False)
    return jsonify({"action": action, "types": chosen, "formation": _formation_json(name), "output": lines})
