"""Per-app router settings (body size, timeouts, force-https) and maintenance mode."""
from flask import Blueprint, g, jsonify

from controller.routing import app_routes
from controller.routing import state as router_state
from controller.web.common import body, load_app, svc

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
    app = load_app(name, admin=True)
    app_routes.set_router_settings(svc(), app, body().get("settings"), g.user)
    return jsonify(_report(app))
