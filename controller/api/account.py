from flask import Blueprint, g, jsonify

bp = Blueprint("account", __name__)


@bp.get("/account")
def account():
    return jsonify(name=g.user.name, is_admin=g.user.is_admin)
