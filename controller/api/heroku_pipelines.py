"""What the Heroku CLI's pipeline commands ask besides the pipelines themselves (api/pipelines.py):
the apps of a pipeline by id (`POST /filters/apps`), the caller's account as `/users/~` (the
pipeline's owner), and account features (none: so `reviewapps:enable` asks no GitHub service)."""
from __future__ import annotations

from flask import g, jsonify

from core.errors import AppNotFound, BadRequest

from controller.api.heroku import Users, find_app, listing, route
from controller.api.heroku_apps import app_shape
from controller.web.common import body
from controller.web.heroku import shapes


@route("/filters/apps", "POST")
def filter_apps():
    """{"in": {"id": [ids]}}: those apps the caller may read, in Heroku's app shape."""
    ids = (body().get("in") or {}).get("id") if isinstance(body().get("in"), dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest('Send {"in": {"id": [APP_ID, ...]}}.')
    users, found = Users(), []
    for ident in ids[:1000]:
        try:
            found.append(app_shape(find_app(ident), users))
        except AppNotFound:
            continue     # not there, or not the caller's to see: left out, as Heroku does
    return listing(found)


@route("/users/~", "GET")
def whoami():
    return jsonify(shapes.account(g.user.id, g.user.login, g.user.name, g.user.is_admin))


@route("/account/features/<name>", "GET")
def account_feature(name):
    return jsonify({"id": name, "name": name, "enabled": False, "state": "general",
                    "description": "Dockyard has no account features", "doc_url": "", "feedback_email": ""})
