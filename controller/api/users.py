"""Users and their tokens. Creating and removing users, and minting another user's token,
are the admin's; everyone may rotate or revoke their own token."""
from flask import Blueprint, g, jsonify, request

from controller.accounts import users as accounts
from controller.accounts import keys
from controller.accounts.auth import token_from_header
from core.errors import AdminOnly, BadRequest
from controller.web.common import audit, body, svc

bp = Blueprint("users", __name__)


def require_admin(what: str) -> None:
    if not g.user.is_admin:
        raise AdminOnly(f"Only an admin may {what}: ask your Dockyard admin.")


@bp.get("/users")
def list_users():
    require_admin("list users")
    return jsonify(accounts.list_users(svc()))


@bp.post("/users")
def add_user():
    require_admin("add users")
    data = body()
    name = accounts.validate_user_name(data.get("name"))
    is_admin = data.get("admin", False)
    if not isinstance(is_admin, bool):
        raise BadRequest("admin must be true or false.")
    user, token = accounts.add_user(svc(), name, is_admin)
    audit("users:add", user=name, admin=is_admin)
    return jsonify(name=user.name, is_admin=user.is_admin, token=token), 201


@bp.delete("/users/<name>")
def remove_user(name):
    require_admin("remove users")
    keys.remove_user(svc(), name, g.user)
    audit("users:remove", user=name)
    return jsonify(name=name, deleted=True)


@bp.post("/users/<name>/tokens")
def mint_token(name):
    """An admin mints a token for a user (e.g. a new colleague or a CI job)."""
    require_admin("mint tokens for other users")
    user = accounts.get_user(svc(), name)
    token = accounts.mint_token(svc(), user)
    audit("auth:token", user=name)
    return jsonify(user=user.name, token=token), 201


def _request_token() -> str:
    return token_from_header(request.headers.get("Authorization", "")) or ""


@bp.post("/account/token/rotate")
def rotate():
    """Replace the token of this request by a new one; the old one stops working at once."""
    token = accounts.rotate_token(svc(), g.user, _request_token())
    audit("auth:rotate")
    return jsonify(user=g.user.name, token=token), 201


@bp.delete("/account/token")
def revoke():
    """Log out: revoke the token of this request (all of them with ?all=1)."""
    if request.args.get("all") in ("1", "true"):
        count = accounts.revoke_all_tokens(svc(), g.user)
    else:
        count = int(accounts.revoke_token(svc(), _request_token()))
    audit("auth:logout", revoked=count)
    return jsonify(user=g.user.name, revoked=count)
