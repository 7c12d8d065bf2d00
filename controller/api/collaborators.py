"""Per-app access: the owner (or an admin) adds and removes collaborators; anyone with
access may list them. Heroku: /apps/{app}/collaborators."""
from flask import Blueprint, jsonify

from controller.accounts import users as accounts
from core.errors import BadRequest
from controller.web.common import audit, body, load_app, svc

bp = Blueprint("collaborators", __name__)


@bp.get("/apps/<name>/collaborators")
def list_collaborators(name):
    return jsonify(accounts.access_list(svc(), load_app(name)))


@bp.post("/apps/<name>/collaborators")
def add(name):
    app = load_app(name, admin=True)
    user_name = body().get("user")
    if not isinstance(user_name, str) or not user_name:
        raise BadRequest('Say who: {"user": "NAME"} (`dockyard access:add NAME -a APP`).')
    user = accounts.get_user(svc(), user_name)
    accounts.add_collaborator(svc(), app, user)
    audit("access:add", name, user=user.name)
    return jsonify(accounts.access_list(svc(), app)), 201


@bp.delete("/apps/<name>/collaborators/<user_name>")
def remove(name, user_name):
    app = load_app(name, admin=True)
    user = accounts.get_user(svc(), user_name)
    accounts.remove_collaborator(svc(), app, user)
    audit("access:remove", name, user=user.name)
    return jsonify(accounts.access_list(svc(), app))
