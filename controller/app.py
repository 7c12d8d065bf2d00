"""The JSON API: `create_app(settings)`, one blueprint per resource, one error handler.
Paths and shapes follow the Heroku Platform API where it has one."""
from __future__ import annotations

import hmac

from flask import Flask, g, jsonify, request

from .api import (account, admin, apps, audit, builds, certs, checks, collaborators, config_vars, cron, domains,
                  dynos, formation, keys, limits, logs, metrics, releases, router_settings, users)
from .auth import token_from_header
from . import dashboard
from core.errors import DockyardError, Unauthorized
from .services import Services
from .settings import Settings

PUBLIC_PATHS = ("/healthz",)
# One blueprint per resource: apps and their releases, processes and builds; routing (domains,
# certificates, router settings); access (users and tokens, collaborators, SSH keys, audit).
BLUEPRINTS = (account.bp, apps.bp, releases.bp, config_vars.bp, formation.bp, dynos.bp, builds.bp, logs.bp,
              limits.bp, checks.bp, domains.bp, certs.bp, router_settings.bp, users.bp, collaborators.bp,
              keys.bp, audit.bp, admin.bp, metrics.bp, cron.bp)


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    app = Flask("dockyard")
    app.config["SETTINGS"] = settings
    app.config["JSON_SORT_KEYS"] = False
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    svc = services or Services(settings)
    app.extensions["dockyard"] = svc

    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.register_blueprint(dashboard.bp)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.before_request
    def authenticate():
        if request.path in PUBLIC_PATHS or request.path.startswith("/dashboard/") or request.path == "/dashboard":
            return None   # the dashboard authenticates with its own session cookie (dashboard/session.py)
        token = token_from_header(request.headers.get("Authorization", ""))
        if request.path == "/metrics" and token and settings.metrics_token \
                and hmac.compare_digest(token, settings.metrics_token):
            g.scraper = True      # a Prometheus scraper: GET /metrics only, no user
            return None
        user = svc.store.user_for_token(token) if token else None
        if user is None:
            raise Unauthorized("Missing or invalid token: log in with `dockyard login`, or send "
                               "`Authorization: Bearer <token>`.")
        g.user = user
        return None

    @app.errorhandler(DockyardError)
    def handle_error(e):
        return jsonify(e.to_json()), e.status

    @app.errorhandler(404)
    def not_found(_e):
        return jsonify(id="not_found", message=f"No such API path: {request.method} {request.path}. "
                                               "See README.md for the API."), 404

    @app.errorhandler(405)
    def not_allowed(_e):
        return jsonify(id="method_not_allowed", message=f"{request.method} is not allowed on {request.path}."), 405

    @app.errorhandler(413)
    def too_large(_e):
        return jsonify(id="too_large", message="The request body is larger than 1 MB."), 413

    return app
