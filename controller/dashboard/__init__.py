"""The web dashboard at /dashboard/ on the API port: server-rendered pages (Flask templates)
over the same use cases and access rules as the JSON API. Logged in with an API token, then
a session cookie (HttpOnly, SameSite=Strict, expiring, ended when its token is revoked);
every form carries a CSRF token. Charts use uPlot, vendored under static/vendor."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
               static_folder="static", static_url_path="/static")

from controller.dashboard import pages, session, views_admin, views_app, views_apps, views_pipelines  # noqa: E402  (they add routes to bp)

VIEWS = (session, views_admin, views_app, views_apps, views_pipelines)
bp.add_app_template_filter(pages.duration, "duration")
