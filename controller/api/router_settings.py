"""Per-app router settings (body size, timeouts, force-https) and maintenance mode."""
from flask import Blueprint, g, jsonify

from .. import router_state
from core.errors import BadRequest
from .common import body, load_app, svc
from .router_common import apply_or_revert

bp = Blueprint("router_settings", __name__)


def _report(app) -> dict:
    s = svc()
    own = router_state.get_settings(s.store, app)
    return {"app": app.name, "settings": {**router_state.defaults(), **own}, "customized": sorted(own),
            "defaults": router_state.defaults(), "refused": s.router.refused().get(app.name),
            "https": router_state.get_cert(s.store, app.name) is not None, "tls_port": s.settings.router_tls_port}


@bp.get("/apps/<name>/router")
def get_router(name):
    return jsonify(_report(load_app(name)))


@bp.patch("/apps/<name>/router")
def patch_router(name):
    """{"settings": {"read-timeout": "120", "client-max-body-size": null (= default)}}"""
    s = svc()
    app = load_app(name, admin=True)
    changes = body().get("settings")
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("Send {\"settings\": {NAME: VALUE}}, e.g. `dockyard router:set read-timeout=120`.")
    parsed = router_state.parse_settings(app.name, changes)
    if parsed.get("force-https") and router_state.get_cert(s.store, app.name) is None:
        raise BadRequest(f"force-https needs a certificate: add one first with "
                         f"`dockyard certs:add CERT KEY -a {app.name}`.")
    before = router_state.get_settings(s.store, app)
    undo = {k: before.get(k) for k in parsed}
    apply_or_revert(app.name, lambda: router_state.update_settings(s.store, app, parsed),
                    lambda: router_state.update_settings(s.store, app, undo),
                    ", ".join(f"{k}" for k in sorted(parsed)))
    desc = ", ".join(f"{k}={'default' if v is None else v}" for k, v in sorted(parsed.items()))
    s.store.add_event(app, "dockyard", "api", f"Router settings {desc} set by {g.user.name}")
    return jsonify(_report(app))
