"""The JSON API: `create_app(settings)`, one blueprint per resource, one error handler.
Paths and shapes follow the Heroku Platform API where it has one."""
from __future__ import annotations

import errno
import hmac
import json

from flask import Flask, g, jsonify, request

from core.errors import BadRequest, DockyardError, StorageFull, Unauthorized

from controller import dashboard
from controller.accounts.auth import token_from_header
from controller.admin import status
from controller.api import (account, addons, admin, apps, audit, builds, certs, checks, collaborators, config_vars, cron,
                            domains, dynos, formation, heroku, keys, limits, logs, metrics, nodes, pipelines, releases,
                            router_settings, tenancy, users)
from controller.api import heroku_access, heroku_addons, heroku_apps, heroku_pipelines, heroku_ps  # noqa: F401 - they register views
from controller.api import heroku_run
from controller.services import Services
from controller.settings import Settings
from controller.store.base import FULL_BELOW

PUBLIC_PATHS = ("/healthz",)
PUBLIC_PREFIXES = ("/buildpacks/",)   # the Heroku CLI's buildpack registry lookups: shipped names only
MUTATING = ("POST", "PUT", "PATCH", "DELETE")
MAX_BODY = 1 << 20


def _dashboard(path: str) -> bool:
    return path == "/dashboard" or path.startswith("/dashboard/")


def parse_body():
    """The request's JSON body (None when empty)."""
    data = request.get_data(cache=True)    # over MAX_CONTENT_LENGTH: werkzeug raises 413
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except RecursionError:
        raise BadRequest("The request body is nested too deeply to read: send a flat JSON object.") from None
    except ValueError:
        raise BadRequest("The request body is not valid JSON.") from None


# One blueprint per resource: apps and their releases, processes and builds; routing (domains,
# certificates, router settings); access (users and tokens, collaborators, SSH keys, audit).
BLUEPRINTS = (account.bp, apps.bp, releases.bp, config_vars.bp, formation.bp, dynos.bp, builds.bp, logs.bp,
              limits.bp, checks.bp, domains.bp, certs.bp, router_settings.bp, users.bp, collaborators.bp,
              keys.bp, tenancy.bp, nodes.bp, addons.bp, audit.bp, admin.bp, metrics.bp, cron.bp, heroku_run.bp,
              pipelines.bp)


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    app = Flask("dockyard")
    app.config["SETTINGS"] = settings
    app.config["JSON_SORT_KEYS"] = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    svc = services or Services(settings)
    app.extensions["dockyard"] = svc

    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.register_blueprint(dashboard.bp)

    @app.get("/healthz")
    def healthz():
        """Serving, and whether fully: `degraded` lists what stops changes (still 200: reads and
        apps go on; `make status` exits non-zero on it)."""
        found = status.problems(svc)
        return jsonify(status="degraded", problems=found) if found else jsonify(status="ok")

    @app.before_request
    def authenticate():
        if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES) or _dashboard(request.path):
            return None   # the dashboard authenticates with its own session cookie (dashboard/session.py)
        if request.method == "GET" and request.path.startswith(heroku_run.STREAM_PREFIX):
            return None   # a log stream's URL carries its own credential (heroku_logs.py)
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

    @app.before_request
    def read_body():
        """Every mutating request's body is read and parsed here, before any view acts: a body that
        is too large (413) or not JSON, or nested too deep to parse (400) stops the request, and
        the audit and the views use this one parsed value (so nothing fails after the change).
        The dashboard's pages post HTML forms, which werkzeug's form parser reads (bounded by
        MAX_CONTENT_LENGTH, with no nesting)."""
        if request.method in MUTATING and not _dashboard(request.path):
            g.body = parse_body()
        return None

    # Heroku's tools (Accept: application/vnd.heroku+json) get the Platform API's shapes where
    # they differ from Dockyard's (controller/api/heroku.py); after the body is read, so both agree.
    app.before_request(heroku.dispatch)

    _error_handlers(app, svc)
    return app


def _error_handlers(app: Flask, svc: Services) -> None:
    """Every error as JSON: a DockyardError with its status and fix, HTTP errors, a full
    filesystem, and anything else (never an HTML page)."""
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

    @app.errorhandler(OSError)
    def os_error(e):
        """A full filesystem anywhere under a request (a repository, a backup, a log) says where
        and what to free, as the store does; other OS errors are internal."""
        if e.errno == errno.ENOSPC:
            if svc.store.free_bytes() < FULL_BELOW:
                return handle_error(svc.store.storage_full_error())
            where = e.filename or "a file this request wrote"
            return handle_error(StorageFull(f"No space left on the filesystem of {where}: free space there, then "
                                            "try again."))
        app.logger.exception("unhandled OSError", exc_info=e)
        return internal(e)

    @app.errorhandler(500)
    def internal(_e):
        """What no DockyardError describes: JSON all the same (clients print the message, never a
        page), with the traceback in the API's log."""
        return jsonify(id="internal_error", message="The platform failed on this request; its traceback is in the "
                                                    "API's log (DOCKYARD_HOME/logs). See `make status`, then try "
                                                    "again."), 500

    @app.errorhandler(413)
    def too_large(_e):
        return jsonify(id="too_large", message="The request body is larger than 1 MB."), 413
