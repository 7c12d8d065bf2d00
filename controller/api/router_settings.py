"""Per-app router settings (body size, timeouts, force-https) and maintenance mode."""
from flask import Blueprint, g, jsonify

from controller.routing import app_routes
from controller.web.common import body, load_app, svc

bp = Blueprint("router_settings", __name__)


@bp.get("/apps/<name>/router")
def get_router(name):
    return jsonify(app_routes.router_report(svc(), load_app(name)))


@bp.patch("/apps/<name>/router")
def patch_router(name):
    """{"settings": {"read-timeout": "120", "client-max-body-size": null (= default)}}"""
    app = load_app(name, admin=True)
    app_routes.set_router_settings(svc(), app, body().get("settings"), g.user)
    return jsonify(app_routes.router_report(svc(), app))
