from flask import Blueprint, g, jsonify

from controller.accounts import users as accounts
from controller.web.common import audit, body, svc

bp = Blueprint("account", __name__)


def _account(user):
    return {"name": user.name, "email": user.email, "is_admin": user.is_admin}


@bp.get("/account")
def account():
    return jsonify(_account(g.user))


@bp.patch("/account")
def update_account():
    """{"email": "alice@example.com"} (null clears it): the email Heroku's tools know you by."""
    user = accounts.set_email(svc(), g.user, body().get("email"))
    audit("account:email", email=user.email)
    return jsonify(_account(user))
