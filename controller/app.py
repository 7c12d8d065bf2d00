"""The JSON API: `create_app(settings)`, one blueprint per resource, one error handler.
Paths and shapes follow the Heroku Platform API where it has one."""
from __future__ import annotations

from flask import Flask, g, jsonify, request

from .auth import token_from_header
from core.errors import DockyardError, Unauthorized
from .services import Services
from .settings import Settings

PUBLIC_PATHS = ("/healthz",)


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    app = Flask("dockyard")
    app.config["SETTINGS"] = settings
    app.config["JSON_SORT_KEYS"] = False
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    svc = services or Services(settings)
    app.extensions["dockyard"] = svc

    from .api import account, apps, builds, checks, config_vars, dynos, formation, limits, logs, releases
    for bp in (account.bp, apps.bp, releases.bp, config_vars.bp, formation.bp, dynos.bp, builds.bp, logs.bp,
               limits.bp, checks.bp):
        app.register_blueprint(bp)
    from .api import certs, domains, router_settings   # router (issue 5)
    for bp in (domains.bp, certs.bp, router_settings.bp):
        app.register_blueprint(bp)
    # Access and security (issue 6): users/tokens, collaborators, SSH keys, audit log.
    from .api import audit, collaborators, keys, users
    for bp in (users.bp, collaborators.bp, keys.bp, audit.bp):
        app.register_blueprint(bp)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.before_request
    def authenticate():
        if request.path in PUBLIC_PATHS:
            return None
        token = token_from_header(request.headers.get("Authorization", ""))
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
